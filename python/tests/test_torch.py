"""mixq.torch: the operators against torch 1.13's own fake-quantize ops (bit identity on finite inputs, random
and edge data), the LSQ gradients against torch's learnable ops and a float64 reference (within the summation
bound of docs/NUMERICS.md), finite differences where the LSQ gradient is a true derivative, LsqQuantizer, and
bad input."""
import math

import numpy as np
import pytest
import torch

import mixq.torch as mt

PARAMS = [(1.0 / 16, 0, -128, 127), (0.037, 3, -8, 7), (0.01, 100, 0, 255), (0.25, -2, -2, 1)]


def bits(t):
    return t.contiguous().view(torch.int32)


def edge_data(scale, qmin, qmax, zp):
    """Exact ties at half steps, the clamp edges and just beyond, signed zeros, tiny and huge finite values."""
    k = torch.arange(-300, 300, dtype=torch.float32)
    ties = (k + 0.5) * scale
    levels = torch.tensor([qmin - zp, qmax - zp, qmin - zp - 1, qmax - zp + 1, qmin - zp - 0.5, qmax - zp + 0.5,
                           qmin - zp + 0.5, qmax - zp - 0.5], dtype=torch.float32) * scale
    special = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e-45, 1e6, -1e6, 2.0 ** 62 * scale, -(2.0 ** 62) * scale],
                           dtype=torch.float32)  # |x / scale| < 2^63: the domain where torch is defined
    return torch.cat([ties, levels, levels.nextafter(torch.full_like(levels, math.inf)),
                      levels.nextafter(torch.full_like(levels, -math.inf)), special])


def datasets(scale, qmin, qmax, zp):
    g = torch.Generator().manual_seed(7)
    return [torch.randn(100_003, generator=g) * scale * (qmax - qmin) / 4, edge_data(scale, qmin, qmax, zp)]


@pytest.mark.parametrize("scale,zp,qmin,qmax", PARAMS)
def test_fake_quant_bit_identical_to_torch(scale, zp, qmin, qmax):
    for x in datasets(scale, qmin, qmax, zp):
        ours = mt.fake_quant(x, scale, zp, qmin, qmax)
        ref = torch.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax)
        assert torch.equal(bits(ours), bits(ref))


def test_fake_quant_per_channel_bit_identical_to_torch():
    g = torch.Generator().manual_seed(3)
    for shape, axis in (((16, 3, 5, 5), 0), ((4, 6, 7, 7), 1), ((5, 33), 1)):
        x = torch.randn(shape, generator=g)
        c = shape[axis]
        scale = torch.rand(c, generator=g) * 0.1 + 0.01
        zp = torch.randint(-3, 4, (c,), generator=g, dtype=torch.int32)
        ref = torch.fake_quantize_per_channel_affine(x, scale, zp, axis, -8, 7)
        assert torch.equal(bits(mt.fake_quant_per_channel(x, scale, zp, axis, -8, 7)), bits(ref))
        assert torch.equal(bits(mt.fake_quant_per_channel(x, scale, zp.long(), axis, -8, 7)), bits(ref))
    # edge data per channel
    x = torch.stack([edge_data(0.0625, -8, 7, 0), edge_data(0.0625, -8, 7, 2)])
    scale = torch.tensor([0.0625, 0.0625])
    zp = torch.tensor([0, 2], dtype=torch.int32)
    ref = torch.fake_quantize_per_channel_affine(x, scale, zp, 0, -8, 7)
    assert torch.equal(bits(mt.fake_quant_per_channel(x, scale, zp, 0, -8, 7)), bits(ref))


def test_non_finite_inputs_follow_the_documented_contract():
    # docs/NUMERICS.md: NaN stays NaN, +Inf gives the qmax level, -Inf the qmin level (torch casts these to int64,
    # which is undefined behaviour in C++; it is not the reference here)
    x = torch.tensor([math.nan, math.inf, -math.inf])
    y = mt.fake_quant(x, 0.5, 1, -4, 3)
    assert math.isnan(y[0]) and y[1] == (3 - 1) * 0.5 and y[2] == (-4 - 1) * 0.5
    x.requires_grad_()
    mt.fake_quant(x, 0.5, 1, -4, 3).sum().backward()
    assert torch.equal(x.grad, torch.zeros(3))  # outside or NaN: no gradient


@pytest.mark.parametrize("scale,zp,qmin,qmax", PARAMS)
def test_straight_through_backward_equals_torch(scale, zp, qmin, qmax):
    for x in datasets(scale, qmin, qmax, zp):
        dy = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
        a = x.clone().requires_grad_()
        mt.fake_quant(a, scale, zp, qmin, qmax).backward(dy)
        b = x.clone().requires_grad_()
        torch.fake_quantize_per_tensor_affine(b, scale, zp, qmin, qmax).backward(dy)
        assert torch.equal(a.grad, b.grad)  # equal values (torch's zeros outside carry dy's sign, mixq's are +0)


def lsq_reference(x, dy, scale, zp_forward, zp_backward, qmin, qmax):
    """The LSQ / LSQ+ per-tensor gradients in float64 from the formula (rounding as the kernels: x * inv in
    float), and sum |dy * term| for the bound."""
    inv = np.float32(1.0) / np.float32(scale)
    xs = x.numpy()
    r = np.rint(xs * inv).astype(np.float64)
    lo, hi = qmin - zp_backward, qmax - zp_backward
    inside = (r >= lo) & (r <= hi)
    d = dy.numpy().astype(np.float64)
    term = np.where(inside, r - xs.astype(np.float64) * np.float64(inv), np.where(r < lo, lo, hi))
    d_scale = np.sum(d * term)
    d_zero = -np.float64(np.float32(scale)) * np.sum(d[~inside])
    return d_scale, d_zero, np.sum(np.abs(d * term)), np.sum(np.abs(d[~inside])), np.sum(np.abs(d))


@pytest.mark.parametrize("zero_point", [0.0, 1.0, 2.5, -1.3])
def test_lsq_equals_torch_learnable(zero_point):
    qmin, qmax, grad_factor = -8, 7, 0.3
    g = torch.Generator().manual_seed(11)
    x = torch.cat([torch.randn(1_000_003, generator=g) * 0.4, edge_data(0.1, qmin, qmax, 0)])
    dy = torch.randn(x.shape, generator=g)
    # torch's learnable backward rounds zero_point + x / s (its forward, and mixq, round x / s and then add the
    # zero point): with an odd zero point the two differ on exact ties. Those elements get dy = 0 for the
    # comparison with torch and are checked against the forward's own mask below.
    zf = int(np.clip(np.rint(zero_point), qmin, qmax))
    zb = math.trunc(float(np.clip(zero_point + 0.5, qmin, qmax)))  # torch casts the clamped z + 0.5 to int64
    t = x * (torch.tensor(1.0) / torch.tensor(0.1))
    ties = (t - torch.floor(t) == 0.5) & torch.tensor(zb % 2 != 0)
    dy[ties] = 0.0
    res = {}
    for name, fn in (("mixq", mt.lsq), ("torch", torch._fake_quantize_learnable_per_tensor_affine)):
        xr = x.clone().requires_grad_()
        s = torch.tensor([0.1], requires_grad=True)
        z = torch.tensor([zero_point], requires_grad=True)
        y = fn(xr, s, z, qmin, qmax, grad_factor)
        y.backward(dy)
        res[name] = (y.detach(), xr.grad, s.grad, z.grad)
    (y0, dx0, ds0, dz0), (y1, dx1, ds1, dz1) = res["mixq"], res["torch"]
    assert torch.equal(bits(y0), bits(y1))
    assert torch.equal(dx0, dx1)
    assert ds0.shape == ds1.shape == (1,) and dz0.shape == dz1.shape == (1,)
    # on the ties, mixq's dx is the forward's mask: dy where round(x / s) + z lies in [qmin, qmax]
    if bool(ties.any()):
        xt = x[ties].clone().requires_grad_()
        mt.lsq(xt, torch.tensor([0.1]), torch.tensor([zero_point]), qmin, qmax, grad_factor).sum().backward()
        r = torch.round(t[ties]) + zb
        assert torch.equal(xt.grad, ((r >= qmin) & (r <= qmax)).float())
        assert not torch.equal(xt.grad, torch.ones_like(xt.grad)) or zb % 2 == 0
    # torch rounds a float zero point with nearbyint in the forward and trunc(z + 0.5) in the backward (zf, zb)
    ref_ds, ref_dz, abs_term, abs_out, abs_dy = lsq_reference(x, dy, 0.1, zf, zb, qmin, qmax)
    # mixq against the float64 formula: the documented bound (two-level float/double sums, inv rounded)
    bound = (1.1e-6 * abs_term + 2 ** -24 * abs_dy) * grad_factor
    assert abs(float(ds0) - ref_ds * grad_factor) <= bound
    assert abs(float(dz0) - ref_dz * grad_factor) <= 1.1e-6 * 0.1 * abs_out * grad_factor + 1e-9
    # torch (float sums) against the same reference, and so against mixq within the sum of both bounds
    assert abs(float(ds0) - float(ds1)) <= bound + 2e-5 * abs_term * grad_factor


def test_lsq_per_channel_equals_torch_learnable():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, 16, 9, generator=g)
    dy = torch.randn(x.shape, generator=g)
    res = {}
    for name, fn in (("mixq", mt.lsq_per_channel), ("torch", torch._fake_quantize_learnable_per_channel_affine)):
        xr = x.clone().requires_grad_()
        s = (torch.rand(16, generator=torch.Generator().manual_seed(2)) * 0.2 + 0.05).requires_grad_()
        z = torch.linspace(-2.5, 2.5, 16).requires_grad_()
        fn(xr, s, z, 1, -8, 7, 0.5).backward(dy)
        res[name] = (fn(x, s, z, 1, -8, 7, 0.5).detach(), xr.grad, s.grad, z.grad)
    (y0, dx0, ds0, dz0), (y1, dx1, ds1, dz1) = res["mixq"], res["torch"]
    assert torch.equal(bits(y0), bits(y1))
    assert torch.equal(dx0, dx1)
    scale_of_sums = dy.abs().sum(dim=(0, 2)) * 8
    assert torch.all((ds0 - ds1).abs() <= 2e-5 * scale_of_sums + 1e-6)
    assert torch.all((dz0 - dz1).abs() <= 2e-5 * scale_of_sums + 1e-6)


def test_lsq_finite_differences_where_the_gradient_is_a_derivative():
    """Where x is clipped, y = (qmax - z) s or (qmin - z) s: linear in s, constant in x, so d y / d s and d y / d x
    are true derivatives; central differences in double (the loss in float64 from the op's float32 outputs, a
    step that keeps every element clipped) must match them. Inside the range LSQ's gradients are estimators (the
    straight-through dx, the LSQ step-size term), checked against torch and the formula above instead."""
    g = torch.Generator().manual_seed(9)
    sign = torch.where(torch.rand(4000, generator=g) < 0.5, -1.0, 1.0)
    x = sign * (1.0 + torch.rand(4000, generator=g))  # |x| in [1, 2): clipped for s near 0.1 on [-8, 7]
    w = torch.randn(4000, generator=g, dtype=torch.float64)
    s0, z0 = 0.1, torch.tensor([1.0])

    def loss(s):
        y = mt.lsq(x, torch.tensor([s], dtype=torch.float32), z0, -8, 7, 1.0)
        return float((y.double() * w).sum())

    xr = x.clone().requires_grad_()
    s = torch.tensor([s0], requires_grad=True)
    mt.lsq(xr, s, z0, -8, 7, 1.0).backward(w.float())
    for h in (1e-3, 2e-3):
        fd = (loss(s0 + h) - loss(s0 - h)) / (2 * h)
        assert abs(fd - float(s.grad)) <= 1e-4 * float(w.abs().sum())
    # d y / d x = 0 for clipped elements: a move of x changes nothing
    assert torch.equal(xr.grad, torch.zeros_like(x))
    y1 = mt.lsq(x * 1.01, torch.tensor([s0]), z0, -8, 7, 1.0)
    assert torch.equal(y1, mt.lsq(x, torch.tensor([s0]), z0, -8, 7, 1.0))


def test_lsq_quantizer_trains_like_torch_learnable():
    g = torch.Generator().manual_seed(4)
    target = torch.randn(256, 32, generator=g)
    quantizers = {"mixq": mt.LsqQuantizer(bits=3), "torch": mt.LsqQuantizer(bits=3)}
    history = {}
    for name, q in quantizers.items():
        opt = torch.optim.SGD(q.parameters(), lr=0.05)
        losses = []
        for _ in range(20):
            opt.zero_grad()
            if name == "mixq":
                y = q(target)
            else:
                if not bool(q.initialized):
                    q.initialize(target)
                y = torch._fake_quantize_learnable_per_tensor_affine(target, q.step_size, q.zero_point, q.qmin,
                                                                      q.qmax, q.grad_factor(target))
            loss = ((y - target) ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        history[name] = (losses, float(q.step_size))
    init = 2 * target.abs().mean() / math.sqrt(3)
    assert abs(history["mixq"][0][0] - history["torch"][0][0]) < 1e-7  # same initial step size, same loss
    assert history["mixq"][0][-1] < history["mixq"][0][0]
    for a, b in zip(history["mixq"][0], history["torch"][0]):
        assert abs(a - b) <= 1e-5 * b
    assert abs(history["mixq"][1] - history["torch"][1]) <= 1e-5
    assert float(quantizers["mixq"].step_size) != float(init)
    # the state dict keeps the learned step size and the initialized flag
    q2 = mt.LsqQuantizer(bits=3)
    q2.load_state_dict(quantizers["mixq"].state_dict())
    assert bool(q2.initialized) and torch.equal(q2(target), quantizers["mixq"](target))


def test_lsq_quantizer_per_channel_and_lsq_plus():
    w = torch.randn(8, 4, 3, 3)
    q = mt.LsqQuantizer(bits=4, channel_axis=0, channels=8)
    y = q(w)
    expect = 2 * w.abs().mean(dim=(1, 2, 3)) / math.sqrt(7)
    assert torch.allclose(q.step_size.detach(), expect)
    assert torch.equal(y, torch.fake_quantize_per_channel_affine(w, q.step_size.detach(), torch.zeros(8, dtype=torch.int32), 0, -8, 7))
    y.sum().backward()
    assert q.step_size.grad.shape == (8,)
    a = mt.LsqQuantizer(bits=4, signed=False, learn_zero_point=True, batch_dim=0)
    x = torch.rand(16, 10)
    a(x).pow(2).sum().backward()
    assert a.zero_point.grad is not None and a.grad_factor(x) == 1 / math.sqrt(10 * 15)
    a.enabled = False
    assert a(x) is x


def test_out_and_non_contiguous_inputs():
    x = torch.randn(64, 32)
    out = torch.empty(64, 32)
    r = torch.ops.mixq.fake_quant_out(x, 0.1, 0, -8, 7, out)
    assert r.data_ptr() == out.data_ptr() and torch.equal(out, torch.fake_quantize_per_tensor_affine(x, 0.1, 0, -8, 7))
    xt = x.t()  # not contiguous: made contiguous (the same values), the result equals torch's
    assert torch.equal(mt.fake_quant(xt, 0.1, 0, -8, 7), torch.fake_quantize_per_tensor_affine(xt, 0.1, 0, -8, 7))
    with pytest.raises(ValueError, match="out must be contiguous"):
        torch.ops.mixq.fake_quant_out(x, 0.1, 0, -8, 7, torch.empty(32, 64).t())
    with pytest.raises(ValueError, match="out must be a CPU float32"):
        torch.ops.mixq.fake_quant_out(x, 0.1, 0, -8, 7, torch.empty(64, 32, dtype=torch.float64))


def test_bad_input():
    x = torch.randn(16)
    s, z = torch.tensor([0.1]), torch.tensor([0.0])
    with pytest.raises(ValueError, match="must be float32, got Double"):
        mt.fake_quant(x.double(), 0.1, 0, -8, 7)
    with pytest.raises(ValueError, match="must be float32"):
        mt.lsq(torch.arange(16), s, z, -8, 7)
    # a tensor on another device (meta here; CUDA takes the same check: mixq's ops never move a tensor)
    with pytest.raises(ValueError, match="is on device meta; mixq's ops run on CPU tensors only"):
        mt.fake_quant(torch.empty(16, device="meta"), 0.1, 0, -8, 7)
    with pytest.raises(ValueError, match="CPU"):
        mt.lsq(x, s.to("meta"), z, -8, 7)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="is on device cuda"):
            mt.fake_quant(x.cuda(), 0.1, 0, -8, 7)
    with pytest.raises(ValueError, match="scale must have one element"):
        mt.lsq(x, torch.tensor([0.1, 0.2]), z, -8, 7)
    with pytest.raises(ValueError, match="zero_point"):
        mt.fake_quant(x, 0.1, 9, -8, 7)
    with pytest.raises(ValueError, match="scale"):
        mt.fake_quant(x, 0.0, 0, -8, 7)
    with pytest.raises(ValueError, match="scale must have shape"):
        mt.fake_quant_per_channel(torch.randn(4, 3), torch.ones(3), torch.zeros(3, dtype=torch.int32), 0, -8, 7)
    with pytest.raises(ValueError, match="axis"):
        mt.fake_quant_per_channel(torch.randn(4, 3), torch.ones(4), torch.zeros(4, dtype=torch.int32), 2, -8, 7)
    with pytest.raises(ValueError, match="zero_point must be finite"):
        mt.lsq(x, s, torch.tensor([math.nan]), -8, 7)
    with pytest.raises(ValueError, match="bits"):
        mt.LsqQuantizer(bits=0)
    with pytest.raises(ValueError, match="grad has shape"):
        mt.lsq_backward(torch.randn(15), x, s, z, -8, 7)
