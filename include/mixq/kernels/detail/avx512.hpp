#pragma once
/// @file
/// AVX-512 (F, BW, DQ, VL) kernels: 16 floats per vector, masked loads and stores for tails. Compiled with
/// function target attributes (no -march needed); called only when CPUID reports the features. Same
/// function set as scalar.hpp, bit-identical to it for every elementwise output. pack_bits/unpack_bits are
/// the AVX2 + BMI2 ones of avx2.hpp (byte shuffles of 32 codes; 512-bit ones would need AVX512-VBMI).

#include "mixq/kernels/detail/avx2.hpp"
#include "mixq/kernels/detail/scalar.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#define MIXQ_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi2")))

// g++ 12 warns -Wmaybe-uninitialized about the `__Y = __Y` inside _mm512_undefined_ps(), which many
// AVX-512 intrinsics use (GCC bug 105593, fixed in 13); the warning is spurious.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace mixq::kernels::detail::avx512 {

struct Vec {
  __m512 scale, inv, lo, hi;
};

MIXQ_TARGET_AVX512 inline Vec broadcast(const Params& p) {
  return {_mm512_set1_ps(p.scale), _mm512_set1_ps(p.inv), _mm512_set1_ps(p.lo), _mm512_set1_ps(p.hi)};
}

MIXQ_TARGET_AVX512 inline __mmask16 tail_mask(std::ptrdiff_t m) {
  return static_cast<__mmask16>((1u << m) - 1u);
}

MIXQ_TARGET_AVX512 inline __m512 round_even(__m512 t) {
  return _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// x86 min/max return the second operand for NaN and equal values: scalar clamp_nan exactly.
MIXQ_TARGET_AVX512 inline __m512 clamp_nan(__m512 r, const Vec v) {
  return _mm512_min_ps(v.hi, _mm512_max_ps(v.lo, r));
}

// y = fma(c, scale, +0) == (c + 0) * scale bit for bit; as avx2::fake_quant_vec.
MIXQ_TARGET_AVX512 inline __m512 fake_quant_vec(__m512 x, const Vec v) {
  const __m512 c = clamp_nan(round_even(_mm512_mul_ps(x, v.inv)), v);
  return _mm512_fmadd_ps(c, v.scale, _mm512_setzero_ps());
}

MIXQ_TARGET_AVX512 inline __mmask16 inside_mask(__m512 x, const Vec v) {
  const __m512 r = round_even(_mm512_mul_ps(x, v.inv));
  return _mm512_cmp_ps_mask(r, v.lo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(r, v.hi, _CMP_LE_OQ);
}

// One row with one parameter set; with stream, y is written with non-temporal stores after a masked head
// that aligns it to 64 bytes (the caller issues the sfence). As avx2::fake_quant_row.
MIXQ_TARGET_AVX512 inline void fake_quant_row(const float* x, float* y, std::ptrdiff_t n, const Vec v,
                                              bool stream) {
  std::ptrdiff_t i = 0;
  if (stream) {
    const std::ptrdiff_t head =
        std::min<std::ptrdiff_t>(((64 - (reinterpret_cast<std::uintptr_t>(y) & 63)) & 63) / 4, n);
    if (head > 0) {
      const __mmask16 m = tail_mask(head);
      _mm512_mask_storeu_ps(y, m, fake_quant_vec(_mm512_maskz_loadu_ps(m, x), v));
      i = head;
    }
    if ((reinterpret_cast<std::uintptr_t>(y + i) & 63) == 0) {
      for (; i + 64 <= n; i += 64) {
        const __m512 a = fake_quant_vec(_mm512_loadu_ps(x + i), v);
        const __m512 b = fake_quant_vec(_mm512_loadu_ps(x + i + 16), v);
        const __m512 c = fake_quant_vec(_mm512_loadu_ps(x + i + 32), v);
        const __m512 d = fake_quant_vec(_mm512_loadu_ps(x + i + 48), v);
        _mm512_stream_ps(y + i, a);
        _mm512_stream_ps(y + i + 16, b);
        _mm512_stream_ps(y + i + 32, c);
        _mm512_stream_ps(y + i + 48, d);
      }
      for (; i + 16 <= n; i += 16) _mm512_stream_ps(y + i, fake_quant_vec(_mm512_loadu_ps(x + i), v));
    }
  }
  for (; i + 64 <= n; i += 64) {
    const __m512 a = fake_quant_vec(_mm512_loadu_ps(x + i), v);
    const __m512 b = fake_quant_vec(_mm512_loadu_ps(x + i + 16), v);
    const __m512 c = fake_quant_vec(_mm512_loadu_ps(x + i + 32), v);
    const __m512 d = fake_quant_vec(_mm512_loadu_ps(x + i + 48), v);
    _mm512_storeu_ps(y + i, a);
    _mm512_storeu_ps(y + i + 16, b);
    _mm512_storeu_ps(y + i + 32, c);
    _mm512_storeu_ps(y + i + 48, d);
  }
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, fake_quant_vec(_mm512_loadu_ps(x + i), v));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, fake_quant_vec(_mm512_maskz_loadu_ps(m, x + i), v));
  }
}

MIXQ_TARGET_AVX512 inline void fake_quant(const float* x, float* y, std::ptrdiff_t n, const Params& p) {
  const bool stream = n * std::ptrdiff_t(sizeof(float)) >= stream_bytes();
  fake_quant_row(x, y, n, broadcast(p), stream);
  if (stream) _mm_sfence();
}

MIXQ_TARGET_AVX512 inline void fake_quant_backward_row(const float* x, const float* dy, float* dx, std::ptrdiff_t n,
                                                       const Vec v) {
  std::ptrdiff_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = _mm512_maskz_mov_ps(inside_mask(_mm512_loadu_ps(x + i), v), _mm512_loadu_ps(dy + i));
    const __m512 b = _mm512_maskz_mov_ps(inside_mask(_mm512_loadu_ps(x + i + 16), v), _mm512_loadu_ps(dy + i + 16));
    _mm512_storeu_ps(dx + i, a);
    _mm512_storeu_ps(dx + i + 16, b);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tail_mask(n - i);
    const __m512 r =
        _mm512_maskz_mov_ps(inside_mask(_mm512_maskz_loadu_ps(m, x + i), v), _mm512_maskz_loadu_ps(m, dy + i));
    _mm512_mask_storeu_ps(dx + i, m, r);
  }
}

MIXQ_TARGET_AVX512 inline void fake_quant_backward(const float* x, const float* dy, float* dx, std::ptrdiff_t n,
                                                   const Params& p) {
  fake_quant_backward_row(x, dy, dx, n, broadcast(p));
}

MIXQ_TARGET_AVX512 inline void accumulate_products(__m512 a, __m512 b, __m512d* lo, __m512d* hi) {
  *lo = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(a)), _mm512_cvtps_pd(_mm512_castps512_ps256(b)), *lo);
  *hi = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(a, 1)), _mm512_cvtps_pd(_mm512_extractf32x8_ps(b, 1)),
                        *hi);
}

MIXQ_TARGET_AVX512 inline void accumulate(__m512 a, __m512d* lo, __m512d* hi) {
  *lo = _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(a)), *lo);
  *hi = _mm512_add_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(a, 1)), *hi);
}

// One vector of the LSQ pass: c = clamp(r); inside where c == r, outside where c != r (both false for
// NaN); term = r - x * inv inside (one rounding), c outside, 0 for NaN.
struct LsqParts {
  __m512 term;
  __mmask16 in, out;
};

MIXQ_TARGET_AVX512 inline LsqParts lsq_parts(__m512 x, const Vec v) {
  const __m512 r = round_even(_mm512_mul_ps(x, v.inv));
  const __m512 c = clamp_nan(r, v);
  const __mmask16 in = _mm512_cmp_ps_mask(c, r, _CMP_EQ_OQ);
  const __mmask16 out = _mm512_cmp_ps_mask(c, r, _CMP_NEQ_OQ);
  const __m512 term = _mm512_mask_mov_ps(_mm512_maskz_mov_ps(out, c), in, _mm512_fnmadd_ps(x, v.inv, r));
  return {term, in, out};
}

MIXQ_TARGET_AVX512 inline void accumulate2(__m512 a, __m512 b, __m512d* lo, __m512d* hi) {
  *lo = _mm512_add_pd(*lo, _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(a)),
                                         _mm512_cvtps_pd(_mm512_castps512_ps256(b))));
  *hi = _mm512_add_pd(*hi, _mm512_add_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(a, 1)),
                                         _mm512_cvtps_pd(_mm512_extractf32x8_ps(b, 1))));
}

// Sums as avx2::lsq_backward: four independent float fma accumulators, at most kLsqBlock steps per lane,
// added pairwise in float and flushed to double.
MIXQ_TARGET_AVX512 inline void lsq_step(const float* x, const float* dy, float* dx, const Vec v, __m512* s,
                                        __m512* o) {
  const __m512 g = _mm512_loadu_ps(dy);
  const LsqParts a = lsq_parts(_mm512_loadu_ps(x), v);
  _mm512_storeu_ps(dx, _mm512_maskz_mov_ps(a.in, g));
  *s = _mm512_fmadd_ps(g, a.term, *s);
  *o = _mm512_add_ps(*o, _mm512_maskz_mov_ps(a.out, g));
}

MIXQ_TARGET_AVX512 inline void lsq_backward_row(const float* x, const float* dy, float* dx, std::ptrdiff_t n,
                                                const Vec v, double* d_scale, double* dy_outside) {
  __m512d s0 = _mm512_setzero_pd(), s1 = s0, o0 = s0, o1 = s0;
  std::ptrdiff_t i = 0;
  while (i + 64 <= n) {
    __m512 sa = _mm512_setzero_ps(), sb = sa, sc = sa, sd = sa, oa = sa, ob = sa, oc = sa, od = sa;
    for (int k = 0; k < kLsqBlock && i + 64 <= n; ++k, i += 64) {
      lsq_step(x + i, dy + i, dx + i, v, &sa, &oa);
      lsq_step(x + i + 16, dy + i + 16, dx + i + 16, v, &sb, &ob);
      lsq_step(x + i + 32, dy + i + 32, dx + i + 32, v, &sc, &oc);
      lsq_step(x + i + 48, dy + i + 48, dx + i + 48, v, &sd, &od);
    }
    accumulate2(_mm512_add_ps(sa, sb), _mm512_add_ps(sc, sd), &s0, &s1);
    accumulate2(_mm512_add_ps(oa, ob), _mm512_add_ps(oc, od), &o0, &o1);
  }
  for (; i < n; i += 16) {
    // Masked-out lanes load x = 0 and dy = 0: inside (zero_point lies in [qmin, qmax]), contributing 0.
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tail_mask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, dy + i);
    const LsqParts a = lsq_parts(_mm512_maskz_loadu_ps(m, x + i), v);
    _mm512_mask_storeu_ps(dx + i, m, _mm512_maskz_mov_ps(a.in, g));
    accumulate_products(g, a.term, &s0, &s1);
    accumulate(_mm512_maskz_mov_ps(a.out, g), &o0, &o1);
  }
  *d_scale += _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  *dy_outside += _mm512_reduce_add_pd(_mm512_add_pd(o0, o1));
}

MIXQ_TARGET_AVX512 inline void lsq_backward(const float* x, const float* dy, float* dx, std::ptrdiff_t n,
                                            const Params& p, double* d_scale, double* dy_outside) {
  lsq_backward_row(x, dy, dx, n, broadcast(p), d_scale, dy_outside);
}

// Per-channel parameters: avx2::channel_block computes 8 channels' reciprocals and bounds with one vector
// division (no scalar division per channel or group).
MIXQ_TARGET_AVX512 inline Vec channel_vec(const float* scales, std::ptrdiff_t c, const avx2::ChannelBlock& b,
                                          std::ptrdiff_t k) {
  return {_mm512_set1_ps(scales[c]), _mm512_set1_ps(b.inv[k]), _mm512_set1_ps(b.lo[k]), _mm512_set1_ps(b.hi[k])};
}

MIXQ_TARGET_AVX512 inline void fake_quant_channels(const float* x, float* y, std::ptrdiff_t outer,
                                                   std::ptrdiff_t channels, std::ptrdiff_t inner,
                                                   const float* scales, const std::int32_t* zero_points,
                                                   std::int32_t qmin, std::int32_t qmax) {
  const bool stream = outer * channels * inner * std::ptrdiff_t(sizeof(float)) >= stream_bytes();
  avx2::ChannelBlock b;
  for (std::ptrdiff_t o = 0; o < outer; ++o)
    for (std::ptrdiff_t c0 = 0; c0 < channels; c0 += 8) {
      avx2::channel_block(scales, zero_points, qmin, qmax, c0, channels, &b);
      const std::ptrdiff_t end = std::min<std::ptrdiff_t>(c0 + 8, channels);
      for (std::ptrdiff_t c = c0; c < end; ++c) {
        const std::ptrdiff_t off = (o * channels + c) * inner;
        fake_quant_row(x + off, y + off, inner, avx512::channel_vec(scales, c, b, c - c0), stream);
      }
    }
  if (stream) _mm_sfence();
}

MIXQ_TARGET_AVX512 inline void fake_quant_backward_channels(const float* x, const float* dy, float* dx,
                                                            std::ptrdiff_t outer, std::ptrdiff_t channels,
                                                            std::ptrdiff_t inner, const float* scales,
                                                            const std::int32_t* zero_points, std::int32_t qmin,
                                                            std::int32_t qmax) {
  avx2::ChannelBlock b;
  for (std::ptrdiff_t o = 0; o < outer; ++o)
    for (std::ptrdiff_t c0 = 0; c0 < channels; c0 += 8) {
      avx2::channel_block(scales, zero_points, qmin, qmax, c0, channels, &b);
      const std::ptrdiff_t end = std::min<std::ptrdiff_t>(c0 + 8, channels);
      for (std::ptrdiff_t c = c0; c < end; ++c) {
        const std::ptrdiff_t off = (o * channels + c) * inner;
        fake_quant_backward_row(x + off, dy + off, dx + off, inner, avx512::channel_vec(scales, c, b, c - c0));
      }
    }
}

MIXQ_TARGET_AVX512 inline void lsq_backward_channels(const float* x, const float* dy, float* dx,
                                                     std::ptrdiff_t outer, std::ptrdiff_t channels,
                                                     std::ptrdiff_t inner, const float* scales,
                                                     const std::int32_t* zero_points, std::int32_t qmin,
                                                     std::int32_t qmax, double* d_scale, double* dy_outside) {
  double unused = 0.0;
  avx2::ChannelBlock b;
  for (std::ptrdiff_t o = 0; o < outer; ++o)
    for (std::ptrdiff_t c0 = 0; c0 < channels; c0 += 8) {
      avx2::channel_block(scales, zero_points, qmin, qmax, c0, channels, &b);
      const std::ptrdiff_t end = std::min<std::ptrdiff_t>(c0 + 8, channels);
      for (std::ptrdiff_t c = c0; c < end; ++c) {
        const std::ptrdiff_t off = (o * channels + c) * inner;
        lsq_backward_row(x + off, dy + off, dx + off, inner, avx512::channel_vec(scales, c, b, c - c0), d_scale + c,
                         dy_outside ? dy_outside + c : &unused);
      }
    }
}

// As avx2::code_vec: clamp in float, cvtps2dq (round half to even in the default MXCSR mode), + zero_point;
// NaN lanes take the zero point through the add's mask.
MIXQ_TARGET_AVX512 inline __m512i code_vec(__m512 x, const Vec v, __m512i zp) {
  const __m512 c = clamp_nan(_mm512_mul_ps(x, v.inv), v);
  return _mm512_mask_add_epi32(zp, _mm512_cmp_ps_mask(c, c, _CMP_ORD_Q), _mm512_cvtps_epi32(c), zp);
}

// 8-bit codes, 64 per step, as avx2::quantize8_body: cvtps2dq of the clamped float (NaN -> INT_MIN), packs to
// int16 (NaN -> -32768, which no code reaches), NaN -> zero point and + zero point in 16-bit lanes (32 per
// instruction), packs to bytes and one dword permute restores the order (cheaper than four vpmovdb).
template <class Code>
MIXQ_TARGET_AVX512 inline std::ptrdiff_t quantize8_body(const float* x, Code* q, std::ptrdiff_t n, const Vec v,
                                                        std::int32_t zero_point) {
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m512i nan16 = _mm512_set1_epi16(-32768);
  const __m512i zp16 = _mm512_set1_epi16(static_cast<short>(zero_point));
  std::ptrdiff_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i a = _mm512_cvtps_epi32(clamp_nan(_mm512_mul_ps(_mm512_loadu_ps(x + i), v.inv), v));
    const __m512i b = _mm512_cvtps_epi32(clamp_nan(_mm512_mul_ps(_mm512_loadu_ps(x + i + 16), v.inv), v));
    const __m512i c = _mm512_cvtps_epi32(clamp_nan(_mm512_mul_ps(_mm512_loadu_ps(x + i + 32), v.inv), v));
    const __m512i d = _mm512_cvtps_epi32(clamp_nan(_mm512_mul_ps(_mm512_loadu_ps(x + i + 48), v.inv), v));
    __m512i ab = _mm512_packs_epi32(a, b), cd = _mm512_packs_epi32(c, d);
    ab = _mm512_mask_add_epi16(zp16, _mm512_cmpneq_epi16_mask(ab, nan16), ab, zp16);
    cd = _mm512_mask_add_epi16(zp16, _mm512_cmpneq_epi16_mask(cd, nan16), cd, zp16);
    const __m512i bytes = std::is_same_v<Code, std::uint8_t> ? _mm512_packus_epi16(ab, cd) : _mm512_packs_epi16(ab, cd);
    _mm512_storeu_si512(q + i, _mm512_permutexvar_epi32(order, bytes));
  }
  return i;
}

// Codes lie in [qmin, qmax], which fits Code, so truncating narrowing (vpmovdb / vpmovdw) is exact.
template <class Code>
MIXQ_TARGET_AVX512 inline void store_codes(Code* q, __mmask16 m, __m512i c) {
  if constexpr (std::is_same_v<Code, std::int16_t>)
    _mm512_mask_cvtepi32_storeu_epi16(q, m, c);
  else
    _mm512_mask_cvtepi32_storeu_epi8(q, m, c);
}

template <class Code>
MIXQ_TARGET_AVX512 inline void quantize(const float* x, Code* q, std::ptrdiff_t n, const Params& p) {
  const Vec v = broadcast(p);
  const __m512i zp = _mm512_set1_epi32(p.zero_point);
  std::ptrdiff_t i = 0;
  if constexpr (sizeof(Code) == 1) i = quantize8_body(x, q, n, v, p.zero_point);
  for (; i + 32 <= n; i += 32) {
    const __m512i a = code_vec(_mm512_loadu_ps(x + i), v, zp);
    const __m512i b = code_vec(_mm512_loadu_ps(x + i + 16), v, zp);
    if constexpr (std::is_same_v<Code, std::int16_t>) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), _mm512_cvtepi32_epi16(a));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i + 16), _mm512_cvtepi32_epi16(b));
    } else {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(a));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i + 16), _mm512_cvtepi32_epi8(b));
    }
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tail_mask(n - i);
    store_codes(q + i, m, code_vec(_mm512_maskz_loadu_ps(m, x + i), v, zp));
  }
}

template <class Code>
MIXQ_TARGET_AVX512 inline __m512i load_codes(const Code* q, __mmask16 m) {
  if constexpr (std::is_same_v<Code, std::int8_t>)
    return _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, q));
  else if constexpr (std::is_same_v<Code, std::uint8_t>)
    return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, q));
  else
    return _mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(m, q));
}

template <class Code>
MIXQ_TARGET_AVX512 inline __m512i load_codes(const Code* q) {
  if constexpr (std::is_same_v<Code, std::int8_t>)
    return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
  else if constexpr (std::is_same_v<Code, std::uint8_t>)
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
  else
    return _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)));
}

// float(q - zero_point) * scale; the subtraction is skipped for zero_point == 0, as avx2::dequantize.
template <bool Zero>
MIXQ_TARGET_AVX512 inline __m512 dequantize_vec(__m512i codes, __m512i zp, __m512 s) {
  if constexpr (Zero)
    return _mm512_mul_ps(_mm512_cvtepi32_ps(codes), s);
  else
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(codes, zp)), s);
}

template <bool Zero, class Code>
MIXQ_TARGET_AVX512 inline void dequantize_body(const Code* q, float* y, std::ptrdiff_t n, __m512i zp, __m512 s) {
  std::ptrdiff_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = dequantize_vec<Zero>(load_codes(q + i), zp, s);
    const __m512 b = dequantize_vec<Zero>(load_codes(q + i + 16), zp, s);
    _mm512_storeu_ps(y + i, a);
    _mm512_storeu_ps(y + i + 16, b);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, dequantize_vec<Zero>(load_codes(q + i, m), zp, s));
  }
}

template <class Code>
MIXQ_TARGET_AVX512 inline void dequantize(const Code* q, float* y, std::ptrdiff_t n, float scale,
                                          std::int32_t zero_point) {
  const __m512 s = _mm512_set1_ps(scale);
  const __m512i zp = _mm512_set1_epi32(zero_point);
  if (zero_point == 0)
    dequantize_body<true>(q, y, n, zp, s);
  else
    dequantize_body<false>(q, y, n, zp, s);
}

// min(x, m) returns m when x is NaN or x == m, as scalar `x < m ? x : m`; masked lanes keep m.
MIXQ_TARGET_AVX512 inline void minmax(const float* x, std::ptrdiff_t n, float* min, float* max) {
  __m512 mn0 = _mm512_set1_ps(INFINITY), mn1 = mn0, mx0 = _mm512_set1_ps(-INFINITY), mx1 = mx0;
  std::ptrdiff_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
    mn0 = _mm512_min_ps(a, mn0);
    mx0 = _mm512_max_ps(a, mx0);
    mn1 = _mm512_min_ps(b, mn1);
    mx1 = _mm512_max_ps(b, mx1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tail_mask(n - i);
    const __m512 a = _mm512_maskz_loadu_ps(m, x + i);
    mn0 = _mm512_mask_min_ps(mn0, m, a, mn0);
    mx0 = _mm512_mask_max_ps(mx0, m, a, mx0);
  }
  mn0 = _mm512_min_ps(mn1, mn0);
  mx0 = _mm512_max_ps(mx1, mx0);
  alignas(64) float lo[16], hi[16];
  _mm512_store_ps(lo, mn0);
  _mm512_store_ps(hi, mx0);
  float a = INFINITY, b = -INFINITY;
  for (int k = 0; k < 16; ++k) {
    a = lo[k] < a ? lo[k] : a;
    b = hi[k] > b ? hi[k] : b;
  }
  *min = a + 0.0f;
  *max = b + 0.0f;
}

using avx2::pack_bits;
using avx2::unpack_bits;

}  // namespace mixq::kernels::detail::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
