#pragma once
/// @file
/// AVX2 + FMA + BMI2 kernels (8 floats per vector). Compiled with function target attributes, so no -march
/// flag is needed; called only when CPUID reports the features. Same function set as scalar.hpp, and
/// bit-identical to it for every elementwise output.

#include "mixq/kernels/detail/scalar.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <type_traits>

#define MIXQ_TARGET_AVX2 __attribute__((target("avx2,fma,bmi2")))

namespace mixq::kernels::detail {

/// Masks for pext/pdep: the low `bits` bits of each of 8 bytes.
inline std::uint64_t byte_lane_mask(int bits) {
  return 0x0101010101010101ull * ((1ull << bits) - 1ull);
}

namespace avx2 {

struct Vec {
  __m256 scale, inv, lo, hi;
};

MIXQ_TARGET_AVX2 inline Vec broadcast(const Params& p) {
  return {_mm256_set1_ps(p.scale), _mm256_set1_ps(p.inv), _mm256_set1_ps(p.lo), _mm256_set1_ps(p.hi)};
}

MIXQ_TARGET_AVX2 inline __m256 round_even(__m256 t) {
  return _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// clamp keeping NaN and keeping r on ties: max(lo, r) returns r unless lo > r; min(hi, c) returns c
// unless hi < c (x86 min/max return the second operand for NaN and equal values), as scalar clamp_nan.
MIXQ_TARGET_AVX2 inline __m256 clamp_nan(__m256 r, const Vec v) {
  return _mm256_min_ps(v.hi, _mm256_max_ps(v.lo, r));
}

// y = fma(c, scale, +0): the exact product plus +0, rounded once, is the scalar (c + 0) * scale bit for bit
// (the same real number rounded once; -0 * scale + 0 = +0; NaN c passes through). One FMA instead of an add
// and a multiply: on Zen 4 the add, round, min and max share two pipes, the bottleneck of this kernel.
MIXQ_TARGET_AVX2 inline __m256 fake_quant_vec(__m256 x, const Vec v) {
  const __m256 c = clamp_nan(round_even(_mm256_mul_ps(x, v.inv)), v);
  return _mm256_fmadd_ps(c, v.scale, _mm256_setzero_ps());
}

MIXQ_TARGET_AVX2 inline __m256 inside_mask(__m256 x, const Vec v) {
  const __m256 r = round_even(_mm256_mul_ps(x, v.inv));
  return _mm256_and_ps(_mm256_cmp_ps(r, v.lo, _CMP_GE_OQ), _mm256_cmp_ps(r, v.hi, _CMP_LE_OQ));
}

MIXQ_TARGET_AVX2 inline __m256i tail_mask(std::ptrdiff_t m) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(m)), idx);
}

template <bool Stream>
MIXQ_TARGET_AVX2 inline void store_ps(float* p, __m256 v) {
  if constexpr (Stream)
    _mm256_stream_ps(p, v);
  else
    _mm256_storeu_ps(p, v);
}

// Elements before y + head is 32-byte aligned (at most n).
inline std::ptrdiff_t align_head(const void* y, std::ptrdiff_t element_size, std::ptrdiff_t n) {
  const auto a = static_cast<std::ptrdiff_t>(reinterpret_cast<std::uintptr_t>(y) & 31);
  return std::min<std::ptrdiff_t>(((32 - a) & 31) / element_size, n);
}

// One row with one parameter set. With stream, y is written with non-temporal stores after a masked head
// that aligns it to 32 bytes (the caller issues the sfence).
MIXQ_TARGET_AVX2 inline void fake_quant_row(const float* x, float* y, std::ptrdiff_t n, const Vec v, bool stream) {
  std::ptrdiff_t i = 0;
  if (stream) {
    const std::ptrdiff_t head = align_head(y, 4, n);
    if (head > 0) {
      const __m256i m = tail_mask(head);
      _mm256_maskstore_ps(y, m, fake_quant_vec(_mm256_maskload_ps(x, m), v));
      i = head;
    }
    if ((reinterpret_cast<std::uintptr_t>(y + i) & 31) == 0) {
      for (; i + 32 <= n; i += 32) {
        const __m256 a = fake_quant_vec(_mm256_loadu_ps(x + i), v);
        const __m256 b = fake_quant_vec(_mm256_loadu_ps(x + i + 8), v);
        const __m256 c = fake_quant_vec(_mm256_loadu_ps(x + i + 16), v);
        const __m256 d = fake_quant_vec(_mm256_loadu_ps(x + i + 24), v);
        _mm256_stream_ps(y + i, a);
        _mm256_stream_ps(y + i + 8, b);
        _mm256_stream_ps(y + i + 16, c);
        _mm256_stream_ps(y + i + 24, d);
      }
      for (; i + 8 <= n; i += 8) _mm256_stream_ps(y + i, fake_quant_vec(_mm256_loadu_ps(x + i), v));
    }
  }
  for (; i + 32 <= n; i += 32) {
    const __m256 a = fake_quant_vec(_mm256_loadu_ps(x + i), v);
    const __m256 b = fake_quant_vec(_mm256_loadu_ps(x + i + 8), v);
    const __m256 c = fake_quant_vec(_mm256_loadu_ps(x + i + 16), v);
    const __m256 d = fake_quant_vec(_mm256_loadu_ps(x + i + 24), v);
    _mm256_storeu_ps(y + i, a);
    _mm256_storeu_ps(y + i + 8, b);
    _mm256_storeu_ps(y + i + 16, c);
    _mm256_storeu_ps(y + i + 24, d);
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, fake_quant_vec(_mm256_loadu_ps(x + i), v));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, fake_quant_vec(_mm256_maskload_ps(x + i, m), v));
  }
}

MIXQ_TARGET_AVX2 inline void fake_quant(const float* x, float* y, std::ptrdiff_t n, const Params& p) {
  const bool stream = n * std::ptrdiff_t(sizeof(float)) >= stream_bytes();
  fake_quant_row(x, y, n, broadcast(p), stream);
  if (stream) _mm_sfence();
}

// Per-channel parameters in blocks of 8 channels, computed with vector instructions off the rows' critical
// path: the reciprocals with one vector division (correctly rounded, so equal to scalar 1.0f / scale), lo and
// hi with 32-bit integer arithmetic when qmax - qmin < 2^31 (then exact: zero_point lies in [qmin, qmax]) and
// cvtdq2ps (round to nearest even, as the scalar int64 -> float conversion).
struct ChannelBlock {
  alignas(32) float inv[8];
  alignas(32) float lo[8];
  alignas(32) float hi[8];
};

MIXQ_TARGET_AVX2 inline void channel_block(const float* scales, const std::int32_t* zero_points, std::int32_t qmin,
                                           std::int32_t qmax, std::ptrdiff_t c, std::ptrdiff_t channels,
                                           ChannelBlock* b) {
  const bool narrow = static_cast<std::int64_t>(qmax) - qmin < (std::int64_t(1) << 31);
  if (c + 8 <= channels && narrow) {
    _mm256_store_ps(b->inv, _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_loadu_ps(scales + c)));
    const __m256i zp = zero_points ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zero_points + c))
                                   : _mm256_setzero_si256();
    _mm256_store_ps(b->lo, _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_set1_epi32(qmin), zp)));
    _mm256_store_ps(b->hi, _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_set1_epi32(qmax), zp)));
    return;
  }
  for (std::ptrdiff_t k = 0; k < 8 && c + k < channels; ++k) {
    const Params p = params(scales[c + k], zero_points ? zero_points[c + k] : 0, qmin, qmax);
    b->inv[k] = p.inv;
    b->lo[k] = p.lo;
    b->hi[k] = p.hi;
  }
}

MIXQ_TARGET_AVX2 inline Vec channel_vec(const float* scales, std::ptrdiff_t c, const ChannelBlock& b,
                                        std::ptrdiff_t k) {
  return {_mm256_set1_ps(scales[c]), _mm256_set1_ps(b.inv[k]), _mm256_set1_ps(b.lo[k]), _mm256_set1_ps(b.hi[k])};
}

MIXQ_TARGET_AVX2 inline void fake_quant_backward_masked(const float* x, const float* dy, float* dx, std::ptrdiff_t m,
                                                        const Vec v) {
  const __m256i mask = tail_mask(m);
  const __m256 r = _mm256_and_ps(inside_mask(_mm256_maskload_ps(x, mask), v), _mm256_maskload_ps(dy, mask));
  _mm256_maskstore_ps(dx, mask, r);
}

template <bool Stream>
MIXQ_TARGET_AVX2 inline std::ptrdiff_t fake_quant_backward_body(const float* x, const float* dy, float* dx,
                                                                std::ptrdiff_t i, std::ptrdiff_t n, const Vec v) {
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_and_ps(inside_mask(_mm256_loadu_ps(x + i), v), _mm256_loadu_ps(dy + i));
    const __m256 b = _mm256_and_ps(inside_mask(_mm256_loadu_ps(x + i + 8), v), _mm256_loadu_ps(dy + i + 8));
    store_ps<Stream>(dx + i, a);
    store_ps<Stream>(dx + i + 8, b);
  }
  return i;
}

// With stream, dx is written with non-temporal stores after a masked head aligning it (caller: sfence).
MIXQ_TARGET_AVX2 inline void fake_quant_backward_row(const float* x, const float* dy, float* dx, std::ptrdiff_t n,
                                                     const Vec v, bool stream) {
  std::ptrdiff_t i = 0;
  if (stream) {
    i = align_head(dx, 4, n);
    if (i > 0) fake_quant_backward_masked(x, dy, dx, i, v);
    i = fake_quant_backward_body<true>(x, dy, dx, i, n, v);
  }
  i = fake_quant_backward_body<false>(x, dy, dx, i, n, v);
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dx + i, _mm256_and_ps(inside_mask(_mm256_loadu_ps(x + i), v), _mm256_loadu_ps(dy + i)));
  if (i < n) fake_quant_backward_masked(x + i, dy + i, dx + i, n - i, v);
}

// Sum of products of 8 float pairs into two double accumulators (exact products, one rounding per add).
MIXQ_TARGET_AVX2 inline void accumulate_products(__m256 a, __m256 b, __m256d* lo, __m256d* hi) {
  *lo = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a)), _mm256_cvtps_pd(_mm256_castps256_ps128(b)),
                        *lo);
  *hi = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(b, 1)),
                        *hi);
}

MIXQ_TARGET_AVX2 inline void accumulate(__m256 a, __m256d* lo, __m256d* hi) {
  *lo = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a)), *lo);
  *hi = _mm256_add_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)), *hi);
}

// Adds the 16 floats of a and b (converted to double, exact) to two accumulators with one dependent add each.
MIXQ_TARGET_AVX2 inline void accumulate2(__m256 a, __m256 b, __m256d* lo, __m256d* hi) {
  *lo = _mm256_add_pd(*lo, _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a)),
                                         _mm256_cvtps_pd(_mm256_castps256_ps128(b))));
  *hi = _mm256_add_pd(*hi, _mm256_add_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)),
                                         _mm256_cvtps_pd(_mm256_extractf128_ps(b, 1))));
}

MIXQ_TARGET_AVX2 inline double horizontal_sum(__m256d a) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// One vector of the LSQ pass: c = clamp(r) (NaN kept); inside where c == r (false for NaN); `same` where c and
// r have the same bits (inside or NaN, an integer compare off the float compare pipes), so outside is
// !same. term = r - x * inv inside (one rounding), c outside, 0 for NaN, selected with one blend.
struct LsqParts {
  __m256 term, in, same;
};

MIXQ_TARGET_AVX2 inline LsqParts lsq_parts(__m256 x, const Vec v) {
  const __m256 r = round_even(_mm256_mul_ps(x, v.inv));
  const __m256 c = clamp_nan(r, v);
  const __m256 in = _mm256_cmp_ps(c, r, _CMP_EQ_OQ);
  const __m256 same =
      _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_castps_si256(c), _mm256_castps_si256(r)));
  const __m256 term = _mm256_blendv_ps(_mm256_andnot_ps(same, c), _mm256_fnmadd_ps(x, v.inv, r), in);
  return {term, in, same};
}

// Sums: each lane accumulates up to kLsqBlock products (or outside dy) in float with fma, in four
// independent accumulators; at the end of a block they are added pairwise in float and the two pair sums
// are added to double accumulators (|error| <= (kLsqBlock + 1) * 2^-24 * sum |dy * term|, independent of n;
// docs/NUMERICS.md). Converting every product to double instead costs 2x on this kernel.

// Masked-out lanes load x = 0 and dy = 0: inside (zero_point lies in [qmin, qmax]), contributing 0.
MIXQ_TARGET_AVX2 inline void lsq_masked(const float* x, const float* dy, float* dx, std::ptrdiff_t m, const Vec v,
                                        __m256d* s0, __m256d* s1, __m256d* o0, __m256d* o1) {
  const __m256i mask = tail_mask(m);
  const __m256 g = _mm256_maskload_ps(dy, mask);
  const LsqParts a = lsq_parts(_mm256_maskload_ps(x, mask), v);
  _mm256_maskstore_ps(dx, mask, _mm256_and_ps(a.in, g));
  accumulate_products(g, a.term, s0, s1);
  accumulate(_mm256_andnot_ps(a.same, g), o0, o1);
}

template <bool Stream>
MIXQ_TARGET_AVX2 inline void lsq_step(const float* x, const float* dy, float* dx, const Vec v, __m256* s, __m256* o) {
  const __m256 g = _mm256_loadu_ps(dy);
  const LsqParts a = lsq_parts(_mm256_loadu_ps(x), v);
  store_ps<Stream>(dx, _mm256_and_ps(a.in, g));
  *s = _mm256_fmadd_ps(g, a.term, *s);
  *o = _mm256_add_ps(*o, _mm256_andnot_ps(a.same, g));
}

template <bool Stream>
MIXQ_TARGET_AVX2 inline std::ptrdiff_t lsq_body(const float* x, const float* dy, float* dx, std::ptrdiff_t i,
                                                std::ptrdiff_t n, const Vec v, __m256d* s0, __m256d* s1,
                                                __m256d* o0, __m256d* o1) {
  while (i + 32 <= n) {
    __m256 sa = _mm256_setzero_ps(), sb = sa, sc = sa, sd = sa, oa = sa, ob = sa, oc = sa, od = sa;
    for (int k = 0; k < kLsqBlock && i + 32 <= n; ++k, i += 32) {
      lsq_step<Stream>(x + i, dy + i, dx + i, v, &sa, &oa);
      lsq_step<Stream>(x + i + 8, dy + i + 8, dx + i + 8, v, &sb, &ob);
      lsq_step<Stream>(x + i + 16, dy + i + 16, dx + i + 16, v, &sc, &oc);
      lsq_step<Stream>(x + i + 24, dy + i + 24, dx + i + 24, v, &sd, &od);
    }
    accumulate2(_mm256_add_ps(sa, sb), _mm256_add_ps(sc, sd), s0, s1);
    accumulate2(_mm256_add_ps(oa, ob), _mm256_add_ps(oc, od), o0, o1);
  }
  return i;
}

// With stream, dx is written with non-temporal stores after a masked head aligning it (caller: sfence).
MIXQ_TARGET_AVX2 inline void lsq_backward_row(const float* x, const float* dy, float* dx, std::ptrdiff_t n,
                                              const Vec v, double* d_scale, double* dy_outside, bool stream) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0, o0 = s0, o1 = s0;
  std::ptrdiff_t i = 0;
  if (stream) {
    i = align_head(dx, 4, n);
    if (i > 0) lsq_masked(x, dy, dx, i, v, &s0, &s1, &o0, &o1);
    i = lsq_body<true>(x, dy, dx, i, n, v, &s0, &s1, &o0, &o1);
  }
  i = lsq_body<false>(x, dy, dx, i, n, v, &s0, &s1, &o0, &o1);
  for (; i < n; i += 8) lsq_masked(x + i, dy + i, dx + i, n - i >= 8 ? 8 : n - i, v, &s0, &s1, &o0, &o1);
  *d_scale += horizontal_sum(_mm256_add_pd(s0, s1));
  *dy_outside += horizontal_sum(_mm256_add_pd(o0, o1));
}

MIXQ_TARGET_AVX2 inline void fake_quant_backward(const float* x, const float* dy, float* dx, std::ptrdiff_t n,
                                                 const Params& p) {
  const bool stream = n * std::ptrdiff_t(sizeof(float)) >= stream_bytes();
  fake_quant_backward_row(x, dy, dx, n, broadcast(p), stream);
  if (stream) _mm_sfence();
}

MIXQ_TARGET_AVX2 inline void lsq_backward(const float* x, const float* dy, float* dx, std::ptrdiff_t n,
                                          const Params& p, double* d_scale, double* dy_outside) {
  const bool stream = n * std::ptrdiff_t(sizeof(float)) >= stream_bytes();
  lsq_backward_row(x, dy, dx, n, broadcast(p), d_scale, dy_outside, stream);
  if (stream) _mm_sfence();
}

MIXQ_TARGET_AVX2 inline void fake_quant_channels(const float* x, float* y, std::ptrdiff_t outer,
                                                 std::ptrdiff_t channels, std::ptrdiff_t inner, const float* scales,
                                                 const std::int32_t* zero_points, std::int32_t qmin,
                                                 std::int32_t qmax) {
  const bool stream = outer * channels * inner * std::ptrdiff_t(sizeof(float)) >= stream_bytes();
  ChannelBlock b;
  if (!stream && inner % 8 == 0) {
    // Rows of whole vectors (group sizes and channel lengths are usually multiples of 8): no head, no tail.
    for (std::ptrdiff_t o = 0; o < outer; ++o)
      for (std::ptrdiff_t c0 = 0; c0 < channels; c0 += 8) {
        channel_block(scales, zero_points, qmin, qmax, c0, channels, &b);
        const std::ptrdiff_t end = std::min<std::ptrdiff_t>(c0 + 8, channels);
        for (std::ptrdiff_t c = c0; c < end; ++c) {
          const Vec v = channel_vec(scales, c, b, c - c0);
          const float* xr = x + (o * channels + c) * inner;
          float* yr = y + (o * channels + c) * inner;
          std::ptrdiff_t i = 0;
          for (; i + 32 <= inner; i += 32) {
            const __m256 r0 = fake_quant_vec(_mm256_loadu_ps(xr + i), v);
            const __m256 r1 = fake_quant_vec(_mm256_loadu_ps(xr + i + 8), v);
            const __m256 r2 = fake_quant_vec(_mm256_loadu_ps(xr + i + 16), v);
            const __m256 r3 = fake_quant_vec(_mm256_loadu_ps(xr + i + 24), v);
            _mm256_storeu_ps(yr + i, r0);
            _mm256_storeu_ps(yr + i + 8, r1);
            _mm256_storeu_ps(yr + i + 16, r2);
            _mm256_storeu_ps(yr + i + 24, r3);
          }
          for (; i < inner; i += 8) _mm256_storeu_ps(yr + i, fake_quant_vec(_mm256_loadu_ps(xr + i), v));
        }
      }
    return;
  }
  for (std::ptrdiff_t o = 0; o < outer; ++o)
    for (std::ptrdiff_t c0 = 0; c0 < channels; c0 += 8) {
      channel_block(scales, zero_points, qmin, qmax, c0, channels, &b);
      const std::ptrdiff_t end = std::min<std::ptrdiff_t>(c0 + 8, channels);
      for (std::ptrdiff_t c = c0; c < end; ++c) {
        const std::ptrdiff_t off = (o * channels + c) * inner;
        fake_quant_row(x + off, y + off, inner, channel_vec(scales, c, b, c - c0), stream);
      }
    }
  if (stream) _mm_sfence();
}

MIXQ_TARGET_AVX2 inline void fake_quant_backward_channels(const float* x, const float* dy, float* dx,
                                                          std::ptrdiff_t outer, std::ptrdiff_t channels,
                                                          std::ptrdiff_t inner, const float* scales,
                                                          const std::int32_t* zero_points, std::int32_t qmin,
                                                          std::int32_t qmax) {
  const bool stream = outer * channels * inner * std::ptrdiff_t(sizeof(float)) >= stream_bytes();
  ChannelBlock b;
  for (std::ptrdiff_t o = 0; o < outer; ++o)
    for (std::ptrdiff_t c0 = 0; c0 < channels; c0 += 8) {
      channel_block(scales, zero_points, qmin, qmax, c0, channels, &b);
      const std::ptrdiff_t end = std::min<std::ptrdiff_t>(c0 + 8, channels);
      for (std::ptrdiff_t c = c0; c < end; ++c) {
        const std::ptrdiff_t off = (o * channels + c) * inner;
        fake_quant_backward_row(x + off, dy + off, dx + off, inner, channel_vec(scales, c, b, c - c0), stream);
      }
    }
  if (stream) _mm_sfence();
}

MIXQ_TARGET_AVX2 inline void lsq_backward_channels(const float* x, const float* dy, float* dx, std::ptrdiff_t outer,
                                                   std::ptrdiff_t channels, std::ptrdiff_t inner,
                                                   const float* scales, const std::int32_t* zero_points,
                                                   std::int32_t qmin, std::int32_t qmax, double* d_scale,
                                                   double* dy_outside) {
  const bool stream = outer * channels * inner * std::ptrdiff_t(sizeof(float)) >= stream_bytes();
  double unused = 0.0;
  ChannelBlock b;
  for (std::ptrdiff_t o = 0; o < outer; ++o)
    for (std::ptrdiff_t c0 = 0; c0 < channels; c0 += 8) {
      channel_block(scales, zero_points, qmin, qmax, c0, channels, &b);
      const std::ptrdiff_t end = std::min<std::ptrdiff_t>(c0 + 8, channels);
      for (std::ptrdiff_t c = c0; c < end; ++c) {
        const std::ptrdiff_t off = (o * channels + c) * inner;
        lsq_backward_row(x + off, dy + off, dx + off, inner, channel_vec(scales, c, b, c - c0), d_scale + c,
                         dy_outside ? dy_outside + c : &unused, stream);
      }
    }
  if (stream) _mm_sfence();
}

// Integer code: clamp in float first (lo and hi are integers, so clamp(round(t)) == round(clamp(t)) and the
// conversion never overflows), NaN -> 0, then cvtps2dq rounds half to even (the default MXCSR mode, as
// std::nearbyint in the scalar path), then + zero_point.
MIXQ_TARGET_AVX2 inline __m256i code_vec(__m256 x, const Vec v, __m256i zp) {
  const __m256 c = clamp_nan(_mm256_mul_ps(x, v.inv), v);
  const __m256 ordered = _mm256_and_ps(c, _mm256_cmp_ps(c, c, _CMP_ORD_Q));
  return _mm256_add_epi32(_mm256_cvtps_epi32(ordered), zp);
}

template <bool Stream>
MIXQ_TARGET_AVX2 inline void store_si256(void* p, __m256i v) {
  if constexpr (Stream)
    _mm256_stream_si256(static_cast<__m256i*>(p), v);
  else
    _mm256_storeu_si256(static_cast<__m256i*>(p), v);
}

template <class Code, bool Stream>
MIXQ_TARGET_AVX2 inline std::ptrdiff_t quantize_body(const float* x, Code* q, std::ptrdiff_t i, std::ptrdiff_t n,
                                                     const Vec v, __m256i zp) {
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (; i + 32 <= n; i += 32) {
    const __m256i a = code_vec(_mm256_loadu_ps(x + i), v, zp);
    const __m256i b = code_vec(_mm256_loadu_ps(x + i + 8), v, zp);
    const __m256i c = code_vec(_mm256_loadu_ps(x + i + 16), v, zp);
    const __m256i d = code_vec(_mm256_loadu_ps(x + i + 24), v, zp);
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    if constexpr (std::is_same_v<Code, std::int16_t>) {
      store_si256<Stream>(q + i, _mm256_permute4x64_epi64(ab, 0xD8));
      store_si256<Stream>(q + i + 16, _mm256_permute4x64_epi64(cd, 0xD8));
    } else {
      const __m256i bytes =
          std::is_same_v<Code, std::uint8_t> ? _mm256_packus_epi16(ab, cd) : _mm256_packs_epi16(ab, cd);
      store_si256<Stream>(q + i, _mm256_permutevar8x32_epi32(bytes, order));
    }
  }
  return i;
}

// 8-bit codes, 32 per step, with 16-bit lanes for the cheap steps: the clamped float is converted to int32
// (cvtps2dq: round half to even, NaN -> INT_MIN; the clamp keeps |value| <= 255 for 8-bit codes), packed to
// int16 with saturation (NaN -> -32768, no other value reaches it), NaN mapped to 0 and the zero point added
// in 16-bit lanes (16 per instruction), then packed to bytes. Only the float clamp and the conversion use
// the float add/compare pipes, the bottleneck of the generic body.
template <class Code, bool Stream>
MIXQ_TARGET_AVX2 inline std::ptrdiff_t quantize8_body(const float* x, Code* q, std::ptrdiff_t i, std::ptrdiff_t n,
                                                      const Vec v, __m256i zp16) {
  static_assert(sizeof(Code) == 1, "8-bit codes");
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i nan16 = _mm256_set1_epi16(-32768);
  for (; i + 32 <= n; i += 32) {
    const __m256i a = _mm256_cvtps_epi32(clamp_nan(_mm256_mul_ps(_mm256_loadu_ps(x + i), v.inv), v));
    const __m256i b = _mm256_cvtps_epi32(clamp_nan(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8), v.inv), v));
    const __m256i c = _mm256_cvtps_epi32(clamp_nan(_mm256_mul_ps(_mm256_loadu_ps(x + i + 16), v.inv), v));
    const __m256i d = _mm256_cvtps_epi32(clamp_nan(_mm256_mul_ps(_mm256_loadu_ps(x + i + 24), v.inv), v));
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    ab = _mm256_add_epi16(_mm256_andnot_si256(_mm256_cmpeq_epi16(ab, nan16), ab), zp16);
    cd = _mm256_add_epi16(_mm256_andnot_si256(_mm256_cmpeq_epi16(cd, nan16), cd), zp16);
    const __m256i bytes = std::is_same_v<Code, std::uint8_t> ? _mm256_packus_epi16(ab, cd) : _mm256_packs_epi16(ab, cd);
    store_si256<Stream>(q + i, _mm256_permutevar8x32_epi32(bytes, order));
  }
  return i;
}

template <class Code, bool Stream>
MIXQ_TARGET_AVX2 inline std::ptrdiff_t quantize_fast_body(const float* x, Code* q, std::ptrdiff_t i, std::ptrdiff_t n,
                                                          const Vec v, std::int32_t zero_point) {
  if constexpr (sizeof(Code) == 1)
    return quantize8_body<Code, Stream>(x, q, i, n, v, _mm256_set1_epi16(static_cast<short>(zero_point)));
  else
    return quantize_body<Code, Stream>(x, q, i, n, v, _mm256_set1_epi32(zero_point));
}

// Fewer than 32 codes, through a zero-padded buffer.
template <class Code>
MIXQ_TARGET_AVX2 inline void quantize_short(const float* x, Code* q, std::ptrdiff_t m, const Vec v, __m256i zp) {
  alignas(32) float xb[32] = {};
  alignas(32) Code qb[32];
  std::memcpy(xb, x, static_cast<std::size_t>(m) * sizeof(float));
  quantize_body<Code, false>(xb, qb, 0, 32, v, zp);
  std::memcpy(q, qb, static_cast<std::size_t>(m) * sizeof(Code));
}

// Above stream_bytes (of input floats) the codes are written with non-temporal stores after a head that
// aligns them to 32 bytes.
template <class Code>
MIXQ_TARGET_AVX2 inline void quantize(const float* x, Code* q, std::ptrdiff_t n, const Params& p) {
  const Vec v = broadcast(p);
  const __m256i zp = _mm256_set1_epi32(p.zero_point);
  std::ptrdiff_t i = 0;
  if (n * std::ptrdiff_t(sizeof(float)) >= stream_bytes() && reinterpret_cast<std::uintptr_t>(q) % sizeof(Code) == 0) {
    i = align_head(q, sizeof(Code), n);
    if (i > 0) quantize_short(x, q, i, v, zp);
    i = quantize_fast_body<Code, true>(x, q, i, n, v, p.zero_point);
    _mm_sfence();
  }
  i = quantize_fast_body<Code, false>(x, q, i, n, v, p.zero_point);
  if (i < n) quantize_short(x + i, q + i, n - i, v, zp);
}

template <class Code>
MIXQ_TARGET_AVX2 inline __m256i load_codes(const Code* q) {
  if constexpr (std::is_same_v<Code, std::int8_t>)
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)));
  else if constexpr (std::is_same_v<Code, std::uint8_t>)
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)));
  else
    return _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
}

// float(q - zero_point) * scale for 8 codes; with zero_point == 0 (symmetric quantization, the common case)
// the integer subtraction is skipped (a template parameter: the loop carries no test).
template <bool Zero, class Code>
MIXQ_TARGET_AVX2 inline __m256 dequantize_vec(__m256i codes, __m256i zp, __m256 s) {
  if constexpr (Zero)
    return _mm256_mul_ps(_mm256_cvtepi32_ps(codes), s);
  else
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(codes, zp)), s);
}

template <bool Zero, class Code>
MIXQ_TARGET_AVX2 inline void dequantize_body(const Code* q, float* y, std::ptrdiff_t n, __m256i zp, __m256 s) {
  std::ptrdiff_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 a = dequantize_vec<Zero, Code>(load_codes(q + i), zp, s);
    const __m256 b = dequantize_vec<Zero, Code>(load_codes(q + i + 8), zp, s);
    const __m256 c = dequantize_vec<Zero, Code>(load_codes(q + i + 16), zp, s);
    const __m256 d = dequantize_vec<Zero, Code>(load_codes(q + i + 24), zp, s);
    _mm256_storeu_ps(y + i, a);
    _mm256_storeu_ps(y + i + 8, b);
    _mm256_storeu_ps(y + i + 16, c);
    _mm256_storeu_ps(y + i + 24, d);
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, dequantize_vec<Zero, Code>(load_codes(q + i), zp, s));
  if (i < n) {
    alignas(32) Code qb[8] = {};
    std::memcpy(qb, q + i, static_cast<std::size_t>(n - i) * sizeof(Code));
    _mm256_maskstore_ps(y + i, tail_mask(n - i), dequantize_vec<Zero, Code>(load_codes(qb), zp, s));
  }
}

template <class Code>
MIXQ_TARGET_AVX2 inline void dequantize(const Code* q, float* y, std::ptrdiff_t n, float scale,
                                        std::int32_t zero_point) {
  const __m256 s = _mm256_set1_ps(scale);
  const __m256i zp = _mm256_set1_epi32(zero_point);
  if (zero_point == 0)
    dequantize_body<true>(q, y, n, zp, s);
  else
    dequantize_body<false>(q, y, n, zp, s);
}

// min(x, m) returns m when x is NaN or x == m, as scalar `x < m ? x : m`.
MIXQ_TARGET_AVX2 inline void minmax(const float* x, std::ptrdiff_t n, float* min, float* max) {
  __m256 mn0 = _mm256_set1_ps(INFINITY), mn1 = mn0, mx0 = _mm256_set1_ps(-INFINITY), mx1 = mx0;
  std::ptrdiff_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    mn0 = _mm256_min_ps(a, mn0);
    mx0 = _mm256_max_ps(a, mx0);
    mn1 = _mm256_min_ps(b, mn1);
    mx1 = _mm256_max_ps(b, mx1);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 a = _mm256_loadu_ps(x + i);
    mn0 = _mm256_min_ps(a, mn0);
    mx0 = _mm256_max_ps(a, mx0);
  }
  mn0 = _mm256_min_ps(mn1, mn0);
  mx0 = _mm256_max_ps(mx1, mx0);
  alignas(32) float lo[8], hi[8];
  _mm256_store_ps(lo, mn0);
  _mm256_store_ps(hi, mx0);
  float a, b;
  scalar::minmax(x + i, n - i, &a, &b);
  for (int k = 0; k < 8; ++k) {
    a = lo[k] < a ? lo[k] : a;
    b = hi[k] > b ? hi[k] : b;
  }
  *min = a + 0.0f;
  *max = b + 0.0f;
}

// pack_bits, 32 codes per step: bytes are merged pairwise (8 -> 16 -> 32 -> 64-bit lanes holding 8 codes
// = `bits` bytes each), a byte shuffle gathers the 2 * bits valid bytes of each 128-bit half, and two
// overlapping 16-byte stores write 4 * bits bytes. The last blocks use pext (8 codes) and the scalar loop.
MIXQ_TARGET_AVX2 inline __m256i merge_lanes(__m256i v, int bits) {
  const __m128i b1 = _mm_cvtsi32_si128(bits), b2 = _mm_cvtsi32_si128(2 * bits), b4 = _mm_cvtsi32_si128(4 * bits);
  if (bits <= 6) {
    // c0 + c1 * 2^bits (unsigned x signed bytes, < 2^12), then w0 + w1 * 2^(2 bits) (< 2^24): no saturation.
    v = _mm256_maddubs_epi16(v, _mm256_set1_epi16(static_cast<short>(1 | (1 << (8 + bits)))));
    v = _mm256_madd_epi16(v, _mm256_set1_epi32(1 | (1 << (16 + 2 * bits))));
    return _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi64x(0xFFFFFFFFll)),
                           _mm256_sll_epi64(_mm256_srli_epi64(v, 32), b4));
  }
  v = _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi16(0x00FF)), _mm256_sll_epi16(_mm256_srli_epi16(v, 8), b1));
  v = _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi32(0xFFFF)), _mm256_sll_epi32(_mm256_srli_epi32(v, 16), b2));
  return _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi64x(0xFFFFFFFFll)),
                         _mm256_sll_epi64(_mm256_srli_epi64(v, 32), b4));
}

MIXQ_TARGET_AVX2 inline __m256i split_lanes(__m256i v, int bits) {
  const __m128i b1 = _mm_cvtsi32_si128(bits), b2 = _mm_cvtsi32_si128(2 * bits), b4 = _mm_cvtsi32_si128(4 * bits);
  const long long m4 = (1ll << (4 * bits)) - 1;
  v = _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi64x(m4)), _mm256_slli_epi64(_mm256_srl_epi64(v, b4), 32));
  v = _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi32((1 << (2 * bits)) - 1)),
                      _mm256_slli_epi32(_mm256_srl_epi32(v, b2), 16));
  return _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi16(static_cast<short>((1 << bits) - 1))),
                         _mm256_slli_epi16(_mm256_srl_epi16(v, b1), 8));
}

// 4-bit codes, 64 per step: maddubs with bytes (1, 16) gives c0 + 16 c1 (< 256) per 16-bit lane, packus
// narrows two vectors to bytes and a qword permute undoes its lane interleave: one 32-byte store.
MIXQ_TARGET_AVX2 inline std::ptrdiff_t pack4_body(const std::uint8_t* codes, std::ptrdiff_t n, std::uint8_t* out) {
  const __m256i mask = _mm256_set1_epi8(0x0F);
  const __m256i weights = _mm256_set1_epi16(0x1001);
  std::ptrdiff_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m256i a = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + i)), mask);
    const __m256i b = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + i + 32)), mask);
    const __m256i packed = _mm256_packus_epi16(_mm256_maddubs_epi16(a, weights), _mm256_maddubs_epi16(b, weights));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i / 2), _mm256_permute4x64_epi64(packed, 0xD8));
  }
  return i;
}

// 3-bit codes, 64 per step: maddubs (1, 8) gives 6-bit pairs in 16-bit lanes, madd (1, 64) 12-bit quads in
// 32-bit lanes; packs narrows two vectors to 16-bit lanes (lane-interleaved) and madd (1, 4096) joins them into
// 24-bit groups of 8 codes per 32-bit lane; a dword permute restores code order, a byte shuffle keeps the
// 3 low bytes of each dword (12 per 128-bit half); the two halves are written by two 16-byte stores 12 bytes
// apart (28 bytes touched, 24 kept: the next step or the tail overwrites the last 4).
MIXQ_TARGET_AVX2 inline std::ptrdiff_t pack3_body(const std::uint8_t* codes, std::ptrdiff_t n, std::uint8_t* out,
                                                  std::ptrdiff_t total) {
  const __m256i mask = _mm256_set1_epi8(0x07);
  const __m256i w6 = _mm256_set1_epi16(0x0801), w12 = _mm256_set1_epi32(0x00400001),
                w24 = _mm256_set1_epi32(0x10000001);
  const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
  const __m256i gather = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -128, -128, -128, -128, 0, 1, 2,
                                          4, 5, 6, 8, 9, 10, 12, 13, 14, -128, -128, -128, -128);
  std::ptrdiff_t i = 0;
  for (; i + 64 <= n && i / 8 * 3 + 28 <= total; i += 64) {
    const __m256i a = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + i)), mask);
    const __m256i b = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + i + 32)), mask);
    const __m256i qa = _mm256_madd_epi16(_mm256_maddubs_epi16(a, w6), w12);
    const __m256i qb = _mm256_madd_epi16(_mm256_maddubs_epi16(b, w6), w12);
    const __m256i groups = _mm256_madd_epi16(_mm256_packs_epi32(qa, qb), w24);
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(groups, order), gather);
    std::uint8_t* o = out + i / 8 * 3;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm256_castsi256_si128(bytes));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 12), _mm256_extracti128_si256(bytes, 1));
  }
  return i;
}

MIXQ_TARGET_AVX2 inline void pack_bits(const std::uint8_t* codes, std::ptrdiff_t n, int bits, std::uint8_t* out) {
  if (bits == 8) {
    std::memcpy(out, codes, static_cast<std::size_t>(n));
    return;
  }
  std::ptrdiff_t total = n / 8 * bits + (n % 8 * bits + 7) / 8;
  if (bits == 4 || bits == 3) {
    const std::ptrdiff_t done = bits == 4 ? pack4_body(codes, n, out) : pack3_body(codes, n, out, total);
    codes += done;
    out += done / 8 * bits;
    total -= done / 8 * bits;
    n -= done;
  }
  const __m256i mask = _mm256_set1_epi8(static_cast<char>((1 << bits) - 1));
  // Shuffle: in each 128-bit half, bytes [0, bits) of qword 0 then bytes [8, 8 + bits) of qword 1.
  alignas(32) std::int8_t gather[32];
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 16; ++k)
      gather[16 * h + k] = static_cast<std::int8_t>(k < bits ? k : k < 2 * bits ? 8 + k - bits : -128);
  const __m256i shuffle = _mm256_load_si256(reinterpret_cast<const __m256i*>(gather));
  std::ptrdiff_t i = 0;
  // Each step writes 16 bytes at out + 4 * bits * step + 2 * bits: keep it inside the output.
  for (; i + 32 <= n && (i / 8) * bits + 2 * bits + 16 <= total; i += 32) {
    const __m256i v = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + i)), mask);
    const __m256i packed = _mm256_shuffle_epi8(merge_lanes(v, bits), shuffle);
    std::uint8_t* o = out + (i / 8) * bits;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm256_castsi256_si128(packed));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 2 * bits), _mm256_extracti128_si256(packed, 1));
  }
  const std::uint64_t lane_mask = byte_lane_mask(bits);
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, codes + i, 8);
    const std::uint64_t packed = _pext_u64(w, lane_mask);
    std::memcpy(out + (i / 8) * bits, &packed, static_cast<std::size_t>(bits));
  }
  scalar::pack_bits(codes + i, n - i, bits, out + (i / 8) * bits);
}

MIXQ_TARGET_AVX2 inline void unpack_bits(const std::uint8_t* packed, std::ptrdiff_t n, int bits, std::uint8_t* codes,
                                         bool sign_extend) {
  const std::ptrdiff_t total = n / 8 * bits + (n % 8 * bits + 7) / 8;
  const __m256i sign = _mm256_set1_epi8(static_cast<char>(1 << (bits - 1)));
  const __m256i xor_sign = sign_extend ? sign : _mm256_setzero_si256();
  // Shuffle: in each 128-bit half, qword 0 <- bytes [0, bits), qword 1 <- bytes [bits, 2 * bits).
  alignas(32) std::int8_t spread[32];
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 16; ++k)
      spread[16 * h + k] = static_cast<std::int8_t>(k < bits ? k : k >= 8 && k < 8 + bits ? k - 8 + bits : -128);
  const __m256i shuffle = _mm256_load_si256(reinterpret_cast<const __m256i*>(spread));
  std::ptrdiff_t i = 0;
  if (bits < 8) {
    for (; i + 32 <= n && (i / 8) * bits + 2 * bits + 16 <= total; i += 32) {
      const std::uint8_t* in = packed + (i / 8) * bits;
      const __m256i raw = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * bits)), 1);
      const __m256i c = split_lanes(_mm256_shuffle_epi8(raw, shuffle), bits);
      const __m256i v = _mm256_sub_epi8(_mm256_xor_si256(c, xor_sign), xor_sign);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + i), v);
    }
  }
  const std::uint64_t lane_mask = byte_lane_mask(bits);
  const __m128i sign128 = _mm256_castsi256_si128(sign);
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, packed + (i / 8) * bits, static_cast<std::size_t>(bits));
    std::uint64_t c = _pdep_u64(w, lane_mask);
    if (sign_extend) {
      const __m128i s = _mm_cvtsi64_si128(static_cast<long long>(c));
      c = static_cast<std::uint64_t>(_mm_cvtsi128_si64(_mm_sub_epi8(_mm_xor_si128(s, sign128), sign128)));
    }
    std::memcpy(codes + i, &c, 8);
  }
  scalar::unpack_bits(packed + (i / 8) * bits, n - i, bits, codes + i, sign_extend);
}

}  // namespace avx2
}  // namespace mixq::kernels::detail
