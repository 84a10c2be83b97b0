#pragma once
/// @file
/// Optimisers (SGD with momentum/Nesterov/weight decay, Adam), learning-rate schedules (cosine with linear
/// warmup, one-cycle), weight EMA, and gradient clipping by value. Parameters without a gradient since the
/// last zero_grad() (Parameter::has_grad false) are skipped, like PyTorch's grad=None.

#include <cmath>
#include <vector>

#include "mixq/nn/tensor.hpp"

namespace mixq::nn {

namespace detail {
inline constexpr double kPi = 3.14159265358979323846;
}

/// Stochastic gradient descent, PyTorch's formulation: g = grad + wd * w; v = mu * v + g;
/// step = nesterov ? g + mu * v : v; w -= lr * lr_scale * step. Weight decay only on parameters with
/// Parameter::weight_decay.
class Sgd {
 public:
  Sgd(std::vector<Parameter*> params, float lr, float momentum = 0.9f, bool nesterov = true,
      float weight_decay = 5e-4f)
      : params_(std::move(params)), lr_(lr), momentum_(momentum), nesterov_(nesterov), weight_decay_(weight_decay) {
    if (!(lr >= 0.f) || momentum < 0.f || weight_decay < 0.f)
      mixq::detail::fail("Sgd: invalid lr=", lr, " momentum=", momentum, " weight_decay=", weight_decay);
    for (Parameter* p : params_) velocity_.push_back(Eigen::VectorXf::Zero(p->value.size()));
  }
  void set_lr(float lr) { lr_ = lr; }
  float lr() const { return lr_; }
  /// One update of every parameter that has a gradient.
  void step() {
    parallel_for(static_cast<Index>(params_.size()), [&](Index b, Index e, int) {
      for (Index i = b; i < e; ++i) {
        Parameter& p = *params_[static_cast<std::size_t>(i)];
        if (!p.trainable || !p.has_grad) continue;
        Eigen::VectorXf& v = velocity_[static_cast<std::size_t>(i)];
        const float wd = p.weight_decay ? weight_decay_ : 0.f;
        const float lr = lr_ * p.lr_scale;
        auto g = (p.grad.array() + wd * p.value.array());
        if (momentum_ == 0.f) {
          p.value.array() -= lr * g;
          continue;
        }
        v.array() = momentum_ * v.array() + g;
        if (nesterov_)
          p.value.array() -= lr * (g + momentum_ * v.array());
        else
          p.value.array() -= lr * v.array();
      }
    });
  }

 private:
  std::vector<Parameter*> params_;
  std::vector<Eigen::VectorXf> velocity_;
  float lr_, momentum_;
  bool nesterov_;
  float weight_decay_;
};

/// Adam (Kingma and Ba, 2015) with L2 weight decay added to the gradient (decoupled = false) or AdamW's
/// decoupled decay (decoupled = true, Loshchilov and Hutter, 2019).
class Adam {
 public:
  Adam(std::vector<Parameter*> params, float lr = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f,
       float weight_decay = 0.f, bool decoupled = false)
      : params_(std::move(params)), lr_(lr), beta1_(beta1), beta2_(beta2), eps_(eps), weight_decay_(weight_decay),
        decoupled_(decoupled) {
    if (!(lr >= 0.f) || beta1 < 0.f || beta1 >= 1.f || beta2 < 0.f || beta2 >= 1.f)
      mixq::detail::fail("Adam: invalid lr=", lr, " beta1=", beta1, " beta2=", beta2);
    for (Parameter* p : params_) {
      m_.push_back(Eigen::VectorXf::Zero(p->value.size()));
      v_.push_back(Eigen::VectorXf::Zero(p->value.size()));
      t_.push_back(0);
    }
  }
  void set_lr(float lr) { lr_ = lr; }
  float lr() const { return lr_; }
  void step() {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      Parameter& p = *params_[i];
      if (!p.trainable || !p.has_grad) continue;
      const float wd = p.weight_decay ? weight_decay_ : 0.f;
      const float lr = lr_ * p.lr_scale;
      Eigen::ArrayXf g = p.grad.array();
      if (!decoupled_) g += wd * p.value.array();
      const int t = ++t_[i];
      m_[i].array() = beta1_ * m_[i].array() + (1 - beta1_) * g;
      v_[i].array() = beta2_ * v_[i].array() + (1 - beta2_) * g.square();
      const float bc1 = 1.f - std::pow(beta1_, static_cast<float>(t));
      const float bc2 = 1.f - std::pow(beta2_, static_cast<float>(t));
      if (decoupled_) p.value.array() *= 1.f - lr * wd;
      p.value.array() -= lr * (m_[i].array() / bc1) / ((v_[i].array() / bc2).sqrt() + eps_);
    }
  }

 private:
  std::vector<Parameter*> params_;
  std::vector<Eigen::VectorXf> m_, v_;
  std::vector<int> t_;
  float lr_, beta1_, beta2_, eps_, weight_decay_;
  bool decoupled_;
};

/// Learning rate at `step` (0-based) of `total_steps`: linear warmup from `warmup_start` * base_lr to base_lr
/// over `warmup_steps`, then cosine decay to `final_lr`.
inline float cosine_lr(Index step, Index total_steps, float base_lr, Index warmup_steps = 0, float final_lr = 0.f,
                       float warmup_start = 0.f) {
  if (total_steps <= 0) mixq::detail::fail("cosine_lr: total_steps must be positive, got ", total_steps);
  if (step < warmup_steps)
    return base_lr * (warmup_start + (1.f - warmup_start) * static_cast<float>(step) / static_cast<float>(warmup_steps));
  const Index span = std::max<Index>(1, total_steps - warmup_steps);
  const double t = std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(span));
  return static_cast<float>(final_lr + 0.5 * (base_lr - final_lr) * (1.0 + std::cos(detail::kPi * t)));
}

/// PyTorch's OneCycleLR (cosine annealing, three phases off): from max_lr/div_factor up to max_lr over
/// pct_start of the steps, then down to max_lr/(div_factor*final_div_factor), both by cosine.
inline float one_cycle_lr(Index step, Index total_steps, float max_lr, float pct_start = 0.3f,
                          float div_factor = 25.f, float final_div_factor = 1e4f) {
  if (total_steps <= 1) mixq::detail::fail("one_cycle_lr: total_steps must be > 1, got ", total_steps);
  const double initial = max_lr / div_factor, final_lr = initial / final_div_factor;
  const double up_end = static_cast<double>(pct_start) * static_cast<double>(total_steps) - 1.0;
  const double down_end = static_cast<double>(total_steps) - 1.0;
  auto anneal = [](double start, double end, double pct) { return end + (start - end) / 2.0 * (std::cos(detail::kPi * pct) + 1.0); };
  const double s = static_cast<double>(step);
  if (s <= up_end) return static_cast<float>(anneal(initial, max_lr, s / up_end));
  return static_cast<float>(anneal(max_lr, final_lr, std::min(1.0, (s - up_end) / (down_end - up_end))));
}

/// Exponential moving average of parameter values: shadow = decay * shadow + (1 - decay) * value.
class WeightEma {
 public:
  WeightEma(std::vector<Parameter*> params, float decay) : params_(std::move(params)), decay_(decay) {
    if (decay < 0.f || decay >= 1.f) mixq::detail::fail("WeightEma: decay must be in [0, 1), got ", decay);
    for (Parameter* p : params_) shadow_.push_back(p->value);
  }
  void update() {
    for (std::size_t i = 0; i < params_.size(); ++i)
      shadow_[i] = decay_ * shadow_[i] + (1.f - decay_) * params_[i]->value;
  }
  /// Swaps the live values with the averages (call twice to restore).
  void swap() {
    for (std::size_t i = 0; i < params_.size(); ++i) params_[i]->value.swap(shadow_[i]);
  }
  const Eigen::VectorXf& shadow(std::size_t i) const { return shadow_.at(i); }

 private:
  std::vector<Parameter*> params_;
  std::vector<Eigen::VectorXf> shadow_;
  float decay_;
};

/// Clamps every gradient element to [-clip, clip].
inline void clip_grad_value(const std::vector<Parameter*>& params, float clip) {
  if (!(clip > 0.f)) mixq::detail::fail("clip_grad_value: clip must be positive, got ", clip);
  for (Parameter* p : params)
    if (p->trainable) p->grad = p->grad.cwiseMax(-clip).cwiseMin(clip);
}

}  // namespace mixq::nn
