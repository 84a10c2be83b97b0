#pragma once
/// @file
/// Fake quantization (quantize then dequantize, in float) forward and backward, per tensor, per channel
/// and per group, and the fused LSQ / LSQ+ gradient. Raw pointers, no allocation; the numeric contract is
/// docs/NUMERICS.md: inv = 1.0f / scale in float, q = clamp(round_half_even(x * inv) + zero_point, qmin,
/// qmax), y = (q - zero_point) * scale, bit-identical on every ISA and equal to PyTorch's
/// fake_quantize_per_tensor_affine / fake_quantize_per_channel_affine for finite inputs.
/// Every function checks its arguments and throws mixq::error before writing any output.

#include "mixq/kernels/detail/check.hpp"
#include "mixq/kernels/dispatch.hpp"

#include <cstddef>
#include <cstdint>

namespace mixq::kernels {

/// Per-tensor fake quantization: y[i] = (clamp(round(x[i] / scale) + zero_point, qmin, qmax) - zero_point)
/// * scale, with 1/scale computed once in float. NaN gives NaN, +-Inf gives the qmax/qmin level, a zero
/// output is +0. x and y may be the same pointer (otherwise they must not overlap).
/// @pre n >= 0; scale finite, > 0 with a finite reciprocal; qmin < qmax; qmin <= zero_point <= qmax.
inline void fake_quant(const float* x, float* y, std::ptrdiff_t n, float scale, std::int32_t zero_point,
                       std::int32_t qmin, std::int32_t qmax) {
  constexpr const char* fn = "fake_quant";
  detail::check_size(fn, "n", n);
  detail::check_pointer(fn, "x", x, n);
  detail::check_pointer(fn, "y", y, n);
  detail::check_scale(fn, scale);
  detail::check_range(fn, qmin, qmax);
  detail::check_zero_point(fn, zero_point, qmin, qmax);
  detail::active().fake_quant(x, y, n, detail::params(scale, zero_point, qmin, qmax));
}

/// Per-channel fake quantization of a row-major [outer][channels][inner] tensor: channel c uses scales[c]
/// and zero_points[c] (zero_points may be null: all zero). Weights [Cout][K] are outer = 1, inner = K;
/// NCHW activations are outer = N, inner = H * W. Same contract as fake_quant; x and y may alias.
/// @pre outer, inner >= 0; channels > 0; every scale and zero point valid as for fake_quant.
inline void fake_quant_per_channel(const float* x, float* y, std::ptrdiff_t outer, std::ptrdiff_t channels,
                                   std::ptrdiff_t inner, const float* scales, const std::int32_t* zero_points,
                                   std::int32_t qmin, std::int32_t qmax) {
  constexpr const char* fn = "fake_quant_per_channel";
  detail::check_size(fn, "outer", outer);
  detail::check_positive(fn, "channels", channels);
  detail::check_size(fn, "inner", inner);
  const std::ptrdiff_t n = detail::checked_product(fn, outer, channels, inner);
  detail::check_pointer(fn, "x", x, n);
  detail::check_pointer(fn, "y", y, n);
  detail::check_range(fn, qmin, qmax);
  detail::check_channel_params(fn, scales, zero_points, channels, qmin, qmax);
  detail::active().fake_quant_channels(x, y, outer, channels, inner, scales, zero_points, qmin, qmax);
}

/// Per-group fake quantization of a row-major [rows][cols] tensor: each row is split into groups of
/// group_size contiguous elements, group g of row r uses scales[r * (cols / group_size) + g] and the same
/// entry of zero_points (nullable: all zero). LLM-style weight quantization (group sizes 32..256).
/// @pre rows, cols >= 0; group_size > 0 and divides cols; parameters valid as for fake_quant.
inline void fake_quant_per_group(const float* x, float* y, std::ptrdiff_t rows, std::ptrdiff_t cols,
                                 std::ptrdiff_t group_size, const float* scales,
                                 const std::int32_t* zero_points, std::int32_t qmin, std::int32_t qmax) {
  constexpr const char* fn = "fake_quant_per_group";
  const auto [groups, n] = detail::check_group_shape(fn, rows, cols, group_size);
  detail::check_pointer(fn, "x", x, n);
  detail::check_pointer(fn, "y", y, n);
  detail::check_range(fn, qmin, qmax);
  detail::check_channel_params(fn, scales, zero_points, groups, qmin, qmax);
  if (groups > 0)
    detail::active().fake_quant_channels(x, y, 1, groups, group_size, scales, zero_points, qmin, qmax);
}

/// Straight-through estimator of fake_quant: dx[i] = dy[i] where round(x[i] / scale) + zero_point lies in
/// [qmin, qmax], else +0 (PyTorch's mask); NaN x gives 0. dx may alias x or dy.
/// @pre as for fake_quant.
inline void fake_quant_backward(const float* x, const float* dy, float* dx, std::ptrdiff_t n, float scale,
                                std::int32_t zero_point, std::int32_t qmin, std::int32_t qmax) {
  constexpr const char* fn = "fake_quant_backward";
  detail::check_size(fn, "n", n);
  detail::check_pointer(fn, "x", x, n);
  detail::check_pointer(fn, "dy", dy, n);
  detail::check_pointer(fn, "dx", dx, n);
  detail::check_scale(fn, scale);
  detail::check_range(fn, qmin, qmax);
  detail::check_zero_point(fn, zero_point, qmin, qmax);
  detail::active().fake_quant_backward(x, dy, dx, n, detail::params(scale, zero_point, qmin, qmax));
}

/// Per-channel straight-through estimator; layout and parameters as fake_quant_per_channel.
inline void fake_quant_backward_per_channel(const float* x, const float* dy, float* dx, std::ptrdiff_t outer,
                                            std::ptrdiff_t channels, std::ptrdiff_t inner, const float* scales,
                                            const std::int32_t* zero_points, std::int32_t qmin,
                                            std::int32_t qmax) {
  constexpr const char* fn = "fake_quant_backward_per_channel";
  detail::check_size(fn, "outer", outer);
  detail::check_positive(fn, "channels", channels);
  detail::check_size(fn, "inner", inner);
  const std::ptrdiff_t n = detail::checked_product(fn, outer, channels, inner);
  detail::check_pointer(fn, "x", x, n);
  detail::check_pointer(fn, "dy", dy, n);
  detail::check_pointer(fn, "dx", dx, n);
  detail::check_range(fn, qmin, qmax);
  detail::check_channel_params(fn, scales, zero_points, channels, qmin, qmax);
  detail::active().fake_quant_backward_channels(x, dy, dx, outer, channels, inner, scales, zero_points, qmin,
                                                qmax);
}

/// Per-group straight-through estimator; layout and parameters as fake_quant_per_group.
inline void fake_quant_backward_per_group(const float* x, const float* dy, float* dx, std::ptrdiff_t rows,
                                          std::ptrdiff_t cols, std::ptrdiff_t group_size, const float* scales,
                                          const std::int32_t* zero_points, std::int32_t qmin,
                                          std::int32_t qmax) {
  constexpr const char* fn = "fake_quant_backward_per_group";
  const auto [groups, n] = detail::check_group_shape(fn, rows, cols, group_size);
  detail::check_pointer(fn, "x", x, n);
  detail::check_pointer(fn, "dy", dy, n);
  detail::check_pointer(fn, "dx", dx, n);
  detail::check_range(fn, qmin, qmax);
  detail::check_channel_params(fn, scales, zero_points, groups, qmin, qmax);
  if (groups > 0)
    detail::active().fake_quant_backward_channels(x, dy, dx, 1, groups, group_size, scales, zero_points, qmin,
                                                  qmax);
}

/// LSQ (Esser et al., ICLR 2020) and LSQ+ (Bhalgat et al., CVPRW 2020) backward in one fused pass.
/// Writes dx as fake_quant_backward and returns dL/dscale = sum dy * { (q - zero_point) - x / scale inside;
/// qmin - zero_point below; qmax - zero_point above; 0 for NaN x }, with x / scale computed as x * inv.
/// d_zero_point (nullable) receives sum dy * { 0 inside; -scale below or above } (PyTorch's
/// _fake_quantize_learnable_per_tensor_affine). Sums are in double; the caller applies LSQ's gradient
/// scale g = 1 / sqrt(n * qmax). dx may alias x or dy.
/// @pre as for fake_quant.
inline double lsq_backward(const float* x, const float* dy, float* dx, std::ptrdiff_t n, float scale,
                           std::int32_t zero_point, std::int32_t qmin, std::int32_t qmax, double* d_zero_point) {
  constexpr const char* fn = "lsq_backward";
  detail::check_size(fn, "n", n);
  detail::check_pointer(fn, "x", x, n);
  detail::check_pointer(fn, "dy", dy, n);
  detail::check_pointer(fn, "dx", dx, n);
  detail::check_scale(fn, scale);
  detail::check_range(fn, qmin, qmax);
  detail::check_zero_point(fn, zero_point, qmin, qmax);
  double d_scale = 0.0, dy_outside = 0.0;
  detail::active().lsq_backward(x, dy, dx, n, detail::params(scale, zero_point, qmin, qmax), &d_scale,
                                &dy_outside);
  if (d_zero_point != nullptr) *d_zero_point = -static_cast<double>(scale) * dy_outside;
  return d_scale;
}

/// Per-channel LSQ / LSQ+ backward; layout and parameters as fake_quant_per_channel. Writes dx,
/// d_scales[c] = dL/dscale of channel c (summed over outer and inner) and, if d_zero_points is not null,
/// d_zero_points[c] = dL/dzero_point of channel c.
/// @pre as fake_quant_per_channel; d_scales not null.
inline void lsq_backward_per_channel(const float* x, const float* dy, float* dx, std::ptrdiff_t outer,
                                     std::ptrdiff_t channels, std::ptrdiff_t inner, const float* scales,
                                     const std::int32_t* zero_points, std::int32_t qmin, std::int32_t qmax,
                                     double* d_scales, double* d_zero_points) {
  constexpr const char* fn = "lsq_backward_per_channel";
  detail::check_size(fn, "outer", outer);
  detail::check_positive(fn, "channels", channels);
  detail::check_size(fn, "inner", inner);
  const std::ptrdiff_t n = detail::checked_product(fn, outer, channels, inner);
  detail::check_pointer(fn, "x", x, n);
  detail::check_pointer(fn, "dy", dy, n);
  detail::check_pointer(fn, "dx", dx, n);
  detail::check_pointer(fn, "d_scales", d_scales, channels);
  detail::check_range(fn, qmin, qmax);
  detail::check_channel_params(fn, scales, zero_points, channels, qmin, qmax);
  for (std::ptrdiff_t c = 0; c < channels; ++c) d_scales[c] = 0.0;
  if (d_zero_points != nullptr)
    for (std::ptrdiff_t c = 0; c < channels; ++c) d_zero_points[c] = 0.0;
  detail::active().lsq_backward_channels(x, dy, dx, outer, channels, inner, scales, zero_points, qmin, qmax,
                                         d_scales, d_zero_points);
  if (d_zero_points != nullptr)
    for (std::ptrdiff_t c = 0; c < channels; ++c) d_zero_points[c] *= -static_cast<double>(scales[c]);
}

/// Per-group LSQ / LSQ+ backward; layout and parameters as fake_quant_per_group. d_scales and
/// d_zero_points (nullable) have one entry per group, rows * (cols / group_size).
inline void lsq_backward_per_group(const float* x, const float* dy, float* dx, std::ptrdiff_t rows,
                                   std::ptrdiff_t cols, std::ptrdiff_t group_size, const float* scales,
                                   const std::int32_t* zero_points, std::int32_t qmin, std::int32_t qmax,
                                   double* d_scales, double* d_zero_points) {
  constexpr const char* fn = "lsq_backward_per_group";
  const auto [groups, n] = detail::check_group_shape(fn, rows, cols, group_size);
  detail::check_pointer(fn, "x", x, n);
  detail::check_pointer(fn, "dy", dy, n);
  detail::check_pointer(fn, "dx", dx, n);
  detail::check_pointer(fn, "d_scales", d_scales, groups);
  detail::check_range(fn, qmin, qmax);
  detail::check_channel_params(fn, scales, zero_points, groups, qmin, qmax);
  for (std::ptrdiff_t g = 0; g < groups; ++g) d_scales[g] = 0.0;
  if (d_zero_points != nullptr)
    for (std::ptrdiff_t g = 0; g < groups; ++g) d_zero_points[g] = 0.0;
  if (groups > 0)
    detail::active().lsq_backward_channels(x, dy, dx, 1, groups, group_size, scales, zero_points, qmin, qmax,
                                           d_scales, d_zero_points);
  if (d_zero_points != nullptr)
    for (std::ptrdiff_t g = 0; g < groups; ++g) d_zero_points[g] *= -static_cast<double>(scales[g]);
}

}  // namespace mixq::kernels
