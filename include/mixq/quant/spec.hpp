#pragma once
/// @file
/// QuantSpec: what a quantizer does (bit-width, signedness, symmetry, range, granularity, scale restriction)
/// and the rule that turns a calibration range into a scale and a zero point.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "mixq/detail/eigen.hpp"

#include "mixq/error.hpp"

namespace mixq {

/// How many scales a tensor gets: one; one per index along an axis; one per contiguous group of elements.
enum class Granularity : std::uint8_t { per_tensor, per_channel, per_group };

/// Which scales are allowed: any positive float, or only powers of two (shift-only integer arithmetic).
enum class ScaleRestriction : std::uint8_t { free, power_of_two };

/// Tensor shapes, outermost axis first (row-major).
using Shape = std::vector<std::int64_t>;

/// A row-major 2-D float array: the Eigen type of weights [Cout, K] and of [N, features] activations.
using RowMajorArrayXXf = Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Name of a granularity as used in error messages and in the file format ("per_tensor", ...).
inline const char* to_string(Granularity g) {
  switch (g) {
    case Granularity::per_tensor: return "per_tensor";
    case Granularity::per_channel: return "per_channel";
    case Granularity::per_group: return "per_group";
  }
  return "?";
}

/// Name of a scale restriction as used in error messages and in the file format ("free", "power_of_two").
inline const char* to_string(ScaleRestriction r) { return r == ScaleRestriction::free ? "free" : "power_of_two"; }

/// Describes one uniform quantizer. The integer grid follows from bit_width, is_signed and narrow_range:
/// signed: [-2^(b-1), 2^(b-1) - 1], narrow [-2^(b-1) + 1, 2^(b-1) - 1]; unsigned: [0, 2^b - 1], narrow
/// [1, 2^b - 1] (TensorFlow's narrow_range). Symmetric specs fix the zero point at 0; affine ones pick it
/// from the calibration range. Per-channel quantizes every index of `axis` with its own scale; per-group cuts
/// the last axis into groups of `group_size` contiguous elements, each with its own scale.
///
/// Binary specs (`binary = true`: bit_width 1, signed, symmetric, not narrow) are the exception to the grid
/// rule: the codes are -1 and +1 (no 0), stored as one bit each (bit 0 is -1, bit 1 is +1) and dequantized to
/// code * scale, the sign(w) * alpha of binary weights (BinaryConnect, XNOR-Net; Chin et al. 2020's 1-bit arm).
/// The uniform quantizers (Quantizer, observers' fake quantization) do not implement them; quant/binary.hpp does.
struct QuantSpec {
  int bit_width = 8;                                     ///< 1..16
  bool is_signed = true;                                 ///< signed (two's complement) or unsigned codes
  bool symmetric = true;                                 ///< zero_point == 0 (true) or affine (false)
  bool narrow_range = false;                             ///< drop the most negative (signed) or zero (unsigned) code
  Granularity granularity = Granularity::per_tensor;     ///< per-tensor, per-channel or per-group
  int axis = 0;                                          ///< channel axis (per-channel only); negative counts from the end
  std::int64_t group_size = 0;                           ///< elements per group (per-group only), >= 1
  ScaleRestriction scale_restriction = ScaleRestriction::free;  ///< free or power-of-two scales
  bool binary = false;  ///< codes -1 and +1 in one bit each (see above); needs bit_width 1, signed, symmetric

  /// Smallest integer code.
  std::int32_t qmin() const {
    if (binary) return -1;
    if (is_signed) return -(std::int32_t{1} << (bit_width - 1)) + (narrow_range ? 1 : 0);
    return narrow_range ? 1 : 0;
  }
  /// Largest integer code.
  std::int32_t qmax() const {
    if (binary) return 1;
    return is_signed ? (std::int32_t{1} << (bit_width - 1)) - 1 : (std::int32_t{1} << bit_width) - 1;
  }

  /// Throws mixq::error naming the first invalid field and its value.
  void validate() const {
    if (bit_width < 1 || bit_width > 16) detail::fail("QuantSpec: bit_width must be in [1, 16], got ", bit_width);
    if (narrow_range && bit_width < 2)
      detail::fail("QuantSpec: narrow_range needs bit_width >= 2, got bit_width ", bit_width);
    if (narrow_range && symmetric && !is_signed)
      detail::fail("QuantSpec: unsigned symmetric narrow_range cannot represent 0 (codes start at 1); use affine");
    if (granularity == Granularity::per_group && group_size < 1)
      detail::fail("QuantSpec: per_group needs group_size >= 1, got ", group_size);
    if (granularity != Granularity::per_tensor && granularity != Granularity::per_channel &&
        granularity != Granularity::per_group)
      detail::fail("QuantSpec: unknown granularity ", static_cast<int>(granularity));
    if (scale_restriction != ScaleRestriction::free && scale_restriction != ScaleRestriction::power_of_two)
      detail::fail("QuantSpec: unknown scale_restriction ", static_cast<int>(scale_restriction));
    if (binary && (bit_width != 1 || !is_signed || !symmetric || narrow_range))
      detail::fail("QuantSpec: binary needs bit_width 1, signed, symmetric and not narrow_range, got bit_width ",
                   bit_width, " signed ", is_signed, " symmetric ", symmetric, " narrow_range ", narrow_range);
  }

  /// Convenience constructors for the common cases.
  static QuantSpec per_tensor(int bits, bool is_signed = true, bool symmetric = true) {
    QuantSpec s;
    s.bit_width = bits;
    s.is_signed = is_signed;
    s.symmetric = symmetric;
    return s;
  }
  static QuantSpec per_channel(int bits, int axis, bool is_signed = true, bool symmetric = true) {
    QuantSpec s = per_tensor(bits, is_signed, symmetric);
    s.granularity = Granularity::per_channel;
    s.axis = axis;
    return s;
  }
  static QuantSpec per_group(int bits, std::int64_t group_size, bool is_signed = true, bool symmetric = true) {
    QuantSpec s = per_tensor(bits, is_signed, symmetric);
    s.granularity = Granularity::per_group;
    s.group_size = group_size;
    return s;
  }
  /// A binary spec (codes -1 and +1, one bit each) with one scale per index of `axis`: binary weights with a
  /// per-output-channel alpha.
  static QuantSpec binary_per_channel(int axis) {
    QuantSpec s = per_channel(1, axis, true, true);
    s.binary = true;
    return s;
  }

  friend bool operator==(const QuantSpec& a, const QuantSpec& b) {
    return a.bit_width == b.bit_width && a.is_signed == b.is_signed && a.symmetric == b.symmetric &&
           a.narrow_range == b.narrow_range && a.granularity == b.granularity && a.axis == b.axis &&
           a.group_size == b.group_size && a.scale_restriction == b.scale_restriction && a.binary == b.binary;
  }
  friend bool operator!=(const QuantSpec& a, const QuantSpec& b) { return !(a == b); }
};

/// Scale and zero point of one quantization group.
struct QuantParams {
  float scale = 1.0f;
  std::int32_t zero_point = 0;
};

/// The smallest scale mixq ever produces (FLT_MIN): 1/scale stays finite.
inline constexpr float min_scale = std::numeric_limits<float>::min();

namespace detail {

/// Number of elements of a shape; throws for negative extents or overflow.
inline std::int64_t shape_numel(const Shape& shape, const char* what = "shape") {
  std::int64_t n = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) fail(what, ": extent ", i, " is negative (", shape[i], ")");
    if (shape[i] != 0 && n > std::numeric_limits<std::int64_t>::max() / shape[i])
      fail(what, ": element count overflows int64");
    n *= shape[i];
  }
  return n;
}

/// Resolves a possibly negative axis against a rank; throws if it is out of range.
inline int resolve_axis(int axis, std::size_t rank, const char* what = "axis") {
  const int r = static_cast<int>(rank);
  const int a = axis < 0 ? axis + r : axis;
  if (rank == 0 || a < 0 || a >= r) fail(what, " ", axis, " is out of range for a tensor of rank ", rank);
  return a;
}

/// Rounds a positive scale up to the next power of two (never clips more than the free scale).
inline float round_scale_up_pow2(float scale) {
  int e = 0;
  const float m = std::frexp(scale, &e);  // scale = m * 2^e, m in [0.5, 1)
  return m == 0.5f ? scale : std::ldexp(1.0f, e);
}

/// Clamps a scale to [min_scale, FLT_MAX]; a zero, negative, NaN or Inf scale gives a safe value.
inline float sanitize_scale(double scale) {
  if (!(scale >= static_cast<double>(min_scale))) return scale > 0.0 || std::isnan(scale) ? min_scale : 1.0f;
  if (scale > static_cast<double>(std::numeric_limits<float>::max())) return std::numeric_limits<float>::max();
  return static_cast<float>(scale);
}

}  // namespace detail

/// Turns a calibration range [lo, hi] (finite, lo <= hi) into a scale and zero point for `spec`.
///
/// Rule (documented in docs/FORMAT.md, "Scales"): the range is first widened to contain 0, so that 0 is
/// exactly representable. Symmetric: scale = max(|lo|, |hi|) / qmax (unsigned symmetric ignores lo < 0;
/// signed 1-bit uses -qmin), zero_point = 0. Affine: scale = (hi - lo) / (qmax - qmin), zero_point =
/// clamp(qmin - round_half_even(lo / scale), qmin, qmax). If the widened range is empty (an all-zero tensor)
/// the scale is 1; every scale is clamped to [min_scale, FLT_MAX], so it is never 0, subnormal or Inf. A
/// power-of-two restriction rounds the scale up to the next power of two (and recomputes the zero point).
inline QuantParams params_from_range(const QuantSpec& spec, double lo, double hi) {
  if (!(lo <= hi) || !std::isfinite(lo) || !std::isfinite(hi))
    detail::fail("params_from_range: need finite lo <= hi, got [", lo, ", ", hi, "]");
  const double qmin = spec.qmin(), qmax = spec.qmax();
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  QuantParams p;
  if (spec.symmetric) {
    const double amax = spec.is_signed ? std::max(-lo, hi) : hi;
    const double denom = qmax > 0 ? qmax : -qmin;
    p.scale = amax > 0.0 ? detail::sanitize_scale(amax / denom) : 1.0f;
    if (spec.scale_restriction == ScaleRestriction::power_of_two) p.scale = detail::round_scale_up_pow2(p.scale);
    p.zero_point = 0;
    return p;
  }
  const double range = hi - lo;
  p.scale = range > 0.0 ? detail::sanitize_scale(range / (qmax - qmin)) : 1.0f;
  if (spec.scale_restriction == ScaleRestriction::power_of_two) p.scale = detail::round_scale_up_pow2(p.scale);
  const double zp = qmin - std::nearbyint(lo / static_cast<double>(p.scale));
  p.zero_point = static_cast<std::int32_t>(std::clamp(zp, qmin, qmax));
  return p;
}

}  // namespace mixq
