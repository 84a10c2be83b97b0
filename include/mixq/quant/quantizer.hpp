#pragma once
/// @file
/// Quantizer<Granularity>: scales and zero points for one tensor (or layer), calibrated through an observer,
/// with fake quantization forward, the straight-through-estimator backward, the LSQ step-size gradient,
/// quantize() to a bit-packed QuantizedTensor and dequantize(). Eigen at the edges (row-major Ref for 2-D,
/// TensorMap for N-D: activations NCHW, weights [Cout, ...]), the SIMD kernels of mixq::kernels underneath.
/// The numeric contract is the kernels': q = clamp(round_half_even(x * (1/scale)) + zero_point, qmin, qmax),
/// y = (q - zero_point) * scale.

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "mixq/detail/eigen.hpp"

#include "mixq/error.hpp"
#include "mixq/kernels.hpp"
#include "mixq/quant/layout.hpp"
#include "mixq/quant/lsq.hpp"
#include "mixq/quant/observers.hpp"
#include "mixq/quant/quantized_tensor.hpp"
#include "mixq/quant/spec.hpp"

namespace mixq {

namespace detail {

/// Integer code of one value under the kernels' contract, for bit-widths the 8-bit kernels do not cover.
inline std::int32_t quantize_value(float x, float inv, std::int32_t zero_point, std::int32_t qmin, std::int32_t qmax) {
  float r = std::nearbyint(x * inv);
  const auto lo = static_cast<float>(qmin - zero_point), hi = static_cast<float>(qmax - zero_point);
  r = r < lo ? lo : (r > hi ? hi : r);
  if (r != r) r = 0.0f;  // NaN gives the zero point, as kernels::quantize
  return static_cast<std::int32_t>(r) + zero_point;
}

template <class Code>
inline void quantize_segments(const float* x, const ChannelLayout& l, const std::vector<float>& scales,
                              const std::vector<std::int32_t>& zps, const QuantSpec& spec, Code* q) {
  for (std::int64_t o = 0; o < l.outer; ++o)
    for (std::int64_t c = 0; c < l.channels; ++c) {
      const std::int64_t off = (o * l.channels + c) * l.inner;
      kernels::quantize(x + off, q + off, static_cast<std::ptrdiff_t>(l.inner), scales[static_cast<std::size_t>(c)],
                        zps[static_cast<std::size_t>(c)], spec.qmin(), spec.qmax());
    }
}

}  // namespace detail

/// A uniform quantizer whose granularity G is fixed at compile time; the bit-width and the rest of the
/// QuantSpec stay runtime values. Holds one scale and zero point per quantization group (one for
/// per_tensor, shape[axis] for per_channel, numel / group_size for per_group).
template <Granularity G>
class Quantizer {
 public:
  static constexpr Granularity granularity = G;

  /// @param spec must have spec.granularity == G (throws mixq::error otherwise, or for an invalid spec).
  explicit Quantizer(const QuantSpec& spec) : spec_(spec) {
    spec_.validate();
    if (spec_.binary)
      detail::fail("Quantizer<", to_string(G), ">: binary specs are not uniform grids; use quant/binary.hpp");
    if (spec_.granularity != G)
      detail::fail("Quantizer<", to_string(G), ">: the spec's granularity is ", to_string(spec_.granularity));
  }

  const QuantSpec& spec() const { return spec_; }
  int bit_width() const { return spec_.bit_width; }
  std::int32_t qmin() const { return spec_.qmin(); }
  std::int32_t qmax() const { return spec_.qmax(); }
  /// Whether scales and zero points are set (calibrate() or set_params()).
  bool calibrated() const { return !scales_.empty(); }
  const std::vector<float>& scales() const { return scales_; }
  const std::vector<std::int32_t>& zero_points() const { return zero_points_; }

  /// Changes the bit-width (1..16) at run time. Scales and zero points are kept (zero points clamped into the
  /// new [qmin, qmax]); recalibrate or relearn them for the new grid.
  void set_bit_width(int bits) {
    QuantSpec s = spec_;
    s.bit_width = bits;
    s.validate();
    spec_ = s;
    for (std::int32_t& z : zero_points_) z = std::clamp(z, spec_.qmin(), spec_.qmax());
  }

  /// Sets the parameters directly; throws mixq::error for mismatched counts, a non-positive, non-finite or
  /// too small scale (1/scale must be finite), a zero point outside [qmin, qmax], or non-zero zero points
  /// under a symmetric spec.
  void set_params(std::vector<float> scales, std::vector<std::int32_t> zero_points) {
    if (scales.empty()) detail::fail("Quantizer::set_params: no scale given");
    if (scales.size() != zero_points.size())
      detail::fail("Quantizer::set_params: ", scales.size(), " scales but ", zero_points.size(), " zero points");
    if (G == Granularity::per_tensor && scales.size() != 1)
      detail::fail("Quantizer::set_params: a per_tensor quantizer takes 1 scale, got ", scales.size());
    for (std::size_t c = 0; c < scales.size(); ++c) {
      if (!(scales[c] >= min_scale) || !std::isfinite(scales[c]))
        detail::fail("Quantizer::set_params: scale ", c, " must be finite and >= ", min_scale, ", got ", scales[c]);
      if (zero_points[c] < qmin() || zero_points[c] > qmax())
        detail::fail("Quantizer::set_params: zero_point ", c, " = ", zero_points[c], " is outside [", qmin(), ", ",
                     qmax(), "]");
      if (spec_.symmetric && zero_points[c] != 0)
        detail::fail("Quantizer::set_params: zero_point ", c, " = ", zero_points[c], " under a symmetric spec");
    }
    scales_ = std::move(scales);
    zero_points_ = std::move(zero_points);
  }
  /// Sets the step sizes (LSQ) and zero points clamp(0, qmin, qmax), e.g. from lsq_init_step_sizes().
  void set_step_sizes(std::vector<float> step_sizes) {
    std::vector<std::int32_t> z(step_sizes.size(), std::clamp<std::int32_t>(0, qmin(), qmax()));
    set_params(std::move(step_sizes), std::move(z));
  }

  /// Takes the parameters of an observer that has observed calibration data. The observer's spec must equal
  /// the quantizer's (same bit-width, grid and granularity), else mixq::error.
  template <class Observer, class = decltype(std::declval<const Observer&>().params())>
  void calibrate(const Observer& observer) {
    if (observer.spec() != spec_)
      detail::fail("Quantizer::calibrate: the observer's spec (", observer.spec().bit_width, " bits, ",
                   to_string(observer.spec().granularity), ") differs from the quantizer's (", spec_.bit_width,
                   " bits, ", to_string(spec_.granularity), ")");
    std::vector<float> s;
    std::vector<std::int32_t> z;
    for (const QuantParams& p : observer.params()) s.push_back(p.scale), z.push_back(p.zero_point);
    set_params(std::move(s), std::move(z));
  }
  /// Calibrates on one tensor with a fresh Observer (MinMaxObserver by default) built for this spec; extra
  /// arguments go to the observer's constructor (e.g. the momentum, the percentile, p).
  template <class Observer = MinMaxObserver, class... Args>
  void calibrate(const float* x, const Shape& shape, Args&&... args) {
    Observer observer(spec_, std::forward<Args>(args)...);
    observer.observe(x, shape);
    calibrate(observer);
  }
  template <class Observer = MinMaxObserver, class... Args>
  void calibrate(const Eigen::Ref<const RowMajorArrayXXf>& x, Args&&... args) {
    RowMajorArrayXXf buf;
    calibrate<Observer>(detail::contiguous(x, buf), detail::eigen_shape(x.rows(), x.cols()), std::forward<Args>(args)...);
  }
  /// Calibrates on a row-major Eigen tensor (Eigen::Tensor<float, N, RowMajor> or a TensorMap of one, const or
  /// not: what SafetensorsFile::read_tensor, FloatTensor::tensor and forward() return).
  template <class Observer = MinMaxObserver, class T, class... Args, std::enable_if_t<detail::is_eigen_tensor_v<T>, int> = 0>
  void calibrate(const T& x, Args&&... args) {
    (void)detail::row_major_float_rank<T>();
    calibrate<Observer>(x.data(), detail::tensor_shape(x.dimensions()), std::forward<Args>(args)...);
  }

  /// Fake quantization y = fq(x) of a row-major tensor of `shape` (x and y may be the same buffer).
  void forward(const float* x, float* y, const Shape& shape) const {
    const ChannelLayout l = checked_layout(shape, "forward");
    if (l.numel() == 0) return;
    if (G == Granularity::per_tensor)
      kernels::fake_quant(x, y, l.inner, scales_[0], zero_points_[0], qmin(), qmax());
    else if (G == Granularity::per_channel)
      kernels::fake_quant_per_channel(x, y, l.outer, l.channels, l.inner, scales_.data(), zero_points_.data(), qmin(), qmax());
    else
      kernels::fake_quant_per_group(x, y, l.numel() / last_extent(shape), last_extent(shape), spec_.group_size,
                                    scales_.data(), zero_points_.data(), qmin(), qmax());
  }
  /// Fake quantization of a 2-D row-major array [rows, cols] (weights [Cout, K]).
  RowMajorArrayXXf forward(const Eigen::Ref<const RowMajorArrayXXf>& x) const {
    RowMajorArrayXXf buf, y(x.rows(), x.cols());
    forward(detail::contiguous(x, buf), y.data(), detail::eigen_shape(x.rows(), x.cols()));
    return y;
  }
  /// Fake quantization of a row-major tensor (activations NCHW, weights [Cout, Cin, kh, kw]): an
  /// Eigen::Tensor<float, N, RowMajor> or a TensorMap of one, const or not. Returns a tensor of the same rank.
  template <class T, std::enable_if_t<detail::is_eigen_tensor_v<T>, int> = 0>
  Eigen::Tensor<float, detail::row_major_float_rank<T>(), Eigen::RowMajor> forward(const T& x) const {
    Eigen::Tensor<float, detail::row_major_float_rank<T>(), Eigen::RowMajor> y(x.dimensions());
    forward(x.data(), y.data(), detail::tensor_shape(x.dimensions()));
    return y;
  }
  /// Fake quantization into a caller-provided row-major tensor (an Eigen::Tensor or a non-const TensorMap) of the
  /// same dimensions; x and y may be the same memory.
  template <class T, class U,
            std::enable_if_t<detail::is_eigen_tensor_v<T> && detail::is_eigen_tensor_v<U>, int> = 0>
  void forward(const T& x, U&& y) const {
    static_assert(detail::row_major_float_rank<T>() == detail::row_major_float_rank<U>(),
                  "Quantizer::forward: x and y must have the same rank");
    if (x.dimensions() != y.dimensions()) detail::fail("Quantizer::forward: x and y have different dimensions");
    forward(x.data(), y.data(), detail::tensor_shape(x.dimensions()));
  }

  /// Straight-through estimator: dx = dy where x falls inside the clipping range, 0 elsewhere.
  void backward(const float* x, const float* dy, float* dx, const Shape& shape) const {
    const ChannelLayout l = checked_layout(shape, "backward");
    if (l.numel() == 0) return;
    if (G == Granularity::per_tensor)
      kernels::fake_quant_backward(x, dy, dx, l.inner, scales_[0], zero_points_[0], qmin(), qmax());
    else
      kernels::fake_quant_backward_per_channel(x, dy, dx, l.outer, l.channels, l.inner, scales_.data(),
                                               zero_points_.data(), qmin(), qmax());
  }
  RowMajorArrayXXf backward(const Eigen::Ref<const RowMajorArrayXXf>& x, const Eigen::Ref<const RowMajorArrayXXf>& dy) const {
    if (x.rows() != dy.rows() || x.cols() != dy.cols())
      detail::fail("Quantizer::backward: x is ", x.rows(), " x ", x.cols(), " but dy is ", dy.rows(), " x ", dy.cols());
    RowMajorArrayXXf bx, bdy, dx(x.rows(), x.cols());
    backward(detail::contiguous(x, bx), detail::contiguous(dy, bdy), dx.data(), detail::eigen_shape(x.rows(), x.cols()));
    return dx;
  }
  /// The straight-through gradient of row-major Eigen tensors x and dy (Tensor or TensorMap, const or not).
  template <class T, class U,
            std::enable_if_t<detail::is_eigen_tensor_v<T> && detail::is_eigen_tensor_v<U>, int> = 0>
  Eigen::Tensor<float, detail::row_major_float_rank<T>(), Eigen::RowMajor> backward(const T& x, const U& dy) const {
    static_assert(detail::row_major_float_rank<T>() == detail::row_major_float_rank<U>(),
                  "Quantizer::backward: x and dy must have the same rank");
    if (x.dimensions() != dy.dimensions()) detail::fail("Quantizer::backward: x and dy have different dimensions");
    Eigen::Tensor<float, detail::row_major_float_rank<T>(), Eigen::RowMajor> dx(x.dimensions());
    backward(x.data(), dy.data(), dx.data(), detail::tensor_shape(x.dimensions()));
    return dx;
  }

  /// LSQ backward (Esser et al., 2020): writes the STE dx and returns dL/dscale per group (without LSQ's
  /// gradient scale g = 1 / sqrt(n * qmax), which the optimiser applies). If d_zero_points is not null it
  /// receives dL/dzero_point per group (LSQ+).
  std::vector<double> lsq_backward(const float* x, const float* dy, float* dx, const Shape& shape,
                                   std::vector<double>* d_zero_points = nullptr) const {
    const ChannelLayout l = checked_layout(shape, "lsq_backward");
    std::vector<double> ds(scales_.size(), 0.0);
    if (d_zero_points != nullptr) d_zero_points->assign(scales_.size(), 0.0);
    if (l.numel() == 0) return ds;
    if (G == Granularity::per_tensor) {
      ds[0] = kernels::lsq_backward(x, dy, dx, l.inner, scales_[0], zero_points_[0], qmin(), qmax(),
                                    d_zero_points != nullptr ? d_zero_points->data() : nullptr);
    } else {
      kernels::lsq_backward_per_channel(x, dy, dx, l.outer, l.channels, l.inner, scales_.data(), zero_points_.data(),
                                        qmin(), qmax(), ds.data(),
                                        d_zero_points != nullptr ? d_zero_points->data() : nullptr);
    }
    return ds;
  }

  /// Quantizes to a QuantizedTensor with codes bit-packed at the bit-width (SIMD quantize and pack kernels up
  /// to 8 bits). NaN quantizes to the zero point (kernels::quantize); for finite x, dequantize(quantize(x))
  /// equals forward(x) bit for bit.
  QuantizedTensor quantize(const float* x, const Shape& shape) const {
    const ChannelLayout l = checked_layout(shape, "quantize");
    const std::int64_t n = l.numel();
    std::vector<std::uint8_t> packed(detail::packed_size(n, spec_.bit_width));
    if (n > 0) {
      if (spec_.bit_width <= 8 && spec_.is_signed) {
        std::vector<std::int8_t> q(static_cast<std::size_t>(n));
        detail::quantize_segments(x, l, scales_, zero_points_, spec_, q.data());
        kernels::pack_bits(q.data(), static_cast<std::ptrdiff_t>(n), spec_.bit_width, packed.data());
      } else if (spec_.bit_width <= 8) {
        std::vector<std::uint8_t> q(static_cast<std::size_t>(n));
        detail::quantize_segments(x, l, scales_, zero_points_, spec_, q.data());
        kernels::pack_bits(q.data(), static_cast<std::ptrdiff_t>(n), spec_.bit_width, packed.data());
      } else {
        std::vector<std::int32_t> q(static_cast<std::size_t>(n));
        std::size_t i = 0;
        for (std::int64_t o = 0; o < l.outer; ++o)
          for (std::int64_t c = 0; c < l.channels; ++c) {
            const float inv = 1.0f / scales_[static_cast<std::size_t>(c)];
            const std::int32_t z = zero_points_[static_cast<std::size_t>(c)];
            for (std::int64_t k = 0; k < l.inner; ++k, ++i) q[i] = detail::quantize_value(x[i], inv, z, qmin(), qmax());
          }
        detail::pack_codes(q.data(), n, spec_.bit_width, packed.data());
      }
    }
    return QuantizedTensor::from_packed(shape, spec_, scales_, zero_points_, std::move(packed));
  }
  QuantizedTensor quantize(const Eigen::Ref<const RowMajorArrayXXf>& x) const {
    RowMajorArrayXXf buf;
    return quantize(detail::contiguous(x, buf), detail::eigen_shape(x.rows(), x.cols()));
  }
  /// Quantizes a row-major Eigen tensor (Tensor or TensorMap, const or not).
  template <class T, std::enable_if_t<detail::is_eigen_tensor_v<T>, int> = 0>
  QuantizedTensor quantize(const T& x) const {
    (void)detail::row_major_float_rank<T>();
    return quantize(x.data(), detail::tensor_shape(x.dimensions()));
  }

  /// Dequantizes any QuantizedTensor (its own spec and parameters are used) into row-major floats.
  static std::vector<float> dequantize(const QuantizedTensor& q) { return q.dequantize(); }
  /// Dequantizes into a [shape[0], numel / shape[0]] row-major array (rank 1 and 0 give one row).
  static RowMajorArrayXXf dequantize_array(const QuantizedTensor& q) {
    const Shape& s = q.shape();
    const Eigen::Index rows = s.size() >= 2 ? static_cast<Eigen::Index>(s[0]) : 1;
    const Eigen::Index cols = rows == 0 ? 0 : static_cast<Eigen::Index>(q.numel()) / rows;
    RowMajorArrayXXf y(rows, cols);
    if (q.numel() > 0) q.dequantize(y.data());
    return y;
  }
  /// Dequantizes into a rank-N row-major tensor; throws if the tensor's rank is not N.
  template <int N>
  static Eigen::Tensor<float, N, Eigen::RowMajor> dequantize_tensor(const QuantizedTensor& q) {
    if (static_cast<int>(q.shape().size()) != N)
      detail::fail("Quantizer::dequantize_tensor<", N, ">: the tensor has rank ", q.shape().size());
    Eigen::array<Eigen::Index, N> dims;
    for (int i = 0; i < N; ++i) dims[static_cast<std::size_t>(i)] = static_cast<Eigen::Index>(q.shape()[static_cast<std::size_t>(i)]);
    Eigen::Tensor<float, N, Eigen::RowMajor> y(dims);
    if (q.numel() > 0) q.dequantize(y.data());
    return y;
  }

 private:
  static std::int64_t last_extent(const Shape& shape) { return shape.empty() ? 1 : shape.back(); }

  ChannelLayout checked_layout(const Shape& shape, const char* fn) const {
    if (!calibrated()) detail::fail("Quantizer::", fn, ": not calibrated (call calibrate() or set_params() first)");
    const ChannelLayout l = channel_layout(spec_, shape);
    if (static_cast<std::size_t>(l.channels) != scales_.size())
      detail::fail("Quantizer::", fn, ": the tensor has ", l.channels, " quantization groups, the quantizer holds ",
                   scales_.size(), " scales");
    return l;
  }

  QuantSpec spec_;
  std::vector<float> scales_;
  std::vector<std::int32_t> zero_points_;
};

/// One scale for the whole tensor.
using PerTensorQuantizer = Quantizer<Granularity::per_tensor>;
/// One scale per index of the spec's axis (output channels of weights, channels of NCHW activations).
using PerChannelQuantizer = Quantizer<Granularity::per_channel>;
/// One scale per group of group_size contiguous elements of the last axis.
using PerGroupQuantizer = Quantizer<Granularity::per_group>;

}  // namespace mixq
