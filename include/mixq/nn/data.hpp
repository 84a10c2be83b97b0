#pragma once
/// @file
/// Mini-batches from 8-bit images: normalisation, shuffling, and optional horizontal flips.

#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "mixq/nn/tensor.hpp"

namespace mixq::nn {

/// Fills x (n, channels, height, width) with (pixel / 255 - mean) / std of images[indices[begin..end)],
/// each image a row of channels*height*width bytes, and y with their labels. When `rng` is given, each
/// image is flipped left-right with probability 1/2 (data augmentation).
inline void make_batch(const std::uint8_t* images, const std::uint8_t* labels, const std::vector<Index>& indices,
                       Index begin, Index end, Index channels, Index height, Index width, float mean, float std_dev,
                       Tensor& x, std::vector<std::int32_t>& y, std::mt19937_64* rng = nullptr) {
  if (begin < 0 || end > static_cast<Index>(indices.size()) || begin >= end)
    mixq::detail::fail("make_batch: range [", begin, ", ", end, ") invalid for ", indices.size(), " indices");
  const Index n = end - begin, S = channels * height * width;
  x.resize(n, channels, height, width);
  y.resize(static_cast<std::size_t>(n));
  const float a = 1.f / (255.f * std_dev), b = -mean / std_dev;
  std::bernoulli_distribution coin(0.5);
  for (Index i = 0; i < n; ++i) {
    const Index src = indices[static_cast<std::size_t>(begin + i)];
    const std::uint8_t* im = images + src * S;
    float* dst = x.ptr() + i * S;
    const bool flip = rng != nullptr && coin(*rng);
    for (Index c = 0; c < channels * height; ++c)
      for (Index w = 0; w < width; ++w)
        dst[c * width + w] = static_cast<float>(im[c * width + (flip ? width - 1 - w : w)]) * a + b;
    y[static_cast<std::size_t>(i)] = labels[src];
  }
}

/// 0, 1, ..., n-1, shuffled with `rng` when given.
inline std::vector<Index> epoch_order(Index n, std::mt19937_64* rng = nullptr) {
  std::vector<Index> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), Index{0});
  if (rng) std::shuffle(order.begin(), order.end(), *rng);
  return order;
}

}  // namespace mixq::nn
