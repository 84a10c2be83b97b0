#pragma once
/// @file
/// Scalar kernels: always compiled, the reference every SIMD path is tested against lane for lane.
/// The numeric contract is stated once in docs/NUMERICS.md; the element functions below are its
/// executable form (params(), fake_quant_one(), inside(), lsq_term(), quantize_one()).

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace mixq::kernels::detail {

/// Per-tensor (or per-channel, per-row) quantization parameters in the form every ISA uses.
/// lo and hi are the clamp bounds of the rounded value before the zero point is added:
/// lo = qmin - zero_point, hi = qmax - zero_point (computed in 64-bit integers, then rounded to float).
struct Params {
  float scale;
  float inv;  ///< 1.0f / scale, in float, once.
  float lo;
  float hi;
  std::int32_t zero_point;
};

inline Params params(float scale, std::int32_t zero_point, std::int32_t qmin, std::int32_t qmax) {
  Params p;
  p.scale = scale;
  p.inv = 1.0f / scale;
  p.lo = static_cast<float>(static_cast<std::int64_t>(qmin) - zero_point);
  p.hi = static_cast<float>(static_cast<std::int64_t>(qmax) - zero_point);
  p.zero_point = zero_point;
  return p;
}

/// Output size in bytes from which x86 SIMD kernels write with non-temporal (streaming) stores: far above the
/// last-level cache, where they save the read-for-ownership of every output line. A hook for tests and
/// benchmarks; set it before kernels run concurrently.
inline std::ptrdiff_t& stream_bytes() {
  static std::ptrdiff_t bytes = std::ptrdiff_t(48) << 20;
  return bytes;
}

/// SIMD LSQ sums: float fma partial sums over at most kLsqBlock steps per lane, then flushed to double
/// (error bound (kLsqBlock + 1) * 2^-24 * sum |dy * term|, docs/NUMERICS.md).
inline constexpr int kLsqBlock = 16;

/// Round half to even in the default rounding mode.
inline float round_even(float t) { return std::nearbyint(t); }

/// clamp(r, lo, hi) that keeps NaN (both comparisons are false for NaN) and keeps r on ties.
inline float clamp_nan(float r, float lo, float hi) {
  float c = r < lo ? lo : r;
  return c > hi ? hi : c;
}

/// y = (clamp(round(x * inv), lo, hi) + 0) * scale. The + 0.0f turns -0 into +0, as torch (which goes
/// through integers) does. NaN stays NaN.
inline float fake_quant_one(float x, const Params& p) {
  const float c = clamp_nan(round_even(x * p.inv), p.lo, p.hi);
  return (c + 0.0f) * p.scale;
}

/// True when round(x * inv) + zero_point lies in [qmin, qmax] (false for NaN).
inline bool inside(float x, const Params& p) {
  const float r = round_even(x * p.inv);
  return r >= p.lo && r <= p.hi;
}

/// One element of the LSQ backward pass. term is dL/dscale / dy: (q - zero_point) - x * inv inside,
/// computed with one rounding as fma(-x, inv, r), lo below, hi above, 0 for NaN. inside and outside are
/// both false for NaN.
struct LsqElement {
  float term;
  bool inside;
  bool outside;
};

inline LsqElement lsq_one(float x, const Params& p) {
  const float t = x * p.inv;
  const float r = round_even(t);
  if (r >= p.lo && r <= p.hi) return {std::fma(-x, p.inv, r), true, false};
  if (r < p.lo) return {p.lo, false, true};
  if (r > p.hi) return {p.hi, false, true};
  return {0.0f, false, false};
}

/// Integer code clamp(round(x * inv) + zero_point, qmin, qmax); NaN gives zero_point.
inline std::int32_t quantize_one(float x, const Params& p) {
  float c = clamp_nan(round_even(x * p.inv), p.lo, p.hi);
  if (c != c) c = 0.0f;
  return static_cast<std::int32_t>(c) + p.zero_point;
}

namespace scalar {

inline void fake_quant(const float* x, float* y, std::ptrdiff_t n, const Params& p) {
  for (std::ptrdiff_t i = 0; i < n; ++i) y[i] = fake_quant_one(x[i], p);
}

inline void fake_quant_backward(const float* x, const float* dy, float* dx, std::ptrdiff_t n,
                                const Params& p) {
  for (std::ptrdiff_t i = 0; i < n; ++i) dx[i] = inside(x[i], p) ? dy[i] : 0.0f;
}

/// Writes dx; adds sum dy * term to *d_scale and the sum of dy over outside elements to *dy_outside.
inline void lsq_backward(const float* x, const float* dy, float* dx, std::ptrdiff_t n, const Params& p,
                         double* d_scale, double* dy_outside) {
  double s = 0.0, o = 0.0;
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    const LsqElement e = lsq_one(x[i], p);
    const float g = dy[i];
    dx[i] = e.inside ? g : 0.0f;
    s += static_cast<double>(g) * static_cast<double>(e.term);
    if (e.outside) o += static_cast<double>(g);
  }
  *d_scale += s;
  *dy_outside += o;
}

// Row-major [outer][channels][inner]; channel c uses scales[c] and zero_points[c] (nullptr: all 0).
inline void fake_quant_channels(const float* x, float* y, std::ptrdiff_t outer, std::ptrdiff_t channels,
                                std::ptrdiff_t inner, const float* scales, const std::int32_t* zero_points,
                                std::int32_t qmin, std::int32_t qmax) {
  for (std::ptrdiff_t o = 0; o < outer; ++o)
    for (std::ptrdiff_t c = 0; c < channels; ++c) {
      const std::ptrdiff_t off = (o * channels + c) * inner;
      fake_quant(x + off, y + off, inner, params(scales[c], zero_points ? zero_points[c] : 0, qmin, qmax));
    }
}

inline void fake_quant_backward_channels(const float* x, const float* dy, float* dx, std::ptrdiff_t outer,
                                         std::ptrdiff_t channels, std::ptrdiff_t inner, const float* scales,
                                         const std::int32_t* zero_points, std::int32_t qmin,
                                         std::int32_t qmax) {
  for (std::ptrdiff_t o = 0; o < outer; ++o)
    for (std::ptrdiff_t c = 0; c < channels; ++c) {
      const std::ptrdiff_t off = (o * channels + c) * inner;
      fake_quant_backward(x + off, dy + off, dx + off, inner,
                          params(scales[c], zero_points ? zero_points[c] : 0, qmin, qmax));
    }
}

// d_scale[c] and dy_outside[c] are accumulated into (the caller zeroes them); dy_outside may be null.
inline void lsq_backward_channels(const float* x, const float* dy, float* dx, std::ptrdiff_t outer,
                                  std::ptrdiff_t channels, std::ptrdiff_t inner, const float* scales,
                                  const std::int32_t* zero_points, std::int32_t qmin, std::int32_t qmax,
                                  double* d_scale, double* dy_outside) {
  double unused = 0.0;
  for (std::ptrdiff_t o = 0; o < outer; ++o)
    for (std::ptrdiff_t c = 0; c < channels; ++c) {
      const std::ptrdiff_t off = (o * channels + c) * inner;
      lsq_backward(x + off, dy + off, dx + off, inner,
                   params(scales[c], zero_points ? zero_points[c] : 0, qmin, qmax), d_scale + c,
                   dy_outside ? dy_outside + c : &unused);
    }
}

template <class Code>
inline void quantize(const float* x, Code* q, std::ptrdiff_t n, const Params& p) {
  for (std::ptrdiff_t i = 0; i < n; ++i) q[i] = static_cast<Code>(quantize_one(x[i], p));
}

template <class Code>
inline void dequantize(const Code* q, float* y, std::ptrdiff_t n, float scale, std::int32_t zero_point) {
  for (std::ptrdiff_t i = 0; i < n; ++i)
    y[i] = static_cast<float>(static_cast<std::int32_t>(q[i]) - zero_point) * scale;
}

/// NaN ignored; a zero result is +0; n == 0 or all NaN gives min = +inf, max = -inf.
inline void minmax(const float* x, std::ptrdiff_t n, float* min, float* max) {
  float mn = INFINITY, mx = -INFINITY;
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    const float v = x[i];
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  *min = mn + 0.0f;
  *max = mx + 0.0f;
}

/// Packs the low `bits` bits of each code into a little-endian bit stream: code i occupies stream bits
/// [i * bits, (i + 1) * bits), stream bit k is bit k % 8 of byte k / 8; the last byte is zero padded.
inline void pack_bits(const std::uint8_t* codes, std::ptrdiff_t n, int bits, std::uint8_t* out) {
  const std::uint32_t mask = (1u << bits) - 1u;
  std::uint32_t acc = 0;
  int filled = 0;
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    acc |= (codes[i] & mask) << filled;
    filled += bits;
    while (filled >= 8) {
      *out++ = static_cast<std::uint8_t>(acc);
      acc >>= 8;
      filled -= 8;
    }
  }
  if (filled > 0) *out = static_cast<std::uint8_t>(acc);
}

/// Inverse of pack_bits; with sign_extend the top bit of each code is its sign (two's complement).
inline void unpack_bits(const std::uint8_t* packed, std::ptrdiff_t n, int bits, std::uint8_t* codes,
                        bool sign_extend) {
  const std::uint32_t mask = (1u << bits) - 1u;
  const std::uint32_t sign = 1u << (bits - 1);
  std::uint32_t acc = 0;
  int filled = 0;
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    while (filled < bits) {
      acc |= static_cast<std::uint32_t>(*packed++) << filled;
      filled += 8;
    }
    std::uint32_t c = acc & mask;
    acc >>= bits;
    filled -= bits;
    if (sign_extend && (c & sign)) c |= ~mask;
    codes[i] = static_cast<std::uint8_t>(c);
  }
}

}  // namespace scalar
}  // namespace mixq::kernels::detail
