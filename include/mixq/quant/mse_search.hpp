#pragma once
/// @file
/// The p-norm clipping search behind MseObserver (quant/observers.hpp): the range [alpha lo, alpha hi] whose fake
/// quantization minimises ||x - fq(x)||_p^p over the finite values of a tensor or group (detail::mse_search), and
/// what it is built from: finite ranges, the vectorisable p-norm error through the fake_quant kernel,
/// histograms and stratified samples (also used by PercentileObserver).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "mixq/kernels.hpp"
#include "mixq/quant/spec.hpp"

namespace mixq {
/// Options of MseObserver's clipping search (detail::mse_search); the defaults meet the goal of
/// docs/PERFORMANCE.md ("Quantizers").
struct MseSearchOptions {
  float p = 2.0f;                          ///< the norm's exponent, in [1, 3]
  int grid = 100;                          ///< coarse candidates alpha = k / grid, k = 1..grid
  int bins = 1024;                         ///< histogram bins of the coarse stage (large inputs)
  int refine_steps = 3;                    ///< golden-section evaluations of the fine stage
  std::int64_t exact_coarse_limit = 4096;  ///< inputs up to this size run the coarse grid exactly
  std::int64_t sample_size = 32768;        ///< larger inputs are searched on a stratified sample (0: never)
  /// Per channel or group (more than one group): the coarse grid runs on a histogram of group_size / 32 bins
  /// (MseObserver::group_options) instead of exactly; false: as per tensor (exact up to exact_coarse_limit).
  bool group_histogram = true;
};

namespace detail {

inline bool is_finite_value(float v) { return std::fabs(v) <= std::numeric_limits<float>::max(); }

/// Min and max of the finite values of x[0..n); lo > hi when there is none.
struct FiniteRange {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  bool empty() const { return !(lo <= hi); }
  void merge(const FiniteRange& o) {
    lo = std::min(lo, o.lo);
    hi = std::max(hi, o.hi);
  }
};

inline FiniteRange finite_range(const float* x, std::int64_t n) {
  FiniteRange r;
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  if (n >= 32) {  // SIMD kernel (ignores NaN); fall back to a finite-only scan when it met an infinity
    const kernels::MinMax m = kernels::minmax(x, static_cast<std::ptrdiff_t>(n));
    if (is_finite_value(m.min) && is_finite_value(m.max)) {
      r.lo = m.min;
      r.hi = m.max;
      return r;
    }
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (!is_finite_value(v)) continue;
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  r.lo = lo;
  r.hi = hi;
  return r;
}

/// d^q for finite d >= 0 and q in [-1, 1.2] (p - 2 for p in [1, 3.2]), as 2^(q log2 d) with a polynomial
/// log2 (atanh series) and exp2 (Taylor): relative error below 1e-5. Branch- and select-free so that loops
/// over it vectorise at the baseline ISA. d is nudged by 1e-30 so that d = 0 stays finite (callers multiply
/// by d^2).
inline float pow_small_exponent(float d, float q) {
  d = d + 1e-30f;
  std::uint32_t bits;
  std::memcpy(&bits, &d, 4);
  const float e = static_cast<float>(static_cast<std::int32_t>(bits >> 23) - 127);
  const std::uint32_t mbits = (bits & 0x007fffffu) | 0x3f800000u;
  float m;
  std::memcpy(&m, &mbits, 4);
  const float t = (m - 1.0f) / (m + 1.0f);  // log2(m) = 2/ln2 * atanh(t), m in [1, 2)
  const float t2 = t * t;
  const float log2m =
      t * (2.8853900818f + t2 * (0.9617966939f + t2 * (0.5770780164f + t2 * (0.4121985831f + t2 * 0.3205988979f))));
  const float y = q * (e + log2m);
  const auto yt = static_cast<std::int32_t>(y);
  const std::int32_t yi = yt - static_cast<std::int32_t>(static_cast<float>(yt) > y);  // floor(y)
  const float f = (y - static_cast<float>(yi)) * 0.6931471806f;                          // 2^(y - yi) = e^f
  const float ef =
      1.0f + f * (1.0f + f * (0.5f + f * (0.1666666667f + f * (0.0416666667f + f * (0.0083333333f + f * 0.0013888889f)))));
  const std::uint32_t sbits = static_cast<std::uint32_t>(yi + 127) << 23;
  float sc;
  std::memcpy(&sc, &sbits, 4);
  return ef * sc;
}

/// |x - y| * inv_norm, or 0 where x is NaN or +-Inf (a bit mask, not a branch).
inline float masked_distance(float xv, float yv, float inv_norm) {
  float d = std::fabs(xv - yv) * inv_norm;
  std::uint32_t db, xb;
  std::memcpy(&db, &d, 4);
  std::memcpy(&xb, &xv, 4);
  const auto finite = static_cast<std::uint32_t>((xb & 0x7f800000u) != 0x7f800000u);
  db &= 0u - finite;
  std::memcpy(&d, &db, 4);
  return d;
}

/// sum over i of w_i * (|x[i] - y[i]| * inv_norm)^p over the finite x[i] (w_i = 1 when w is null), p in
/// [1, 3.2]. Eight float accumulators per block of 1024 elements, blocks summed in double.
template <bool Square, bool Weighted>
inline double lp_error_impl(const float* x, const float* y, const float* w, std::int64_t n, float q, float inv_norm) {
  double total = 0.0;
  constexpr std::int64_t block = 1024;
  for (std::int64_t b = 0; b < n; b += block) {
    const std::int64_t m = std::min(block, n - b);
    float acc[8] = {};
    std::int64_t i = 0;
    for (; i + 8 <= m; i += 8)
      for (int j = 0; j < 8; ++j) {
        const float d = masked_distance(x[b + i + j], y[b + i + j], inv_norm);
        float e = d * d;
        if (!Square) e *= pow_small_exponent(d, q);
        if (Weighted) e *= w[b + i + j];
        acc[j] += e;
      }
    double part = 0.0;
    for (; i < m; ++i) {
      const float d = masked_distance(x[b + i], y[b + i], inv_norm);
      float e = d * d;
      if (!Square) e *= pow_small_exponent(d, q);
      if (Weighted) e *= w[b + i];
      part += e;
    }
    for (int j = 0; j < 8; ++j) part += acc[j];
    total += part;
  }
  return total;
}

/// sum over i of w_i * (|x[i] - y[i]| * inv_norm)^p over the finite x[i] (w_i = 1 when w is null).
inline double lp_error(const float* x, const float* y, const float* w, std::int64_t n, float p, float inv_norm) {
  const float q = p - 2.0f;
  if (p == 2.0f)
    return w ? lp_error_impl<true, true>(x, y, w, n, q, inv_norm) : lp_error_impl<true, false>(x, y, w, n, q, inv_norm);
  return w ? lp_error_impl<false, true>(x, y, w, n, q, inv_norm) : lp_error_impl<false, false>(x, y, w, n, q, inv_norm);
}

/// ||x - fq(x)||_p^p / norm^p over the finite values of x[0..n), computed chunk by chunk with the SIMD
/// fake_quant kernel (one read of x, no full-size temporary).
inline double fake_quant_error(const float* x, std::int64_t n, const QuantParams& qp, const QuantSpec& spec, float p,
                               float inv_norm) {
  constexpr std::int64_t chunk = 2048;
  float y[chunk];
  double total = 0.0;
  for (std::int64_t i = 0; i < n; i += chunk) {
    const std::int64_t m = std::min(chunk, n - i);
    kernels::fake_quant(x + i, y, static_cast<std::ptrdiff_t>(m), qp.scale, qp.zero_point, spec.qmin(), spec.qmax());
    total += lp_error(x + i, y, nullptr, m, p, inv_norm);
  }
  return total;
}

/// Histogram of the finite values of x over [lo, hi]: per-bin count and sum (for the centroid).
struct Histogram {
  float lo = 0.0f, width = 1.0f;
  std::vector<float> count;
  std::vector<double> sum;
  double total = 0.0;
};

inline Histogram build_histogram(const float* x, std::int64_t n, float lo, float hi, int bins, bool absolute) {
  Histogram h;
  h.lo = lo;
  h.width = hi > lo ? (hi - lo) / static_cast<float>(bins) : 1.0f;
  h.count.assign(static_cast<std::size_t>(bins), 0.0f);
  h.sum.assign(static_cast<std::size_t>(bins), 0.0);
  std::vector<std::int32_t> cnt(static_cast<std::size_t>(bins), 0);
  std::vector<float> sum(static_cast<std::size_t>(bins), 0.0f);
  const float inv_w = 1.0f / h.width;
  const float top = static_cast<float>(bins - 1);
  constexpr std::int64_t block = 1 << 14;  // float bin sums, flushed to double
  for (std::int64_t b = 0; b < n; b += block) {
    const std::int64_t m = std::min(block, n - b);
    for (std::int64_t i = b; i < b + m; ++i) {
      float v = x[i];
      if (!is_finite_value(v)) continue;
      if (absolute) v = std::fabs(v);
      float f = (v - lo) * inv_w;
      f = f < 0.0f ? 0.0f : (f > top ? top : f);
      const auto k = static_cast<std::size_t>(static_cast<std::int32_t>(f));
      ++cnt[k];
      sum[k] += v;
    }
    for (std::size_t k = 0; k < sum.size(); ++k) h.sum[k] += sum[k], sum[k] = 0.0f;
  }
  for (std::size_t k = 0; k < cnt.size(); ++k) {
    h.count[k] = static_cast<float>(cnt[k]);
    h.total += cnt[k];
  }
  return h;
}

/// A jittered stratified sample of `count` elements of x[0..n) (count <= n): one element, picked by a fixed
/// hash (deterministic), from each of `count` equal blocks.
inline void stratified_sample(const float* x, std::int64_t n, std::int64_t count, std::vector<float>& out) {
  out.resize(static_cast<std::size_t>(count));
  for (std::int64_t k = 0; k < count; ++k) {
    const auto begin = static_cast<std::int64_t>(static_cast<double>(k) * static_cast<double>(n) / static_cast<double>(count));
    const auto end = static_cast<std::int64_t>(static_cast<double>(k + 1) * static_cast<double>(n) / static_cast<double>(count));
    const std::uint32_t h = static_cast<std::uint32_t>(k) * 2654435761u;
    const std::int64_t span = std::max<std::int64_t>(end - begin, 1);
    const std::int64_t i = begin + static_cast<std::int64_t>((h >> 8) % static_cast<std::uint32_t>(span));
    out[static_cast<std::size_t>(k)] = x[std::min(i, n - 1)];
  }
}

/// The value below which a fraction q of the histogram's mass lies (linear inside a bin).
inline double histogram_quantile(const Histogram& h, double q) {
  const double target = q * h.total;
  double cum = 0.0;
  for (std::size_t k = 0; k < h.count.size(); ++k) {
    const double c = h.count[k];
    if (c > 0.0 && cum + c >= target) {
      const double frac = std::clamp((target - cum) / c, 0.0, 1.0);
      return h.lo + (static_cast<double>(k) + frac) * h.width;
    }
    cum += c;
  }
  return h.lo + static_cast<double>(h.count.size()) * h.width;
}


/// The clipping range [alpha * lo, alpha * hi] (alpha in (0, 1], [lo, hi] the finite range r of x) whose fake
/// quantization minimises the p-norm error over the finite values of x[0..n). Inputs larger than
/// opt.sample_size are searched on a jittered stratified sample of that size. Coarse: `grid` candidates, on a
/// histogram (bin centroids weighted by counts, through the fake_quant kernel) for large inputs, exactly for
/// small ones. Fine: the exact error (SIMD fake_quant, chunked) at the best coarse candidate and its
/// neighbours, then a golden-section search between them. alpha = 1 (MinMax) is always evaluated, so the
/// result is never worse than MinMax on the searched data (the whole input when it is not sampled). Writes
/// the searched error (normalised by max|x|) to *error and the number of exact evaluations to *evaluations.
inline FiniteRange mse_search(const float* x_in, std::int64_t n_in, const FiniteRange& r, const QuantSpec& spec,
                              const MseSearchOptions& opt, double* error = nullptr, int* evaluations = nullptr) {
  const auto amax = static_cast<float>(std::max(std::fabs(r.lo), std::fabs(r.hi)));
  FiniteRange out = r;
  if (!(amax > 0.0f)) {
    if (error) *error = 0.0;
    if (evaluations) *evaluations = 0;
    return out;
  }
  const float inv_norm = 1.0f / amax;
  const float p = opt.p;
  int evals = 0;
  auto params_at = [&](double a) { return params_from_range(spec, a * r.lo, a * r.hi); };
  // The searched data: all of x, or (large inputs) a weighted stratified sample of the body plus every
  // element of the tail (|x| above the sample's 1 - 1/4096 quantile), so that rare outliers, which decide the
  // clipping error at high bit-widths, are counted exactly.
  const float* x = x_in;
  std::int64_t n = n_in;
  std::vector<float> body, tail;
  double body_weight = 1.0;
  const bool sampled = opt.sample_size > 0 && n_in > opt.sample_size;
  if (sampled) {
    stratified_sample(x_in, n_in, opt.sample_size, body);
    std::vector<float> mags;
    mags.reserve(body.size());
    for (float v : body)
      if (is_finite_value(v)) mags.push_back(std::fabs(v));
    float t = amax;
    if (!mags.empty()) {
      const std::size_t kq = mags.size() - 1 - mags.size() / 4096;
      std::nth_element(mags.begin(), mags.begin() + static_cast<std::ptrdiff_t>(kq), mags.end());
      t = mags[kq];
    }
    std::int64_t nonfinite = 0;  // +-Inf only: NaN is skipped by the SIMD min/max and counts as body
    constexpr std::int64_t block = 256;
    for (std::int64_t b = 0; b < n_in; b += block) {
      const std::int64_t m = std::min(block, n_in - b);
      const kernels::MinMax mm = kernels::minmax(x_in + b, static_cast<std::ptrdiff_t>(m));
      if (mm.min >= -t && mm.max <= t) continue;  // the SIMD scan proves the block has no tail element
      for (std::int64_t i = b; i < b + m; ++i) {
        const float v = x_in[i];
        if (std::fabs(v) > t) {
          if (is_finite_value(v)) tail.push_back(v);
          else ++nonfinite;
        }
      }
    }
    std::size_t kept = 0;
    for (float v : body)
      if (std::fabs(v) <= t) body[kept++] = v;
    body.resize(kept);
    const double body_total = static_cast<double>(n_in - nonfinite) - static_cast<double>(tail.size());
    body_weight = body.empty() ? 0.0 : body_total / static_cast<double>(body.size());
    x = body.data();
    n = static_cast<std::int64_t>(body.size());
  }
  auto exact = [&](double a) {
    ++evals;
    const QuantParams qp = params_at(a);
    double e = fake_quant_error(x, n, qp, spec, p, inv_norm);
    if (sampled) e = body_weight * e + fake_quant_error(tail.data(), static_cast<std::int64_t>(tail.size()), qp, spec, p, inv_norm);
    return e;
  };
  const int K = std::max(opt.grid, 2);
  std::vector<double> coarse(static_cast<std::size_t>(K) + 1, std::numeric_limits<double>::infinity());
  const bool exact_coarse = !sampled && n <= opt.exact_coarse_limit;
  if (exact_coarse) {
    for (int k = 1; k <= K; ++k) coarse[static_cast<std::size_t>(k)] = exact(static_cast<double>(k) / K);
  } else {
    Histogram h = build_histogram(x, n, static_cast<float>(r.lo), static_cast<float>(r.hi), opt.bins, false);
    std::vector<double> wsum(h.count.size()), wcount(h.count.size());
    for (std::size_t b = 0; b < h.count.size(); ++b) wsum[b] = h.sum[b] * body_weight, wcount[b] = h.count[b] * body_weight;
    const double inv_width = 1.0 / h.width, top = static_cast<double>(h.count.size() - 1);
    for (float v : tail) {  // tail elements join the bins with weight 1
      const auto b = static_cast<std::size_t>(std::clamp((v - h.lo) * inv_width, 0.0, top));
      wsum[b] += v, wcount[b] += 1.0;
    }
    std::vector<float> centers, weights, y;
    for (std::size_t b = 0; b < wcount.size(); ++b)
      if (wcount[b] > 0.0) {
        centers.push_back(static_cast<float>(wsum[b] / wcount[b]));
        weights.push_back(static_cast<float>(wcount[b]));
      }
    y.resize(centers.size());
    const auto m = static_cast<std::int64_t>(centers.size());
    for (int k = 1; k <= K; ++k) {
      const QuantParams qp = params_at(static_cast<double>(k) / K);
      kernels::fake_quant(centers.data(), y.data(), static_cast<std::ptrdiff_t>(m), qp.scale, qp.zero_point,
                          spec.qmin(), spec.qmax());
      coarse[static_cast<std::size_t>(k)] = lp_error(centers.data(), y.data(), weights.data(), m, p, inv_norm);
    }
  }
  int kbest = 1;
  for (int k = 2; k <= K; ++k)
    if (coarse[static_cast<std::size_t>(k)] < coarse[static_cast<std::size_t>(kbest)]) kbest = k;
  double best_a = 1.0, best_e = exact_coarse ? coarse[static_cast<std::size_t>(K)] : exact(1.0);
  auto consider = [&](double a, double e) {
    if (e < best_e) best_a = a, best_e = e;
  };
  for (int k = std::max(1, kbest - 1); k <= std::min(K, kbest + 1); ++k) {
    if (k == K && !exact_coarse) continue;  // alpha = 1 is already evaluated
    const double a = static_cast<double>(k) / K;
    consider(a, exact_coarse ? coarse[static_cast<std::size_t>(k)] : exact(a));
  }
  // golden-section on [best - 1/K, best + 1/K]
  double lo_a = std::max(best_a - 1.0 / K, 0.5 / K), hi_a = std::min(best_a + 1.0 / K, 1.0);
  const double g = 0.6180339887498949;
  double a1 = hi_a - g * (hi_a - lo_a), a2 = lo_a + g * (hi_a - lo_a);
  double e1 = 0.0, e2 = 0.0;
  for (int s = 0; s < opt.refine_steps; ++s) {
    if (s == 0) {
      e1 = exact(a1), consider(a1, e1);
      e2 = exact(a2), consider(a2, e2);
      ++s;
      continue;
    }
    if (e1 < e2) {
      hi_a = a2, a2 = a1, e2 = e1;
      a1 = hi_a - g * (hi_a - lo_a);
      e1 = exact(a1), consider(a1, e1);
    } else {
      lo_a = a1, a1 = a2, e1 = e2;
      a2 = lo_a + g * (hi_a - lo_a);
      e2 = exact(a2), consider(a2, e2);
    }
  }
  out.lo = best_a * r.lo;
  out.hi = best_a * r.hi;
  if (error) *error = best_e;
  if (evaluations) *evaluations = evals;
  return out;
}

}  // namespace detail

}  // namespace mixq
