#pragma once
/// @file
/// A network prepared for post-training quantization (methods/PTQ.md §1): built from a trained nn model (a
/// Sequential of blocks: nn::make_resnet, nn::make_mobilenet), with every BatchNorm folded into the convolution
/// before it, weight layers that round their weight (layers.hpp) and activation quantizers placed as the brief
/// says: on the image (8 bit), after every ReLU/ReLU6 inside a block, after every block's output (post-add), and on
/// the input of the last fully connected layer (8 bit); never between the last conv of a residual branch and the
/// add. The first conv's and the FC's weights are 8 bit. The network output is not quantized.
///
/// The top-level children are the base reconstruction units (the model's blocks, in order: "stem", "stage1", ...,
/// "head"): a residual block becomes Sequential{"block": Residual, "quant": ActQuantizer}, a chain block a
/// Sequential of its layers ending in its output quantizer. Sequential::forward_range over units runs a merged unit.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/nn/batchnorm.hpp"
#include "mixq/nn/hooks.hpp"
#include "mixq/nn/layers.hpp"
#include "mixq/nn/module.hpp"
#include "mixq/ptq/act_quantizer.hpp"
#include "mixq/ptq/layers.hpp"

namespace mixq::ptq {

/// Bit-widths of a PTQ network: weights and activations of every layer but the fixed ones (first conv weights, FC
/// weights, the image and the FC input), which are at fixed_bits.
struct BitConfig {
  int weight_bits = 4;
  int act_bits = 4;
  int fixed_bits = 8;
  void validate() const {
    check_bits("BitConfig: weight_bits", weight_bits);
    check_bits("BitConfig: act_bits", act_bits);
    check_bits("BitConfig: fixed_bits", fixed_bits);
  }
};

/// One base unit's weight layers (for the data-free capacity).
struct UnitLayers {
  std::string name;
  std::vector<WeightLayerInfo> layers;
};

class PtqNetwork {
 public:
  /// Builds the PTQ network of `model` (its float weights and BatchNorm running statistics; the model is not
  /// changed). Throws mixq::error naming the block or layer when the model is not a Sequential of blocks (Sequential
  /// or Residual children) made of convolutions (each optionally followed by a BatchNorm2d), ReLU, ReLU6, global
  /// average pooling, flatten and linear layers, with a convolution first and a linear layer last.
  PtqNetwork(nn::Sequential& model, const BitConfig& bits) : bits_(bits) {
    bits.validate();
    if (model.size() < 2)
      mixq::detail::fail("PtqNetwork: the model must have at least 2 blocks, got ", model.size());
    root_ = std::make_unique<nn::Sequential>();
    for (Index i = 0; i < model.size(); ++i) {
      const std::string& name = model.name_at(i);
      auto unit = std::make_unique<nn::Sequential>();
      if (auto* res = dynamic_cast<nn::Residual*>(&model[i])) {
        auto main = std::make_unique<nn::Sequential>();
        chain(res->main(), name + ".main", false, *main);
        std::unique_ptr<nn::Sequential> shortcut;
        if (res->shortcut()) {
          shortcut = std::make_unique<nn::Sequential>();
          chain(*res->shortcut(), name + ".shortcut", false, *shortcut);
        }
        if (i == 0) add_quantizer(*unit, "input_quant", bits.fixed_bits);
        unit->add("block", std::make_unique<nn::Residual>(std::move(main), std::move(shortcut), res->activation()));
        add_quantizer(*unit, "quant", bits.act_bits);
      } else if (auto* seq = dynamic_cast<nn::Sequential*>(&model[i])) {
        if (i == 0) add_quantizer(*unit, "input_quant", bits.fixed_bits);
        chain(*seq, name, true, *unit);
        const bool ends_linear = dynamic_cast<PtqLinear*>(&(*unit)[unit->size() - 1]) != nullptr;
        if (!ends_linear) add_quantizer(*unit, "quant", bits.act_bits);
      } else {
        mixq::detail::fail("PtqNetwork: block '", name, "' is a ", model[i].kind(),
                           ", expected a Sequential or a Residual block");
      }
      names_.push_back(name);
      root_->add(name, std::move(unit));
    }
    finish();
  }

  PtqNetwork(const PtqNetwork&) = delete;
  PtqNetwork& operator=(const PtqNetwork&) = delete;

  /// The network: one top-level child per base unit.
  nn::Sequential& root() { return *root_; }
  const BitConfig& bits() const { return bits_; }
  /// Number of base units.
  Index units() const { return static_cast<Index>(names_.size()); }
  const std::string& unit_name(Index u) const { return names_.at(static_cast<std::size_t>(u)); }
  /// Base unit u (a Sequential).
  nn::Sequential& unit(Index u) { return static_cast<nn::Sequential&>((*root_)[u]); }

  /// Weight layers of units [first, last] in forward order.
  std::vector<WeightLayer*> weight_layers(Index first, Index last) const {
    std::vector<WeightLayer*> out;
    for (Index u = first; u <= last; ++u)
      for (WeightLayer* l : unit_weights_.at(static_cast<std::size_t>(u))) out.push_back(l);
    return out;
  }
  /// Activation quantizers of units [first, last] in forward order.
  std::vector<ActQuantizer*> act_quantizers(Index first, Index last) const {
    std::vector<ActQuantizer*> out;
    for (Index u = first; u <= last; ++u)
      for (ActQuantizer* q : unit_acts_.at(static_cast<std::size_t>(u))) out.push_back(q);
    return out;
  }
  std::vector<WeightLayer*> weight_layers() const { return weight_layers(0, units() - 1); }
  std::vector<ActQuantizer*> act_quantizers() const { return act_quantizers(0, units() - 1); }

  /// The weight layers of every base unit (name, params, stride, groups, bits).
  std::vector<UnitLayers> unit_layers() const {
    std::vector<UnitLayers> out;
    for (Index u = 0; u < units(); ++u) {
      UnitLayers ul{unit_name(u), {}};
      for (WeightLayer* l : unit_weights_[static_cast<std::size_t>(u)]) ul.layers.push_back(l->info());
      out.push_back(std::move(ul));
    }
    return out;
  }

  /// The float network: activation quantizers off, float weights.
  void set_float() {
    for (ActQuantizer* q : act_quantizers()) q->set_mode(ActMode::off);
    for (WeightLayer* l : weight_layers()) l->set_rounding(Rounding::float_weights);
  }

  /// Logits of a batch (N, C, H, W).
  const nn::Tensor& forward(const nn::Tensor& x) { return root_->forward(x); }

 private:
  void add_quantizer(nn::Sequential& s, const std::string& name, int bits) {
    s.add(name, std::make_unique<ActQuantizer>(bits));
  }

  // Appends the translation of a chain of layers to `out`; `unit_chain`: the chain is a whole block (its last ReLU
  // gets the block's output quantizer, added by the caller, instead of an inner one).
  void chain(nn::Sequential& src, const std::string& path, bool unit_chain, nn::Sequential& out_seq) {
    nn::Sequential* out = &out_seq;
    const Index before = out->size();
    const Index n = src.size();
    for (Index i = 0; i < n; ++i) {
      nn::Module& m = src[i];
      const std::string name = src.name_at(i);
      const std::string where = path + "." + name;
      if (auto* conv = dynamic_cast<nn::Conv2d*>(&m)) {
        nn::detail::ConvGeometry g = conv->geometry();
        Eigen::VectorXf w = conv->weight().value, b;
        if (i + 1 < n && dynamic_cast<nn::BatchNorm2d*>(&src[i + 1])) {
          const nn::FoldedConv f = nn::fold_batchnorm(*conv, static_cast<nn::BatchNorm2d&>(src[i + 1]));
          w = f.weight;
          b = f.bias;
          ++i;
        } else if (i + 1 < n && src[i + 1].kind() == "SwitchableBatchNorm2d") {
          mixq::detail::fail("PtqNetwork: '", where, "' is followed by a SwitchableBatchNorm2d (not supported)");
        } else {
          b = conv->bias() ? conv->bias()->value : Eigen::VectorXf::Zero(conv->out_channels());
        }
        auto layer = std::make_unique<PtqConv2d>(g, std::move(w), std::move(b));
        layer->set_bits(first_conv_seen_ ? bits_.weight_bits : bits_.fixed_bits);
        first_conv_seen_ = true;
        out->add(name, std::move(layer));
      } else if (auto* lin = dynamic_cast<nn::Linear*>(&m)) {
        if (!first_conv_seen_)
          mixq::detail::fail("PtqNetwork: '", where, "' is a linear layer before any convolution");
        add_quantizer(*out, name + "_input_quant", bits_.fixed_bits);
        Eigen::VectorXf b = lin->bias() ? lin->bias()->value : Eigen::VectorXf::Zero(lin->out_features());
        auto layer = std::make_unique<PtqLinear>(lin->in_features(), lin->out_features(), lin->weight().value, b);
        layer->set_bits(bits_.fixed_bits);
        out->add(name, std::move(layer));
        ++linears_;
      } else if (m.kind() == "ReLU" || m.kind() == "ReLU6") {
        if (m.kind() == "ReLU")
          out->emplace<nn::ReLU>(name);
        else
          out->emplace<nn::ReLU6>(name);
        const bool last = i + 1 == n;
        if (!(unit_chain && last)) add_quantizer(*out, name + "_quant", bits_.act_bits);
      } else if (m.kind() == "GlobalAvgPool2d") {
        out->emplace<nn::GlobalAvgPool2d>(name);
      } else if (m.kind() == "Flatten") {
        out->emplace<nn::Flatten>(name);
      } else {
        mixq::detail::fail("PtqNetwork: layer '", where, "' is a ", m.kind(),
                           " (supported: Conv2d [+ BatchNorm2d], Linear, ReLU, ReLU6, GlobalAvgPool2d, Flatten)");
      }
    }
    if (out->size() == before) mixq::detail::fail("PtqNetwork: block '", path, "' has no layers");
  }

  void finish() {
    if (!first_conv_seen_) mixq::detail::fail("PtqNetwork: the model has no convolution");
    if (linears_ != 1) mixq::detail::fail("PtqNetwork: the model must end in one linear layer, found ", linears_);
    unit_weights_.assign(names_.size(), {});
    unit_acts_.assign(names_.size(), {});
    for (Index u = 0; u < units(); ++u)
      for (auto& nm : nn::named_modules(unit(u))) {
        if (auto* w = dynamic_cast<WeightLayer*>(nm.module)) unit_weights_[static_cast<std::size_t>(u)].push_back(w);
        if (auto* q = dynamic_cast<ActQuantizer*>(nm.module)) unit_acts_[static_cast<std::size_t>(u)].push_back(q);
      }
    const auto& last = unit_weights_.back();
    if (last.empty() || dynamic_cast<PtqLinear*>(last.back()) == nullptr)
      mixq::detail::fail("PtqNetwork: the last block '", names_.back(), "' must end in the linear layer");
    root_->set_input_grad(false);
  }

  BitConfig bits_;
  std::unique_ptr<nn::Sequential> root_;
  std::vector<std::string> names_;
  std::vector<std::vector<WeightLayer*>> unit_weights_;
  std::vector<std::vector<ActQuantizer*>> unit_acts_;
  bool first_conv_seen_ = false;
  Index linears_ = 0;
};

}  // namespace mixq::ptq
