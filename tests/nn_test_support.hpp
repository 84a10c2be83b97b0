#pragma once
// Helpers shared by the tests of the nn stack (test_nn, test_nn_train), which are compiled as one translation unit
// (tests/CMakeLists.txt, MIXQ_NN_STACK_TESTS): whatever two of them need is defined here once.
#include <mixq/nn/tensor.hpp>

#include <cmath>
#include <cstdint>
#include <random>

namespace mixq_test {

/// An (n, c, h, w) tensor of standard normal values from seed; values closer to 0 than away_from_zero are moved
/// away from it by that much (kinks of ReLU-like layers stay out of finite-difference steps).
inline mixq::nn::Tensor random_tensor(mixq::nn::Index n, mixq::nn::Index c, mixq::nn::Index h, mixq::nn::Index w,
                                      std::uint64_t seed, float away_from_zero = 0.f) {
  mixq::nn::Tensor t(n, c, h, w);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  for (mixq::nn::Index i = 0; i < t.size(); ++i) {
    float v = d(rng);
    if (std::fabs(v) < away_from_zero) v = v < 0 ? v - away_from_zero : v + away_from_zero;
    t.data[i] = v;
  }
  return t;
}

}  // namespace mixq_test
