#!/usr/bin/env python3
"""PyTorch's CPU fake-quant ops on this machine, single thread: the peer bench_kernels is compared against.

    python3 benchmarks/torch_kernels.py            # table: G elements/s and GB/s (medians of 5)
    python3 benchmarks/torch_kernels.py --golden   # the golden values tests/test_kernels.cpp embeds

Times are CPU time of the process (time.process_time), medians of 5 repetitions. Working sets as bench_kernels: 16 KiB, 256 KiB, 4 MiB, 256 MiB of float32 per stream. GB/s counts every
stream read and written, as bench_kernels does (fake-quant: 8 bytes per element; learnable fwd+bwd: 8 + 12).
Needs torch (Debian: python3-torch; run with /usr/bin/python3 if another python comes first on PATH).
"""
import argparse
import statistics
import time

import numpy as np
import torch

SIZES = [("16KiB", 16 << 10), ("256KiB", 256 << 10), ("4MiB", 4 << 20), ("256MiB", 256 << 20)]
SCALE, QMIN, QMAX = 4.0 / 127.0, -128, 127


# CPU time of this process (single-threaded torch), as bench_kernels reports: the machine is shared, and wall
# time would include other processes' slices.
clock = time.process_time


def median_seconds(fn, min_time=0.2, repetitions=5):
    fn()  # warm up
    number, elapsed = 1, 0.0
    while True:  # calls per repetition so that one repetition takes about min_time
        t0 = clock()
        for _ in range(number):
            fn()
        elapsed = clock() - t0
        if elapsed >= min_time or number >= 1 << 20:
            break
        number *= 2
    reps = []
    for _ in range(repetitions):
        t0 = clock()
        for _ in range(number):
            fn()
        reps.append((clock() - t0) / number)
    return statistics.median(reps)


def table():
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'op':<44} {'working set':>11} {'G elem/s':>9} {'GB/s':>7}")
    for name, nbytes in SIZES:
        n = nbytes // 4
        x = torch.randn(n) * 1.3
        dy = torch.randn(n)
        channels = max(1, n // 512)
        xc = x[: channels * 512].view(channels, 512)
        scales = torch.full((channels,), SCALE)
        zero_points = torch.zeros(channels, dtype=torch.int32)
        xs = x.clone().requires_grad_()
        s_t = torch.tensor([SCALE], requires_grad=True)
        z_t = torch.tensor([0.0], requires_grad=True)

        def learnable():
            y = torch._fake_quantize_learnable_per_tensor_affine(xs, s_t, z_t, QMIN, QMAX, 1.0)
            y.backward(dy)

        q = torch.quantize_per_tensor(x, SCALE, 0, torch.qint8)
        ops = [
            ("fake_quantize_per_tensor_affine", lambda: torch.fake_quantize_per_tensor_affine(x, SCALE, 0, QMIN, QMAX), 8),
            ("fake_quantize_per_channel_affine (K=512)",
             lambda: torch.fake_quantize_per_channel_affine(xc, scales, zero_points, 0, QMIN, QMAX), 8),
            ("_fake_quantize_learnable_per_tensor fwd+bwd", learnable, 20),
            ("quantize_per_tensor (qint8)", lambda: torch.quantize_per_tensor(x, SCALE, 0, torch.qint8), 5),
            ("dequantize (qint8)", lambda: q.dequantize(), 5),
        ]
        for op, fn, bytes_per_element in ops:
            if nbytes >= 256 << 20 and op.startswith("_fake"):
                seconds = median_seconds(fn, min_time=0.0, repetitions=3)
            else:
                seconds = median_seconds(fn)
            print(f"{op:<44} {name:>11} {n / seconds / 1e9:9.3f} {n * bytes_per_element / seconds / 1e9:7.2f}")


def hexs(a):
    return ", ".join("0x%08x" % v for v in np.asarray(a, dtype=np.float32).view(np.uint32))


def golden():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(size=24) * 2, (np.arange(-12, 12) + 0.5) * 0.0625,
                        [-0.01, 0.01, -0.0, 0.0, 1e-40, -1e-40, 0.05, -0.05]]).astype(np.float32)
    print("x {" + hexs(x) + "}")
    for s, z, lo, hi in [(0.1, 3, -128, 127), (0.0625, 0, -8, 7), (0.37, 128, 0, 255), (1e-3, -2, -4, 3)]:
        y = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), s, z, lo, hi).numpy()
        print(f"scale {s} zero_point {z} [{lo}, {hi}] {{" + hexs(y) + "}")
    xc = (rng.normal(size=(2, 4, 7)) * 3).astype(np.float32)
    sc = np.array([0.05, 0.2, 0.013, 1.5], dtype=np.float32)
    zc = np.array([0, -3, 5, 1], dtype=np.int32)
    yc = torch.fake_quantize_per_channel_affine(torch.from_numpy(xc), torch.from_numpy(sc), torch.from_numpy(zc),
                                                1, -16, 15).numpy()
    print("channel x {" + hexs(xc.ravel()) + "}")
    print("channel scales {" + hexs(sc) + "}")
    print("channel y {" + hexs(yc.ravel()) + "}")
    dy = torch.from_numpy(rng.normal(size=24).astype(np.float32))
    print("dy {" + hexs(dy.numpy()) + "}")
    for lo, hi in [(-128, 127), (-8, 7)]:
        xt = torch.from_numpy(x[:24].copy()).requires_grad_()
        s_t = torch.tensor([0.1], requires_grad=True)
        z_t = torch.tensor([3.0], requires_grad=True)
        torch._fake_quantize_learnable_per_tensor_affine(xt, s_t, z_t, lo, hi, 1.0).backward(dy)
        print(f"learnable [{lo}, {hi}] dscale {float(s_t.grad)!r} dzero_point {float(z_t.grad)!r}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--golden", action="store_true", help="print the golden values of tests/test_kernels.cpp")
    args = parser.parse_args()
    golden() if args.golden else table()
