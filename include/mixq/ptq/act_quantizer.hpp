#pragma once
/// @file
/// The activation quantizer of post-training quantization (methods/PTQ.md §1): per tensor, asymmetric, unsigned
/// codes [0, 2^b - 1]; calibrated by an MSE (p = 2.4) clipping search on each calibration batch with an EMA (0.9)
/// of the searched range over the batches (MQBench's EMAMSEObserver); then a learnable scale (plain STE gradient
/// of the learnable fake quantization, zero point fixed) and QDrop's element-wise keep probability during
/// reconstruction. A Module, so it sits in the network between layers.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/kernels/fake_quant.hpp"
#include "mixq/nn/module.hpp"
#include "mixq/ptq/adaround.hpp"
#include "mixq/ptq/qdrop.hpp"
#include "mixq/quant/observers.hpp"
#include "mixq/quant/spec.hpp"

namespace mixq::ptq {

/// What an activation quantizer does in forward.
enum class ActMode {
  off,       ///< identity (the float network)
  observe,   ///< identity, and the tensor updates the calibration range
  quantize   ///< fake quantization (with QDrop's keep probability when below 1)
};

/// Per-tensor asymmetric activation quantizer (see the file comment). Parameter: "scale" (trainable, no decay).
class ActQuantizer : public nn::Module {
 public:
  /// @param bits 2..8; @param p the norm of the MSE range search; @param momentum the EMA weight of the running
  /// range (0.9: MQBench's ratio).
  explicit ActQuantizer(int bits, float p = 2.4f, double momentum = 0.9) : p_(p), momentum_(momentum) {
    set_bits(bits);
    if (!(p >= 1.f && p <= 3.f)) mixq::detail::fail("ActQuantizer: p must be in [1, 3], got ", p);
    if (!(momentum >= 0.0 && momentum < 1.0))
      mixq::detail::fail("ActQuantizer: momentum must be in [0, 1), got ", momentum);
    scale_ = nn::Parameter("scale", {1}, true, false);
    scale_.value[0] = 1.f;
  }

  std::string kind() const override { return "ActQuantizer"; }
  void own_parameters(std::vector<nn::Parameter*>& out) override { out.push_back(&scale_); }
  const nn::Tensor& output() const override { return *out_; }

  /// Sets the bit-width (2..8); forgets the calibration (mode becomes off).
  void set_bits(int bits) {
    check_bits("ActQuantizer: bits", bits);
    bits_ = bits;
    calibrated_ = false;
    mode_ = ActMode::off;
  }
  int bits() const { return bits_; }
  std::int32_t qmin() const { return 0; }
  std::int32_t qmax() const { return (std::int32_t{1} << bits_) - 1; }
  bool calibrated() const { return calibrated_; }
  float scale() const { return scale_.value[0]; }
  std::int32_t zero_point() const { return zero_point_; }
  nn::Parameter& scale_parameter() { return scale_; }
  ActMode mode() const { return mode_; }

  /// Forgets the running range and observes from the next forward on (identity output).
  void start_calibration() {
    lo_ = hi_ = 0.0;
    observed_ = 0;
    mode_ = ActMode::observe;
  }
  /// Turns the running range into the scale and zero point (params_from_range) and switches to quantize.
  /// Throws mixq::error when nothing was observed.
  void finish_calibration() {
    if (observed_ == 0) mixq::detail::fail("ActQuantizer::finish_calibration: no batch was observed");
    const QuantParams q = params_from_range(spec(), lo_, hi_);
    scale_.value[0] = q.scale;
    zero_point_ = q.zero_point;
    calibrated_ = true;
    mode_ = ActMode::quantize;
  }
  /// Sets scale and zero point directly (tests, a saved calibration); mode becomes quantize.
  void set_params(float scale, std::int32_t zero_point) {
    if (!(scale > 0.f) || !std::isfinite(scale)) mixq::detail::fail("ActQuantizer::set_params: scale must be > 0, got ", scale);
    if (zero_point < qmin() || zero_point > qmax())
      mixq::detail::fail("ActQuantizer::set_params: zero_point must be in [0, ", qmax(), "], got ", zero_point);
    scale_.value[0] = scale;
    zero_point_ = zero_point;
    calibrated_ = true;
    mode_ = ActMode::quantize;
  }
  /// off, observe or quantize (quantize needs a calibration).
  void set_mode(ActMode m) {
    if (m == ActMode::quantize && !calibrated_)
      mixq::detail::fail("ActQuantizer::set_mode: quantize needs a calibration first");
    mode_ = m;
  }

  /// QDrop's keep probability in (0, 1] (1: always quantized, the default and the only value outside
  /// reconstruction).
  void set_keep_probability(float p) {
    check_keep_probability("ActQuantizer::set_keep_probability: p", p);
    keep_ = p;
  }
  float keep_probability() const { return keep_; }
  /// The mask stream (seed it per run: it drives QDrop's draws).
  DropMask& masks() { return masks_; }
  /// Whether backward accumulates dL/dscale into the scale parameter.
  void set_learn_scale(bool learn) { learn_ = learn; }
  bool learn_scale() const { return learn_; }

 protected:
  QuantSpec spec() const { return QuantSpec::per_tensor(bits_, false, false); }

  const nn::Tensor& forward_impl(const nn::Tensor& x) override {
    input_ = &x;
    if (mode_ != ActMode::quantize) {
      if (mode_ == ActMode::observe) observe(x);
      out_ = &x;
      return x;
    }
    check_scale();
    y_.resize_like(x);
    const Index n = x.size();
    const float s = scale_.value[0];
    nn::parallel_for(n, [&](Index b, Index e, int) {
      kernels::fake_quant(x.ptr() + b, y_.ptr() + b, e - b, s, zero_point_, qmin(), qmax());
    });
    if (keep_ < 1.f) {  // QDrop: draw the mask and put the float value where it drops quantization
      mask_.resize(n);
      masks_.fill(keep_, n, mask_.data());
      nn::parallel_for(n, [&](Index b, Index e, int) {
        auto m = Eigen::Map<const Eigen::ArrayXf>(mask_.data() + b, e - b);
        auto xa = Eigen::Map<const Eigen::ArrayXf>(x.ptr() + b, e - b);
        auto ya = Eigen::Map<Eigen::ArrayXf>(y_.ptr() + b, e - b);
        ya = (m > 0.5f).select(ya, xa);
      });
    }
    masked_ = keep_ < 1.f;
    out_ = &y_;
    return y_;
  }

  const nn::Tensor& backward_impl(const nn::Tensor& dy) override {
    if (mode_ != ActMode::quantize) return dy;
    const nn::Tensor& x = *input_;
    const Index n = x.size();
    dx_.resize_like(x);
    const float s = scale_.value[0];
    const Index chunks = std::min<Index>(n, nn::kParallelChunks);
    part_.assign(static_cast<std::size_t>(std::max<Index>(chunks, 1)), 0.0);
    nn::parallel_for_chunks(n, chunks, [&](Index b, Index e, Index chunk, int) {
      if (!masked_) {
        part_[static_cast<std::size_t>(chunk)] =
            kernels::lsq_backward(x.ptr() + b, dy.ptr() + b, dx_.ptr() + b, e - b, s, zero_point_, qmin(), qmax(), nullptr);
        return;
      }
      // QDrop, in blocks that stay in cache: the quantized path sees dy where kept (0 elsewhere), dropped elements
      // pass dy unchanged
      // (dy - dy * mask is 0 or dy exactly, so dx is exact)
      constexpr Index kBlock = 2048;
      float g[kBlock];
      double sum = 0.0;
      for (Index s0 = b; s0 < e; s0 += kBlock) {
        const Index len = std::min(kBlock, e - s0);
        auto d = Eigen::Map<const Eigen::ArrayXf>(dy.ptr() + s0, len);
        auto ga = Eigen::Map<Eigen::ArrayXf>(g, len);
        ga = d * Eigen::Map<const Eigen::ArrayXf>(mask_.data() + s0, len);
        sum += kernels::lsq_backward(x.ptr() + s0, g, dx_.ptr() + s0, len, s, zero_point_, qmin(), qmax(), nullptr);
        Eigen::Map<Eigen::ArrayXf>(dx_.ptr() + s0, len) += d - ga;
      }
      part_[static_cast<std::size_t>(chunk)] = sum;
    });
    if (learn_) {
      double d = 0.0;
      for (double v : part_) d += v;  // chunk order: the same bits for any thread count
      scale_.grad[0] += static_cast<float>(d);
      scale_.has_grad = true;
    }
    return dx_;
  }

 private:
  void observe(const nn::Tensor& x) {
    const mixq::detail::FiniteRange r = mixq::detail::finite_range(x.ptr(), x.size());
    if (r.empty()) return;
    MseSearchOptions o;
    o.p = p_;
    const mixq::detail::FiniteRange best = mixq::detail::mse_search(x.ptr(), x.size(), r, spec(), o);
    if (observed_ == 0) {
      lo_ = best.lo;
      hi_ = best.hi;
    } else {
      lo_ = momentum_ * lo_ + (1.0 - momentum_) * best.lo;
      hi_ = momentum_ * hi_ + (1.0 - momentum_) * best.hi;
    }
    ++observed_;
  }
  void check_scale() {
    float& s = scale_.value[0];
    if (!std::isfinite(s)) mixq::detail::fail("ActQuantizer: scale is ", s, " (reconstruction diverged)");
    s = std::max(s, 1e-8f);
  }

  int bits_ = 8;
  float p_;
  double momentum_;
  nn::Parameter scale_;
  std::int32_t zero_point_ = 0;
  bool calibrated_ = false, learn_ = false, masked_ = false;
  ActMode mode_ = ActMode::off;
  float keep_ = 1.f;
  double lo_ = 0.0, hi_ = 0.0;
  Index observed_ = 0;
  DropMask masks_;
  const nn::Tensor* input_ = nullptr;
  const nn::Tensor* out_ = &y_;
  nn::Tensor y_, dx_;
  Eigen::VectorXf mask_;
  std::vector<double> part_;
};

}  // namespace mixq::ptq
