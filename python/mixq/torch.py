"""mixq's kernels as PyTorch operators with autograd, for CPU float32 tensors (torch 1.13, Debian python3-torch).

    import mixq.torch as mt
    y = mt.fake_quant(x, scale, zero_point, -128, 127)           # == torch.fake_quantize_per_tensor_affine
    y = mt.lsq(x, step_size, zero_point, -4, 3, grad_factor)      # == torch._fake_quantize_learnable_per_tensor_affine
    quantizer = mt.LsqQuantizer(bits=4)                           # an nn.Module with a learned step size

The operators are torch.ops.mixq.* (a TORCH_LIBRARY in libmixq_torch.so, next to this file), with autograd in
C++: the straight-through estimator for fake_quant, and for lsq the fused LSQ / LSQ+ backward (dx, d step size,
d zero point in one pass over the tensor, sums in double). The functions here are their documented front doors. Outputs are bit-identical to torch's
fake-quantize ops on finite inputs (docs/NUMERICS.md states the contract, NaN and Inf included). LSQ parameter
gradients equal torch's within the summation bound of docs/NUMERICS.md (mixq sums in double, torch in float),
except on exact ties x / s = k + 1/2 with an odd zero point, where torch 1.13's per-tensor learnable backward
rounds z + x / s unlike its own forward; mixq's mask is the forward's.

Bad input raises ValueError naming the op and the argument: a tensor that is not float32, a tensor on another
device than the CPU (mixq never moves it), parameters of the wrong shape. Inputs that are not contiguous are made
contiguous (a copy of the same values); the `out` tensor of fake_quant_out must be contiguous (it is never
replaced by a copy).
"""

import math
import os

import torch
from torch import nn

_LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libmixq_torch.so")
if not os.path.exists(_LIBRARY):
    raise ImportError(f"mixq.torch: {_LIBRARY} is missing (configure mixq with MIXQ_BUILD_TORCH=ON and build it)")
torch.ops.load_library(_LIBRARY)
ops = torch.ops.mixq
"""The operators: fake_quant, fake_quant_per_channel, lsq, lsq_per_channel (with autograd); fake_quant_out (into a
given contiguous tensor) and the backward kernels fake_quant_backward, fake_quant_per_channel_backward,
lsq_backward, lsq_per_channel_backward (no autograd)."""

__all__ = ["fake_quant", "fake_quant_per_channel", "lsq", "lsq_per_channel", "lsq_backward", "LsqQuantizer", "ops",
           "quant_range"]


def quant_range(bits, signed=True, narrow_range=False):
    """(qmin, qmax) of a bits-bit grid: signed [-2^(b-1) (+1 narrow), 2^(b-1) - 1], unsigned [0 (1 narrow), 2^b - 1]."""
    if not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"quant_range: bits must be an int in 1..16, got {bits!r}")
    if signed:
        return -(1 << (bits - 1)) + (1 if narrow_range else 0), (1 << (bits - 1)) - 1
    return (1 if narrow_range else 0), (1 << bits) - 1


def fake_quant(x, scale, zero_point, quant_min, quant_max):
    """Per-tensor fake quantization, the signature and the outputs of torch.fake_quantize_per_tensor_affine:
    y = (clamp(round(x / scale) + zero_point, quant_min, quant_max) - zero_point) * scale, rounding half to even,
    1/scale in float. Backward: the straight-through estimator (dy inside the range, +0 outside)."""
    return ops.fake_quant(x, float(scale), int(zero_point), int(quant_min), int(quant_max))


def fake_quant_per_channel(x, scale, zero_point, axis, quant_min, quant_max):
    """Per-channel fake quantization along `axis` (scale float (C,), zero_point int32/int64 (C,)), as
    torch.fake_quantize_per_channel_affine. Backward: the straight-through estimator."""
    return ops.fake_quant_per_channel(x, scale, zero_point, int(axis), int(quant_min), int(quant_max))


def lsq(x, scale, zero_point, quant_min, quant_max, grad_factor=1.0):
    """LSQ / LSQ+ fake quantization with a learnable step size `scale` and zero point (one-element float
    tensors), the signature of torch._fake_quantize_learnable_per_tensor_affine. The backward gives dx (straight
    through), d scale = grad_factor * sum dy * ((q - z) - x / s inside, qmin - z below, qmax - z above) and d zero
    point = grad_factor * (-s) * sum of dy outside (Esser et al., ICLR 2020; Bhalgat et al., CVPRW 2020). LSQ's
    gradient scale is grad_factor = 1 / sqrt(N * qmax), N the number of elements (weights) or features
    (activations) — LsqQuantizer sets it."""
    return ops.lsq(x, scale, zero_point, int(quant_min), int(quant_max), float(grad_factor))


def lsq_per_channel(x, scale, zero_point, axis, quant_min, quant_max, grad_factor=1.0):
    """Per-channel LSQ / LSQ+ (scale and zero_point float (C,)), as torch._fake_quantize_learnable_per_channel_affine."""
    return ops.lsq_per_channel(x, scale, zero_point, int(axis), int(quant_min), int(quant_max), float(grad_factor))


def lsq_backward(dy, x, scale, zero_point, quant_min, quant_max, grad_factor=1.0):
    """The fused LSQ backward without autograd: (dx, d_scale, d_zero_point) in one pass over x and dy."""
    return ops.lsq_backward(dy, x, scale, zero_point, int(quant_min), int(quant_max), float(grad_factor))


class LsqQuantizer(nn.Module):
    """A learned-step-size quantizer (LSQ, Esser et al., ICLR 2020; LSQ+ with learn_zero_point) running on
    mixq's kernels: forward y = lsq(x, step_size, zero_point, qmin, qmax, g), g = 1 / sqrt(N * qmax).

    bits, signed, narrow_range: the integer grid (quant_range). channel_axis: None for one step size, else the
    axis with one step size per index (weights: 0; give `channels`). learn_zero_point: LSQ+ (a learned zero
    point, affine grids) instead of a fixed zero point 0. batch_dim: for activations, the batch axis: N counts the
    features of one sample (the paper's "number of features"), so that the gradient does not depend on how a
    batch is split across processes; None (weights): N counts every element (per channel: of a channel).

    The step size is initialised on the first forward from that tensor, as the paper does:
    s = 2 mean|x| / sqrt(qmax) (per channel for a per-channel quantizer); `initialized` is a buffer, so a loaded
    state dict keeps its step sizes. A step size that an optimiser step pushes to zero or below is used as 1e-8
    (clamped in forward, as mixq's C++ quantized layers do). enabled = False makes forward the identity."""

    def __init__(self, bits, signed=True, channel_axis=None, channels=None, learn_zero_point=False, batch_dim=None,
                 narrow_range=False):
        super().__init__()
        self.qmin, self.qmax = quant_range(bits, signed, narrow_range)
        if self.qmax <= 0:
            raise ValueError(f"LsqQuantizer: the grid [{self.qmin}, {self.qmax}] has no positive level")
        if channel_axis is not None and (channels is None or int(channels) <= 0):
            raise ValueError(f"LsqQuantizer: a per-channel quantizer needs channels > 0, got {channels!r}")
        self.bits, self.signed, self.channel_axis, self.batch_dim = bits, signed, channel_axis, batch_dim
        n = 1 if channel_axis is None else int(channels)
        self.step_size = nn.Parameter(torch.ones(n))
        if learn_zero_point:
            self.zero_point = nn.Parameter(torch.zeros(n))
        else:
            self.register_buffer("zero_point", torch.zeros(n))
        # uint8, not bool: gloo (DistributedDataParallel broadcasts buffers) has no bool type
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))
        self.enabled = True

    def extra_repr(self):
        axis = "" if self.channel_axis is None else f", channel_axis={self.channel_axis}"
        return f"bits={self.bits}, signed={self.signed}, range=[{self.qmin}, {self.qmax}]{axis}"

    @torch.no_grad()
    def initialize(self, x):
        """Sets the step size(s) from x: 2 mean|x| / sqrt(qmax) (LSQ), at least 1e-8."""
        if self.channel_axis is None:
            s = 2.0 * x.detach().abs().mean() / math.sqrt(self.qmax)
            self.step_size.fill_(max(float(s), 1e-8))
        else:
            axis = self.channel_axis % x.dim()
            dims = [d for d in range(x.dim()) if d != axis]
            s = 2.0 * x.detach().abs().mean(dim=dims) / math.sqrt(self.qmax)
            self.step_size.copy_(s.clamp_min(1e-8))
        self.initialized.fill_(1)

    def grad_factor(self, x):
        """LSQ's gradient scale 1 / sqrt(N * qmax) for input x (see the class comment for N)."""
        n = x.numel()
        if self.batch_dim is not None and x.dim() > 0:
            n //= max(x.shape[self.batch_dim], 1)
        if self.channel_axis is not None:
            n //= max(x.shape[self.channel_axis], 1)
        return 1.0 / math.sqrt(max(n, 1) * self.qmax)

    def forward(self, x):
        if not self.enabled:
            return x
        if not bool(self.initialized):
            self.initialize(x)
        g = self.grad_factor(x)
        step = self.step_size.clamp_min(1e-8)  # as mixq's C++ layers: an SGD step past zero is clamped, not an error
        if self.channel_axis is None:
            return lsq(x, step, self.zero_point, self.qmin, self.qmax, g)
        return lsq_per_channel(x, step, self.zero_point, self.channel_axis, self.qmin, self.qmax, g)
