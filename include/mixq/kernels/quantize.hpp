#pragma once
/// @file
/// Deployment kernels: quantize floats to integer codes, dequantize codes to floats, and the NaN-ignoring
/// min/max an observer needs. Same numeric contract as fake_quant (docs/NUMERICS.md).

#include "mixq/kernels/detail/check.hpp"
#include "mixq/kernels/dispatch.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>

namespace mixq::kernels {
namespace detail {
template <class Code>
inline void check_code_range(const char* fn, const char* type, std::int32_t qmin, std::int32_t qmax) {
  constexpr std::int32_t lo = std::numeric_limits<Code>::min(), hi = std::numeric_limits<Code>::max();
  if (qmin < lo || qmax > hi)
    mixq::detail::fail(fn, ": [qmin, qmax] must fit ", type, " [", lo, ", ", hi, "], got [", qmin, ", ", qmax,
                       "]");
}

template <class Code>
inline void quantize_checked(const char* type, const float* x, Code* q, std::ptrdiff_t n, float scale,
                             std::int32_t zero_point, std::int32_t qmin, std::int32_t qmax,
                             void (*KernelTable::*kernel)(const float*, Code*, std::ptrdiff_t, const Params&)) {
  constexpr const char* fn = "quantize";
  check_size(fn, "n", n);
  check_pointer(fn, "x", x, n);
  check_pointer(fn, "q", q, n);
  check_scale(fn, scale);
  check_range(fn, qmin, qmax);
  check_zero_point(fn, zero_point, qmin, qmax);
  check_code_range<Code>(fn, type, qmin, qmax);
  (active().*kernel)(x, q, n, params(scale, zero_point, qmin, qmax));
}

template <class Code>
inline void dequantize_checked(const Code* q, float* y, std::ptrdiff_t n, float scale, std::int32_t zero_point,
                               void (*KernelTable::*kernel)(const Code*, float*, std::ptrdiff_t, float,
                                                            std::int32_t)) {
  constexpr const char* fn = "dequantize";
  check_size(fn, "n", n);
  check_pointer(fn, "q", q, n);
  check_pointer(fn, "y", y, n);
  check_scale(fn, scale);
  (active().*kernel)(q, y, n, scale, zero_point);
}
}  // namespace detail

/// Quantizes to signed 8-bit codes: q[i] = clamp(round(x[i] / scale) + zero_point, qmin, qmax), with the
/// rounding, clamping and 1/scale of fake_quant. NaN gives zero_point; +-Inf give qmax/qmin.
/// @pre as fake_quant, and [qmin, qmax] within [-128, 127]. x and q must not overlap.
inline void quantize(const float* x, std::int8_t* q, std::ptrdiff_t n, float scale, std::int32_t zero_point,
                     std::int32_t qmin, std::int32_t qmax) {
  detail::quantize_checked("int8", x, q, n, scale, zero_point, qmin, qmax, &detail::KernelTable::quantize_s8);
}

/// Quantizes to unsigned 8-bit codes; [qmin, qmax] within [0, 255]. Otherwise as the int8 overload.
inline void quantize(const float* x, std::uint8_t* q, std::ptrdiff_t n, float scale, std::int32_t zero_point,
                     std::int32_t qmin, std::int32_t qmax) {
  detail::quantize_checked("uint8", x, q, n, scale, zero_point, qmin, qmax, &detail::KernelTable::quantize_u8);
}

/// Quantizes to signed 16-bit codes (bit-widths above 8); [qmin, qmax] within [-32768, 32767].
inline void quantize(const float* x, std::int16_t* q, std::ptrdiff_t n, float scale, std::int32_t zero_point,
                     std::int32_t qmin, std::int32_t qmax) {
  detail::quantize_checked("int16", x, q, n, scale, zero_point, qmin, qmax, &detail::KernelTable::quantize_s16);
}

/// Dequantizes codes: y[i] = float(q[i] - zero_point) * scale (a zero output is +0).
/// @pre n >= 0; scale finite and > 0 with a finite reciprocal. q and y must not overlap.
inline void dequantize(const std::int8_t* q, float* y, std::ptrdiff_t n, float scale, std::int32_t zero_point) {
  detail::dequantize_checked(q, y, n, scale, zero_point, &detail::KernelTable::dequantize_s8);
}

/// Dequantizes unsigned 8-bit codes; as the int8 overload.
inline void dequantize(const std::uint8_t* q, float* y, std::ptrdiff_t n, float scale, std::int32_t zero_point) {
  detail::dequantize_checked(q, y, n, scale, zero_point, &detail::KernelTable::dequantize_u8);
}

/// Dequantizes signed 16-bit codes; as the int8 overload.
inline void dequantize(const std::int16_t* q, float* y, std::ptrdiff_t n, float scale, std::int32_t zero_point) {
  detail::dequantize_checked(q, y, n, scale, zero_point, &detail::KernelTable::dequantize_s16);
}

/// The smallest and largest value of a tensor.
struct MinMax {
  float min;
  float max;
};

/// Smallest and largest non-NaN value of x[0..n). NaN is ignored; a zero result is +0; for n == 0 or an
/// all-NaN input, min = +inf and max = -inf. Exact (bit-identical on every ISA).
/// @pre n >= 0.
inline MinMax minmax(const float* x, std::ptrdiff_t n) {
  constexpr const char* fn = "minmax";
  detail::check_size(fn, "n", n);
  detail::check_pointer(fn, "x", x, n);
  MinMax r{};
  detail::active().minmax(x, n, &r.min, &r.max);
  return r;
}

}  // namespace mixq::kernels
