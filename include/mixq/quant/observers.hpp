#pragma once
/// @file
/// Observers: they watch calibration tensors and turn what they saw into scales and zero points, one per
/// quantization group of their QuantSpec (per tensor, per channel or per group). MinMaxObserver,
/// EmaMinMaxObserver (moving average with a momentum), PercentileObserver (histogram based) and MseObserver
/// (clipping range minimising ||x - fq(x)||_p^p, p = 2 or 2.4 as in BRECQ and MRECG).
///
/// Non-finite values: every observer skips NaN and +-Inf. A channel (or the tensor) that has seen no finite
/// value makes params() throw mixq::error saying so. An empty tensor makes observe() throw. An all-equal
/// tensor gets the scale rule of params_from_range(): never 0, subnormal or Inf.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "mixq/detail/eigen.hpp"

#include "mixq/error.hpp"
#include "mixq/kernels.hpp"
#include "mixq/quant/layout.hpp"
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

/// Calls f(pointer, length) for each contiguous run of channel c of a layout.
template <class F>
inline void for_each_segment(const float* x, const ChannelLayout& l, std::int64_t c, F&& f) {
  for (std::int64_t o = 0; o < l.outer; ++o) f(x + (o * l.channels + c) * l.inner, l.inner);
}

/// Channel c's elements, contiguous: a pointer into x when the layout has outer == 1, else a copy in buf.
inline const float* channel_data(const float* x, const ChannelLayout& l, std::int64_t c, std::vector<float>& buf) {
  if (l.outer == 1) return x + c * l.inner;
  buf.resize(static_cast<std::size_t>(l.per_channel()));
  float* out = buf.data();
  for_each_segment(x, l, c, [&](const float* p, std::int64_t n) {
    std::copy(p, p + n, out);
    out += n;
  });
  return buf.data();
}

inline Shape eigen_shape(Eigen::Index rows, Eigen::Index cols) { return {static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols)}; }

template <class Dims>
inline Shape tensor_shape(const Dims& d) {
  Shape s;
  for (std::size_t i = 0; i < static_cast<std::size_t>(d.size()); ++i) s.push_back(static_cast<std::int64_t>(d[i]));
  return s;
}

/// Eigen tensors: Eigen::Tensor and TensorMap of any scalar, rank and layout (the arguments the quant layer's
/// tensor overloads take; rank: the number of dimensions).
template <class T>
struct eigen_tensor : std::false_type {};
template <class S, int N, int O, class I>
struct eigen_tensor<Eigen::Tensor<S, N, O, I>> : std::true_type {
  using scalar = std::remove_const_t<S>;
  static constexpr int rank = N;
  static constexpr bool row_major = (O & Eigen::RowMajor) != 0;
};
template <class P, int O, template <class> class MP>
struct eigen_tensor<Eigen::TensorMap<P, O, MP>> : eigen_tensor<std::remove_const_t<P>> {};
template <class T>
inline constexpr bool is_eigen_tensor_v = eigen_tensor<std::remove_cv_t<std::remove_reference_t<T>>>::value;

/// Checks at compile time that an Eigen tensor argument is one the quant layer reads in place: row-major floats
/// (Eigen::Tensor<float, N, Eigen::RowMajor>, or a TensorMap of one, const or not, as SafetensorsFile::read_tensor
/// and FloatTensor::tensor return). Returns its rank.
template <class T>
constexpr int row_major_float_rank() {
  using E = eigen_tensor<std::remove_cv_t<std::remove_reference_t<T>>>;
  static_assert(std::is_same_v<typename E::scalar, float>, "mixq: the Eigen tensor must hold float");
  static_assert(E::row_major, "mixq: the Eigen tensor must be row-major (Eigen::RowMajor); mixq's tensors are "
                              "row-major (NCHW, [Cout, ...]), use .swap_layout() or copy into a RowMajor tensor");
  return E::rank;
}

/// A row-major 2-D Ref as a contiguous pointer (copying into buf when rows are strided).
inline const float* contiguous(const Eigen::Ref<const RowMajorArrayXXf>& x, RowMajorArrayXXf& buf) {
  if (x.rows() <= 1 || x.outerStride() == x.cols()) return x.data();
  buf = x;
  return buf.data();
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

/// What every observer shares: its QuantSpec, the check that every observed tensor has the same number of
/// quantization groups, and the Eigen entry points. Derived classes implement observe_channels() and
/// channel_range().
template <class Derived>
class ObserverBase {
 public:
  explicit ObserverBase(const QuantSpec& spec) : spec_(spec) { spec_.validate(); }

  /// The spec the observer computes parameters for.
  const QuantSpec& spec() const { return spec_; }
  /// Quantization groups seen so far (0 before the first observe()).
  std::int64_t num_channels() const { return channels_; }
  /// Tensors observed since construction or reset().
  std::int64_t num_batches() const { return batches_; }

  /// Observes a row-major tensor of `shape`. Throws mixq::error for an empty tensor, a wrong axis, or a
  /// channel count that differs from the previous calls'.
  void observe(const float* x, const Shape& shape) {
    const ChannelLayout l = channel_layout(spec_, shape);
    if (l.numel() == 0) detail::fail(Derived::name, ": cannot observe an empty tensor");
    if (x == nullptr) detail::fail(Derived::name, ": x must not be null");
    if (channels_ != 0 && l.channels != channels_)
      detail::fail(Derived::name, ": this tensor has ", l.channels, " quantization groups, earlier ones had ", channels_);
    if (channels_ == 0) static_cast<Derived*>(this)->start(l.channels);
    channels_ = l.channels;
    static_cast<Derived*>(this)->observe_channels(x, l);
    ++batches_;
  }
  /// Observes a row-major 2-D array (weights [Cout, K], activations [N, features]).
  void observe(const Eigen::Ref<const RowMajorArrayXXf>& x) {
    RowMajorArrayXXf buf;
    observe(detail::contiguous(x, buf), detail::eigen_shape(x.rows(), x.cols()));
  }
  /// Observes a row-major tensor (activations NCHW, weights [Cout, Cin, kh, kw]): an
  /// Eigen::Tensor<float, N, Eigen::RowMajor> or a TensorMap of one, const or not.
  template <class T, std::enable_if_t<detail::is_eigen_tensor_v<T>, int> = 0>
  void observe(const T& x) {
    (void)detail::row_major_float_rank<T>();
    observe(x.data(), detail::tensor_shape(x.dimensions()));
  }

  /// The calibration range of every quantization group. Throws mixq::error before any observe() and for a
  /// group that has seen no finite value.
  std::vector<detail::FiniteRange> ranges() const {
    if (batches_ == 0) detail::fail(Derived::name, ": no tensor observed yet");
    std::vector<detail::FiniteRange> out(static_cast<std::size_t>(channels_));
    for (std::int64_t c = 0; c < channels_; ++c) {
      out[static_cast<std::size_t>(c)] = static_cast<const Derived*>(this)->channel_range(c);
      if (out[static_cast<std::size_t>(c)].empty()) {
        if (channels_ == 1) detail::fail(Derived::name, ": no finite value observed (all NaN or Inf)");
        detail::fail(Derived::name, ": quantization group ", c, " has no finite value (all NaN or Inf)");
      }
    }
    return out;
  }
  /// One scale and zero point per quantization group (params_from_range() of each range).
  std::vector<QuantParams> params() const {
    std::vector<QuantParams> out;
    for (const detail::FiniteRange& r : ranges()) out.push_back(params_from_range(spec_, r.lo, r.hi));
    return out;
  }
  /// Forgets everything observed.
  void reset() {
    channels_ = 0;
    batches_ = 0;
  }

 protected:
  QuantSpec spec_;
  std::int64_t channels_ = 0;
  std::int64_t batches_ = 0;
};

/// Running min and max of every quantization group over all observed tensors.
class MinMaxObserver : public ObserverBase<MinMaxObserver> {
 public:
  static constexpr const char* name = "MinMaxObserver";
  explicit MinMaxObserver(const QuantSpec& spec) : ObserverBase(spec) {}

  void start(std::int64_t channels) { range_.assign(static_cast<std::size_t>(channels), {}); }
  void observe_channels(const float* x, const ChannelLayout& l) {
    for (std::int64_t c = 0; c < l.channels; ++c)
      detail::for_each_segment(x, l, c, [&](const float* p, std::int64_t n) {
        range_[static_cast<std::size_t>(c)].merge(detail::finite_range(p, n));
      });
  }
  detail::FiniteRange channel_range(std::int64_t c) const { return range_[static_cast<std::size_t>(c)]; }

 private:
  std::vector<detail::FiniteRange> range_;
};

/// Exponential moving average of every group's per-tensor min and max: the first tensor sets them, each next
/// one gives min = momentum * min + (1 - momentum) * batch_min (same for max). A tensor in which a group has
/// no finite value leaves that group unchanged.
class EmaMinMaxObserver : public ObserverBase<EmaMinMaxObserver> {
 public:
  static constexpr const char* name = "EmaMinMaxObserver";
  /// @param momentum weight of the running value, in [0, 1) (0.9 by default; PyTorch's averaging constant
  /// 0.01 is momentum 0.99).
  explicit EmaMinMaxObserver(const QuantSpec& spec, double momentum = 0.9) : ObserverBase(spec), momentum_(momentum) {
    if (!(momentum >= 0.0 && momentum < 1.0)) detail::fail("EmaMinMaxObserver: momentum must be in [0, 1), got ", momentum);
  }
  double momentum() const { return momentum_; }

  void start(std::int64_t channels) {
    lo_.assign(static_cast<std::size_t>(channels), 0.0);
    hi_.assign(static_cast<std::size_t>(channels), 0.0);
    seen_.assign(static_cast<std::size_t>(channels), 0);
  }
  void observe_channels(const float* x, const ChannelLayout& l) {
    for (std::int64_t c = 0; c < l.channels; ++c) {
      detail::FiniteRange r;
      detail::for_each_segment(x, l, c, [&](const float* p, std::int64_t n) { r.merge(detail::finite_range(p, n)); });
      if (r.empty()) continue;
      const auto i = static_cast<std::size_t>(c);
      if (!seen_[i]) {
        lo_[i] = r.lo, hi_[i] = r.hi, seen_[i] = 1;
      } else {
        lo_[i] = momentum_ * lo_[i] + (1.0 - momentum_) * r.lo;
        hi_[i] = momentum_ * hi_[i] + (1.0 - momentum_) * r.hi;
      }
    }
  }
  detail::FiniteRange channel_range(std::int64_t c) const {
    const auto i = static_cast<std::size_t>(c);
    detail::FiniteRange r;
    if (seen_[i]) r.lo = lo_[i], r.hi = hi_[i];
    return r;
  }

 private:
  double momentum_;
  std::vector<double> lo_, hi_;
  std::vector<char> seen_;
};

namespace detail {

/// Per-channel ranges averaged over the tensors observed (PercentileObserver, MseObserver): a channel no tensor
/// had a finite value in stays empty.
struct AveragedRanges {
  std::vector<double> lo_sum, hi_sum;
  std::vector<std::int64_t> seen;
  void start(std::int64_t channels) {
    lo_sum.assign(static_cast<std::size_t>(channels), 0.0);
    hi_sum.assign(static_cast<std::size_t>(channels), 0.0);
    seen.assign(static_cast<std::size_t>(channels), 0);
  }
  void add(std::int64_t c, double lo, double hi) {
    const auto i = static_cast<std::size_t>(c);
    lo_sum[i] += lo, hi_sum[i] += hi, ++seen[i];
  }
  FiniteRange range(std::int64_t c) const {
    const auto i = static_cast<std::size_t>(c);
    FiniteRange r;
    if (seen[i] > 0) r.lo = lo_sum[i] / static_cast<double>(seen[i]), r.hi = hi_sum[i] / static_cast<double>(seen[i]);
    return r;
  }
};

}  // namespace detail

/// Percentile clipping from a histogram (2048 bins by default) of each tensor: signed symmetric specs clip at
/// the `percentile`-th percentile of |x|; the others at the (100 - percentile)-th and percentile-th
/// percentiles of x (linear interpolation inside a bin). Over several tensors, the ranges are averaged.
class PercentileObserver : public ObserverBase<PercentileObserver> {
 public:
  static constexpr const char* name = "PercentileObserver";
  /// @param percentile in (0, 100], e.g. 99.99; @param bins histogram bins, >= 16.
  explicit PercentileObserver(const QuantSpec& spec, double percentile = 99.99, int bins = 2048)
      : ObserverBase(spec), percentile_(percentile), bins_(bins) {
    if (!(percentile > 0.0 && percentile <= 100.0))
      detail::fail("PercentileObserver: percentile must be in (0, 100], got ", percentile);
    if (bins < 16 || bins > (1 << 24)) detail::fail("PercentileObserver: bins must be in [16, 2^24], got ", bins);
  }
  double percentile() const { return percentile_; }

  void start(std::int64_t channels) { ranges_.start(channels); }
  void observe_channels(const float* x, const ChannelLayout& l) {
    std::vector<float> buf;
    const double q = percentile_ / 100.0;
    for (std::int64_t c = 0; c < l.channels; ++c) {
      const float* d = detail::channel_data(x, l, c, buf);
      const std::int64_t n = l.per_channel();
      const detail::FiniteRange r = detail::finite_range(d, n);
      if (r.empty()) continue;
      double lo, hi;
      if (spec_.is_signed && spec_.symmetric) {
        const auto amax = static_cast<float>(std::max(std::fabs(r.lo), std::fabs(r.hi)));
        const detail::Histogram h = detail::build_histogram(d, n, 0.0f, amax, bins_, true);
        hi = std::min<double>(detail::histogram_quantile(h, q), amax);
        lo = -hi;
      } else {
        const detail::Histogram h =
            detail::build_histogram(d, n, static_cast<float>(r.lo), static_cast<float>(r.hi), bins_, false);
        lo = std::max<double>(detail::histogram_quantile(h, 1.0 - q), r.lo);
        hi = std::min<double>(detail::histogram_quantile(h, q), r.hi);
        if (lo > hi) lo = hi;
      }
      ranges_.add(c, lo, hi);
    }
  }
  detail::FiniteRange channel_range(std::int64_t c) const { return ranges_.range(c); }

 private:
  double percentile_;
  int bins_;
  detail::AveragedRanges ranges_;
};

/// MSE-optimal clipping: per tensor (and per group) the range [alpha * min, alpha * max], alpha in (0, 1], that
/// minimises ||x - fq(x)||_p^p for the observer's spec (p = 2, or p = 2.4 as in BRECQ and MRECG), found by a
/// coarse-to-fine search built on the fake_quant kernel (detail::mse_search). Never worse than MinMax in that
/// norm on the tensor searched. Over several tensors, the ranges are averaged.
class MseObserver : public ObserverBase<MseObserver> {
 public:
  static constexpr const char* name = "MseObserver";
  /// @param p the norm's exponent, in [1, 3] (2 or 2.4 in practice).
  explicit MseObserver(const QuantSpec& spec, float p = 2.0f, MseSearchOptions options = {})
      : ObserverBase(spec), options_(options) {
    if (!(p >= 1.0f && p <= 3.0f)) detail::fail("MseObserver: p must be in [1, 3], got ", p);
    if (options.grid < 2 || options.grid > 100000) detail::fail("MseObserver: grid must be in [2, 100000], got ", options.grid);
    if (options.bins < 16 || options.bins > (1 << 24)) detail::fail("MseObserver: bins must be in [16, 2^24], got ", options.bins);
    if (options.sample_size < 0 || (options.sample_size > 0 && options.sample_size < 1024))
      detail::fail("MseObserver: sample_size must be 0 or >= 1024, got ", options.sample_size);
    if (options.refine_steps < 0 || options.refine_steps > 64)
      detail::fail("MseObserver: refine_steps must be in [0, 64], got ", options.refine_steps);

    options_.p = p;
  }
  float p() const { return options_.p; }

  /// The search options of each group of a tensor with `groups` > 1 quantization groups of `group_size` elements:
  /// the coarse grid runs on a histogram of group_size / 32 bins (at least 64, at most MseSearchOptions::bins)
  /// instead of exactly on every element (100 fake-quant passes over each group); the fine stage stays exact on
  /// the whole group (or its sample above sample_size). Losses stay within 0.5 % of the exact coarse grid
  /// (bench_quant's BM_mse_p24_per_channel, test_quant_observers) at about a tenth of its time. One group (per
  /// tensor): the options as given.
  MseSearchOptions group_options(std::int64_t groups, std::int64_t group_size) const {
    MseSearchOptions o = options_;
    if (groups <= 1 || !o.group_histogram) return o;
    o.bins = static_cast<int>(std::clamp<std::int64_t>(group_size / 32, 64, o.bins));
    o.exact_coarse_limit = std::min<std::int64_t>(o.exact_coarse_limit, o.bins);
    return o;
  }

  void start(std::int64_t channels) { ranges_.start(channels); }
  void observe_channels(const float* x, const ChannelLayout& l) {
    std::vector<float> buf;
    const MseSearchOptions group = group_options(l.channels, l.per_channel());
    for (std::int64_t c = 0; c < l.channels; ++c) {
      const float* d = detail::channel_data(x, l, c, buf);
      const std::int64_t n = l.per_channel();
      const detail::FiniteRange r = detail::finite_range(d, n);
      if (r.empty()) continue;
      const detail::FiniteRange best = detail::mse_search(d, n, r, spec_, group);
      ranges_.add(c, best.lo, best.hi);
    }
  }
  detail::FiniteRange channel_range(std::int64_t c) const { return ranges_.range(c); }

 private:
  MseSearchOptions options_;
  detail::AveragedRanges ranges_;
};

}  // namespace mixq
