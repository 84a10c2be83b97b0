#pragma once
/// @file
/// Batch normalisation (Ioffe and Szegedy, 2015) over N, H, W per channel, and a switchable bank holding one
/// BatchNorm per configuration key (one BN per (w_bits, a_bits) pair in one-shot weight-coupling training).

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mixq/nn/module.hpp"

namespace mixq::nn {

/// y = gamma * (x - mean) / sqrt(var + eps) + beta per channel. Training mode uses batch statistics (biased
/// variance) and updates running statistics with `momentum` (unbiased variance, PyTorch's convention);
/// evaluation mode uses the running statistics. Works on (N, C, H, W) and on (N, C, 1, 1).
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(Index channels, float momentum = 0.1f, float eps = 1e-5f)
      : channels_(channels), momentum_(momentum), eps_(eps) {
    if (channels <= 0) mixq::detail::fail("BatchNorm2d: channels must be positive, got ", channels);
    if (!(momentum >= 0.f && momentum <= 1.f))
      mixq::detail::fail("BatchNorm2d: momentum must be in [0, 1], got ", momentum);
    gamma_ = Parameter("weight", {channels}, true, false);
    beta_ = Parameter("bias", {channels}, true, false);
    running_mean_ = Parameter("running_mean", {channels}, false, false);
    running_var_ = Parameter("running_var", {channels}, false, false);
    gamma_.value.setOnes();
    running_var_.value.setOnes();
  }
  std::string kind() const override { return "BatchNorm2d"; }
  void own_parameters(std::vector<Parameter*>& out) override {
    out.push_back(&gamma_);
    out.push_back(&beta_);
    out.push_back(&running_mean_);
    out.push_back(&running_var_);
  }
  const Tensor& output() const override { return y_; }
  Index channels() const { return channels_; }
  float eps() const { return eps_; }
  float momentum() const { return momentum_; }
  /// Weight of a batch's statistics in the running ones, in [0, 1]: 0 freezes them, 1 replaces them with the
  /// batch's, 1/k for the k-th batch gives their plain average (PyTorch's momentum=None). Throws mixq::error
  /// otherwise (the constructor checks the same range).
  void set_momentum(float momentum) {
    if (!(momentum >= 0.f && momentum <= 1.f))
      mixq::detail::fail("BatchNorm2d::set_momentum: momentum must be in [0, 1], got ", momentum);
    momentum_ = momentum;
  }
  Parameter& weight() { return gamma_; }
  Parameter& bias() { return beta_; }
  Parameter& running_mean() { return running_mean_; }
  Parameter& running_var() { return running_var_; }
  /// Exchanges the output and input-gradient buffers with `other` (same channels): a grid of BN copies of which
  /// one runs at a time (one-shot weight coupling) keeps one set of buffers instead of one per copy. Call only
  /// between a finished backward of this BN and the next forward of `other`.
  void swap_buffers(BatchNorm2d& other) {
    y_.data.swap(other.y_.data);
    std::swap(y_.shape, other.y_.shape);
    dx_.data.swap(other.dx_.data);
    std::swap(dx_.shape, other.dx_.shape);
  }

 protected:
  const Tensor& forward_impl(const Tensor& x) override {
    if (x.c() != channels_) mixq::detail::fail("BatchNorm2d: input has ", x.c(), " channels, expected ", channels_);
    const Index N = x.n(), C = channels_, HW = x.h() * x.w(), M = N * HW;
    y_.resize_like(x);
    if (!training_) {
      parallel_for(C, [&](Index b, Index e, int) {
        for (Index c = b; c < e; ++c) {
          const float a = gamma_.value[c] / std::sqrt(running_var_.value[c] + eps_);
          const float d = beta_.value[c] - a * running_mean_.value[c];
          for (Index n = 0; n < N; ++n) {
            const Index off = (n * C + c) * HW;
            Eigen::Map<Eigen::ArrayXf>(y_.ptr() + off, HW) = Eigen::Map<const Eigen::ArrayXf>(x.ptr() + off, HW) * a + d;
          }
        }
      });
      return y_;
    }
    if (M < 2) mixq::detail::fail("BatchNorm2d: training needs more than one value per channel, got ", M);
    input_ = &x;
    mean_.resize(C);
    inv_std_.resize(C);
    parallel_for(C, [&](Index b, Index e, int) {
      for (Index c = b; c < e; ++c) {
        // Shifted sums (shift: the first value) in float per plane, accumulated in double across planes.
        const float shift = x.ptr()[c * HW];
        double sum = 0, sq = 0;
        for (Index n = 0; n < N; ++n) {
          auto xa = Eigen::Map<const Eigen::ArrayXf>(x.ptr() + (n * C + c) * HW, HW) - shift;
          sum += static_cast<double>(xa.sum());
          sq += static_cast<double>(xa.square().sum());
        }
        const double mean_shifted = sum / static_cast<double>(M);
        const double mean = mean_shifted + shift;
        const double var = std::max(0.0, sq / static_cast<double>(M) - mean_shifted * mean_shifted);
        const float inv = static_cast<float>(1.0 / std::sqrt(var + eps_));
        const float mf = static_cast<float>(mean);
        mean_[c] = mf;
        inv_std_[c] = inv;
        const float a = gamma_.value[c] * inv, bt = beta_.value[c];
        for (Index n = 0; n < N; ++n) {
          const Index off = (n * C + c) * HW;
          Eigen::Map<Eigen::ArrayXf>(y_.ptr() + off, HW) = (Eigen::Map<const Eigen::ArrayXf>(x.ptr() + off, HW) - mf) * a + bt;
        }
        running_mean_.value[c] = (1 - momentum_) * running_mean_.value[c] + momentum_ * mf;
        running_var_.value[c] = (1 - momentum_) * running_var_.value[c] +
                                momentum_ * static_cast<float>(var * static_cast<double>(M) / static_cast<double>(M - 1));
      }
    });
    return y_;
  }

  // Training-mode backward. xhat = (x - mean) * inv_std is recomputed from the input (the caller keeps it alive
  // until backward, as for every layer) instead of being stored by forward: one stream less to memory.
  const Tensor& backward_impl(const Tensor& dy) override {
    if (!training_) return backward_eval(dy);
    const Index N = dy.n(), C = channels_, HW = dy.h() * dy.w(), M = N * HW;
    if (input_grad_) dx_.resize_like(dy);
    const Tensor& x = *input_;
    parallel_for(C, [&](Index b, Index e, int) {
      for (Index c = b; c < e; ++c) {
        const float mf = mean_[c], inv = inv_std_[c];
        double dbeta = 0, dgamma = 0;
        for (Index n = 0; n < N; ++n) {
          const Index off = (n * C + c) * HW;
          auto d = Eigen::Map<const Eigen::ArrayXf>(dy.ptr() + off, HW);
          dbeta += d.sum();
          dgamma += (d * (Eigen::Map<const Eigen::ArrayXf>(x.ptr() + off, HW) - mf)).sum();
        }
        dgamma *= static_cast<double>(inv);
        gamma_.grad[c] += static_cast<float>(dgamma);
        beta_.grad[c] += static_cast<float>(dbeta);
        if (!input_grad_) continue;
        // dx = k * (dy - mean(dy) - xhat * mean(dy * xhat)) = (dy - mean(dy)) * k + (x - mean) * kx.
        const float k = gamma_.value[c] * inv;
        const float mb = static_cast<float>(dbeta / static_cast<double>(M));
        const float mg = static_cast<float>(dgamma / static_cast<double>(M));
        const float kx = -k * mg * inv;
        for (Index n = 0; n < N; ++n) {
          const Index off = (n * C + c) * HW;
          Eigen::Map<Eigen::ArrayXf>(dx_.ptr() + off, HW) =
              (Eigen::Map<const Eigen::ArrayXf>(dy.ptr() + off, HW) - mb) * k +
              (Eigen::Map<const Eigen::ArrayXf>(x.ptr() + off, HW) - mf) * kx;
        }
      }
    });
    gamma_.has_grad = beta_.has_grad = true;
    return dx_;
  }

  // Backward in evaluation mode (fixed statistics): a per-channel affine map.
  const Tensor& backward_eval(const Tensor& dy) {
    const Index N = dy.n(), C = channels_, HW = dy.h() * dy.w();
    if (input_grad_) dx_.resize_like(dy);
    for (Index c = 0; c < C; ++c) {
      const float inv = 1.f / std::sqrt(running_var_.value[c] + eps_);
      const float a = gamma_.value[c] * inv;
      double dbeta = 0, dgamma = 0;
      for (Index n = 0; n < N; ++n) {
        const Index off = (n * C + c) * HW;
        auto d = Eigen::Map<const Eigen::ArrayXf>(dy.ptr() + off, HW);
        auto y = Eigen::Map<const Eigen::ArrayXf>(y_.ptr() + off, HW);
        dbeta += d.sum();
        // xhat = (y - beta) / gamma when gamma != 0.
        if (gamma_.value[c] != 0.f) dgamma += (d * (y - beta_.value[c])).sum() / gamma_.value[c];
        if (input_grad_) Eigen::Map<Eigen::ArrayXf>(dx_.ptr() + off, HW) = d * a;
      }
      gamma_.grad[c] += static_cast<float>(dgamma);
      beta_.grad[c] += static_cast<float>(dbeta);
    }
    gamma_.has_grad = beta_.has_grad = true;
    return dx_;
  }

  Index channels_;
  float momentum_, eps_;
  Parameter gamma_, beta_, running_mean_, running_var_;
  Tensor y_, dx_;
  const Tensor* input_ = nullptr;  // training forward's input, read again by backward
  Eigen::VectorXf mean_, inv_std_;
};

/// A bank of BatchNorm2d, one per configuration key (for example "w4a4"); exactly one is active. Keys are
/// added before the optimiser collects parameters; a new key starts as a copy of the active BN (or fresh).
/// Parameters are named "<key>.weight", "<key>.running_mean", ... Children are the BNs, named by key.
class SwitchableBatchNorm2d : public Module {
 public:
  /// A bank with the single key `initial_key`.
  explicit SwitchableBatchNorm2d(Index channels, const std::string& initial_key = "default", float momentum = 0.1f,
                                 float eps = 1e-5f)
      : channels_(channels), momentum_(momentum), eps_(eps) {
    add_key(initial_key, false);
    active_ = bank_.begin()->second.get();
    active_key_ = initial_key;
  }
  /// Adds a BN for `key` (no-op if present): a copy of the active one when `copy_active`, else fresh.
  void add_key(const std::string& key, bool copy_active = true) {
    if (bank_.count(key)) return;
    auto bn = std::make_unique<BatchNorm2d>(channels_, momentum_, eps_);
    if (copy_active && active_) {
      bn->weight().value = active_->weight().value;
      bn->bias().value = active_->bias().value;
      bn->running_mean().value = active_->running_mean().value;
      bn->running_var().value = active_->running_var().value;
    }
    bn->set_training(training_);
    bn->set_input_grad(input_grad_);
    bank_.emplace(key, std::move(bn));
  }
  /// Makes `key` active; throws mixq::error naming the key when it is not in the bank.
  void set_key(const std::string& key) {
    auto it = bank_.find(key);
    if (it == bank_.end()) mixq::detail::fail("SwitchableBatchNorm2d: no BN for key '", key, "'");
    active_ = it->second.get();
    active_key_ = key;
  }
  bool has_key(const std::string& key) const { return bank_.count(key) != 0; }
  const std::string& key() const { return active_key_; }
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    for (auto& [n, b] : bank_) k.push_back(n);
    return k;
  }
  BatchNorm2d& active() { return *active_; }
  BatchNorm2d& at(const std::string& key) {
    set_key_check(key);
    return *bank_.at(key);
  }

  std::string kind() const override { return "SwitchableBatchNorm2d"; }
  void children(std::vector<std::pair<std::string, Module*>>& out) override {
    for (auto& [n, b] : bank_) out.emplace_back(n, b.get());
  }
  void set_input_grad(bool needed) override {
    input_grad_ = needed;
    for (auto& [n, b] : bank_) b->set_input_grad(needed);
  }
  const Tensor& output() const override { return active_->output(); }

 protected:
  const Tensor& forward_impl(const Tensor& x) override { return active_->forward(x); }
  const Tensor& backward_impl(const Tensor& dy) override { return active_->backward(dy); }

 private:
  void set_key_check(const std::string& key) const {
    if (!bank_.count(key)) mixq::detail::fail("SwitchableBatchNorm2d: no BN for key '", key, "'");
  }
  Index channels_;
  float momentum_, eps_;
  std::map<std::string, std::unique_ptr<BatchNorm2d>> bank_;
  BatchNorm2d* active_ = nullptr;
  std::string active_key_;
};

}  // namespace mixq::nn
