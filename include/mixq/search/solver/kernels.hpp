#pragma once
/// @file
/// The solver's vector primitives, each with its scalar reference in the same function (simdjson's model: one
/// shape, per-ISA paths that give the same values): dp::rows and dp::min_sum, the DP tables' rows and the DP
/// fixing's sum-and-minimum (dp_bound.hpp, fixing.hpp); lpv::argmin2 and lpv::combine2_avx2, the value-only LP's
/// bracket pass and surrogate uses (lp_relaxation.hpp). AVX2 paths run when the kernels' dispatch has AVX2 or
/// AVX-512 active (dp::wide_rows(), read once per solve); SSE2 or NEON otherwise. Uses: mixq/kernels/dispatch.hpp
/// (the ISA and the target attributes) only.

#include <cstdint>
#include <cstddef>
#include <limits>

#include "mixq/kernels/dispatch.hpp"

namespace mixq::search::detail {

// DP rows (step 5): two primitives over rows of doubles, in explicit vector code (4 lanes with AVX2 when the
// kernels' dispatch has it active, 2 with SSE2 or NEON otherwise) so that the speed does not depend on the
// optimisation level. Every element gets the same additions and comparisons in any path, so the values are the same.
// `avx2` is read once per solve (wide_rows()) and passed down, not asked of the dispatch per row.
namespace dp {

/// True when the AVX2 rows may run: AVX2 or AVX-512 active in the kernels' dispatch (CPUID, MIXQ_FORCE_ISA).
inline bool wide_rows() {
#if defined(MIXQ_KERNELS_X86)
  const kernels::Isa isa = kernels::active_isa();
  return isa == kernels::Isa::avx2 || isa == kernels::Isa::avx512;
#else
  return false;
#endif
}

#if defined(MIXQ_KERNELS_X86)
MIXQ_TARGET_AVX2 inline std::int64_t rows_avx2(double* out, const double* in, std::int64_t lo, std::int64_t hi,
                                                const double* v, const std::int64_t* off, int m) {
  std::int64_t x = lo;
  for (; x + 16 <= hi; x += 16) {
    const __m256d v0 = _mm256_set1_pd(v[0]);
    const double* p = in + x + off[0];
    __m256d a0 = _mm256_add_pd(v0, _mm256_loadu_pd(p)), a1 = _mm256_add_pd(v0, _mm256_loadu_pd(p + 4));
    __m256d a2 = _mm256_add_pd(v0, _mm256_loadu_pd(p + 8)), a3 = _mm256_add_pd(v0, _mm256_loadu_pd(p + 12));
    for (int j = 1; j < m; ++j) {
      const __m256d vj = _mm256_set1_pd(v[j]);
      const double* q = in + x + off[j];
      a0 = _mm256_min_pd(_mm256_add_pd(vj, _mm256_loadu_pd(q)), a0);
      a1 = _mm256_min_pd(_mm256_add_pd(vj, _mm256_loadu_pd(q + 4)), a1);
      a2 = _mm256_min_pd(_mm256_add_pd(vj, _mm256_loadu_pd(q + 8)), a2);
      a3 = _mm256_min_pd(_mm256_add_pd(vj, _mm256_loadu_pd(q + 12)), a3);
    }
    _mm256_storeu_pd(out + x, a0);
    _mm256_storeu_pd(out + x + 4, a1);
    _mm256_storeu_pd(out + x + 8, a2);
    _mm256_storeu_pd(out + x + 12, a3);
  }
  for (; x + 4 <= hi; x += 4) {
    __m256d a = _mm256_add_pd(_mm256_set1_pd(v[0]), _mm256_loadu_pd(in + x + off[0]));
    for (int j = 1; j < m; ++j) a = _mm256_min_pd(_mm256_add_pd(_mm256_set1_pd(v[j]), _mm256_loadu_pd(in + x + off[j])), a);
    _mm256_storeu_pd(out + x, a);
  }
  return x;
}
MIXQ_TARGET_AVX2 inline std::int64_t min_sum_avx2(const double* a, const double* b, std::int64_t n, double& best) {
  __m256d m0 = _mm256_set1_pd(best), m1 = m0;
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    m0 = _mm256_min_pd(_mm256_add_pd(_mm256_loadu_pd(a + i), _mm256_loadu_pd(b + i)), m0);
    m1 = _mm256_min_pd(_mm256_add_pd(_mm256_loadu_pd(a + i + 4), _mm256_loadu_pd(b + i + 4)), m1);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_min_pd(m0, m1));
  for (double x : lanes) best = x < best ? x : best;
  return i;
}
#define MIXQ_DP_V2 __m128d
#define MIXQ_DP_SET1(x) _mm_set1_pd(x)
#define MIXQ_DP_LOAD(p) _mm_loadu_pd(p)
#define MIXQ_DP_STORE(p, x) _mm_storeu_pd(p, x)
#define MIXQ_DP_ADD(a, b) _mm_add_pd(a, b)
#define MIXQ_DP_MIN(a, b) _mm_min_pd(a, b)
#elif defined(MIXQ_KERNELS_NEON)
#define MIXQ_DP_V2 float64x2_t
#define MIXQ_DP_SET1(x) vdupq_n_f64(x)
#define MIXQ_DP_LOAD(p) vld1q_f64(p)
#define MIXQ_DP_STORE(p, x) vst1q_f64(p, x)
#define MIXQ_DP_ADD(a, b) vaddq_f64(a, b)
#define MIXQ_DP_MIN(a, b) vminq_f64(a, b)
#endif

/// out[x] = min over j < m of v[j] + in[x + off[j]], for lo <= x < hi (m >= 1). The terms are compared in the same
/// way in every path (no NaN can occur: entries are finite or +inf), so every path gives the same values.
inline void rows(double* __restrict out, const double* __restrict in, std::int64_t lo, std::int64_t hi, const double* v,
                 const std::int64_t* off, int m, bool avx2) {
  std::int64_t x = lo;
#if defined(MIXQ_KERNELS_X86)
  if (avx2) x = rows_avx2(out, in, lo, hi, v, off, m);
#else
  (void)avx2;
#endif
#if defined(MIXQ_DP_V2)
  for (; x + 2 <= hi; x += 2) {
    MIXQ_DP_V2 a = MIXQ_DP_ADD(MIXQ_DP_SET1(v[0]), MIXQ_DP_LOAD(in + x + off[0]));
    for (int j = 1; j < m; ++j) a = MIXQ_DP_MIN(MIXQ_DP_ADD(MIXQ_DP_SET1(v[j]), MIXQ_DP_LOAD(in + x + off[j])), a);
    MIXQ_DP_STORE(out + x, a);
  }
#endif
  for (; x < hi; ++x) {
    double a = v[0] + in[x + off[0]];
    for (int j = 1; j < m; ++j) {
      const double c = v[j] + in[x + off[j]];
      a = c < a ? c : a;
    }
    out[x] = a;
  }
}

/// min over i < n of a[i] + b[i] (+inf when n = 0). No NaN can occur: entries are finite or +inf.
inline double min_sum(const double* a, const double* b, std::int64_t n, bool avx2) {
  double best = std::numeric_limits<double>::infinity();
  std::int64_t i = 0;
#if defined(MIXQ_KERNELS_X86)
  if (avx2) i = min_sum_avx2(a, b, n, best);
#else
  (void)avx2;
#endif
#if defined(MIXQ_DP_V2)
  MIXQ_DP_V2 m = MIXQ_DP_SET1(best);
  for (; i + 2 <= n; i += 2) m = MIXQ_DP_MIN(MIXQ_DP_ADD(MIXQ_DP_LOAD(a + i), MIXQ_DP_LOAD(b + i)), m);
  double lanes[2];
  MIXQ_DP_STORE(lanes, m);
  for (double x : lanes) best = x < best ? x : best;
#endif
  for (; i < n; ++i) {
    const double c = a[i] + b[i];
    best = c < best ? c : best;
  }
  return best;
}

#undef MIXQ_DP_V2
#undef MIXQ_DP_SET1
#undef MIXQ_DP_LOAD
#undef MIXQ_DP_STORE
#undef MIXQ_DP_ADD
#undef MIXQ_DP_MIN

}  // namespace dp

// The bracket pass of the value-only LP (Engine::bracket_value): per class, the first option (in cost order)
// minimising c + lo * s, the first minimising c + hi * s, and the smallest s. The AVX2 path gives the same indices
// as the scalar loop: the products are rounded before the additions in both (an empty asm keeps the compiler from
// fusing them), each lane keeps its first minimum, and the lanes are reduced by (value, index).
namespace lpv {

/// Scalar reference: options b..e-1 (b < e).
inline double argmin2(const double* c, const double* s, int b, int e, double lo, double hi, int& il, int& ih) {
  il = ih = b;
  double tl = c[b] + lo * s[b], th = c[b] + hi * s[b], sm = s[b];
  for (int i = b + 1; i < e; ++i) {
    const double a = c[i] + lo * s[i], h = c[i] + hi * s[i];
    if (a < tl) { tl = a; il = i; }
    if (h < th) { th = h; ih = i; }
    sm = s[i] < sm ? s[i] : sm;
  }
  return sm;
}

#if defined(MIXQ_KERNELS_X86)
/// out[i] = w0 * a[i] + w1 * b[i] for i < n, 4 at a time (products rounded before the sum, as in the scalar loop).
MIXQ_TARGET_AVX2 inline std::size_t combine2_avx2(double* out, const double* a, const double* b, std::size_t n,
                                                  double w0, double w1) {
  const __m256d v0 = _mm256_set1_pd(w0), v1 = _mm256_set1_pd(w1);
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m256d p = _mm256_mul_pd(v0, _mm256_loadu_pd(a + i)), q = _mm256_mul_pd(v1, _mm256_loadu_pd(b + i));
    __asm__("" : "+x"(p), "+x"(q));
    _mm256_storeu_pd(out + i, _mm256_add_pd(p, q));
  }
  return i;
}

MIXQ_TARGET_AVX2 inline double argmin2_avx2(const double* c, const double* s, int b, int e, double lo, double hi,
                                            int& il, int& ih) {
  const __m256d vlo = _mm256_set1_pd(lo), vhi = _mm256_set1_pd(hi), four = _mm256_set1_pd(4.0);
  __m256d idx = _mm256_setr_pd(b, b + 1, b + 2, b + 3);
  __m256d vc = _mm256_loadu_pd(c + b), vs = _mm256_loadu_pd(s + b);
  __m256d pl = _mm256_mul_pd(vlo, vs), ph = _mm256_mul_pd(vhi, vs);
  __asm__("" : "+x"(pl), "+x"(ph));
  __m256d bl = _mm256_add_pd(vc, pl), bh = _mm256_add_pd(vc, ph), il4 = idx, ih4 = idx, sm = vs;
  int i = b + 4;
  for (; i + 4 <= e; i += 4) {
    idx = _mm256_add_pd(idx, four);
    vc = _mm256_loadu_pd(c + i);
    vs = _mm256_loadu_pd(s + i);
    pl = _mm256_mul_pd(vlo, vs);
    ph = _mm256_mul_pd(vhi, vs);
    __asm__("" : "+x"(pl), "+x"(ph));
    const __m256d tl = _mm256_add_pd(vc, pl), th = _mm256_add_pd(vc, ph);
    const __m256d ml = _mm256_cmp_pd(tl, bl, _CMP_LT_OQ), mh = _mm256_cmp_pd(th, bh, _CMP_LT_OQ);
    bl = _mm256_blendv_pd(bl, tl, ml);
    il4 = _mm256_blendv_pd(il4, idx, ml);
    bh = _mm256_blendv_pd(bh, th, mh);
    ih4 = _mm256_blendv_pd(ih4, idx, mh);
    sm = _mm256_min_pd(vs, sm);
  }
  alignas(32) double v[4], x[4], w[4], y[4], z[4];
  _mm256_store_pd(v, bl);
  _mm256_store_pd(x, il4);
  _mm256_store_pd(w, bh);
  _mm256_store_pd(y, ih4);
  _mm256_store_pd(z, sm);
  double tl = v[0], th = w[0], smin = z[0], fl = x[0], fh = y[0];
  for (int l = 1; l < 4; ++l) {
    if (v[l] < tl || (v[l] == tl && x[l] < fl)) { tl = v[l]; fl = x[l]; }
    if (w[l] < th || (w[l] == th && y[l] < fh)) { th = w[l]; fh = y[l]; }
    smin = z[l] < smin ? z[l] : smin;
  }
  il = static_cast<int>(fl);
  ih = static_cast<int>(fh);
  for (; i < e; ++i) {
    double pa = lo * s[i], pb = hi * s[i];
    __asm__("" : "+x"(pa), "+x"(pb));
    const double a = c[i] + pa, h = c[i] + pb;
    if (a < tl) { tl = a; il = i; }
    if (h < th) { th = h; ih = i; }
    smin = s[i] < smin ? s[i] : smin;
  }
  return smin;
}
#endif

}  // namespace lpv

}  // namespace mixq::search::detail
