#pragma once
/// @file
/// Built-in layer tables of torchvision's ResNet-18, ResNet-50 (v1.5: stride on the 3x3 conv) and MobileNetV2
/// at 224x224, 1000 classes. The first conv and the last FC are fixed at 8 bits (LIMPQ, HAWQ-V3).

#include <cstdint>
#include <string>

#include "mixq/search/cost_model.hpp"

namespace mixq::search {

namespace detail {
inline void fix_first_last(LayerTable& t, int bits) {
  if (bits <= 0) return;
  t.front().fixed_bits = bits;
  t.back().fixed_bits = bits;
}
}  // namespace detail

/// torchvision resnet18: 21 convs (incl. 3 downsample 1x1) + FC; 11,689,512 parameters, 1,814,073,344 MACs.
/// first_last_bits: fixed bit-width of conv1 and fc (0: searchable).
inline LayerTable resnet18(int first_last_bits = 8) {
  LayerTable t;
  t.push_back(conv_layer("conv1", 3, 64, 7, 2, 3, 224, 224));
  std::int64_t in = 64, size = 56;  // after the 3x3/2 max pool
  const std::int64_t widths[4] = {64, 128, 256, 512};
  for (int s = 0; s < 4; ++s) {
    for (int b = 0; b < 2; ++b) {
      const std::int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      const std::string p = "layer" + std::to_string(s + 1) + "." + std::to_string(b) + ".";
      const std::int64_t w = widths[s];
      t.push_back(conv_layer(p + "conv1", in, w, 3, stride, 1, size, size));
      const std::int64_t out_size = (size + 2 - 3) / stride + 1;
      t.push_back(conv_layer(p + "conv2", w, w, 3, 1, 1, out_size, out_size));
      if (stride != 1 || in != w) t.push_back(conv_layer(p + "downsample.0", in, w, 1, stride, 0, size, size));
      in = w;
      size = out_size;
    }
  }
  t.push_back(linear_layer("fc", 512, 1000));
  detail::fix_first_last(t, first_last_bits);
  return t;
}

/// torchvision resnet50 (v1.5): 53 convs (incl. 4 downsample 1x1) + FC; 25,557,032 parameters,
/// 4,089,184,256 MACs.
inline LayerTable resnet50(int first_last_bits = 8) {
  LayerTable t;
  t.push_back(conv_layer("conv1", 3, 64, 7, 2, 3, 224, 224));
  std::int64_t in = 64, size = 56;
  const std::int64_t widths[4] = {64, 128, 256, 512};
  const int blocks[4] = {3, 4, 6, 3};
  for (int s = 0; s < 4; ++s) {
    for (int b = 0; b < blocks[s]; ++b) {
      const std::int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      const std::string p = "layer" + std::to_string(s + 1) + "." + std::to_string(b) + ".";
      const std::int64_t w = widths[s], out = 4 * widths[s];
      const std::int64_t out_size = (size + 2 - 3) / stride + 1;
      t.push_back(conv_layer(p + "conv1", in, w, 1, 1, 0, size, size));
      t.push_back(conv_layer(p + "conv2", w, w, 3, stride, 1, size, size));
      t.push_back(conv_layer(p + "conv3", w, out, 1, 1, 0, out_size, out_size));
      if (stride != 1 || in != out) t.push_back(conv_layer(p + "downsample.0", in, out, 1, stride, 0, size, size));
      in = out;
      size = out_size;
    }
  }
  t.push_back(linear_layer("fc", 2048, 1000));
  detail::fix_first_last(t, first_last_bits);
  return t;
}

/// torchvision mobilenet_v2 (width 1.0): 52 convs (17 depthwise) + FC; 3,504,872 parameters, 300,774,272 MACs.
inline LayerTable mobilenet_v2(int first_last_bits = 8) {
  LayerTable t;
  t.push_back(conv_layer("features.0.0", 3, 32, 3, 2, 1, 224, 224));
  std::int64_t in = 32, size = 112;
  struct Stage { int expand, channels, repeats, stride; };
  const Stage stages[7] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                           {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int index = 1;
  for (const Stage& st : stages) {
    for (int r = 0; r < st.repeats; ++r) {
      const std::int64_t stride = r == 0 ? st.stride : 1;
      const std::int64_t hidden = in * st.expand;
      const std::string p = "features." + std::to_string(index) + ".conv.";
      int part = 0;
      if (st.expand != 1) {
        t.push_back(conv_layer(p + std::to_string(part) + ".0", in, hidden, 1, 1, 0, size, size));
        ++part;
      }
      t.push_back(depthwise_conv_layer(p + std::to_string(part) + ".0", hidden, 3, stride, 1, size, size));
      ++part;
      const std::int64_t out_size = (size + 2 - 3) / stride + 1;
      t.push_back(conv_layer(p + std::to_string(part), hidden, st.channels, 1, 1, 0, out_size, out_size));
      in = st.channels;
      size = out_size;
      ++index;
    }
  }
  t.push_back(conv_layer("features.18.0", in, 1280, 1, 1, 0, size, size));
  t.push_back(linear_layer("classifier.1", 1280, 1000));
  detail::fix_first_last(t, first_last_bits);
  return t;
}

/// The table of a built-in network by name: "resnet18", "resnet50" or "mobilenet_v2".
inline LayerTable network_by_name(const std::string& name, int first_last_bits = 8) {
  if (name == "resnet18") return resnet18(first_last_bits);
  if (name == "resnet50") return resnet50(first_last_bits);
  if (name == "mobilenet_v2" || name == "mobilenetv2") return mobilenet_v2(first_last_bits);
  mixq::detail::fail("network_by_name: unknown network '", name, "' (resnet18, resnet50, mobilenet_v2)");
}

}  // namespace mixq::search
