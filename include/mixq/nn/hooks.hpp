#pragma once
/// @file
/// Hooks for the methods built on the substrate: iterate the quantized layers with names and shapes (the
/// search's layer table), set (w_bits, a_bits) per layer, switch BatchNorm banks by configuration, capture
/// per-layer outputs (feature alignment losses), and fold BN into the preceding convolution for export.

#include <map>
#include <string>
#include <vector>

#include "mixq/nn/batchnorm.hpp"
#include "mixq/nn/quant_layers.hpp"

namespace mixq::nn {

/// A quantized layer with its dotted path.
struct NamedQuantLayer {
  std::string name;
  QuantLayer* layer;
};

/// Every QuantConv2d / QuantLinear below `root`, in forward order.
inline std::vector<NamedQuantLayer> quant_layers(Module& root) {
  std::vector<NamedQuantLayer> out;
  for (auto& nm : named_modules(root))
    if (auto* q = dynamic_cast<QuantLayer*>(nm.module)) out.push_back({nm.name, q});
  return out;
}

/// One row of a network's layer table.
struct LayerInfo {
  std::string name;
  LayerShape shape;
  bool fixed_precision = false;
  bool batch_norm = false;  ///< followed directly by a BatchNorm2d / SwitchableBatchNorm2d
  int w_bits = float_bits, a_bits = float_bits;
};

/// The layer table of `root` for inputs of shape (1, channels, height, width): runs one evaluation-mode
/// forward on zeros to fill the spatial sizes, restores the training flag. Parameters are unchanged
/// (BN running statistics are not updated in evaluation mode; quantizers of uninitialised bit-widths are
/// not run because the table is taken at float precision).
inline std::vector<LayerInfo> layer_table(Module& root, Index channels, Index height, Index width) {
  auto layers = quant_layers(root);
  std::vector<std::pair<int, int>> saved;
  for (auto& l : layers) {
    saved.emplace_back(l.layer->w_bits(), l.layer->a_bits());
    l.layer->set_bits(float_bits, float_bits);
  }
  const bool was_training = root.training();
  root.set_training(false);
  Tensor x(1, channels, height, width);
  x.set_zero();
  root.forward(x);
  root.set_training(was_training);
  // A quantized layer is followed by BN when the next module in depth-first order is one.
  std::map<std::string, bool> followed_by_bn;
  auto mods = named_modules(root);
  for (std::size_t i = 0; i + 1 < mods.size(); ++i)
    if (dynamic_cast<QuantLayer*>(mods[i].module))
      followed_by_bn[mods[i].name] = dynamic_cast<BatchNorm2d*>(mods[i + 1].module) != nullptr ||
                                     dynamic_cast<SwitchableBatchNorm2d*>(mods[i + 1].module) != nullptr;
  std::vector<LayerInfo> out;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    layers[i].layer->set_bits(saved[i].first, saved[i].second);
    out.push_back({layers[i].name, layers[i].layer->layer_shape(), layers[i].layer->fixed_precision(),
                   followed_by_bn[layers[i].name], saved[i].first, saved[i].second});
  }
  return out;
}

/// Sets every quantized layer to (w_bits, a_bits); fixed-precision layers get their fixed bit-width, or 32
/// when both are 32 (a float network).
inline void set_uniform_bits(Module& root, int w_bits, int a_bits) {
  for (auto& l : quant_layers(root)) {
    if (l.layer->fixed_precision() && !(w_bits == float_bits && a_bits == float_bits)) {
      const int fb = l.layer->quant_options().fixed_bits;
      l.layer->set_bits(fb, fb);
    } else {
      l.layer->set_bits(w_bits, a_bits);
    }
  }
}

/// Sets per-layer bit-widths from a map name -> (w_bits, a_bits); layers absent from the map keep theirs.
/// Throws mixq::error naming an entry that matches no quantized layer.
inline void set_bits(Module& root, const std::map<std::string, std::pair<int, int>>& policy) {
  auto layers = quant_layers(root);
  for (auto& [name, bits] : policy) {
    bool found = false;
    for (auto& l : layers)
      if (l.name == name) {
        l.layer->set_bits(bits.first, bits.second);
        found = true;
      }
    if (!found) mixq::detail::fail("set_bits: no quantized layer named '", name, "'");
  }
}

/// The BN key of a bit-width pair: "w4a4", "w32a32".
inline std::string bits_key(int w_bits, int a_bits) {
  return "w" + std::to_string(w_bits) + "a" + std::to_string(a_bits);
}

/// Switches every SwitchableBatchNorm2d to the key of the nearest preceding quantized layer's bit-widths
/// (bits_key), so each (w, a) pair of a layer has its own BN (one-shot weight coupling). Missing keys are
/// added (copied from the active BN) when `create` is true, else mixq::error names the key. Keys added
/// after an optimiser was built are not seen by that optimiser: add every key first (create, then rebuild).
inline void sync_bn_keys(Module& root, bool create = false) {
  QuantLayer* last = nullptr;
  for (auto& nm : named_modules(root)) {
    if (auto* q = dynamic_cast<QuantLayer*>(nm.module)) last = q;
    if (auto* bn = dynamic_cast<SwitchableBatchNorm2d*>(nm.module)) {
      const std::string key = last ? bits_key(last->w_bits(), last->a_bits()) : std::string("default");
      if (create) bn->add_key(key);
      bn->set_key(key);
    }
  }
}

/// Switches every SwitchableBatchNorm2d below `root` to `key` (a whole-network configuration key),
/// adding it first (copied from the active BN) when `create` is true.
inline void set_bn_key(Module& root, const std::string& key, bool create = false) {
  for (auto& nm : named_modules(root))
    if (auto* bn = dynamic_cast<SwitchableBatchNorm2d*>(nm.module)) {
      if (create) bn->add_key(key);
      bn->set_key(key);
    }
}

/// Copies the outputs of chosen modules at every forward (per-layer output capture for feature alignment
/// losses, block reconstruction targets). Detaches its hooks on destruction.
class FeatureCapture {
 public:
  /// Captures the modules named in `names` (dotted paths below `root`); throws mixq::error for unknown names.
  FeatureCapture(Module& root, const std::vector<std::string>& names) {
    for (const std::string& n : names) {
      Module& m = find_module(root, n);
      modules_.push_back(&m);
      Tensor* slot = &features_[n];
      m.set_forward_hook([slot](Module&, const Tensor& y) { *slot = y; });
    }
  }
  ~FeatureCapture() {
    for (Module* m : modules_) m->set_forward_hook(nullptr);
  }
  FeatureCapture(const FeatureCapture&) = delete;
  FeatureCapture& operator=(const FeatureCapture&) = delete;
  /// The output of module `name` at the last forward.
  const Tensor& operator[](const std::string& name) const {
    auto it = features_.find(name);
    if (it == features_.end()) mixq::detail::fail("FeatureCapture: '", name, "' is not captured");
    return it->second;
  }

 private:
  std::vector<Module*> modules_;
  std::map<std::string, Tensor> features_;
};

/// A convolution with BatchNorm folded in: weight' = weight * gamma / sqrt(var + eps) per output channel,
/// bias' = beta + (bias - mean) * gamma / sqrt(var + eps) (Jacob et al., CVPR 2018).
struct FoldedConv {
  Eigen::VectorXf weight;  ///< shape of the conv weight
  Eigen::VectorXf bias;    ///< one per output channel
};

/// Folds `bn` (evaluation statistics) into `conv` (its float master weight, or `weight` when given, for
/// example an effective quantized weight).
inline FoldedConv fold_batchnorm(Conv2d& conv, BatchNorm2d& bn, const Eigen::VectorXf* weight = nullptr) {
  const Index oc = conv.out_channels();
  if (bn.channels() != oc)
    mixq::detail::fail("fold_batchnorm: BN has ", bn.channels(), " channels, conv has ", oc, " outputs");
  const Eigen::VectorXf& w = weight ? *weight : conv.weight().value;
  const Index per = w.size() / oc;
  FoldedConv f;
  f.weight.resize(w.size());
  f.bias.resize(oc);
  for (Index o = 0; o < oc; ++o) {
    const float a = bn.weight().value[o] / std::sqrt(bn.running_var().value[o] + bn.eps());
    f.weight.segment(o * per, per) = w.segment(o * per, per) * a;
    const float b0 = conv.bias() ? conv.bias()->value[o] : 0.f;
    f.bias[o] = bn.bias().value[o] + (b0 - bn.running_mean().value[o]) * a;
  }
  return f;
}

}  // namespace mixq::nn
