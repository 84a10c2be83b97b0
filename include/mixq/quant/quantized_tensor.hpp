#pragma once
/// @file
/// QuantizedTensor: a tensor's integer codes bit-packed at its bit-width, with its shape, spec, scales and
/// zero points. The bit layout is the one of docs/FORMAT.md ("Packed codes").

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/kernels.hpp"
#include "mixq/quant/layout.hpp"
#include "mixq/quant/spec.hpp"

namespace mixq {

namespace detail {

/// Bytes needed for n codes of `bits` bits: ceil(n * bits / 8).
inline std::size_t packed_size(std::int64_t n, int bits) {
  return static_cast<std::size_t>((static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(bits) + 7) / 8);
}

/// Packs the low `bits` bits of each of n codes (two's complement for signed codes) LSB first: code i
/// occupies bits [i * bits, (i + 1) * bits) of the little-endian bit stream `out` (bit k is bit k % 8 of byte
/// k / 8), the layout of kernels::pack_bits. Trailing bits of the last byte are zero. bits in [1, 16].
inline void pack_codes(const std::int32_t* q, std::int64_t n, int bits, std::uint8_t* out) {
  std::memset(out, 0, packed_size(n, bits));
  const std::uint32_t mask = (std::uint32_t{1} << bits) - 1u;
  std::uint64_t acc = 0;  // bit buffer, holds < 8 + 16 bits
  int filled = 0;
  std::size_t o = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    acc |= static_cast<std::uint64_t>(static_cast<std::uint32_t>(q[i]) & mask) << filled;
    filled += bits;
    while (filled >= 8) {
      out[o++] = static_cast<std::uint8_t>(acc);
      acc >>= 8;
      filled -= 8;
    }
  }
  if (filled > 0) out[o] = static_cast<std::uint8_t>(acc);
}

/// Inverse of pack_codes: q[i] = the i-th `bits`-bit field of `in`, sign-extended when is_signed.
inline void unpack_codes(const std::uint8_t* in, std::int64_t n, int bits, bool is_signed, std::int32_t* q) {
  const std::uint32_t mask = (std::uint32_t{1} << bits) - 1u;
  const std::uint32_t sign = std::uint32_t{1} << (bits - 1);
  std::uint64_t acc = 0;
  int filled = 0;
  std::size_t o = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    while (filled < bits) {
      acc |= static_cast<std::uint64_t>(in[o++]) << filled;
      filled += 8;
    }
    std::uint32_t c = static_cast<std::uint32_t>(acc) & mask;
    acc >>= bits;
    filled -= bits;
    if (is_signed && (c & sign) != 0u) c |= ~mask;
    q[i] = static_cast<std::int32_t>(c);
  }
}

/// Number of (scale, zero point) pairs a tensor of `shape` needs under `spec` (validates both).
inline std::int64_t num_params(const QuantSpec& spec, const Shape& shape) { return channel_layout(spec, shape).channels; }

}  // namespace detail

/// A quantized tensor: shape, QuantSpec, one scale and zero point per quantization group (layout of
/// channel_layout()), and the integer codes bit-packed at spec.bit_width (docs/FORMAT.md). A 3-bit tensor of
/// 1,000,000 elements holds 375,000 bytes of codes. Element i dequantizes to (code(i) - zero_point) * scale of
/// its group. A binary spec (QuantSpec::binary) holds codes -1 and +1 at one bit each (bit 1 is +1), zero point
/// 0: element i dequantizes to code(i) * scale, 125,000 bytes of codes for 1,000,000 weights.
class QuantizedTensor {
 public:
  QuantizedTensor() = default;

  /// Builds a tensor from unpacked codes (numel of them, each in [qmin, qmax]); throws mixq::error for a bad
  /// spec, shape, parameter count, non-positive or non-finite scale, zero point or code out of range.
  static QuantizedTensor from_codes(Shape shape, const QuantSpec& spec, std::vector<float> scales,
                                    std::vector<std::int32_t> zero_points, const std::int32_t* codes) {
    QuantizedTensor t = make(std::move(shape), spec, std::move(scales), std::move(zero_points));
    const std::int32_t qmin = spec.qmin(), qmax = spec.qmax();
    for (std::int64_t i = 0; i < t.numel_; ++i)
      if (codes[i] < qmin || codes[i] > qmax || (spec.binary && codes[i] == 0))
        detail::fail("QuantizedTensor: code ", codes[i], " at index ", i, " is outside ",
                     spec.binary ? "{-1, +1} (a binary spec)" : "the grid", " [", qmin, ", ", qmax, "]");
    t.packed_.resize(detail::packed_size(t.numel_, spec.bit_width));
    if (spec.binary) {  // bit 1 is +1, bit 0 is -1
      std::vector<std::int32_t> bits(static_cast<std::size_t>(t.numel_));
      for (std::int64_t i = 0; i < t.numel_; ++i) bits[static_cast<std::size_t>(i)] = codes[i] > 0 ? 1 : 0;
      detail::pack_codes(bits.data(), t.numel_, 1, t.packed_.data());
    } else {
      detail::pack_codes(codes, t.numel_, spec.bit_width, t.packed_.data());
    }
    return t;
  }

  /// Builds a tensor from already packed codes (ceil(numel * bit_width / 8) bytes in the layout of
  /// docs/FORMAT.md); every field is validated as in from_codes, and codes above qmax are rejected.
  static QuantizedTensor from_packed(Shape shape, const QuantSpec& spec, std::vector<float> scales,
                                     std::vector<std::int32_t> zero_points, std::vector<std::uint8_t> packed) {
    QuantizedTensor t = make(std::move(shape), spec, std::move(scales), std::move(zero_points));
    const std::size_t want = detail::packed_size(t.numel_, spec.bit_width);
    if (packed.size() != want)
      detail::fail("QuantizedTensor: packed codes hold ", packed.size(), " bytes, shape and bit_width ",
                   spec.bit_width, " need ", want);
    t.packed_ = std::move(packed);
    if (spec.narrow_range) {  // the one b-bit pattern outside [qmin, qmax]
      const std::vector<std::int32_t> q = t.codes();
      for (std::int64_t i = 0; i < t.numel_; ++i)
        if (q[static_cast<std::size_t>(i)] < spec.qmin())
          detail::fail("QuantizedTensor: packed code ", q[static_cast<std::size_t>(i)], " at index ", i,
                       " is below qmin ", spec.qmin(), " of a narrow-range spec");
    }
    // padding bits of the last byte must be zero (one file, one encoding)
    const std::uint64_t used_bits = static_cast<std::uint64_t>(t.numel_) * static_cast<std::uint64_t>(spec.bit_width);
    if (used_bits % 8 != 0 && (t.packed_.back() >> (used_bits % 8)) != 0)
      detail::fail("QuantizedTensor: the padding bits of the last packed byte are not zero");
    return t;
  }

  const Shape& shape() const { return shape_; }
  const QuantSpec& spec() const { return spec_; }
  std::int64_t numel() const { return numel_; }
  int bit_width() const { return spec_.bit_width; }
  /// One scale per quantization group (channel_layout(spec(), shape()).channels of them).
  const std::vector<float>& scales() const { return scales_; }
  /// One zero point per quantization group.
  const std::vector<std::int32_t>& zero_points() const { return zero_points_; }
  /// The packed codes, ceil(numel * bit_width / 8) bytes: each code's low bit_width bits (two's complement
  /// when signed), LSB first (docs/FORMAT.md).
  const std::vector<std::uint8_t>& packed_codes() const { return packed_; }
  /// Bytes of codes plus scales plus zero points: the tensor's storage cost.
  std::size_t storage_bytes() const {
    return packed_.size() + scales_.size() * sizeof(float) + zero_points_.size() * sizeof(std::int32_t);
  }
  /// The (outer, channels, inner) view that maps elements to their scale.
  ChannelLayout layout() const { return channel_layout(spec_, shape_); }

  /// Unpacks every code into out[0..numel).
  void unpack(std::int32_t* out) const {
    if (spec_.binary) {
      detail::unpack_codes(packed_.data(), numel_, 1, false, out);
      for (std::int64_t i = 0; i < numel_; ++i) out[i] = 2 * out[i] - 1;
      return;
    }
    detail::unpack_codes(packed_.data(), numel_, spec_.bit_width, spec_.is_signed, out);
  }
  /// All codes, unpacked.
  std::vector<std::int32_t> codes() const {
    std::vector<std::int32_t> q(static_cast<std::size_t>(numel_));
    unpack(q.data());
    return q;
  }
  /// The code of element i (flat row-major index); throws if i is out of range.
  std::int32_t code(std::int64_t i) const {
    if (i < 0 || i >= numel_) detail::fail("QuantizedTensor::code: index ", i, " is outside [0, ", numel_, ")");
    const int b = spec_.bit_width;
    const std::uint64_t bit = static_cast<std::uint64_t>(i) * static_cast<std::uint64_t>(b);
    std::uint32_t v = 0;
    for (int k = 0; k < b; ++k) {
      const std::uint64_t pos = bit + static_cast<std::uint64_t>(k);
      v |= static_cast<std::uint32_t>((packed_[pos / 8] >> (pos % 8)) & 1u) << k;
    }
    if (spec_.binary) return v != 0u ? 1 : -1;
    if (spec_.is_signed && (v >> (b - 1)) != 0u) v |= ~((std::uint32_t{1} << b) - 1u);
    return static_cast<std::int32_t>(v);
  }

  /// Writes the dequantized values (code - zero_point) * scale to out[0..numel) (SIMD unpack and dequantize
  /// kernels up to 8 bits).
  void dequantize(float* out) const {
    const ChannelLayout l = layout();
    if (numel_ == 0) return;
    if (spec_.binary) {
      dequantize_binary(l, out);
      return;
    }
    if (spec_.bit_width <= 8) {
      if (spec_.is_signed) dequantize_small<std::int8_t>(l, out);
      else dequantize_small<std::uint8_t>(l, out);
      return;
    }
    const std::vector<std::int32_t> q = codes();
    std::size_t i = 0;
    for (std::int64_t o = 0; o < l.outer; ++o)
      for (std::int64_t c = 0; c < l.channels; ++c) {
        const float s = scales_[static_cast<std::size_t>(c)];
        const std::int32_t z = zero_points_[static_cast<std::size_t>(c)];
        for (std::int64_t k = 0; k < l.inner; ++k, ++i) out[i] = static_cast<float>(q[i] - z) * s;
      }
  }
  /// The dequantized values, row-major.
  std::vector<float> dequantize() const {
    std::vector<float> y(static_cast<std::size_t>(numel_));
    dequantize(y.data());
    return y;
  }

  friend bool operator==(const QuantizedTensor& a, const QuantizedTensor& b) {
    return a.shape_ == b.shape_ && a.spec_ == b.spec_ && a.scales_ == b.scales_ &&
           a.zero_points_ == b.zero_points_ && a.packed_ == b.packed_;
  }
  friend bool operator!=(const QuantizedTensor& a, const QuantizedTensor& b) { return !(a == b); }

 private:
  // Binary: SIMD unpack of the bits, then +scale or -scale per element.
  void dequantize_binary(const ChannelLayout& l, float* out) const {
    std::vector<std::uint8_t> q(static_cast<std::size_t>(numel_));
    kernels::unpack_bits(packed_.data(), static_cast<std::ptrdiff_t>(numel_), 1, q.data());
    for (std::int64_t o = 0; o < l.outer; ++o)
      for (std::int64_t c = 0; c < l.channels; ++c) {
        const std::int64_t off = (o * l.channels + c) * l.inner;
        const float s = scales_[static_cast<std::size_t>(c)];
        for (std::int64_t k = 0; k < l.inner; ++k) out[off + k] = q[static_cast<std::size_t>(off + k)] != 0 ? s : -s;
      }
  }

  template <class Code>
  void dequantize_small(const ChannelLayout& l, float* out) const {
    std::vector<Code> q(static_cast<std::size_t>(numel_));
    kernels::unpack_bits(packed_.data(), static_cast<std::ptrdiff_t>(numel_), spec_.bit_width, q.data());
    for (std::int64_t o = 0; o < l.outer; ++o)
      for (std::int64_t c = 0; c < l.channels; ++c) {
        const std::int64_t off = (o * l.channels + c) * l.inner;
        kernels::dequantize(q.data() + off, out + off, static_cast<std::ptrdiff_t>(l.inner),
                            scales_[static_cast<std::size_t>(c)], zero_points_[static_cast<std::size_t>(c)]);
      }
  }

  static QuantizedTensor make(Shape shape, const QuantSpec& spec, std::vector<float> scales,
                              std::vector<std::int32_t> zero_points) {
    QuantizedTensor t;
    const std::int64_t groups = detail::num_params(spec, shape);  // validates spec, shape and axis
    if (static_cast<std::int64_t>(scales.size()) != groups || static_cast<std::int64_t>(zero_points.size()) != groups)
      detail::fail("QuantizedTensor: ", scales.size(), " scales and ", zero_points.size(),
                   " zero points given, spec ", to_string(spec.granularity), " on this shape needs ", groups);
    for (std::size_t c = 0; c < scales.size(); ++c) {
      if (!(scales[c] > 0.0f) || !std::isfinite(scales[c]))
        detail::fail("QuantizedTensor: scale ", c, " must be positive and finite, got ", scales[c]);
      if (zero_points[c] < spec.qmin() || zero_points[c] > spec.qmax())
        detail::fail("QuantizedTensor: zero_point ", c, " = ", zero_points[c], " is outside [", spec.qmin(), ", ",
                     spec.qmax(), "]");
      if (spec.symmetric && zero_points[c] != 0)
        detail::fail("QuantizedTensor: zero_point ", c, " = ", zero_points[c], " but the spec is symmetric (needs 0)");
    }
    t.numel_ = detail::shape_numel(shape);
    if (t.numel_ > (std::int64_t{1} << 48))
      detail::fail("QuantizedTensor: ", t.numel_, " elements exceed the limit of 2^48");
    t.shape_ = std::move(shape);
    t.spec_ = spec;
    t.scales_ = std::move(scales);
    t.zero_points_ = std::move(zero_points);
    return t;
  }

  Shape shape_;
  QuantSpec spec_;
  std::int64_t numel_ = 0;
  std::vector<float> scales_;
  std::vector<std::int32_t> zero_points_;
  std::vector<std::uint8_t> packed_;
};

}  // namespace mixq
