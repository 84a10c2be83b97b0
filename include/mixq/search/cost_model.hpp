#pragma once
/// @file
/// Cost model of a network for mixed-precision search: exact parameter counts, multiply-accumulates (MACs),
/// BitOps = MACs * w_bits * a_bits, model size in bits and average bit-width.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mixq/error.hpp"

namespace mixq::search {

/// The kind of a layer with weights.
enum class LayerKind { conv, depthwise_conv, linear };

/// One layer with weights. Convolutions are square (kernel x kernel, same stride and padding on both axes);
/// a linear layer uses in_channels / out_channels as its in / out features and ignores the spatial fields.
struct Layer {
  std::string name;
  LayerKind kind = LayerKind::conv;
  std::int64_t in_channels = 0;
  std::int64_t out_channels = 0;
  std::int64_t kernel = 1;
  std::int64_t stride = 1;
  std::int64_t padding = 0;
  std::int64_t groups = 1;        ///< depthwise_conv: always in_channels (set by the factory)
  std::int64_t input_height = 1;  ///< input feature map height (pixels)
  std::int64_t input_width = 1;
  bool bias = false;        ///< the layer has a bias vector
  bool batch_norm = false;  ///< the layer is followed by a BatchNorm (weight and bias count as parameters)
  int fixed_bits = 0;       ///< 0: searchable; otherwise the fixed weight and activation bit-width (e.g. 8)
};

/// A network: its layers with weights, in forward order.
using LayerTable = std::vector<Layer>;

/// A convolution layer (groups = 1 unless given).
inline Layer conv_layer(std::string name, std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel,
                        std::int64_t stride, std::int64_t padding, std::int64_t input_height,
                        std::int64_t input_width, bool batch_norm = true, bool bias = false,
                        std::int64_t groups = 1) {
  Layer l;
  l.name = std::move(name);
  l.kind = LayerKind::conv;
  l.in_channels = in_channels;
  l.out_channels = out_channels;
  l.kernel = kernel;
  l.stride = stride;
  l.padding = padding;
  l.groups = groups;
  l.input_height = input_height;
  l.input_width = input_width;
  l.batch_norm = batch_norm;
  l.bias = bias;
  return l;
}

/// A depthwise convolution (groups = in_channels = out_channels).
inline Layer depthwise_conv_layer(std::string name, std::int64_t channels, std::int64_t kernel, std::int64_t stride,
                                  std::int64_t padding, std::int64_t input_height, std::int64_t input_width,
                                  bool batch_norm = true) {
  Layer l = conv_layer(std::move(name), channels, channels, kernel, stride, padding, input_height, input_width,
                       batch_norm, false, channels);
  l.kind = LayerKind::depthwise_conv;
  return l;
}

/// A fully connected layer.
inline Layer linear_layer(std::string name, std::int64_t in_features, std::int64_t out_features, bool bias = true) {
  Layer l;
  l.name = std::move(name);
  l.kind = LayerKind::linear;
  l.in_channels = in_features;
  l.out_channels = out_features;
  l.bias = bias;
  return l;
}

namespace detail {
inline void check_layer(const Layer& l) {
  if (l.in_channels <= 0 || l.out_channels <= 0)
    mixq::detail::fail("layer '", l.name, "': channels must be positive, got in_channels=", l.in_channels,
                       " out_channels=", l.out_channels);
  if (l.kind == LayerKind::linear) return;
  if (l.kernel <= 0 || l.stride <= 0 || l.padding < 0 || l.groups <= 0 || l.input_height <= 0 ||
      l.input_width <= 0)
    mixq::detail::fail("layer '", l.name, "': kernel, stride, groups and input size must be positive and padding ",
                       "non-negative, got kernel=", l.kernel, " stride=", l.stride, " padding=", l.padding,
                       " groups=", l.groups, " input=", l.input_height, "x", l.input_width);
  if (l.in_channels % l.groups != 0 || l.out_channels % l.groups != 0)
    mixq::detail::fail("layer '", l.name, "': groups=", l.groups, " must divide in_channels=", l.in_channels,
                       " and out_channels=", l.out_channels);
  if (l.kind == LayerKind::depthwise_conv && (l.groups != l.in_channels || l.in_channels != l.out_channels))
    mixq::detail::fail("layer '", l.name, "': a depthwise conv needs groups == in_channels == out_channels, got ",
                       l.groups, ", ", l.in_channels, ", ", l.out_channels);
  if (l.input_height + 2 * l.padding < l.kernel || l.input_width + 2 * l.padding < l.kernel)
    mixq::detail::fail("layer '", l.name, "': kernel=", l.kernel, " larger than the padded input ",
                       l.input_height + 2 * l.padding, "x", l.input_width + 2 * l.padding);
}
}  // namespace detail

/// Output height of a convolution: floor((H + 2 padding - kernel) / stride) + 1; 1 for a linear layer.
inline std::int64_t output_height(const Layer& l) {
  detail::check_layer(l);
  if (l.kind == LayerKind::linear) return 1;
  return (l.input_height + 2 * l.padding - l.kernel) / l.stride + 1;
}

/// Output width of a convolution; 1 for a linear layer.
inline std::int64_t output_width(const Layer& l) {
  detail::check_layer(l);
  if (l.kind == LayerKind::linear) return 1;
  return (l.input_width + 2 * l.padding - l.kernel) / l.stride + 1;
}

/// Number of weights (the quantized tensor): out * in / groups * kernel^2 for a conv, in * out for a linear layer.
inline std::int64_t weight_count(const Layer& l) {
  detail::check_layer(l);
  if (l.kind == LayerKind::linear) return l.in_channels * l.out_channels;
  return l.out_channels * (l.in_channels / l.groups) * l.kernel * l.kernel;
}

/// All parameters of the layer as torchvision counts them: weights, bias, and BatchNorm weight and bias.
inline std::int64_t parameter_count(const Layer& l) {
  return weight_count(l) + (l.bias ? l.out_channels : 0) + (l.batch_norm ? 2 * l.out_channels : 0);
}

/// Multiply-accumulates for one input image: weight_count * output pixels (conv), in * out (linear).
inline std::int64_t macs(const Layer& l) { return weight_count(l) * output_height(l) * output_width(l); }

/// BitOps of a layer: MACs * w_bits * a_bits (Baskin et al.; the LIMPQ and HAWQ-V3 budget).
inline std::int64_t bit_operations(const Layer& l, int weight_bits, int activation_bits) {
  if (weight_bits <= 0 || activation_bits <= 0)
    mixq::detail::fail("bit_operations: bit-widths must be positive, got weight_bits=", weight_bits,
                       " activation_bits=", activation_bits);
  return macs(l) * weight_bits * activation_bits;
}

/// Sum of parameter_count over the table.
inline std::int64_t total_parameters(const LayerTable& t) {
  std::int64_t s = 0;
  for (const Layer& l : t) s += parameter_count(l);
  return s;
}

/// Sum of weight_count over the table.
inline std::int64_t total_weights(const LayerTable& t) {
  std::int64_t s = 0;
  for (const Layer& l : t) s += weight_count(l);
  return s;
}

/// Sum of MACs over the table (one image).
inline std::int64_t total_macs(const LayerTable& t) {
  std::int64_t s = 0;
  for (const Layer& l : t) s += macs(l);
  return s;
}

/// Per-layer bit-widths of a policy: weight and activation bits for every layer of a table, fixed layers included.
struct BitPolicy {
  std::vector<int> weight_bits;
  std::vector<int> activation_bits;
};

namespace detail {
inline void check_policy(const LayerTable& t, const BitPolicy& p) {
  if (p.weight_bits.size() != t.size() || p.activation_bits.size() != t.size())
    mixq::detail::fail("policy: needs one weight and activation bit-width per layer (", t.size(), "), got ",
                       p.weight_bits.size(), " and ", p.activation_bits.size());
  for (std::size_t i = 0; i < t.size(); ++i)
    if (p.weight_bits[i] <= 0 || p.weight_bits[i] > 32 || p.activation_bits[i] <= 0 || p.activation_bits[i] > 32)
      mixq::detail::fail("policy: bit-widths of layer '", t[i].name, "' must be in 1..32, got w=", p.weight_bits[i],
                         " a=", p.activation_bits[i]);
}
}  // namespace detail

/// A uniform policy: searchable layers at (weight_bits, activation_bits), fixed layers at their fixed_bits.
inline BitPolicy uniform_policy(const LayerTable& t, int weight_bits, int activation_bits) {
  BitPolicy p;
  for (const Layer& l : t) {
    p.weight_bits.push_back(l.fixed_bits ? l.fixed_bits : weight_bits);
    p.activation_bits.push_back(l.fixed_bits ? l.fixed_bits : activation_bits);
  }
  detail::check_policy(t, p);
  return p;
}

/// Total BitOps of a policy: sum_l MACs_l * w_l * a_l.
inline std::int64_t total_bit_operations(const LayerTable& t, const BitPolicy& p) {
  detail::check_policy(t, p);
  std::int64_t s = 0;
  for (std::size_t i = 0; i < t.size(); ++i) s += bit_operations(t[i], p.weight_bits[i], p.activation_bits[i]);
  return s;
}

/// Model size in bits: sum_l weight_count_l * w_l (the LIMPQ and Chin et al. size; biases and BatchNorm,
/// folded or kept in float, are not counted).
inline std::int64_t model_size_bits(const LayerTable& t, const BitPolicy& p) {
  detail::check_policy(t, p);
  std::int64_t s = 0;
  for (std::size_t i = 0; i < t.size(); ++i) s += weight_count(t[i]) * p.weight_bits[i];
  return s;
}

/// Average weight bit-width: model_size_bits / total_weights.
inline double average_bit_width(const LayerTable& t, const BitPolicy& p) {
  return static_cast<double>(model_size_bits(t, p)) / static_cast<double>(total_weights(t));
}

}  // namespace mixq::search
