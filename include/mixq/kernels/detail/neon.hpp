#pragma once
/// @file
/// aarch64 Advanced SIMD (NEON) kernels: 4 floats per vector, baseline on aarch64 so selected at compile
/// time. Same function set as scalar.hpp and bit-identical to it for every elementwise output. Clamps and
/// min/max use compare + select (not FMAX/FMIN, whose +-0 and NaN rules differ from the scalar contract).
/// pack_bits/unpack_bits merge codes with shift-and-insert (VSLI) and gather bytes with a table lookup.

#include "mixq/kernels/detail/scalar.hpp"

#include <arm_neon.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace mixq::kernels::detail::neon {

struct Vec {
  float32x4_t scale, inv, lo, hi;
};

inline Vec broadcast(const Params& p) {
  return {vdupq_n_f32(p.scale), vdupq_n_f32(p.inv), vdupq_n_f32(p.lo), vdupq_n_f32(p.hi)};
}

// As scalar clamp_nan: r < lo ? lo : r, then c > hi ? hi : c (NaN compares false and is kept).
inline float32x4_t clamp_nan(float32x4_t r, const Vec& v) {
  const float32x4_t c = vbslq_f32(vcltq_f32(r, v.lo), v.lo, r);
  return vbslq_f32(vcgtq_f32(c, v.hi), v.hi, c);
}

inline float32x4_t fake_quant_vec(float32x4_t x, const Vec& v) {
  const float32x4_t c = clamp_nan(vrndnq_f32(vmulq_f32(x, v.inv)), v);
  return vfmaq_f32(vdupq_n_f32(0.0f), c, v.scale);  // c * scale + 0, one rounding: (c + 0) * scale bit for bit
}

inline uint32x4_t inside_mask(float32x4_t x, const Vec& v) {
  const float32x4_t r = vrndnq_f32(vmulq_f32(x, v.inv));
  return vandq_u32(vcgeq_f32(r, v.lo), vcleq_f32(r, v.hi));
}

inline float32x4_t and_mask(uint32x4_t m, float32x4_t a) {
  return vreinterpretq_f32_u32(vandq_u32(m, vreinterpretq_u32_f32(a)));
}

inline void fake_quant(const float* x, float* y, std::ptrdiff_t n, const Params& p) {
  const Vec v = broadcast(p);
  std::ptrdiff_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const float32x4_t a = fake_quant_vec(vld1q_f32(x + i), v);
    const float32x4_t b = fake_quant_vec(vld1q_f32(x + i + 4), v);
    const float32x4_t c = fake_quant_vec(vld1q_f32(x + i + 8), v);
    const float32x4_t d = fake_quant_vec(vld1q_f32(x + i + 12), v);
    vst1q_f32(y + i, a);
    vst1q_f32(y + i + 4, b);
    vst1q_f32(y + i + 8, c);
    vst1q_f32(y + i + 12, d);
  }
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, fake_quant_vec(vld1q_f32(x + i), v));
  if (i < n) {
    float xb[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    std::memcpy(xb, x + i, static_cast<std::size_t>(n - i) * sizeof(float));
    vst1q_f32(xb, fake_quant_vec(vld1q_f32(xb), v));
    std::memcpy(y + i, xb, static_cast<std::size_t>(n - i) * sizeof(float));
  }
}

inline void fake_quant_backward(const float* x, const float* dy, float* dx, std::ptrdiff_t n, const Params& p) {
  const Vec v = broadcast(p);
  std::ptrdiff_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t a = and_mask(inside_mask(vld1q_f32(x + i), v), vld1q_f32(dy + i));
    const float32x4_t b = and_mask(inside_mask(vld1q_f32(x + i + 4), v), vld1q_f32(dy + i + 4));
    vst1q_f32(dx + i, a);
    vst1q_f32(dx + i + 4, b);
  }
  for (; i + 4 <= n; i += 4) vst1q_f32(dx + i, and_mask(inside_mask(vld1q_f32(x + i), v), vld1q_f32(dy + i)));
  if (i < n) {
    float xb[4] = {0.0f, 0.0f, 0.0f, 0.0f}, gb[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    std::memcpy(xb, x + i, static_cast<std::size_t>(n - i) * sizeof(float));
    std::memcpy(gb, dy + i, static_cast<std::size_t>(n - i) * sizeof(float));
    vst1q_f32(xb, and_mask(inside_mask(vld1q_f32(xb), v), vld1q_f32(gb)));
    std::memcpy(dx + i, xb, static_cast<std::size_t>(n - i) * sizeof(float));
  }
}

struct Acc {
  float64x2_t s0, s1, o0, o1;
};

inline float32x4_t lsq_vec(float32x4_t x, float32x4_t g, const Vec& v, Acc* acc) {
  const float32x4_t r = vrndnq_f32(vmulq_f32(x, v.inv));
  const uint32x4_t below = vcltq_f32(r, v.lo);
  const uint32x4_t above = vcgtq_f32(r, v.hi);
  const uint32x4_t in = vandq_u32(vcgeq_f32(r, v.lo), vcleq_f32(r, v.hi));
  const float32x4_t term_in = vfmsq_f32(r, x, v.inv);  // r - x * inv, one rounding
  const float32x4_t term =
      vreinterpretq_f32_u32(vorrq_u32(vandq_u32(in, vreinterpretq_u32_f32(term_in)),
                                      vorrq_u32(vandq_u32(below, vreinterpretq_u32_f32(v.lo)),
                                                vandq_u32(above, vreinterpretq_u32_f32(v.hi)))));
  acc->s0 = vfmaq_f64(acc->s0, vcvt_f64_f32(vget_low_f32(g)), vcvt_f64_f32(vget_low_f32(term)));
  acc->s1 = vfmaq_f64(acc->s1, vcvt_high_f64_f32(g), vcvt_high_f64_f32(term));
  const float32x4_t go = and_mask(vorrq_u32(below, above), g);
  acc->o0 = vaddq_f64(acc->o0, vcvt_f64_f32(vget_low_f32(go)));
  acc->o1 = vaddq_f64(acc->o1, vcvt_high_f64_f32(go));
  return and_mask(in, g);
}

inline void lsq_backward(const float* x, const float* dy, float* dx, std::ptrdiff_t n, const Params& p,
                         double* d_scale, double* dy_outside) {
  const Vec v = broadcast(p);
  const float64x2_t z = vdupq_n_f64(0.0);
  Acc a{z, z, z, z}, b{z, z, z, z};
  std::ptrdiff_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t ra = lsq_vec(vld1q_f32(x + i), vld1q_f32(dy + i), v, &a);
    const float32x4_t rb = lsq_vec(vld1q_f32(x + i + 4), vld1q_f32(dy + i + 4), v, &b);
    vst1q_f32(dx + i, ra);
    vst1q_f32(dx + i + 4, rb);
  }
  for (; i + 4 <= n; i += 4) vst1q_f32(dx + i, lsq_vec(vld1q_f32(x + i), vld1q_f32(dy + i), v, &a));
  if (i < n) {
    // Padding lanes hold x = 0 and dy = 0: inside (zero_point lies in [qmin, qmax]), contributing 0.
    float xb[4] = {0.0f, 0.0f, 0.0f, 0.0f}, gb[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    std::memcpy(xb, x + i, static_cast<std::size_t>(n - i) * sizeof(float));
    std::memcpy(gb, dy + i, static_cast<std::size_t>(n - i) * sizeof(float));
    vst1q_f32(xb, lsq_vec(vld1q_f32(xb), vld1q_f32(gb), v, &a));
    std::memcpy(dx + i, xb, static_cast<std::size_t>(n - i) * sizeof(float));
  }
  *d_scale += vaddvq_f64(vaddq_f64(vaddq_f64(a.s0, a.s1), vaddq_f64(b.s0, b.s1)));
  *dy_outside += vaddvq_f64(vaddq_f64(vaddq_f64(a.o0, a.o1), vaddq_f64(b.o0, b.o1)));
}

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

inline int32x4_t code_vec(float32x4_t x, const Vec& v, int32x4_t zp) {
  const float32x4_t c = clamp_nan(vrndnq_f32(vmulq_f32(x, v.inv)), v);
  const float32x4_t ordered = and_mask(vceqq_f32(c, c), c);
  return vaddq_s32(vcvtq_s32_f32(ordered), zp);
}

template <class Code>
inline void quantize(const float* x, Code* q, std::ptrdiff_t n, const Params& p) {
  const Vec v = broadcast(p);
  const int32x4_t zp = vdupq_n_s32(p.zero_point);
  std::ptrdiff_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const int32x4_t a = code_vec(vld1q_f32(x + i), v, zp);
    const int32x4_t b = code_vec(vld1q_f32(x + i + 4), v, zp);
    const int32x4_t c = code_vec(vld1q_f32(x + i + 8), v, zp);
    const int32x4_t d = code_vec(vld1q_f32(x + i + 12), v, zp);
    const int16x8_t ab = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
    const int16x8_t cd = vcombine_s16(vmovn_s32(c), vmovn_s32(d));
    if constexpr (std::is_same_v<Code, std::int16_t>) {
      vst1q_s16(q + i, ab);
      vst1q_s16(q + i + 8, cd);
    } else {
      const int8x16_t bytes = vcombine_s8(vmovn_s16(ab), vmovn_s16(cd));
      std::memcpy(q + i, &bytes, 16);
    }
  }
  if (i < n) {
    float xb[16] = {};
    Code qb[16];
    std::memcpy(xb, x + i, static_cast<std::size_t>(n - i) * sizeof(float));
    quantize(xb, qb, 16, p);
    std::memcpy(q + i, qb, static_cast<std::size_t>(n - i) * sizeof(Code));
  }
}

template <class Code>
inline int32x4_t load_codes(const Code* q) {
  if constexpr (std::is_same_v<Code, std::int16_t>) {
    return vmovl_s16(vld1_s16(q));
  } else {
    std::int32_t w;
    std::memcpy(&w, q, 4);
    const int16x8_t h = std::is_same_v<Code, std::uint8_t>
                            ? vreinterpretq_s16_u16(vmovl_u8(vreinterpret_u8_s32(vdup_n_s32(w))))
                            : vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(w)));
    return vmovl_s16(vget_low_s16(h));
  }
}

template <class Code>
inline void dequantize(const Code* q, float* y, std::ptrdiff_t n, float scale, std::int32_t zero_point) {
  const float32x4_t s = vdupq_n_f32(scale);
  const int32x4_t zp = vdupq_n_s32(zero_point);
  std::ptrdiff_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_f32(vcvtq_f32_s32(vsubq_s32(load_codes(q + i), zp)), s));
  if (i < n) {
    Code qb[4] = {};
    float yb[4];
    std::memcpy(qb, q + i, static_cast<std::size_t>(n - i) * sizeof(Code));
    vst1q_f32(yb, vmulq_f32(vcvtq_f32_s32(vsubq_s32(load_codes(qb), zp)), s));
    std::memcpy(y + i, yb, static_cast<std::size_t>(n - i) * sizeof(float));
  }
}

// As scalar: v < m ? v : m (NaN compares false and is skipped).
inline void minmax(const float* x, std::ptrdiff_t n, float* min, float* max) {
  float32x4_t mn0 = vdupq_n_f32(INFINITY), mn1 = mn0, mx0 = vdupq_n_f32(-INFINITY), mx1 = mx0;
  std::ptrdiff_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
    mn0 = vbslq_f32(vcltq_f32(a, mn0), a, mn0);
    mx0 = vbslq_f32(vcgtq_f32(a, mx0), a, mx0);
    mn1 = vbslq_f32(vcltq_f32(b, mn1), b, mn1);
    mx1 = vbslq_f32(vcgtq_f32(b, mx1), b, mx1);
  }
  float lo[8], hi[8];
  vst1q_f32(lo, mn0);
  vst1q_f32(lo + 4, mn1);
  vst1q_f32(hi, mx0);
  vst1q_f32(hi + 4, mx1);
  float a, b;
  scalar::minmax(x + i, n - i, &a, &b);
  for (int k = 0; k < 8; ++k) {
    a = lo[k] < a ? lo[k] : a;
    b = hi[k] > b ? hi[k] : b;
  }
  *min = a + 0.0f;
  *max = b + 0.0f;
}

// pack_bits / unpack_bits, 16 codes per step with the bit width as a template parameter (shift-and-insert
// needs constant shifts): codes are merged pairwise 8 -> 16 -> 32 -> 64-bit lanes with VSLI, each 64-bit lane
// then holds 8 codes in its low `bits` bytes, and a table lookup gathers the 2 * bits valid bytes; one 16-byte
// store writes them (the next step or the scalar tail overwrites the rest). unpack_bits runs the same steps
// backwards. The scalar loop finishes the last codes.
template <int Bits>
inline void pack_bits_n(const std::uint8_t* codes, std::ptrdiff_t n, std::uint8_t* out) {
  static_assert(Bits >= 1 && Bits <= 7, "1..7 bits");
  const std::ptrdiff_t total = n / 8 * Bits + (n % 8 * Bits + 7) / 8;
  alignas(16) std::uint8_t gather[16];
  for (int k = 0; k < 16; ++k) gather[k] = static_cast<std::uint8_t>(k < Bits ? k : k < 2 * Bits ? 8 + k - Bits : 0xFF);
  const uint8x16_t table = vld1q_u8(gather);
  const uint8x16_t mask = vdupq_n_u8(static_cast<std::uint8_t>((1u << Bits) - 1u));
  std::ptrdiff_t i = 0;
  for (; i + 16 <= n && i / 8 * Bits + 16 <= total; i += 16) {
    const uint16x8_t x = vreinterpretq_u16_u8(vandq_u8(vld1q_u8(codes + i), mask));
    const uint16x8_t m16 = vsliq_n_u16(vandq_u16(x, vdupq_n_u16(0x00FF)), vshrq_n_u16(x, 8), Bits);
    const uint32x4_t y = vreinterpretq_u32_u16(m16);
    const uint32x4_t m32 = vsliq_n_u32(vandq_u32(y, vdupq_n_u32(0xFFFF)), vshrq_n_u32(y, 16), 2 * Bits);
    const uint64x2_t z = vreinterpretq_u64_u32(m32);
    const uint64x2_t m64 = vsliq_n_u64(vandq_u64(z, vdupq_n_u64(0xFFFFFFFFull)), vshrq_n_u64(z, 32), 4 * Bits);
    vst1q_u8(out + i / 8 * Bits, vqtbl1q_u8(vreinterpretq_u8_u64(m64), table));
  }
  scalar::pack_bits(codes + i, n - i, Bits, out + i / 8 * Bits);
}

template <int Bits>
inline void unpack_bits_n(const std::uint8_t* packed, std::ptrdiff_t n, std::uint8_t* codes, bool sign_extend) {
  static_assert(Bits >= 1 && Bits <= 7, "1..7 bits");
  const std::ptrdiff_t total = n / 8 * Bits + (n % 8 * Bits + 7) / 8;
  alignas(16) std::uint8_t spread[16];
  for (int k = 0; k < 16; ++k)
    spread[k] = static_cast<std::uint8_t>(k < Bits ? k : k >= 8 && k < 8 + Bits ? k - 8 + Bits : 0xFF);
  const uint8x16_t table = vld1q_u8(spread);
  const uint8x16_t sign = vdupq_n_u8(static_cast<std::uint8_t>(1u << (Bits - 1)));
  const uint8x16_t xor_sign = sign_extend ? sign : vdupq_n_u8(0);
  std::ptrdiff_t i = 0;
  for (; i + 16 <= n && i / 8 * Bits + 16 <= total; i += 16) {
    const uint64x2_t z = vreinterpretq_u64_u8(vqtbl1q_u8(vld1q_u8(packed + i / 8 * Bits), table));
    const uint64x2_t m64 =
        vsliq_n_u64(vandq_u64(z, vdupq_n_u64((1ull << (4 * Bits)) - 1ull)), vshrq_n_u64(z, 4 * Bits), 32);
    const uint32x4_t y = vreinterpretq_u32_u64(m64);
    const uint32x4_t m32 = vsliq_n_u32(vandq_u32(y, vdupq_n_u32((1u << (2 * Bits)) - 1u)), vshrq_n_u32(y, 2 * Bits), 16);
    const uint16x8_t x = vreinterpretq_u16_u32(m32);
    const uint16x8_t m16 = vsliq_n_u16(vandq_u16(x, vdupq_n_u16((1u << Bits) - 1u)), vshrq_n_u16(x, Bits), 8);
    const uint8x16_t c = vreinterpretq_u8_u16(m16);
    vst1q_u8(codes + i, vsubq_u8(veorq_u8(c, xor_sign), xor_sign));
  }
  scalar::unpack_bits(packed + i / 8 * Bits, n - i, Bits, codes + i, sign_extend);
}

inline void pack_bits(const std::uint8_t* codes, std::ptrdiff_t n, int bits, std::uint8_t* out) {
  switch (bits) {
    case 1: return pack_bits_n<1>(codes, n, out);
    case 2: return pack_bits_n<2>(codes, n, out);
    case 3: return pack_bits_n<3>(codes, n, out);
    case 4: return pack_bits_n<4>(codes, n, out);
    case 5: return pack_bits_n<5>(codes, n, out);
    case 6: return pack_bits_n<6>(codes, n, out);
    case 7: return pack_bits_n<7>(codes, n, out);
    default: std::memcpy(out, codes, static_cast<std::size_t>(n));
  }
}

inline void unpack_bits(const std::uint8_t* packed, std::ptrdiff_t n, int bits, std::uint8_t* codes,
                        bool sign_extend) {
  switch (bits) {
    case 1: return unpack_bits_n<1>(packed, n, codes, sign_extend);
    case 2: return unpack_bits_n<2>(packed, n, codes, sign_extend);
    case 3: return unpack_bits_n<3>(packed, n, codes, sign_extend);
    case 4: return unpack_bits_n<4>(packed, n, codes, sign_extend);
    case 5: return unpack_bits_n<5>(packed, n, codes, sign_extend);
    case 6: return unpack_bits_n<6>(packed, n, codes, sign_extend);
    case 7: return unpack_bits_n<7>(packed, n, codes, sign_extend);
    default: scalar::unpack_bits(packed, n, bits, codes, sign_extend);
  }
}

}  // namespace mixq::kernels::detail::neon
