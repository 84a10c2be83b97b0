// mixq's kernels as PyTorch operators (namespace torch.ops.mixq), for CPU float32 tensors. One translation unit
// (the torch headers are slow to compile). Loaded by python/mixq/torch.py.
//
// fake_quant, fake_quant_per_channel, lsq and lsq_per_channel carry their autograd in C++ (torch::autograd::Function:
// no Python in the backward, and the gradient of x is handed to AccumulateGrad without a copy); the *_backward
// ops and fake_quant_out are the raw kernels.
//
// Every op checks its tensors first (CPU, float32, shapes, parameter dtypes) and raises ValueError with a message
// naming the op and the argument; mixq::error from the kernels' own checks also arrives as ValueError. Inputs are
// made contiguous (no copy when they already are); an `out` tensor must be contiguous, float32, CPU and of x's
// shape: it is never replaced by a copy.
//
// Numerics are the kernels' (docs/NUMERICS.md): the forward ops equal torch.fake_quantize_per_tensor_affine /
// _per_channel_affine bit for bit on finite inputs. The LSQ ops follow torch._fake_quantize_learnable_per_tensor_affine
// / _per_channel_affine, zero points included: a learnable zero point is a float tensor, rounded as torch rounds
// it (per tensor: nearbyint(z) in the forward, z + 0.5 clamped and truncated toward zero in the backward; per
// channel: round half to even in both), clamped to [quant_min, quant_max]. One difference is kept on purpose:
// torch's per-tensor learnable backward rounds z + x / s where its forward (and mixq, forward and backward) rounds
// x / s and then adds z; with an odd zero point the two differ on exact ties (x / s = k + 1/2), where mixq's
// gradient mask is the one of the forward it differentiates.

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/kernels/fake_quant.hpp"

namespace {

namespace mk = mixq::kernels;
using at::Tensor;

/// Runs f, turning mixq::error into a torch ValueError.
template <class F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const mixq::error& e) {
    TORCH_CHECK_VALUE(false, e.what());
  }
}

std::string device_name(const Tensor& t) { return t.device().str(); }

/// x: a defined CPU float32 tensor; returns it contiguous (the same tensor when it already is).
Tensor input(const char* op, const char* arg, const Tensor& x) {
  TORCH_CHECK_VALUE(x.defined(), "mixq.", op, ": ", arg, " is undefined");
  TORCH_CHECK_VALUE(x.device().is_cpu(), "mixq.", op, ": ", arg, " is on device ", device_name(x),
                    "; mixq's ops run on CPU tensors only (move it with .cpu())");
  TORCH_CHECK_VALUE(x.scalar_type() == at::kFloat, "mixq.", op, ": ", arg, " must be float32, got ",
                    c10::toString(x.scalar_type()), " (convert it explicitly with .float())");
  TORCH_CHECK_VALUE(!x.is_sparse() && x.layout() == at::kStrided, "mixq.", op, ": ", arg, " must be a dense tensor");
  return x.contiguous();
}

/// dy: CPU float32 of x's shape, made contiguous.
Tensor gradient(const char* op, const Tensor& dy, const Tensor& x) {
  Tensor g = input(op, "grad", dy);
  TORCH_CHECK_VALUE(g.sizes() == x.sizes(), "mixq.", op, ": grad has shape ", g.sizes(), ", x has ", x.sizes());
  return g;
}

/// The output: a new tensor like x, or `out` checked (contiguous: a non-contiguous out would need a copy).
Tensor output(const char* op, const Tensor& x, const c10::optional<Tensor>& out) {
  if (!out.has_value() || !out->defined()) return at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  const Tensor& o = *out;
  TORCH_CHECK_VALUE(o.device().is_cpu() && o.scalar_type() == at::kFloat, "mixq.", op,
                    ": out must be a CPU float32 tensor, got ", c10::toString(o.scalar_type()), " on ", device_name(o));
  TORCH_CHECK_VALUE(o.sizes() == x.sizes(), "mixq.", op, ": out has shape ", o.sizes(), ", x has ", x.sizes());
  TORCH_CHECK_VALUE(o.is_contiguous(), "mixq.", op,
                    ": out must be contiguous (writing into a non-contiguous tensor would need a copy)");
  return o;
}

/// A learnable per-tensor parameter (scale or zero point): one element, float32, CPU.
float scalar_parameter(const char* op, const char* arg, const Tensor& t) {
  TORCH_CHECK_VALUE(t.defined() && t.device().is_cpu(), "mixq.", op, ": ", arg, " must be a CPU tensor, got device ",
                    t.defined() ? device_name(t) : std::string("undefined"));
  TORCH_CHECK_VALUE(t.numel() == 1, "mixq.", op, ": ", arg, " must have one element, got ", t.numel());
  TORCH_CHECK_VALUE(at::isFloatingType(t.scalar_type()), "mixq.", op, ": ", arg, " must be a float tensor, got ",
                    c10::toString(t.scalar_type()));
  return t.to(at::kFloat).item<float>();
}

std::int32_t to_int32(const char* op, const char* arg, std::int64_t v) {
  TORCH_CHECK_VALUE(v >= INT32_MIN && v <= INT32_MAX, "mixq.", op, ": ", arg, "=", v, " does not fit int32");
  return static_cast<std::int32_t>(v);
}

struct Split {
  std::int64_t outer = 1, channels = 1, inner = 1;
};
Split split(const char* op, const Tensor& x, std::int64_t axis) {
  const std::int64_t nd = x.dim();
  const std::int64_t a = axis < 0 ? axis + nd : axis;
  TORCH_CHECK_VALUE(nd > 0 && a >= 0 && a < nd, "mixq.", op, ": axis=", axis, " is out of range for a tensor of rank ", nd);
  Split s;
  for (std::int64_t i = 0; i < a; ++i) s.outer *= x.size(i);
  s.channels = x.size(a);
  for (std::int64_t i = a + 1; i < nd; ++i) s.inner *= x.size(i);
  return s;
}

/// Per-channel scales as contiguous float32 (C,).
Tensor channel_scales(const char* op, const Tensor& scale, std::int64_t channels) {
  TORCH_CHECK_VALUE(scale.defined() && scale.device().is_cpu(), "mixq.", op, ": scale must be a CPU tensor");
  TORCH_CHECK_VALUE(scale.dim() == 1 && scale.size(0) == channels, "mixq.", op, ": scale must have shape [", channels,
                    "], got ", scale.sizes());
  TORCH_CHECK_VALUE(at::isFloatingType(scale.scalar_type()), "mixq.", op, ": scale must be a float tensor, got ",
                    c10::toString(scale.scalar_type()));
  return scale.to(at::kFloat).contiguous();
}

/// Per-channel zero points as contiguous int32 (C,): integer tensors as given, float tensors rounded half to even
/// and clamped (torch's _get_rounded_zero_point).
Tensor channel_zero_points(const char* op, const Tensor& zp, std::int64_t channels, std::int64_t qmin, std::int64_t qmax) {
  TORCH_CHECK_VALUE(zp.defined() && zp.device().is_cpu(), "mixq.", op, ": zero_point must be a CPU tensor");
  TORCH_CHECK_VALUE(zp.dim() == 1 && zp.size(0) == channels, "mixq.", op, ": zero_point must have shape [", channels,
                    "], got ", zp.sizes());
  if (at::isFloatingType(zp.scalar_type())) return zp.round().clamp(qmin, qmax).to(at::kInt).contiguous();
  TORCH_CHECK_VALUE(zp.scalar_type() == at::kInt || zp.scalar_type() == at::kLong, "mixq.", op,
                    ": zero_point must be int32, int64 or float, got ", c10::toString(zp.scalar_type()));
  return zp.to(at::kInt).contiguous();
}

// ---- fake quantization -------------------------------------------------------------------------------------------

Tensor fake_quant(const Tensor& x_, double scale, std::int64_t zero_point, std::int64_t qmin, std::int64_t qmax,
                  const c10::optional<Tensor>& out) {
  const char* op = "fake_quant";
  const Tensor x = input(op, "x", x_);
  Tensor y = output(op, x, out);
  guarded([&] {
    mk::fake_quant(x.data_ptr<float>(), y.data_ptr<float>(), x.numel(), static_cast<float>(scale),
                   to_int32(op, "zero_point", zero_point), to_int32(op, "quant_min", qmin), to_int32(op, "quant_max", qmax));
  });
  return y;
}

Tensor fake_quant_backward(const Tensor& dy_, const Tensor& x_, double scale, std::int64_t zero_point,
                           std::int64_t qmin, std::int64_t qmax) {
  const char* op = "fake_quant_backward";
  const Tensor x = input(op, "x", x_);
  const Tensor dy = gradient(op, dy_, x);
  Tensor dx = at::empty_like(x);
  guarded([&] {
    mk::fake_quant_backward(x.data_ptr<float>(), dy.data_ptr<float>(), dx.data_ptr<float>(), x.numel(),
                            static_cast<float>(scale), to_int32(op, "zero_point", zero_point),
                            to_int32(op, "quant_min", qmin), to_int32(op, "quant_max", qmax));
  });
  return dx;
}

Tensor fake_quant_per_channel(const Tensor& x_, const Tensor& scale, const Tensor& zero_point, std::int64_t axis,
                              std::int64_t qmin, std::int64_t qmax, const c10::optional<Tensor>& out) {
  const char* op = "fake_quant_per_channel";
  const Tensor x = input(op, "x", x_);
  const Split s = split(op, x, axis);
  const Tensor sc = channel_scales(op, scale, s.channels);
  const Tensor zp = channel_zero_points(op, zero_point, s.channels, qmin, qmax);
  Tensor y = output(op, x, out);
  guarded([&] {
    mk::fake_quant_per_channel(x.data_ptr<float>(), y.data_ptr<float>(), s.outer, s.channels, s.inner,
                               sc.data_ptr<float>(), zp.data_ptr<std::int32_t>(), to_int32(op, "quant_min", qmin),
                               to_int32(op, "quant_max", qmax));
  });
  return y;
}

Tensor fake_quant_per_channel_backward(const Tensor& dy_, const Tensor& x_, const Tensor& scale,
                                       const Tensor& zero_point, std::int64_t axis, std::int64_t qmin,
                                       std::int64_t qmax) {
  const char* op = "fake_quant_per_channel_backward";
  const Tensor x = input(op, "x", x_);
  const Tensor dy = gradient(op, dy_, x);
  const Split s = split(op, x, axis);
  const Tensor sc = channel_scales(op, scale, s.channels);
  const Tensor zp = channel_zero_points(op, zero_point, s.channels, qmin, qmax);
  Tensor dx = at::empty_like(x);
  guarded([&] {
    mk::fake_quant_backward_per_channel(x.data_ptr<float>(), dy.data_ptr<float>(), dx.data_ptr<float>(), s.outer,
                                        s.channels, s.inner, sc.data_ptr<float>(), zp.data_ptr<std::int32_t>(),
                                        to_int32(op, "quant_min", qmin), to_int32(op, "quant_max", qmax));
  });
  return dx;
}

// ---- LSQ / LSQ+ ----------------------------------------------------------------------------------------------------

/// torch's per-tensor zero point: forward nearbyint, backward z + 0.5; clamped, then truncated toward zero.
std::int32_t tensor_zero_point(float z, std::int64_t qmin, std::int64_t qmax, bool forward) {
  const float r = forward ? std::nearbyint(z) : z + 0.5f;
  const float c = std::min(std::max(r, static_cast<float>(qmin)), static_cast<float>(qmax));
  return static_cast<std::int32_t>(c);
}

Tensor lsq_forward(const Tensor& x_, const Tensor& scale, const Tensor& zero_point, std::int64_t qmin,
                   std::int64_t qmax) {
  const char* op = "lsq";
  const Tensor x = input(op, "x", x_);
  const float s = scalar_parameter(op, "scale", scale);
  TORCH_CHECK_VALUE(qmin < qmax, "mixq.", op, ": quant_min=", qmin, " must be below quant_max=", qmax);
  const float zf = scalar_parameter(op, "zero_point", zero_point);
  TORCH_CHECK_VALUE(std::isfinite(zf), "mixq.", op, ": zero_point must be finite, got ", zf);
  const std::int32_t z = tensor_zero_point(zf, qmin, qmax, true);
  Tensor y = at::empty_like(x);
  guarded([&] {
    mk::fake_quant(x.data_ptr<float>(), y.data_ptr<float>(), x.numel(), s, z, to_int32(op, "quant_min", qmin),
                   to_int32(op, "quant_max", qmax));
  });
  return y;
}

std::tuple<Tensor, Tensor, Tensor> lsq_backward(const Tensor& dy_, const Tensor& x_, const Tensor& scale,
                                                const Tensor& zero_point, std::int64_t qmin, std::int64_t qmax,
                                                double grad_factor) {
  const char* op = "lsq_backward";
  const Tensor x = input(op, "x", x_);
  const Tensor dy = gradient(op, dy_, x);
  const float s = scalar_parameter(op, "scale", scale);
  TORCH_CHECK_VALUE(qmin < qmax, "mixq.", op, ": quant_min=", qmin, " must be below quant_max=", qmax);
  const float zf = scalar_parameter(op, "zero_point", zero_point);
  TORCH_CHECK_VALUE(std::isfinite(zf), "mixq.", op, ": zero_point must be finite, got ", zf);
  TORCH_CHECK_VALUE(std::isfinite(grad_factor), "mixq.", op, ": grad_factor must be finite, got ", grad_factor);
  const std::int32_t z = tensor_zero_point(zf, qmin, qmax, false);
  Tensor dx = at::empty_like(x);
  double d_scale = 0.0, d_zero_point = 0.0;
  guarded([&] {
    d_scale = mk::lsq_backward(x.data_ptr<float>(), dy.data_ptr<float>(), dx.data_ptr<float>(), x.numel(), s, z,
                               to_int32(op, "quant_min", qmin), to_int32(op, "quant_max", qmax), &d_zero_point);
  });
  // gradients of the parameters in their own shape and dtype, as torch's learnable op returns them
  const Tensor ds = at::full(scale.sizes(), d_scale * grad_factor, scale.options());
  const Tensor dz = at::full(zero_point.sizes(), d_zero_point * grad_factor, zero_point.options());
  return {dx, ds, dz};
}

Tensor lsq_per_channel_forward(const Tensor& x_, const Tensor& scale, const Tensor& zero_point, std::int64_t axis,
                               std::int64_t qmin, std::int64_t qmax) {
  return fake_quant_per_channel(x_, scale, zero_point, axis, qmin, qmax, c10::nullopt);
}

std::tuple<Tensor, Tensor, Tensor> lsq_per_channel_backward(const Tensor& dy_, const Tensor& x_, const Tensor& scale,
                                                            const Tensor& zero_point, std::int64_t axis,
                                                            std::int64_t qmin, std::int64_t qmax, double grad_factor) {
  const char* op = "lsq_per_channel_backward";
  const Tensor x = input(op, "x", x_);
  const Tensor dy = gradient(op, dy_, x);
  const Split s = split(op, x, axis);
  const Tensor sc = channel_scales(op, scale, s.channels);
  const Tensor zp = channel_zero_points(op, zero_point, s.channels, qmin, qmax);
  TORCH_CHECK_VALUE(std::isfinite(grad_factor), "mixq.", op, ": grad_factor must be finite, got ", grad_factor);
  Tensor dx = at::empty_like(x);
  Tensor ds = at::empty({s.channels}, x.options().dtype(at::kDouble));
  Tensor dz = at::empty({s.channels}, x.options().dtype(at::kDouble));
  guarded([&] {
    mk::lsq_backward_per_channel(x.data_ptr<float>(), dy.data_ptr<float>(), dx.data_ptr<float>(), s.outer, s.channels,
                                 s.inner, sc.data_ptr<float>(), zp.data_ptr<std::int32_t>(),
                                 to_int32(op, "quant_min", qmin), to_int32(op, "quant_max", qmax),
                                 ds.data_ptr<double>(), dz.data_ptr<double>());
  });
  return {dx, (ds * grad_factor).to(scale.scalar_type()), (dz * grad_factor).to(zero_point.scalar_type())};
}

// ---- autograd ------------------------------------------------------------------------------------------------------

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct FakeQuantFunction : public torch::autograd::Function<FakeQuantFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, double scale, std::int64_t zero_point, std::int64_t qmin,
                        std::int64_t qmax) {
    Tensor y = fake_quant(x, scale, zero_point, qmin, qmax, c10::nullopt);
    ctx->save_for_backward({x});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["zero_point"] = zero_point;
    ctx->saved_data["qmin"] = qmin;
    ctx->saved_data["qmax"] = qmax;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Tensor x = ctx->get_saved_variables()[0];
    const Tensor dx = fake_quant_backward(grads[0], x, ctx->saved_data["scale"].toDouble(),
                                          ctx->saved_data["zero_point"].toInt(), ctx->saved_data["qmin"].toInt(),
                                          ctx->saved_data["qmax"].toInt());
    return {dx, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

struct FakeQuantPerChannelFunction : public torch::autograd::Function<FakeQuantPerChannelFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& scale, const Tensor& zero_point,
                        std::int64_t axis, std::int64_t qmin, std::int64_t qmax) {
    Tensor y = fake_quant_per_channel(x, scale, zero_point, axis, qmin, qmax, c10::nullopt);
    ctx->save_for_backward({x, scale, zero_point});
    ctx->saved_data["axis"] = axis;
    ctx->saved_data["qmin"] = qmin;
    ctx->saved_data["qmax"] = qmax;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list v = ctx->get_saved_variables();
    const Tensor dx = fake_quant_per_channel_backward(grads[0], v[0], v[1], v[2], ctx->saved_data["axis"].toInt(),
                                                      ctx->saved_data["qmin"].toInt(), ctx->saved_data["qmax"].toInt());
    return {dx, Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

struct LsqFunction : public torch::autograd::Function<LsqFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& scale, const Tensor& zero_point,
                        std::int64_t qmin, std::int64_t qmax, double grad_factor) {
    Tensor y = lsq_forward(x, scale, zero_point, qmin, qmax);
    ctx->save_for_backward({x, scale, zero_point});
    ctx->saved_data["qmin"] = qmin;
    ctx->saved_data["qmax"] = qmax;
    ctx->saved_data["grad_factor"] = grad_factor;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list v = ctx->get_saved_variables();
    auto [dx, ds, dz] = lsq_backward(grads[0], v[0], v[1], v[2], ctx->saved_data["qmin"].toInt(),
                                     ctx->saved_data["qmax"].toInt(), ctx->saved_data["grad_factor"].toDouble());
    return {dx, ds, dz, Tensor(), Tensor(), Tensor()};
  }
};

struct LsqPerChannelFunction : public torch::autograd::Function<LsqPerChannelFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& scale, const Tensor& zero_point,
                        std::int64_t axis, std::int64_t qmin, std::int64_t qmax, double grad_factor) {
    Tensor y = lsq_per_channel_forward(x, scale, zero_point, axis, qmin, qmax);
    ctx->save_for_backward({x, scale, zero_point});
    ctx->saved_data["axis"] = axis;
    ctx->saved_data["qmin"] = qmin;
    ctx->saved_data["qmax"] = qmax;
    ctx->saved_data["grad_factor"] = grad_factor;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list v = ctx->get_saved_variables();
    auto [dx, ds, dz] = lsq_per_channel_backward(grads[0], v[0], v[1], v[2], ctx->saved_data["axis"].toInt(),
                                                 ctx->saved_data["qmin"].toInt(), ctx->saved_data["qmax"].toInt(),
                                                 ctx->saved_data["grad_factor"].toDouble());
    return {dx, ds, dz, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

Tensor fake_quant_autograd(const Tensor& x, double scale, std::int64_t zero_point, std::int64_t qmin, std::int64_t qmax) {
  return FakeQuantFunction::apply(x, scale, zero_point, qmin, qmax);
}
Tensor fake_quant_out(const Tensor& x, double scale, std::int64_t zero_point, std::int64_t qmin, std::int64_t qmax,
                      const Tensor& out) {
  return fake_quant(x, scale, zero_point, qmin, qmax, out);
}
Tensor fake_quant_per_channel_autograd(const Tensor& x, const Tensor& scale, const Tensor& zero_point,
                                       std::int64_t axis, std::int64_t qmin, std::int64_t qmax) {
  return FakeQuantPerChannelFunction::apply(x, scale, zero_point, axis, qmin, qmax);
}
Tensor lsq_autograd(const Tensor& x, const Tensor& scale, const Tensor& zero_point, std::int64_t qmin,
                    std::int64_t qmax, double grad_factor) {
  return LsqFunction::apply(x, scale, zero_point, qmin, qmax, grad_factor);
}
Tensor lsq_per_channel_autograd(const Tensor& x, const Tensor& scale, const Tensor& zero_point, std::int64_t axis,
                                std::int64_t qmin, std::int64_t qmax, double grad_factor) {
  return LsqPerChannelFunction::apply(x, scale, zero_point, axis, qmin, qmax, grad_factor);
}

}  // namespace

// Registered without a dispatch key (CompositeImplicitAutograd): every device reaches the checks above, which
// refuse anything but CPU float32 with a ValueError instead of torch's generic "no kernel" error.
TORCH_LIBRARY(mixq, m) {
  m.def("fake_quant(Tensor x, float scale, int zero_point, int quant_min, int quant_max) -> Tensor",
        &fake_quant_autograd);
  m.def("fake_quant_out(Tensor x, float scale, int zero_point, int quant_min, int quant_max, Tensor(a!) out) -> "
        "Tensor(a!)",
        &fake_quant_out);
  m.def("fake_quant_backward(Tensor grad, Tensor x, float scale, int zero_point, int quant_min, int quant_max) -> Tensor",
        &fake_quant_backward);
  m.def("fake_quant_per_channel(Tensor x, Tensor scale, Tensor zero_point, int axis, int quant_min, int quant_max) -> "
        "Tensor",
        &fake_quant_per_channel_autograd);
  m.def("fake_quant_per_channel_backward(Tensor grad, Tensor x, Tensor scale, Tensor zero_point, int axis, "
        "int quant_min, int quant_max) -> Tensor",
        &fake_quant_per_channel_backward);
  m.def("lsq(Tensor x, Tensor scale, Tensor zero_point, int quant_min, int quant_max, float grad_factor=1.0) -> Tensor",
        &lsq_autograd);
  m.def("lsq_backward(Tensor grad, Tensor x, Tensor scale, Tensor zero_point, int quant_min, int quant_max, "
        "float grad_factor) -> (Tensor, Tensor, Tensor)",
        &lsq_backward);
  m.def("lsq_per_channel(Tensor x, Tensor scale, Tensor zero_point, int axis, int quant_min, int quant_max, "
        "float grad_factor=1.0) -> Tensor",
        &lsq_per_channel_autograd);
  m.def("lsq_per_channel_backward(Tensor grad, Tensor x, Tensor scale, Tensor zero_point, int axis, int quant_min, "
        "int quant_max, float grad_factor) -> (Tensor, Tensor, Tensor)",
        &lsq_per_channel_backward);
}
