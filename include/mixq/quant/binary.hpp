#pragma once
/// @file
/// Binary weights: y = alpha_c * sign(x) with one alpha per output channel (BinaryConnect, Courbariaux et al.
/// 2015; XNOR-Net, Rastegari et al. 2016), the 1-bit arm of Chin et al. (2020, "One weight bitwidth to rule
/// them all"). alpha is either learned like an LSQ step size (Esser et al., 2020: gradient sum(dy * sign(x)),
/// scaled by the caller) or set to mean|x|, the alpha minimising ||x - alpha * sign(x)||^2 (XNOR-Net).
/// Gradients are straight-through within the representable range: dx = dy where |x| <= alpha, 0 outside (the
/// LSQ clipping rule with the grid {-alpha, +alpha}).
///
/// Tensors use the [outer][channels][inner] layout of the LSQ quantizers: a weight [Cout, ...] is outer = 1,
/// inner = numel / Cout. Numerics: sign(0) = +1 (the code bit 1); a NaN input gives a NaN output and a 0
/// gradient; alpha must be positive and finite (checked).

#include <cmath>
#include <cstdint>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/quant/lsq.hpp"
#include "mixq/quant/quantized_tensor.hpp"
#include "mixq/quant/spec.hpp"

namespace mixq {

namespace detail {
inline void check_binary_args(const char* fn, const void* x, std::int64_t outer, std::int64_t channels,
                              std::int64_t inner, const float* alpha) {
  if (outer < 0 || channels < 1 || inner < 0)
    fail(fn, ": need outer >= 0, channels >= 1, inner >= 0, got outer=", outer, " channels=", channels, " inner=", inner);
  if (outer * inner > 0 && x == nullptr) fail(fn, ": x must not be null");
  if (alpha == nullptr) return;
  for (std::int64_t c = 0; c < channels; ++c)
    if (!(alpha[c] > 0.f) || !std::isfinite(alpha[c]))
      fail(fn, ": alpha of channel ", c, " must be positive and finite, got ", alpha[c]);
}
}  // namespace detail

/// XNOR-Net's alpha per channel: mean |x| over the finite values of the channel (the L2-optimal scale of
/// sign(x)). A channel whose values are all zero gets alpha 1; a channel without a finite value throws.
/// @pre x holds outer * channels * inner values in [outer][channels][inner] order; outer * inner >= 1.
inline std::vector<float> binary_mean_abs_alpha(const float* x, std::int64_t outer, std::int64_t channels,
                                                std::int64_t inner) {
  constexpr const char* fn = "binary_mean_abs_alpha";
  detail::check_binary_args(fn, x, outer, channels, inner, nullptr);
  if (outer * inner == 0) detail::fail(fn, ": cannot initialise from an empty tensor");
  std::vector<float> alpha(static_cast<std::size_t>(channels));
  for (std::int64_t c = 0; c < channels; ++c) {
    detail::Moments m;
    for (std::int64_t o = 0; o < outer; ++o) detail::accumulate_moments(x + (o * channels + c) * inner, inner, m);
    if (m.n == 0.0) detail::fail(fn, ": channel ", c, " has no finite value (all NaN or Inf)");
    alpha[static_cast<std::size_t>(c)] = detail::step_or_one(m.sum_abs / m.n);
  }
  return alpha;
}

/// y = alpha_c * sign(x) (sign(0) = +1, NaN stays NaN). x and y may be the same array.
/// @pre alpha[0..channels) positive and finite.
inline void binary_forward(const float* x, float* y, std::int64_t outer, std::int64_t channels, std::int64_t inner,
                           const float* alpha) {
  detail::check_binary_args("binary_forward", x, outer, channels, inner, alpha);
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t c = 0; c < channels; ++c) {
      const float a = alpha[c];
      const std::int64_t off = (o * channels + c) * inner;
      for (std::int64_t k = 0; k < inner; ++k) {
        const float v = x[off + k];
        y[off + k] = v >= 0.f ? a : (v < 0.f ? -a : v);
      }
    }
}

/// Straight-through backward of binary_forward: dx = dy where |x| <= alpha_c, else 0 (dx may alias dy), and
/// dalpha[c] = sum over the channel of dy * sign(x) (the exact derivative of alpha_c * sign(x) in alpha_c;
/// NaN inputs contribute 0), accumulated in double and written (not added). LSQ's gradient scale is the
/// caller's.
inline void binary_backward(const float* x, const float* dy, float* dx, std::int64_t outer, std::int64_t channels,
                            std::int64_t inner, const float* alpha, double* dalpha) {
  detail::check_binary_args("binary_backward", x, outer, channels, inner, alpha);
  for (std::int64_t c = 0; c < channels; ++c) dalpha[c] = 0.0;
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t c = 0; c < channels; ++c) {
      const float a = alpha[c];
      const std::int64_t off = (o * channels + c) * inner;
      double d = 0.0;
      for (std::int64_t k = 0; k < inner; ++k) {
        const float v = x[off + k], g = dy[off + k];
        d += v >= 0.f ? static_cast<double>(g) : (v < 0.f ? -static_cast<double>(g) : 0.0);
        dx[off + k] = std::fabs(v) <= a ? g : 0.f;
      }
      dalpha[c] += d;
    }
}

/// The binary QuantizedTensor of a weight of `shape` (row-major) with one alpha per index of `axis`: codes
/// sign(w) in {-1, +1} (sign(0) = +1) packed at one bit, scales alpha. Throws mixq::error for a bad shape or
/// axis, an alpha count other than shape[axis], a non-positive or non-finite alpha, or a NaN weight.
inline QuantizedTensor quantize_binary(const float* w, const Shape& shape, int axis, const std::vector<float>& alpha) {
  const QuantSpec spec = QuantSpec::binary_per_channel(axis);
  const std::int64_t n = detail::shape_numel(shape);
  if (n > 0 && w == nullptr) detail::fail("quantize_binary: w must not be null");
  std::vector<std::int32_t> codes(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    if (std::isnan(w[i])) detail::fail("quantize_binary: weight ", i, " is NaN");
    codes[static_cast<std::size_t>(i)] = w[i] >= 0.f ? 1 : -1;
  }
  return QuantizedTensor::from_codes(shape, spec, alpha, std::vector<std::int32_t>(alpha.size(), 0), codes.data());
}

}  // namespace mixq
