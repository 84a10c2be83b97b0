"""The mixq Python module (mixq._core): search, objectives, layer tables, cost model, width alignment, kernels on
NumPy arrays, the quantized safetensors format, and bad input (always ValueError, never a crash or a copy)."""
import itertools
import json
import os
import struct
import subprocess

import numpy as np
import pytest

import mixq


# ---- search --------------------------------------------------------------------------------------------------------

def limpq_real(data_path):
    table = mixq.resnet50()
    ind = mixq.read_limpq_indicators(data_path("limpq_r50_real.txt"))
    budgets = mixq.limpq_budgets(table, ind, "W3A4", 12.2)
    return table, mixq.limpq_problem(table, ind, budgets)


def test_limpq_real_optimum(data_path):
    table, p = limpq_real(data_path)
    # every layer of the table: the 8-bit first conv and FC are one-option classes (whole-network budgets)
    assert len(p) == 54 and list(p.labels(0)) == ["w8a8"] and len(p.labels(1)) == 25 and p.labels(1)[0] == "w6a6"
    s = mixq.solve(p)
    assert s.status == "optimal"
    assert abs(s.objective - 4.63086621) < 5e-9
    assert abs(s.objective - 4.6517) > 1e-3  # not GLPK's big-M answer
    assert s.gap == 0.0 and s.bound <= s.objective
    # the choice meets the budgets and its cost is the objective
    uses = sum(p.uses(c)[s.choices[c]] for c in range(len(p)))
    assert list(uses) == list(s.uses) and all(uses <= p.budgets)
    assert abs(sum(p.costs(c)[s.choices[c]] for c in range(len(p))) - s.objective) < 1e-12
    for c in range(len(p)):
        assert p.allowed(c)[s.choices[c]]
    # the policy: fixed layers at 8 bits; the solution's uses are the whole network's size and BitOps
    pol = mixq.policy_from_solution(table, p, s)
    assert pol.weight_bits[0] == 8 and pol.weight_bits[-1] == 8
    assert mixq.model_size_bits(table, pol) == s.uses[1]


def test_limpq_from_arrays_equals_file(data_path):
    table = mixq.resnet50()
    ind = mixq.read_limpq_indicators(data_path("limpq_r50_real.txt"))
    ind2 = mixq.LimpqIndicators(ind.params, ind.macs, np.array(ind.weight_step), np.array(ind.activation_step))
    b = mixq.limpq_budgets(table, ind2, "W3A4", 12.2)
    s = mixq.solve(mixq.limpq_problem(table, ind2, b))
    assert abs(s.objective - 4.63086621) < 5e-9


def random_problem(seed, L=12, O=6, K=2):
    rng = np.random.default_rng(seed)
    costs = np.round(rng.uniform(0.0, 10.0, size=(L, O)), 6)
    uses = rng.integers(1, 1000, size=(L, O, K))
    budgets = (uses.min(axis=1).sum(axis=0) + uses.max(axis=1).sum(axis=0)) // 2
    allowed = rng.uniform(size=(L, O)) > 0.15
    allowed[:, 0] = True
    names = [f"layer{i}" for i in range(L)]
    labels = [f"opt{j}" for j in range(O)]
    p = mixq.Problem.from_arrays(costs, uses, budgets, allowed=allowed, names=names, labels=labels)
    p.tie(["layer1", "layer2"])
    p.fix("layer3", 2)
    return p, costs, uses, budgets, allowed


def problem_json(p):
    layers = []
    for c, name in enumerate(p.class_names):
        costs, uses, labels = p.costs(c), p.uses(c), p.labels(c)
        layers.append({"name": name, "options": [
            {"label": labels[o], "cost": float(costs[o]), "use": [int(u) for u in uses[o]]}
            for o in range(len(labels))]})
    return layers


def test_random_problem_equals_cxx_program(tmp_path):
    program = os.environ.get("MIXQ_SEARCH_PROGRAM")
    if not program:
        pytest.skip("MIXQ_SEARCH_PROGRAM is not set (ctest sets it to the mixq-search program)")
    for seed in range(1, 6):
        p, costs, uses, budgets, allowed = random_problem(seed)
        s = mixq.solve(p)
        assert s.status == "optimal"
        layers = problem_json(p)
        for c, layer in enumerate(layers):
            for o, opt in enumerate(layer["options"]):
                if not allowed[c, o]:
                    opt["allowed"] = False
        layers[3]["fixed"] = 2
        doc = {"budgets": [int(b) for b in budgets], "layers": layers, "ties": [["layer1", "layer2"]]}
        path = tmp_path / f"problem{seed}.json"
        path.write_text(json.dumps(doc))
        out = subprocess.run([program, str(path)], capture_output=True, text=True, check=True)
        ref = json.loads(out.stdout)
        assert ref["status"] == "optimal"
        assert ref["objective"] == s.objective  # the same solver on the same doubles: equal, not close
        assert [ch["option"] for ch in ref["choices"]] == list(s.choices)
        assert ref["use"] == list(s.uses)


def test_small_problem_equals_brute_force():
    for seed in range(10, 16):
        rng = np.random.default_rng(seed)
        L, O = 5, 4
        costs = rng.uniform(-1.0, 3.0, size=(L, O))
        uses = rng.integers(0, 50, size=(L, O, 2))
        budgets = np.array([100, 110])
        p = mixq.Problem.from_arrays(costs, uses, budgets)
        best = None
        for choice in itertools.product(range(O), repeat=L):
            u = sum(uses[l, choice[l]] for l in range(L))
            if np.all(u <= budgets):
                v = sum(costs[l, choice[l]] for l in range(L))
                best = v if best is None or v < best else best
        s = mixq.solve(p)
        if best is None:
            assert s.status == "infeasible" and s.infeasible_resource >= 0
            assert "cannot be met" in mixq.describe_infeasibility(p, s)
        else:
            assert s.status == "optimal" and abs(s.objective - best) <= 1e-9 * max(1, abs(best))


def test_add_class_tie_fix_forbid():
    p = mixq.Problem([10], ["size"])
    p.add_class("a", [1.0, 2.0, 3.0], [[10], [5], [1]], labels=["x", "y", "z"])
    p.add_class("b", [1.0, 2.0, 3.0], [[10], [5], [1]])
    s = mixq.solve(p)
    assert s.status == "optimal" and abs(s.objective - 4.0) < 1e-12  # 5 + 5 fits exactly: 2 + 2
    p.forbid("a", 1)
    s = mixq.solve(p)
    assert abs(s.objective - 5.0) < 1e-12 and list(s.choices) == [2, 1]  # a=z (3, use 1) + b=y (2, use 5)
    p.tie(["a", "b"])
    s = mixq.solve(p)
    assert list(s.choices) == [2, 2] and abs(s.objective - 6.0) < 1e-12
    p.budgets = [1]
    assert mixq.solve(p).status == "infeasible"


def test_solver_and_pareto_sweep_equal_single_solves(data_path):
    _, p = limpq_real(data_path)
    solver = mixq.Solver(p)
    # the size budgets of the searchable layers scaled (the 8-bit first and last layers are one-option classes)
    fixed = sum(int(p.uses(c)[0][1]) for c in range(len(p)) if len(p.labels(c)) == 1)
    values = [fixed + int((int(p.budgets[1]) - fixed) * f) for f in (1.2, 1.0, 0.97, 0.94, 0.5)]
    sweep = mixq.pareto_sweep(p, 1, values)
    assert [r.status for r in sweep] == ["optimal"] * 4 + ["infeasible"]
    for v, r in zip(values[:4], sweep):
        q = solver.solve([int(p.budgets[0]), v])
        assert q.status == "optimal"
        assert abs(r.objective - q.objective) <= 1e-9 * max(1.0, abs(q.objective))
    assert abs(solver.solve().objective - 4.63086621) < 5e-9
    front = mixq.pareto_front(sweep, 1)
    assert len(front) >= 1 and all(sweep[i].uses[1] <= values[i] for i in front)
    grid = mixq.pareto_sweep(p, [[int(p.budgets[0]), v] for v in values[:4]])
    assert [g.objective for g in grid] == [r.objective for r in sweep[:4]]


def test_node_limit_gives_feasible_with_proven_gap(data_path):
    _, p = limpq_real(data_path)
    s = mixq.solve(p, node_limit=3)
    assert s.status in ("feasible", "optimal")
    assert s.bound <= 4.63086621 + 1e-9 <= s.objective + 2e-9


# ---- layer tables, cost model, width ----------------------------------------------------------------------------

def test_layer_tables_match_torchvision_counts():
    for table, params, macs, n in ((mixq.resnet18(), 11_689_512, 1_814_073_344, 21),
                                   (mixq.resnet50(), 25_557_032, 4_089_184_256, 54),
                                   (mixq.mobilenet_v2(), 3_504_872, 300_774_272, 53)):
        assert len(table) == n
        assert mixq.total_parameters(table) == params
        assert mixq.total_macs(table) == macs
    assert mixq.network_by_name("resnet18")[0].fixed_bits == 8
    assert mixq.resnet18(0)[0].fixed_bits == 0


def test_cost_model_of_a_policy():
    table = mixq.resnet18()
    pol = mixq.uniform_policy(table, 4, 8)
    fixed = [l for l in table if l.fixed_bits]
    expect_size = sum(mixq.weight_count(l) * (l.fixed_bits or 4) for l in table)
    assert mixq.model_size_bits(table, pol) == expect_size
    expect_bitops = sum(mixq.macs(l) * ((l.fixed_bits or 4) * (l.fixed_bits or 8)) for l in table)
    assert mixq.total_bit_operations(table, pol) == expect_bitops
    assert len(fixed) == 2
    conv = mixq.conv_layer("c", 16, 32, 3, 2, 1, 28, 28)
    assert mixq.output_height(conv) == 14 and mixq.weight_count(conv) == 32 * 16 * 9
    assert mixq.macs(conv) == 32 * 16 * 9 * 14 * 14
    assert mixq.bit_operations(conv, 4, 8) == 32 * mixq.macs(conv)
    assert mixq.parameter_count(conv) == 32 * 16 * 9 + 2 * 32
    dw = mixq.depthwise_conv_layer("d", 32, 3, 1, 1, 14, 14)
    assert mixq.weight_count(dw) == 32 * 9
    assert abs(mixq.average_bit_width(table, pol) - expect_size / mixq.total_weights(table)) < 1e-12


def test_align_width():
    table = mixq.resnet18()
    target = mixq.size_at_bits(table, 4)
    r = mixq.align_width(table, 2, target)
    assert r.size_bits <= target and r.multiplier > 1.2
    assert mixq.size_at_bits(mixq.widen(table, r.multiplier * 1.01), 2) > target or r.multiplier * 1.01 - r.multiplier < 1e-6
    assert mixq.scale_channels(64, 1.5) == 96 and mixq.scale_channels(10, 0.1) == 8


def test_layer_problem_and_hawq_costs():
    rng = np.random.default_rng(3)
    table = [mixq.conv_layer("c0", 1, 8, 3, 1, 1, 8, 8), mixq.conv_layer("c1", 8, 8, 3, 1, 1, 8, 8),
             mixq.linear_layer("fc", 8, 10)]
    table[0].fixed_bits = 8
    weights = [rng.standard_normal((8, 8, 3, 3)).astype(np.float32), rng.standard_normal((10, 8)).astype(np.float32)]
    options = mixq.bit_pairs([8, 4, 2], [8])
    cost = mixq.hawq_costs(table, [2.0, 0.5], weights, options)
    assert cost.shape == (2, 3)
    # reference: symmetric per-channel quantization in NumPy (float32 as the kernel), perturbation in double
    for l, (w, tr) in enumerate(zip(weights, [2.0, 0.5])):
        for o, opt in enumerate(options):
            b = opt.weight_bits
            qmax = 2 ** (b - 1) - 1
            w2 = w.reshape(w.shape[0], -1)
            scale = (np.abs(w2).max(axis=1) / np.float32(qmax)).astype(np.float32)
            inv = (np.float32(1.0) / scale).astype(np.float32)
            q = np.clip(np.rint(w2 * inv[:, None]), -qmax - 1, qmax) * scale[:, None]
            e = np.sum((w2.astype(np.float64) - q.astype(np.float32).astype(np.float64)) ** 2)
            assert abs(cost[l, o] - tr / w.size * e) <= 1e-9 * abs(tr / w.size * e)
            assert abs(mixq.weight_perturbation(w, w.shape[0], b) - e) <= 1e-9 * e
    p = mixq.layer_problem(table, cost, options, ["size"], [mixq.size_at_bits(table, 4)])
    s = mixq.solve(p)
    assert s.status == "optimal" and len(s.choices) == 3  # the fixed c0 is a one-option class
    assert mixq.policy_from_solution(table, p, s).weight_bits[0] == 8


# ---- kernels -------------------------------------------------------------------------------------------------------

def ref_fake_quant(x, scale, zp, qmin, qmax):
    """docs/NUMERICS.md in NumPy float32: inv in float, round half to even, clamp, (c + 0) * scale."""
    inv = np.float32(1.0) / np.float32(scale)
    r = np.rint(x * inv)
    c = np.clip(r, np.float32(qmin - zp), np.float32(qmax - zp))
    return ((c + np.float32(0.0)) * np.float32(scale)).astype(np.float32)


def edge_values(scale):
    k = np.arange(-300, 300, dtype=np.float32)
    ties = (k + np.float32(0.5)) * np.float32(scale)
    return np.concatenate([ties, np.array([0.0, -0.0, 1e-30, -1e-30, 127 * scale, 128 * scale, -128 * scale,
                                           -129 * scale, 1e6, -1e6], dtype=np.float32)])


def test_fake_quant_matches_reference_and_no_copies():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(10_001).astype(np.float32), edge_values(1.0 / 16)])
    for scale, zp, qmin, qmax in ((1.0 / 16, 0, -128, 127), (0.037, 3, -8, 7), (0.01, 100, 0, 255)):
        y = mixq.fake_quant(x, scale, zp, qmin, qmax)
        assert y.dtype == np.float32 and y.shape == x.shape
        np.testing.assert_array_equal(y.view(np.uint32), ref_fake_quant(x, scale, zp, qmin, qmax).view(np.uint32))
    # in place: the result lands in x itself
    x2 = x.copy()
    out = mixq.fake_quant(x2, 0.037, 3, -8, 7, out=x2)
    assert out is not None and np.shares_memory(out, x2)
    np.testing.assert_array_equal(x2, ref_fake_quant(x, 0.037, 3, -8, 7))
    # a 2-D view that is C-contiguous is used without a copy
    m = x[:10000].reshape(100, 100)
    o = np.empty_like(m)
    mixq.fake_quant(m, 0.05, 0, -8, 7, out=o)
    np.testing.assert_array_equal(o, ref_fake_quant(m, 0.05, 0, -8, 7))
    # NaN and infinities (docs/NUMERICS.md)
    y = mixq.fake_quant(np.array([np.nan, np.inf, -np.inf], dtype=np.float32), 0.5, 1, -4, 3)
    assert np.isnan(y[0]) and y[1] == np.float32((3 - 1) * 0.5) and y[2] == np.float32((-4 - 1) * 0.5)


def test_fake_quant_per_channel_and_group():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6, 5)).astype(np.float32)
    scales = rng.uniform(0.01, 0.2, size=6).astype(np.float32)
    zps = rng.integers(-3, 4, size=6).astype(np.int32)
    y = mixq.fake_quant_per_channel(x, scales, zps, 1, -8, 7)
    for c in range(6):
        np.testing.assert_array_equal(y[:, c], ref_fake_quant(x[:, c], scales[c], zps[c], -8, 7))
    y0 = mixq.fake_quant_per_channel(x, scales[:4], None, 0, -8, 7)
    for c in range(4):
        np.testing.assert_array_equal(y0[c], ref_fake_quant(x[c], scales[c], 0, -8, 7))
    w = rng.standard_normal((3, 8)).astype(np.float32)
    gs = rng.uniform(0.05, 0.2, size=6).astype(np.float32)
    yg = mixq.fake_quant_per_group(w, gs, None, 4, -8, 7)
    for r in range(3):
        for g in range(2):
            np.testing.assert_array_equal(yg[r, 4 * g:4 * g + 4], ref_fake_quant(w[r, 4 * g:4 * g + 4], gs[2 * r + g], 0, -8, 7))


def test_backward_and_lsq_gradients():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(50_000).astype(np.float32)
    dy = rng.standard_normal(50_000).astype(np.float32)
    scale, zp, qmin, qmax = 0.11, 1, -8, 7
    inv = np.float32(1.0) / np.float32(scale)
    r = np.rint(x * inv)
    lo, hi = qmin - zp, qmax - zp
    inside = (r >= lo) & (r <= hi)
    dx = mixq.fake_quant_backward(x, dy, scale, zp, qmin, qmax)
    np.testing.assert_array_equal(dx, np.where(inside, dy, np.float32(0.0)))
    dx2, ds, dz = mixq.lsq_backward(x, dy, scale, zp, qmin, qmax)
    np.testing.assert_array_equal(dx2, dx)
    term = np.where(inside, r.astype(np.float64) - x.astype(np.float64) * np.float64(inv), np.where(r < lo, lo, hi))
    ref_ds = np.sum(dy.astype(np.float64) * term)
    bound = 1.1e-6 * np.sum(np.abs(dy * term)) + 2 ** -24 * np.sum(np.abs(dy))
    assert abs(ds - ref_ds) <= bound
    ref_dz = -np.float64(np.float32(scale)) * np.sum(dy.astype(np.float64)[~inside])
    assert abs(dz - ref_dz) <= 1.1e-6 * np.float32(scale) * np.sum(np.abs(dy[~inside])) + 1e-12
    # per channel: each channel as its own tensor
    xc = x[:6000].reshape(2, 3, 1000)
    dyc = dy[:6000].reshape(2, 3, 1000)
    sc = np.array([0.05, 0.1, 0.2], dtype=np.float32)
    zc = np.array([0, 1, -1], dtype=np.int32)
    dxc, dsc, dzc = mixq.lsq_backward_per_channel(xc, dyc, sc, zc, 1, qmin, qmax)
    for c in range(3):
        a, b, cz = mixq.lsq_backward(np.ascontiguousarray(xc[:, c]), np.ascontiguousarray(dyc[:, c]), sc[c], zc[c], qmin, qmax)
        np.testing.assert_array_equal(dxc[:, c], a)
        assert abs(dsc[c] - b) <= 1e-5 * np.sum(np.abs(dyc[:, c])) and abs(dzc[c] - cz) <= 1e-5 * np.sum(np.abs(dyc[:, c]))


def test_quantize_dequantize_pack():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(1001).astype(np.float32)
    for dtype, (qmin, qmax, zp) in (("int8", (-128, 127, 0)), ("uint8", (0, 255, 128)), ("int16", (-1000, 1000, 5))):
        q = mixq.quantize(x, 0.01, zp, qmin, qmax, dtype)
        assert q.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(mixq.dequantize(q, 0.01, zp), mixq.fake_quant(x, 0.01, zp, qmin, qmax))
    assert list(mixq.pack_bits(np.array([1, 2, 3, 4, 5], dtype=np.uint8), 3)) == [0xD1, 0x58]
    for bits in range(1, 9):
        codes = rng.integers(0, 2 ** bits, size=1003).astype(np.uint8)
        packed = mixq.pack_bits(codes, bits)
        assert packed.size == mixq.packed_size(1003, bits) == (1003 * bits + 7) // 8
        np.testing.assert_array_equal(mixq.unpack_bits(packed, 1003, bits), codes)
        signed = (codes.astype(np.int16) - 2 ** (bits - 1)).astype(np.int8)
        np.testing.assert_array_equal(mixq.unpack_bits(mixq.pack_bits(signed, bits), 1003, bits, signed=True)
                                      if bits > 1 else signed, signed)
    lo, hi = mixq.minmax(np.array([np.nan, 3.0, -2.0, np.nan], dtype=np.float32))
    assert (lo, hi) == (-2.0, 3.0)
    assert mixq.minmax(np.array([np.nan], dtype=np.float32)) == (np.inf, -np.inf)


# ---- the quantized safetensors format --------------------------------------------------------------------------

def test_quantized_model_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    spec = mixq.QuantSpec(bit_width=4, granularity="per_channel", axis=0)
    scales = (np.abs(w.reshape(8, -1)).max(axis=1) / 7).astype(np.float32)
    qt = mixq.QuantizedTensor.quantize(w, spec, scales)
    assert qt.shape == (8, 4, 3, 3) and qt.bit_width == 4 and qt.packed_codes.size == 8 * 36 // 2
    np.testing.assert_array_equal(qt.dequantize(), mixq.fake_quant_per_channel(w, scales, None, 0, -8, 7))
    spec3 = mixq.QuantSpec(bit_width=3, is_signed=False, symmetric=False)
    codes = rng.integers(0, 8, size=10).astype(np.int32)
    qt3 = mixq.QuantizedTensor.from_codes([2, 5], spec3, [0.5], [3], codes)
    np.testing.assert_array_equal(qt3.codes().ravel(), codes)
    bias = rng.standard_normal(8).astype(np.float32)
    path = str(tmp_path / "model.safetensors")
    mixq.write_quantized_model(path, {"conv.weight": qt, "x": qt3}, {"conv.bias": bias}, {"policy": "w4"})
    quantized, floats, metadata = mixq.read_quantized_model(path)
    assert quantized["conv.weight"] == qt and quantized["x"] == qt3
    np.testing.assert_array_equal(floats["conv.bias"], bias)
    assert metadata["policy"] == "w4"
    # a valid safetensors file: the header names the format, codes are U8 tensors
    with pytest.raises(ValueError, match="not a float type"):
        mixq.read_safetensors(path)  # the plain float reader refuses the packed codes, naming them
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    assert header["__metadata__"]["mixq.format"] == "mixq.quantized-safetensors.v1"
    assert header["conv.weight.codes"]["dtype"] == "U8"


def test_read_safetensors_written_by_hand(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1.5, -2.0], dtype=np.float64)
    header = {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "b": {"dtype": "F64", "shape": [2], "data_offsets": [24, 40]}}
    h = json.dumps(header).encode()
    path = tmp_path / "t.safetensors"
    path.write_bytes(struct.pack("<Q", len(h)) + h + a.tobytes() + b.tobytes())
    t = mixq.read_safetensors(str(path))
    np.testing.assert_array_equal(t["a"], a)
    np.testing.assert_array_equal(t["b"], b.astype(np.float32))
    path.write_bytes(struct.pack("<Q", 10 ** 6) + h)
    with pytest.raises(ValueError, match="header"):
        mixq.read_safetensors(str(path))


# ---- bad input -----------------------------------------------------------------------------------------------------

def test_bad_kernel_arrays():
    x = np.zeros(16, dtype=np.float32)
    with pytest.raises(ValueError, match="dtype float32, got float64"):
        mixq.fake_quant(x.astype(np.float64), 0.1, 0, -8, 7)
    with pytest.raises(ValueError, match="C-contiguous"):
        mixq.fake_quant(x[::2], 0.1, 0, -8, 7)
    with pytest.raises(ValueError, match="C-contiguous"):
        mixq.fake_quant(np.zeros((4, 4), dtype=np.float32).T[:, :3], 0.1, 0, -8, 7)
    with pytest.raises(ValueError, match="numpy.ndarray"):
        mixq.fake_quant([0.0, 1.0], 0.1, 0, -8, 7)
    ro = np.zeros(16, dtype=np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        mixq.fake_quant(x, 0.1, 0, -8, 7, out=ro)
    with pytest.raises(ValueError, match="shape"):
        mixq.fake_quant(x, 0.1, 0, -8, 7, out=np.zeros(15, dtype=np.float32))
    buf = np.zeros(20, dtype=np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        mixq.fake_quant(buf[:16], 0.1, 0, -8, 7, out=buf[2:18])
    with pytest.raises(ValueError, match="scale"):
        mixq.fake_quant(x, float("nan"), 0, -8, 7)
    with pytest.raises(ValueError, match="zero_point"):
        mixq.fake_quant(x, 0.1, 9, -8, 7)
    with pytest.raises(ValueError, match="scales must have shape"):
        mixq.fake_quant_per_channel(np.zeros((3, 4), dtype=np.float32), np.ones(4, dtype=np.float32), None, 0, -8, 7)
    with pytest.raises(ValueError, match="dtype int32"):
        mixq.fake_quant_per_channel(np.zeros((3, 4), dtype=np.float32), np.ones(3, dtype=np.float32),
                                    np.zeros(3, dtype=np.int64), 0, -8, 7)
    with pytest.raises(ValueError, match="axis"):
        mixq.fake_quant_per_channel(np.zeros((3, 4), dtype=np.float32), np.ones(3, dtype=np.float32), None, 2, -8, 7)
    with pytest.raises(ValueError, match="group_size"):
        mixq.fake_quant_per_group(np.zeros((3, 4), dtype=np.float32), np.ones(3, dtype=np.float32), None, 3, -8, 7)
    with pytest.raises(ValueError, match="bits"):
        mixq.pack_bits(np.zeros(4, dtype=np.uint8), 9)
    with pytest.raises(ValueError, match="dtype uint8"):
        mixq.pack_bits(np.zeros(4, dtype=np.int32), 4)
    with pytest.raises(ValueError, match="int8"):
        mixq.quantize(x, 0.1, 0, -200, 127, "int8")
    with pytest.raises(ValueError, match="dtype int8, uint8 or int16"):
        mixq.dequantize(np.zeros(4, dtype=np.int32), 0.1, 0)


def test_bad_search_input():
    with pytest.raises(ValueError, match="non-finite cost"):
        mixq.Problem([10]).add_class("a", [1.0, float("nan")], [[1], [2]])
    with pytest.raises(ValueError, match="not finite"):
        mixq.Problem.from_arrays([[1.0, np.inf]], [[[1], [2]]], [10])
    with pytest.raises(ValueError, match="integers"):
        mixq.Problem.from_arrays([[1.0, 2.0]], np.array([[[1.0], [2.5]]]), [10])
    with pytest.raises(ValueError, match="shape"):
        mixq.Problem.from_arrays([[1.0, 2.0]], [[[1, 1], [2, 2]]], [10])
    with pytest.raises(ValueError, match="real numbers"):
        mixq.Problem([10]).add_class("a", ["x", "y"], [[1], [2]])
    p = mixq.Problem([-1])
    p.add_class("a", [1.0], [[1]])
    with pytest.raises(ValueError, match="negative"):
        mixq.solve(p)
    q = mixq.Problem([10])
    q.add_class("a", [1.0], [[1]])
    with pytest.raises(ValueError, match="unknown class name 'b'"):
        q.tie(["a", "b"])
    with pytest.raises(ValueError, match="out of range"):
        q.fix("a", 3)
    with pytest.raises(ValueError, match="unknown network"):
        mixq.network_by_name("vgg")
    with pytest.raises(ValueError, match="cannot open"):
        mixq.read_limpq_indicators("/nonexistent/indicators.txt")
    with pytest.raises(ValueError, match="level"):
        mixq.limpq_budgets(mixq.resnet50(), mixq.synthetic_limpq_indicators(mixq.resnet50()), "W3X4", 12.2)
    with pytest.raises(ValueError, match="node_limit"):
        mixq.solve(q, node_limit=-1)
    with pytest.raises(ValueError, match="target_size_bits"):
        mixq.align_width(mixq.resnet18(), 4, 10)
    with pytest.raises(ValueError, match="weights"):
        mixq.hawq_costs([mixq.linear_layer("fc", 2, 2)], [1.0], [np.zeros(4, dtype=np.float64)], [(4, 8)])


def test_every_public_name_has_a_docstring():
    missing = []
    for name in mixq.__all__:
        obj = getattr(mixq, name)
        if callable(obj) and not (obj.__doc__ or "").strip():
            missing.append(name)
        if isinstance(obj, type):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or attr in ("name", "value"):
                    continue
                if isinstance(member, property) or callable(member):
                    if not (getattr(member, "__doc__", "") or "").strip():
                        missing.append(f"{name}.{attr}")
    assert not missing, missing


def test_validate_and_bad_quantized_tensors():
    with pytest.raises(ValueError, match="empty"):
        mixq.Problem([10]).validate()
    p = mixq.Problem([10])
    p.add_class("a", [1.0], [[1]])
    p.validate()
    spec = mixq.QuantSpec(bit_width=4)
    with pytest.raises(ValueError, match="shape extent"):
        mixq.QuantizedTensor.from_codes([-2, 3], spec, [0.5], [0], np.zeros(6, dtype=np.int32))
    with pytest.raises(ValueError, match="codes for a shape"):
        mixq.QuantizedTensor.from_codes([2, 3], spec, [0.5], [0], np.zeros(5, dtype=np.int32))
    with pytest.raises(ValueError, match="outside"):
        mixq.QuantizedTensor.from_codes([2], spec, [0.5], [0], np.array([0, 9], dtype=np.int32))
    with pytest.raises(ValueError, match="bit_width"):
        mixq.QuantSpec(bit_width=17)
    with pytest.raises(ValueError, match="granularity"):
        mixq.QuantSpec(granularity="per_row")
    with pytest.raises(ValueError, match="scales"):
        mixq.QuantizedTensor.quantize(np.zeros((2, 3), dtype=np.float32), mixq.QuantSpec(granularity="per_channel"), [1.0])
