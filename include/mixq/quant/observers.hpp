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
#include "mixq/quant/mse_search.hpp"
#include "mixq/quant/spec.hpp"

namespace mixq {

namespace detail {


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
