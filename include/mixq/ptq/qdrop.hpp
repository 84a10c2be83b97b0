#pragma once
/// @file
/// QDrop (Wei et al., ICLR 2022) masks: during reconstruction each element keeps its quantized value with
/// probability p (the keep probability, 0.5 by default; p = 1 is plain quantization) and takes its float value
/// otherwise, freshly drawn per element and step. The draw is a counter-based hash of (stream key, element index):
/// branch-free 32-bit integer arithmetic that compilers vectorise, and the same mask for any thread count.

#include <cstdint>

#include "mixq/error.hpp"
#include "mixq/nn/tensor.hpp"

namespace mixq::ptq {

using nn::Index;

namespace detail {

/// A 32-bit integer hash with good avalanche (the "lowbias32" constants of C. Wellons' hash prospector).
inline std::uint32_t hash32(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

/// splitmix64's finaliser: 64-bit keys from (seed, counter).
inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// The keep threshold of probability p in (0, 1): an element is kept when its 32-bit draw is below it.
inline std::uint32_t keep_threshold(float p) {
  return static_cast<std::uint32_t>(static_cast<double>(p) * 4294967296.0);
}

}  // namespace detail

/// Throws mixq::error unless p is in (0, 1] (the keep probability of QDrop; 1 = always quantized).
inline void check_keep_probability(const char* what, float p) {
  if (!(p > 0.f && p <= 1.f)) mixq::detail::fail(what, " must be in (0, 1], got ", p);
}

/// A stream of QDrop masks: each call of fill() draws a new mask (the stream's counter advances), element i of it
/// keeping quantization with probability p. Seeded: the same seed gives the same masks.
class DropMask {
 public:
  explicit DropMask(std::uint64_t seed = 0) : seed_(seed) {}
  void reseed(std::uint64_t seed) {
    seed_ = seed;
    counter_ = 0;
  }
  std::uint64_t counter() const { return counter_; }

  /// mask[i] = 1 (keep the quantized value) with probability p, else 0, for i in [0, n). p in (0, 1].
  void fill(float p, Index n, float* mask) {
    check_keep_probability("DropMask::fill: p", p);
    const std::uint64_t key = detail::mix64(seed_ ^ detail::mix64(++counter_));
    if (p >= 1.f) {
      for (Index i = 0; i < n; ++i) mask[i] = 1.f;
      return;
    }
    const auto lo = static_cast<std::uint32_t>(key), hi = static_cast<std::uint32_t>(key >> 32);
    const std::uint32_t threshold = detail::keep_threshold(p);
    nn::parallel_for(n, [&](Index b, Index e, int) {
      for (Index i = b; i < e; ++i) {
        const std::uint32_t r = detail::hash32(detail::hash32(static_cast<std::uint32_t>(i) + lo) ^ hi);
        mask[i] = r < threshold ? 1.f : 0.f;
      }
    });
  }

 private:
  std::uint64_t seed_;
  std::uint64_t counter_ = 0;
};

/// out = mask ? quantized : fp element-wise (QDrop's mixed unit input); shapes must agree.
inline void mix_by_mask(const nn::Tensor& quantized, const nn::Tensor& fp, const float* mask, nn::Tensor& out) {
  if (!quantized.same_shape(fp))
    mixq::detail::fail("mix_by_mask: quantized and float inputs differ in shape (", quantized.size(), " vs ",
                       fp.size(), " elements)");
  out.resize_like(fp);
  const Index n = fp.size();
  nn::parallel_for(n, [&](Index b, Index e, int) {
    auto m = Eigen::Map<const Eigen::ArrayXf>(mask + b, e - b);
    auto q = Eigen::Map<const Eigen::ArrayXf>(quantized.ptr() + b, e - b);
    auto f = Eigen::Map<const Eigen::ArrayXf>(fp.ptr() + b, e - b);
    Eigen::Map<Eigen::ArrayXf>(out.ptr() + b, e - b) = (m > 0.5f).select(q, f);
  });
}

}  // namespace mixq::ptq
