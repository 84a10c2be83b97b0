#pragma once
/// @file
/// The three models of the Fashion-MNIST experiments, built from quantized layers (float at 32 bits):
/// an MLP, a small ResNet (stem 16 channels, stages 16/32/64 with one basic block each, global pool, FC)
/// and a small MobileNetV2-style network (inverted residuals with depthwise convolutions).
///
/// Every model is a Sequential whose top-level children are its blocks ("stem", "stage1", ..., "head"), so
/// block reconstruction can run Sequential::forward_range(i, i + 1, cached_input) on one block.

#include <cmath>
#include <memory>
#include <string>

#include "mixq/detail/channels.hpp"

#include "mixq/nn/batchnorm.hpp"
#include "mixq/nn/layers.hpp"
#include "mixq/nn/quant_layers.hpp"

namespace mixq::nn {

/// Options shared by the model builders.
struct ModelOptions {
  Index in_channels = 1;             ///< input image channels
  Index num_classes = 10;
  std::uint64_t seed = 0;            ///< weight initialisation seed
  QuantOptions quant;                ///< candidate bit-widths, per-channel weights
  bool fixed_first_last = true;      ///< first conv and last FC stay at quant.fixed_bits when quantized
  bool switchable_bn = false;        ///< SwitchableBatchNorm2d (key "default") instead of BatchNorm2d
  /// Scales every hidden width (Chin et al.'s equal-size comparison): a width c becomes
  /// max(d, round(c * width_multiplier / d) * d) with d = channel_divisor, the rule of search::widen, so the
  /// built model's layer table equals search::widen(table at 1, width_multiplier, channel_divisor). The input
  /// channels and the class count are not scaled. Must be positive and finite.
  double width_multiplier = 1.0;
  Index channel_divisor = 1;         ///< channel counts are multiples of this (>= 1; MobileNet's code uses 8)
};

namespace detail {

/// Checks the width options of a builder (mixq::error naming the value).
inline void check_width(const ModelOptions& o, const char* who) {
  if (!(o.width_multiplier > 0.0) || !std::isfinite(o.width_multiplier))
    mixq::detail::fail(who, ": width_multiplier must be positive and finite, got ", o.width_multiplier);
  if (o.channel_divisor < 1) mixq::detail::fail(who, ": channel_divisor must be >= 1, got ", o.channel_divisor);
}

/// A hidden width c at the options' multiplier and divisor (mixq::detail::round_channels).
inline Index scaled(Index c, const ModelOptions& o) {
  return static_cast<Index>(mixq::detail::round_channels(c, o.width_multiplier, o.channel_divisor));
}

/// Adds a BN (plain or switchable) named `name`.
inline void add_bn(Sequential& s, const std::string& name, Index channels, const ModelOptions& o) {
  if (o.switchable_bn)
    s.emplace<SwitchableBatchNorm2d>(name, channels);
  else
    s.emplace<BatchNorm2d>(name, channels);
}

inline QuantOptions layer_quant(const ModelOptions& o, bool is_signed, bool fixed) {
  QuantOptions q = o.quant;
  q.signed_activations = is_signed;
  q.fixed_precision = fixed && o.fixed_first_last;
  return q;
}

/// ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN (+ 1x1 conv-BN shortcut when the shape changes), ReLU.
inline std::unique_ptr<Residual> basic_block(Index in, Index out, Index stride, const ModelOptions& o,
                                             std::uint64_t& seed) {
  auto main = std::make_unique<Sequential>();
  main->emplace<QuantConv2d>("conv1", in, out, 3, stride, 1, 1, false, seed++, layer_quant(o, false, false));
  add_bn(*main, "bn1", out, o);
  main->emplace<ReLU>("relu1");
  main->emplace<QuantConv2d>("conv2", out, out, 3, 1, 1, 1, false, seed++, layer_quant(o, false, false));
  add_bn(*main, "bn2", out, o);
  std::unique_ptr<Sequential> shortcut;
  if (stride != 1 || in != out) {
    shortcut = std::make_unique<Sequential>();
    shortcut->emplace<QuantConv2d>("conv", in, out, 1, stride, 0, 1, false, seed++, layer_quant(o, false, false));
    add_bn(*shortcut, "bn", out, o);
  }
  return std::make_unique<Residual>(std::move(main), std::move(shortcut), Activation::relu);
}

/// MobileNetV2 inverted residual: 1x1 expand-BN-ReLU6, 3x3 depthwise-BN-ReLU6, 1x1 project-BN, identity
/// shortcut when stride 1 and in == out. `signed_input`: the block input may be negative (follows a linear
/// bottleneck). in, out, hidden: the widths after the multiplier (hidden = scaled(base_in * expand), the
/// layer-table rule, not torchvision's round(scaled(base_in) * expand): the two agree at multiplier 1).
inline std::unique_ptr<Module> inverted_residual(Index in, Index out, Index hidden, Index stride, bool signed_input,
                                                 const ModelOptions& o, std::uint64_t& seed) {
  auto main = std::make_unique<Sequential>();
  main->emplace<QuantConv2d>("expand", in, hidden, 1, 1, 0, 1, false, seed++, layer_quant(o, signed_input, false));
  add_bn(*main, "bn1", hidden, o);
  main->emplace<ReLU6>("relu1");
  main->emplace<QuantConv2d>("depthwise", hidden, hidden, 3, stride, 1, hidden, false, seed++,
                             layer_quant(o, false, false));
  add_bn(*main, "bn2", hidden, o);
  main->emplace<ReLU6>("relu2");
  main->emplace<QuantConv2d>("project", hidden, out, 1, 1, 0, 1, false, seed++, layer_quant(o, false, false));
  add_bn(*main, "bn3", out, o);
  if (stride == 1 && in == out) return std::make_unique<Residual>(std::move(main), nullptr, Activation::none);
  return main;
}

}  // namespace detail

/// MLP for 28x28 images: flatten, FC 784->256, ReLU, FC 256->128, ReLU, FC 128->classes.
/// Blocks: "flatten", "fc1", "relu1", "fc2", "relu2", "fc3". First and last FC are fixed-precision.
inline std::unique_ptr<Sequential> make_mlp(const ModelOptions& o = {}, Index image_size = 28) {
  auto m = std::make_unique<Sequential>();
  detail::check_width(o, "make_mlp");
  std::uint64_t seed = o.seed * 1000 + 1;
  const Index h1 = detail::scaled(256, o), h2 = detail::scaled(128, o);
  m->emplace<Flatten>("flatten");
  m->emplace<QuantLinear>("fc1", o.in_channels * image_size * image_size, h1, true, seed++,
                          detail::layer_quant(o, true, true));
  m->emplace<ReLU>("relu1");
  m->emplace<QuantLinear>("fc2", h1, h2, true, seed++, detail::layer_quant(o, false, false));
  m->emplace<ReLU>("relu2");
  m->emplace<QuantLinear>("fc3", h2, o.num_classes, true, seed++, detail::layer_quant(o, false, true));
  m->set_input_grad(false);
  return m;
}

/// Small ResNet for 28x28 images: stem conv3x3 (16) - BN - ReLU; stage1 basic block 16 (28x28); stage2 32,
/// stride 2 (14x14); stage3 64, stride 2 (7x7); head: global average pool, FC 64->classes.
/// Blocks: "stem", "stage1", "stage2", "stage3", "head". Stem conv and FC are fixed-precision.
inline std::unique_ptr<Sequential> make_resnet(const ModelOptions& o = {}) {
  auto m = std::make_unique<Sequential>();
  detail::check_width(o, "make_resnet");
  std::uint64_t seed = o.seed * 1000 + 1;
  const Index c1 = detail::scaled(16, o), c2 = detail::scaled(32, o), c3 = detail::scaled(64, o);
  auto& stem = m->emplace<Sequential>("stem");
  stem.emplace<QuantConv2d>("conv", o.in_channels, c1, 3, 1, 1, 1, false, seed++, detail::layer_quant(o, true, true));
  detail::add_bn(stem, "bn", c1, o);
  stem.emplace<ReLU>("relu");
  m->add("stage1", detail::basic_block(c1, c1, 1, o, seed));
  m->add("stage2", detail::basic_block(c1, c2, 2, o, seed));
  m->add("stage3", detail::basic_block(c2, c3, 2, o, seed));
  auto& head = m->emplace<Sequential>("head");
  head.emplace<GlobalAvgPool2d>("pool");
  head.emplace<QuantLinear>("fc", c3, o.num_classes, true, seed++, detail::layer_quant(o, false, true));
  m->set_input_grad(false);
  return m;
}

/// Small MobileNetV2-style network for 28x28 images: stem conv3x3 (16) - BN - ReLU6; inverted residuals
/// (expansion 4): 16->16 (28x28), 16->24 stride 2 (14x14), 24->24, 24->32 stride 2 (7x7), 32->32; 1x1 conv
/// to 128 - BN - ReLU6; head: global average pool, FC 128->classes.
/// Blocks: "stem", "block1".."block5", "last", "head". Stem conv and FC are fixed-precision.
inline std::unique_ptr<Sequential> make_mobilenet(const ModelOptions& o = {}) {
  auto m = std::make_unique<Sequential>();
  detail::check_width(o, "make_mobilenet");
  std::uint64_t seed = o.seed * 1000 + 1;
  auto w = [&](Index c) { return detail::scaled(c, o); };
  auto& stem = m->emplace<Sequential>("stem");
  stem.emplace<QuantConv2d>("conv", o.in_channels, w(16), 3, 1, 1, 1, false, seed++, detail::layer_quant(o, true, true));
  detail::add_bn(stem, "bn", w(16), o);
  stem.emplace<ReLU6>("relu");
  struct Cfg { Index in, out, stride; bool signed_input; };
  const Cfg cfg[] = {{16, 16, 1, false}, {16, 24, 2, true}, {24, 24, 1, true}, {24, 32, 2, true}, {32, 32, 1, true}};
  int i = 1;
  for (const Cfg& c : cfg)
    m->add("block" + std::to_string(i++),
           detail::inverted_residual(w(c.in), w(c.out), w(4 * c.in), c.stride, c.signed_input, o, seed));
  auto& last = m->emplace<Sequential>("last");
  last.emplace<QuantConv2d>("conv", w(32), w(128), 1, 1, 0, 1, false, seed++, detail::layer_quant(o, true, false));
  detail::add_bn(last, "bn", w(128), o);
  last.emplace<ReLU6>("relu");
  auto& head = m->emplace<Sequential>("head");
  head.emplace<GlobalAvgPool2d>("pool");
  head.emplace<QuantLinear>("fc", w(128), o.num_classes, true, seed++, detail::layer_quant(o, false, true));
  m->set_input_grad(false);
  return m;
}

/// Builds "mlp", "resnet" or "mobilenet"; throws mixq::error naming an unknown model.
inline std::unique_ptr<Sequential> make_model(const std::string& name, const ModelOptions& o = {}) {
  if (name == "mlp") return make_mlp(o);
  if (name == "resnet") return make_resnet(o);
  if (name == "mobilenet") return make_mobilenet(o);
  mixq::detail::fail("make_model: unknown model '", name, "' (expected mlp, resnet or mobilenet)");
}

}  // namespace mixq::nn
