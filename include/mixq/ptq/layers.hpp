#pragma once
/// @file
/// The weight layers of a PTQ network: a convolution and a fully connected layer with BatchNorm already folded
/// into their float weight and bias, whose effective weight comes from a WeightQuantizer (float, nearest, AdaRound
/// soft or hard). Forward and backward run the nn layer's convolution and GEMM code on the effective weight;
/// backward hands dL/d(weight) to AdaRound (dL/dV). Weight and bias themselves are never trained.

#include <cstdint>
#include <string>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/nn/conv.hpp"
#include "mixq/nn/layers.hpp"
#include "mixq/nn/module.hpp"
#include "mixq/ptq/adaround.hpp"

namespace mixq::ptq {

/// What a cost model and the data-free capacity need of a weight layer.
struct WeightLayerInfo {
  std::string kind;    ///< "conv" or "linear"
  Index params = 0;    ///< weight elements: k * k * (C_in / groups) * C_out
  Index stride = 1;
  Index groups = 1;
  int weight_bits = 8;
};

/// The part of PtqConv2d and PtqLinear that is the same: float weight and bias, the quantizer, the effective
/// weight of the current mode and its gradient buffer.
class WeightLayer {
 public:
  virtual ~WeightLayer() = default;
  WeightQuantizer& quantizer() { return quantizer_; }
  const WeightQuantizer& quantizer() const { return quantizer_; }
  Eigen::VectorXf& weight() { return weight_; }
  Eigen::VectorXf& bias() { return bias_; }
  /// The weight bit-width the layer is quantized to (2..8).
  void set_bits(int bits) {
    check_bits("WeightLayer::set_bits: bits", bits);
    bits_ = bits;
  }
  int bits() const { return bits_; }
  /// Calibrates the weight grid at bits() (MSE p = 2.4 per output channel); rounding becomes nearest.
  void calibrate() { quantizer_.calibrate(weight_, out_channels(), bits_); }
  /// Sets the rounding mode (the weight is requantized at the next forward).
  void set_rounding(Rounding r) { quantizer_.set_mode(r); }
  /// Starts AdaRound (V0 from the rounding residuals; soft rounding).
  void init_adaround() { quantizer_.init_adaround(weight_); }
  /// The weight the last forward used.
  const Eigen::VectorXf& effective_weight() const { return effective_; }
  /// Recomputes the effective weight for the current mode.
  void refresh() { quantizer_.effective_weight(weight_, effective_); }
  virtual Index out_channels() const = 0;
  virtual WeightLayerInfo info() const = 0;

 protected:
  Eigen::VectorXf weight_, bias_, effective_, dweight_;
  WeightQuantizer quantizer_;
  int bits_ = 8;
};

/// Convolution (folded BN) with a quantized weight.
class PtqConv2d : public nn::Module, public WeightLayer {
 public:
  /// weight (out, in/groups, k, k) and bias (out) are the folded float parameters.
  PtqConv2d(const nn::detail::ConvGeometry& geometry, Eigen::VectorXf weight, Eigen::VectorXf bias) : g_(geometry) {
    if (weight.size() != g_.out_channels * g_.cols_per_group() || bias.size() != g_.out_channels)
      mixq::detail::fail("PtqConv2d: weight has ", weight.size(), " elements and bias ", bias.size(),
                         ", expected ", g_.out_channels * g_.cols_per_group(), " and ", g_.out_channels);
    weight_ = std::move(weight);
    bias_ = std::move(bias);
  }
  std::string kind() const override { return "PtqConv2d"; }
  const nn::Tensor& output() const override { return y_; }
  Index out_channels() const override { return g_.out_channels; }
  const nn::detail::ConvGeometry& geometry() const { return g_; }
  WeightLayerInfo info() const override {
    return {"conv", g_.out_channels * g_.cols_per_group(), g_.stride, g_.groups, bits_};
  }

 protected:
  const nn::Tensor& forward_impl(const nn::Tensor& x) override {
    if (x.c() != g_.in_channels)
      mixq::detail::fail("PtqConv2d: input has ", x.c(), " channels, expected ", g_.in_channels);
    g_.in_h = x.h();
    g_.in_w = x.w();
    g_.out_h = (x.h() + 2 * g_.padding - g_.kernel) / g_.stride + 1;
    g_.out_w = (x.w() + 2 * g_.padding - g_.kernel) / g_.stride + 1;
    if (g_.out_h <= 0 || g_.out_w <= 0)
      mixq::detail::fail("PtqConv2d: input ", x.h(), "x", x.w(), " too small for kernel ", g_.kernel);
    input_ = &x;
    refresh();
    nn::detail::conv2d_forward(g_, x, effective_.data(), bias_.data(), y_, scratch_);
    return y_;
  }
  const nn::Tensor& backward_impl(const nn::Tensor& dy) override {
    dweight_.setZero(effective_.size());
    nn::detail::conv2d_backward(g_, *input_, effective_.data(), dy, dweight_.data(), nullptr,
                                input_grad_ ? &dx_ : nullptr, scratch_);
    quantizer_.backward(dweight_.data());
    return dx_;
  }

 private:
  nn::detail::ConvGeometry g_;
  const nn::Tensor* input_ = nullptr;
  nn::Tensor y_, dx_;
  nn::detail::ConvScratch scratch_;
};

/// Fully connected layer with a quantized weight (out, in).
class PtqLinear : public nn::Module, public WeightLayer {
 public:
  PtqLinear(Index in_features, Index out_features, Eigen::VectorXf weight, Eigen::VectorXf bias)
      : in_(in_features), out_(out_features) {
    if (in_features < 1 || out_features < 1 || weight.size() != in_features * out_features ||
        bias.size() != out_features)
      mixq::detail::fail("PtqLinear: shape ", out_features, "x", in_features, " does not match weight ",
                         weight.size(), " and bias ", bias.size());
    weight_ = std::move(weight);
    bias_ = std::move(bias);
  }
  std::string kind() const override { return "PtqLinear"; }
  const nn::Tensor& output() const override { return y_; }
  Index out_channels() const override { return out_; }
  Index in_features() const { return in_; }
  WeightLayerInfo info() const override { return {"linear", in_ * out_, 1, 1, bits_}; }

 protected:
  const nn::Tensor& forward_impl(const nn::Tensor& x) override {
    if (x.sample_size() != in_)
      mixq::detail::fail("PtqLinear: input has ", x.sample_size(), " features, expected ", in_);
    input_ = &x;
    refresh();
    nn::detail::linear_forward(x, effective_.data(), bias_.data(), out_, y_);
    return y_;
  }
  const nn::Tensor& backward_impl(const nn::Tensor& dy) override {
    dweight_.setZero(effective_.size());
    nn::detail::linear_backward(*input_, effective_.data(), dy, out_, dweight_.data(), nullptr,
                                input_grad_ ? &dx_ : nullptr);
    quantizer_.backward(dweight_.data());
    return dx_;
  }

 private:
  Index in_, out_;
  const nn::Tensor* input_ = nullptr;
  nn::Tensor y_, dx_;
};

}  // namespace mixq::ptq
