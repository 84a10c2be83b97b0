#pragma once
/// @file
/// Argument checks shared by the public kernels. Every check runs before any output is written.

#include "mixq/error.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace mixq::kernels::detail {

inline void check_size(const char* fn, const char* name, std::ptrdiff_t v) {
  if (v < 0) mixq::detail::fail(fn, ": ", name, " must be >= 0, got ", v);
}

inline void check_positive(const char* fn, const char* name, std::ptrdiff_t v) {
  if (v <= 0) mixq::detail::fail(fn, ": ", name, " must be > 0, got ", v);
}

inline void check_pointer(const char* fn, const char* name, const void* p, std::ptrdiff_t n) {
  if (p == nullptr && n > 0) mixq::detail::fail(fn, ": ", name, " must not be null when n = ", n);
}

inline std::ptrdiff_t checked_product(const char* fn, std::ptrdiff_t a, std::ptrdiff_t b, std::ptrdiff_t c) {
  std::ptrdiff_t ab = 0, abc = 0;
  if (__builtin_mul_overflow(a, b, &ab) || __builtin_mul_overflow(ab, c, &abc))
    mixq::detail::fail(fn, ": size ", a, " x ", b, " x ", c, " overflows std::ptrdiff_t");
  return abc;
}

/// Element and group counts of a [rows][cols] tensor split into groups of group_size along its rows.
struct GroupShape {
  std::ptrdiff_t groups;
  std::ptrdiff_t n;
};

/// Checks rows, cols >= 0, group_size > 0 dividing cols, and that the counts fit std::ptrdiff_t.
inline GroupShape check_group_shape(const char* fn, std::ptrdiff_t rows, std::ptrdiff_t cols,
                                    std::ptrdiff_t group_size) {
  check_size(fn, "rows", rows);
  check_size(fn, "cols", cols);
  check_positive(fn, "group_size", group_size);
  if (cols % group_size != 0)
    mixq::detail::fail(fn, ": group_size must divide cols, got group_size = ", group_size, ", cols = ", cols);
  return {checked_product(fn, rows, cols / group_size, 1), checked_product(fn, rows, cols, 1)};
}

inline void check_range(const char* fn, std::int32_t qmin, std::int32_t qmax) {
  if (qmin >= qmax) mixq::detail::fail(fn, ": qmin must be < qmax, got qmin = ", qmin, ", qmax = ", qmax);
}

/// The smallest float whose reciprocal 1.0f / scale (round to nearest) is finite: for positive finite scale,
/// isfinite(1.0f / scale) <=> scale >= kMinScale (a comparison instead of a division per channel or group).
inline constexpr float kMinScale = 0x1.000008p-128f;

/// scale must be finite, > 0, and have a finite float reciprocal (scale >= kMinScale, about 2.94e-39).
inline void check_scale(const char* fn, float scale, std::ptrdiff_t index = -1) {
  const bool ok = std::isfinite(scale) && scale > 0.0f;
  if (ok && scale >= kMinScale) return;
  if (index < 0) {
    if (!ok) mixq::detail::fail(fn, ": scale must be finite and > 0, got ", scale);
    mixq::detail::fail(fn, ": scale must have a finite reciprocal 1/scale (scale >= 2.94e-39), got ", scale);
  }
  if (!ok) mixq::detail::fail(fn, ": scales[", index, "] must be finite and > 0, got ", scale);
  mixq::detail::fail(fn, ": scales[", index, "] must have a finite reciprocal 1/scale (scale >= 2.94e-39), got ",
                     scale);
}

inline void check_zero_point(const char* fn, std::int32_t zero_point, std::int32_t qmin, std::int32_t qmax,
                             std::ptrdiff_t index = -1) {
  if (zero_point >= qmin && zero_point <= qmax) return;
  if (index < 0)
    mixq::detail::fail(fn, ": zero_point must lie in [qmin, qmax] = [", qmin, ", ", qmax, "], got ", zero_point);
  mixq::detail::fail(fn, ": zero_points[", index, "] must lie in [qmin, qmax] = [", qmin, ", ", qmax, "], got ",
                     zero_point);
}

/// Checks count scales and zero points (zero_points may be null: all zero).
/// A branch-free pass (vectorizable, a few cycles per hundred groups) decides; the per-entry checks that build
/// the message run only when it fails.
inline void check_channel_params(const char* fn, const float* scales, const std::int32_t* zero_points,
                                 std::ptrdiff_t count, std::int32_t qmin, std::int32_t qmax) {
  check_pointer(fn, "scales", scales, count);
  // A valid scale is a float in [kMinScale, FLT_MAX]: its bit pattern, read as int32, lies in
  // [0x00200001, 0x7F7FFFFF] (negative values, zeros, subnormals below kMinScale, Inf and NaN fall outside);
  // `bad` collects the sign of every difference (64-bit, no overflow).
  std::int64_t bad = 0;
  for (std::ptrdiff_t c = 0; c < count; ++c) {
    std::int32_t b;
    std::memcpy(&b, scales + c, sizeof b);
    bad |= (std::int64_t(b) - 0x00200001) | (0x7F7FFFFF - std::int64_t(b));
  }
  if (zero_points != nullptr)
    for (std::ptrdiff_t c = 0; c < count; ++c)
      bad |= (std::int64_t(zero_points[c]) - qmin) | (qmax - std::int64_t(zero_points[c]));
  if (bad >= 0 && (zero_points != nullptr || (qmin <= 0 && 0 <= qmax))) return;
  for (std::ptrdiff_t c = 0; c < count; ++c) check_scale(fn, scales[c], c);
  if (zero_points == nullptr) {
    check_zero_point(fn, 0, qmin, qmax);
    return;
  }
  for (std::ptrdiff_t c = 0; c < count; ++c) check_zero_point(fn, zero_points[c], qmin, qmax, c);
}

inline void check_bits(const char* fn, int bits) {
  if (bits < 1 || bits > 8) mixq::detail::fail(fn, ": bits must be in 1..8, got ", bits);
}

}  // namespace mixq::kernels::detail
