#!/usr/bin/env python3
"""Writes the safetensors fixtures of tests/test_io_safetensors.cpp with an independent writer (the standard
library's struct and json only: no safetensors package, no numpy, no mixq code). Run from anywhere: python3 tests/data/make_fixture.py

fixture.safetensors            float tensors in F32, F16 and BF16, a scalar, an I32 tensor, __metadata__
fixture_quantized.safetensors  a 3-bit per-channel quantized tensor in the layout of docs/FORMAT.md
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(path, tensors, metadata):
    """tensors: list of (name, dtype string, shape, raw little-endian bytes), stored in this order."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def f32_bytes(values):
    return struct.pack("<%df" % len(values), *values)


def f16_bytes(values):
    return struct.pack("<%de" % len(values), *values)


def i32_bytes(values):
    return struct.pack("<%di" % len(values), *values)


def bf16_bytes(values):
    """The upper half of each float32 (values chosen exactly representable in bfloat16)."""
    return b"".join(struct.pack("<f", v)[2:] for v in values)


def pack(codes, bits):
    """Low `bits` bits of each code (two's complement), little-endian bit stream, LSB first, zero padded."""
    acc, filled, out = 0, 0, bytearray()
    for c in codes:
        acc |= (c & ((1 << bits) - 1)) << filled
        filled += bits
        while filled >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            filled -= 8
    if filled:
        out.append(acc & 0xFF)
    return bytes(out)


def main():
    weight = [0.5, -1.25, 3.0, 1e-3, -7.5, 65504.0]
    bias = [1.0, -2.5, 6.103515625e-05, 5.960464477539063e-08]  # normal, min normal, min subnormal half
    emb = [1.0, -0.5, 3.140625, 256.0]
    write(os.path.join(HERE, "fixture.safetensors"), [
        ("emb.bf16", "BF16", [2, 2], bf16_bytes(emb)),
        ("weight.f32", "F32", [2, 3], f32_bytes(weight)),
        ("bias.f16", "F16", [4], f16_bytes(bias)),
        ("scalar", "F32", [], f32_bytes([42.0])),
        ("ids", "I32", [2], i32_bytes([7, -9])),
    ], {"producer": "make_fixture.py", "format": "pt"})

    # conv.weight: shape [2, 3], 3-bit signed symmetric per-channel on axis 0, codes in [-4, 3]
    codes = [-4, -1, 3, 0, 2, -3]
    spec = {"shape": [2, 3], "bit_width": 3, "signed": True, "symmetric": True, "narrow_range": False,
            "granularity": "per_channel", "axis": 0, "group_size": 0, "scale_restriction": "free",
            "packing": "lsb_first"}
    write(os.path.join(HERE, "fixture_quantized.safetensors"), [
        ("conv.weight.codes", "U8", [3], pack(codes, 3)),
        ("conv.weight.scales", "F32", [2], f32_bytes([0.25, 0.125])),
        ("conv.weight.zero_points", "I32", [2], i32_bytes([0, 0])),
        ("conv.bias", "F32", [2], f32_bytes([0.5, -0.5])),
    ], {"mixq.format": "mixq.quantized-safetensors.v1", "mixq.quant.conv.weight": json.dumps(spec),
        "note": "written by make_fixture.py"})


if __name__ == "__main__":
    main()
