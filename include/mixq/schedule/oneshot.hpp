#pragma once
/// @file
/// One-shot weight-coupling training of a Supernet (Tang et al., CVPR 2024; ../shared/methods/ONESHOT.md
/// section 4). One step on a mini-batch:
/// 1. the max-bit subnet (every layer at its current maximum w and a bits): cross-entropy; its logits, detached,
///    are the teacher and its searchable BN outputs the IDM targets;
/// 2. k random subnets (every layer draws w and a independently and uniformly from its current candidates):
///    1/2 CE + 1/2 KL(softmax(teacher) || softmax(student)) (batch mean, temperature 1) + IDM: idm_weight * sum of
///    mean((F_l - T_l)^2) over the layers sampled at their current minimum weight bit-width;
/// 3. gradients summed over the 1 + k backward passes, clipped by value; SGD with Nesterov momentum for the float
///    weights (weight decay on conv weights only), Adam for the step sizes; cosine learning rates with linear
///    warm-up; an EMA of every parameter and buffer, started after the first step (the released code starts it
///    before the step sizes exist), which search and evaluation use.
/// Code-only extras of the released code, off by default, each a switch:
/// - QE loss (oscillation dampening, "Overcoming Oscillations in QAT", ICML 2022): on the random subnets, per
///   searchable conv at sampled b with b_min its current minimum, (1 / fan_in) * sum (clip(W) - T)^2, T = Q_b(W)
///   for weights whose integer code is a multiple of 2^(b - b_min) (levels shared with the coarsest grid; the
///   released code tests this by float equality, here on the integer code), else clip(W); weight
///   0.05 (1 - cos(pi (t - t0) / (t_end - t0))) from t0 = 40/150 of the steps;
/// - "distribution" loss: lambda_D = -2.5e-5 times 1/2 sum clamp(W, Qn s, Qp s)^2 on the layers a random subnet
///   puts at their original minimum weight bit-width (it cancels SGD's weight decay for those weights).
/// Deviations kept on purpose: learning rates per step instead of per epoch; LSQ's gradient scale stays on the
/// step sizes (the released code turns it off; Adam is invariant to a constant scale apart from the clipping).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/io/fashion_mnist.hpp"
#include "mixq/nn/data.hpp"
#include "mixq/nn/loss.hpp"
#include "mixq/nn/optim.hpp"
#include "mixq/schedule/bit_width_scheduler.hpp"
#include "mixq/schedule/supernet.hpp"
#include "mixq/schedule/training.hpp"

namespace mixq::schedule {

/// Options of one-shot training (defaults: the brief's scaled-down plan, section 10).
struct OneShotOptions {
  int epochs = 6;
  Index batch_size = 128;
  Index train_limit = 0;             ///< images per epoch (a random subset each epoch); 0: all
  float lr = 0.04f;                  ///< peak learning rate of the float weights and BN
  double warmup_fraction = 5.0 / 150; ///< linear warm-up from 1e-5 over this share of the steps
  float weight_decay = 2.5e-5f;      ///< on conv weights only
  float step_lr = 1e-5f;             ///< Adam learning rate of the step sizes (cosine to 0)
  int random_subnets = 3;            ///< k
  float idm_weight = 0.01f;          ///< 0: IDM off
  float clip_value = 1.f;            ///< gradient clipping by value
  float ema_decay = 0.f;             ///< 0: 0.5^(1 / (0.006 * total steps)) (half-life 0.6 % of the steps)
  bool scheduler = true;             ///< the bit-width scheduler
  bool random_freeze = false;        ///< the scheduler freezes random layers (ablation)
  double scheduler_ratio_start = 0.5, scheduler_ratio_end = 0.2;
  bool qe_loss = false;              ///< code-only QE oscillation loss
  bool distribution_loss = false;    ///< code-only negative "distribution" weight decay
  float distribution_weight = -2.5e-5f;
  float label_smoothing = 0.f;
  std::uint64_t seed = 1;
};

/// Losses of one step (means over the batch).
struct StepStats {
  double max_loss = 0;     ///< CE of the max subnet
  double random_loss = 0;  ///< mean over the random subnets of 1/2 CE + 1/2 KL (+ IDM, QE)
  double kl = 0;           ///< mean KL of the random subnets
  double idm = 0;          ///< mean IDM term (weighted) of the random subnets
};

/// Per-epoch record.
struct EpochStats {
  int epoch = 0;           ///< 1-based
  double max_loss = 0, random_loss = 0, idm = 0;
  double max_train_accuracy = 0;
  double seconds = 0;
};

/// One-shot trainer of a Supernet (see the file comment). Keeps the optimisers, the EMA and the scheduler.
class OneShotTrainer {
 public:
  /// `total_steps`: steps of the whole run (learning-rate schedules, EMA decay, QE start).
  OneShotTrainer(Supernet& net, const OneShotOptions& o, Index total_steps)
      : net_(net), opt_(o), total_(total_steps), rng_(o.seed * 7919 + 17) {
    if (o.random_subnets < 0) mixq::detail::fail("OneShotTrainer: random_subnets (k) must be >= 0, got ", o.random_subnets);
    if (o.epochs < 1) mixq::detail::fail("OneShotTrainer: epochs must be >= 1, got ", o.epochs);
    if (total_steps < 1) mixq::detail::fail("OneShotTrainer: total_steps must be >= 1, got ", total_steps);
    if (!(o.lr > 0.f) || !(o.step_lr >= 0.f) || o.weight_decay < 0.f || !(o.clip_value > 0.f) || o.idm_weight < 0.f)
      mixq::detail::fail("OneShotTrainer: lr=", o.lr, ", step_lr=", o.step_lr, ", weight_decay=", o.weight_decay,
                         ", clip_value=", o.clip_value, ", idm_weight=", o.idm_weight,
                         " (need lr > 0, step_lr >= 0, weight_decay >= 0, clip_value > 0, idm_weight >= 0)");
    if (!(o.ema_decay >= 0.f && o.ema_decay < 1.f))
      mixq::detail::fail("OneShotTrainer: ema_decay must be in [0, 1), got ", o.ema_decay);
    SchedulerOptions so;
    so.epochs = o.epochs;
    so.random_layers = o.random_freeze;
    so.ratio_start = o.scheduler_ratio_start;
    so.ratio_end = o.scheduler_ratio_end;
    so.seed = o.seed;
    scheduler_ = BitWidthScheduler(so);
    std::vector<nn::Parameter*> conv_w, other, steps;
    std::vector<nn::Parameter*> conv_weights;
    for (auto& ql : nn::quant_layers(net.model()))
      if (dynamic_cast<nn::QuantConv2d*>(ql.layer)) conv_weights.push_back(&ql.layer->master_weight());
    for (auto& np : nn::named_parameters(net.model())) {
      all_.push_back(np.parameter);
      if (!np.parameter->trainable) continue;
      trainable_.push_back(np.parameter);
      if (np.name.find("_step_size_") != std::string::npos)
        steps.push_back(np.parameter);
      else if (std::find(conv_weights.begin(), conv_weights.end(), np.parameter) != conv_weights.end())
        conv_w.push_back(np.parameter);
      else
        other.push_back(np.parameter);
    }
    sgd_decay_ = std::make_unique<nn::Sgd>(conv_w, o.lr, 0.9f, true, o.weight_decay);
    sgd_ = std::make_unique<nn::Sgd>(other, o.lr, 0.9f, true, 0.f);
    adam_ = std::make_unique<nn::Adam>(steps, o.step_lr);
    const std::size_t L = net.size();
    targets_.resize(L);
    idm_grad_.resize(L);
    idm_on_.assign(L, false);
    idm_loss_.assign(L, 0.0);
  }

  Supernet& supernet() { return net_; }
  BitWidthScheduler& scheduler() { return scheduler_; }
  Index steps_done() const { return step_; }
  /// The random subnets of the last step.
  const std::vector<Policy>& last_policies() const { return last_; }
  /// The EMA decay in use.
  float ema_decay() const {
    if (opt_.ema_decay > 0.f) return opt_.ema_decay;
    return static_cast<float>(std::pow(0.5, 1.0 / std::max(1.0, 0.006 * static_cast<double>(total_))));
  }

  /// One step on (x, y) (see the file comment); the supernet's step sizes must be initialised
  /// (Supernet::initialize_step_sizes; train() does it on its first batch).
  StepStats step(const nn::Tensor& x, const std::vector<std::int32_t>& y) {
    const Index warm = static_cast<Index>(std::lround(opt_.warmup_fraction * static_cast<double>(total_)));
    const float lr = nn::cosine_lr(step_, total_, opt_.lr, warm, 1e-5f, std::min(1.f, 1e-5f / opt_.lr));
    sgd_decay_->set_lr(lr);
    sgd_->set_lr(lr);
    adam_->set_lr(nn::cosine_lr(step_, total_, opt_.step_lr));
    for (nn::Parameter* p : all_) p->zero_grad();
    StepStats st;
    nn::Module& m = net_.model();
    m.set_training(true);
    // 1. Max subnet: CE; teacher logits and IDM targets.
    net_.set_policy(net_.max_policy());
    const bool idm = opt_.idm_weight > 0.f && opt_.random_subnets > 0;
    if (idm) capture_targets(true);
    const nn::Tensor& z = m.forward(x);
    if (idm) capture_targets(false);
    st.max_loss = nn::cross_entropy(z, y, grad_, opt_.label_smoothing);
    correct_ = nn::count_correct(z, y);
    teacher_ = z;
    m.backward(grad_);
    // 2. Random subnets.
    last_.clear();
    for (int j = 0; j < opt_.random_subnets; ++j) {
      const Policy p = net_.random_policy(rng_);
      last_.push_back(p);
      net_.set_policy(p);
      if (idm) arm_idm(p);
      const nn::Tensor& zj = m.forward(x);
      const float ce = nn::cross_entropy(zj, y, grad_, opt_.label_smoothing);
      const float kl = nn::kl_distillation(zj, teacher_, kd_grad_);
      grad_.data = 0.5f * grad_.data + 0.5f * kd_grad_.data;
      m.backward(grad_);
      double idm_sum = 0;
      if (idm) {
        for (std::size_t l = 0; l < net_.size(); ++l) idm_sum += idm_on_[l] ? idm_loss_[l] : 0.0;
        disarm_idm();
      }
      double extra = 0;
      if (opt_.qe_loss) extra += qe_step(p);
      if (opt_.distribution_loss) extra += distribution_step(p);
      st.kl += kl;
      st.idm += opt_.idm_weight * idm_sum;
      st.random_loss += 0.5 * ce + 0.5 * kl + opt_.idm_weight * idm_sum + extra;
    }
    if (opt_.random_subnets > 0) {
      st.kl /= opt_.random_subnets;
      st.idm /= opt_.random_subnets;
      st.random_loss /= opt_.random_subnets;
    }
    // 3. Clip, update, EMA.
    nn::clip_grad_value(trainable_, opt_.clip_value);
    sgd_decay_->step();
    sgd_->step();
    adam_->step();
    if (!ema_) ema_ = std::make_unique<nn::WeightEma>(all_, ema_decay());
    else ema_->update();
    ++step_;
    return st;
  }

  /// Trains on `train` for the options' epochs (scheduler events at epoch starts). `on_step(step, total, loss)`
  /// after every step, `on_epoch` after every epoch. Ends with the supernet at its max policy, live weights.
  std::vector<EpochStats> train(const io::ImageSet& train, const std::function<void(Index, Index, double)>& on_step = {},
                                const std::function<void(const EpochStats&)>& on_epoch = {}) {
    detail::check_image_set(train, "OneShotTrainer::train");
    const Index n = detail::epoch_images(train, opt_.train_limit);
    if (opt_.batch_size < 2 || opt_.batch_size > n)
      mixq::detail::fail("OneShotTrainer::train: batch_size=", opt_.batch_size, " (need 2..", n, ")");
    std::mt19937_64 rng(opt_.seed);
    nn::Tensor x;
    std::vector<std::int32_t> y;
    std::vector<EpochStats> out;
    for (int e = 0; e < opt_.epochs; ++e) {
      const auto t0 = std::chrono::steady_clock::now();
      if (opt_.scheduler) scheduler_.on_epoch_start(net_, e);
      auto order = nn::epoch_order(train.size(), &rng);
      order.resize(static_cast<std::size_t>(n));
      EpochStats es;
      es.epoch = e + 1;
      Index seen = 0, correct = 0, batches = 0;
      for (Index b = 0; b + opt_.batch_size <= n; b += opt_.batch_size) {
        nn::make_batch(train.images.data(), train.labels.data(), order, b, b + opt_.batch_size, 1, train.rows,
                       train.cols, io::fashion_mnist_mean, io::fashion_mnist_std, x, y);
        if (step_ == 0) net_.initialize_step_sizes(x);
        const StepStats st = step(x, y);
        es.max_loss += st.max_loss;
        es.random_loss += st.random_loss;
        es.idm += st.idm;
        correct += correct_;
        seen += opt_.batch_size;
        ++batches;
        if (on_step) on_step(step_, total_, st.max_loss);
      }
      if (batches) {
        es.max_loss /= static_cast<double>(batches);
        es.random_loss /= static_cast<double>(batches);
        es.idm /= static_cast<double>(batches);
        es.max_train_accuracy = static_cast<double>(correct) / static_cast<double>(seen);
      }
      es.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      out.push_back(es);
      if (on_epoch) on_epoch(es);
    }
    net_.set_policy(net_.max_policy());
    return out;
  }

  /// Exchanges the live values with the EMA (call again to restore); a no-op before the first step.
  void swap_ema() {
    if (ema_) ema_->swap();
  }
  /// Steps of a run of `o` on a set of `images` images (for the constructor).
  static Index total_steps(const OneShotOptions& o, Index images) {
    const Index n = o.train_limit > 0 ? std::min(o.train_limit, images) : images;
    return std::max<Index>(1, (n / std::max<Index>(1, o.batch_size)) * o.epochs);
  }

 private:
  // Max pass: record every searchable BN output (detached copies) as the IDM targets.
  void capture_targets(bool on) {
    for (std::size_t l = 0; l < net_.size(); ++l) {
      nn::SwitchableBatchNorm2d* bn = net_.batch_norm(l);
      if (!bn) continue;
      if (!on) {
        bn->clear_hooks();
        continue;
      }
      nn::Tensor* slot = &targets_[l];
      bn->set_forward_hook([slot](nn::Module&, const nn::Tensor& out) { *slot = out; });
    }
  }
  // Random pass: IDM on the layers sampled at their current minimum weight bit-width; the loss gradient is
  // computed at forward time and added to dL/d(BN output) by a backward hook.
  void arm_idm(const Policy& p) {
    for (std::size_t l = 0; l < net_.size(); ++l) {
      nn::SwitchableBatchNorm2d* bn = net_.batch_norm(l);
      idm_on_[l] = bn && p[l].weight_bits == net_.weight_candidates(l).front();
      if (!idm_on_[l]) continue;
      const float w = opt_.idm_weight;
      bn->set_forward_hook([this, l, w](nn::Module&, const nn::Tensor& out) {
        idm_loss_[l] = nn::feature_mse(out, targets_[l], idm_grad_[l]);
        idm_grad_[l].data *= w;
      });
      bn->set_backward_hook([this, l](nn::Module&, nn::Tensor& g) { g.data += idm_grad_[l].data; });
    }
  }
  void disarm_idm() {
    for (std::size_t l = 0; l < net_.size(); ++l)
      if (idm_on_[l]) net_.batch_norm(l)->clear_hooks();
  }
  // QE loss of a random subnet: adds its gradient to the conv weights; returns the weighted loss.
  double qe_step(const Policy& p) {
    const double t0 = std::floor(40.0 / 150.0 * static_cast<double>(total_));
    if (static_cast<double>(step_) < t0) return 0.0;
    const double pi = 3.14159265358979323846;
    const double eta = 0.05 * (1.0 - std::cos(pi * (static_cast<double>(step_) - t0) /
                                              std::max(1.0, static_cast<double>(total_) - t0)));
    double loss = 0;
    for (std::size_t l = 0; l < net_.size(); ++l) {
      auto* conv = dynamic_cast<nn::QuantConv2d*>(&net_.layer(l));
      if (!conv) continue;
      const int b = p[l].weight_bits, bmin = net_.weight_candidates(l).front();
      nn::Parameter& W = conv->master_weight();
      nn::LsqQuantizer& q = conv->weight_quantizer();
      const Index ch = q.channels(), per = W.value.size() / ch;
      const Index fan_in = W.value.size() / conv->out_channels();
      const std::int64_t mult = std::int64_t{1} << (b - bmin);
      const float qn = static_cast<float>(q.qmin(b)), qp = static_cast<float>(q.qmax(b));
      for (Index i = 0; i < W.value.size(); ++i) {
        const float s = std::max(q.step_size(b).value[i / per], 1e-8f);
        const float w = W.value[i];
        const float c = std::min(qp * s, std::max(qn * s, w));
        const auto code = static_cast<std::int64_t>(std::nearbyint(c / s));
        const float target = code % mult == 0 ? static_cast<float>(code) * s : c;
        const float d = c - target;
        loss += eta * d * d / static_cast<double>(fan_in);
        if (w > qn * s && w < qp * s) W.grad[i] += static_cast<float>(eta * 2.0 * d / static_cast<double>(fan_in));
      }
      W.has_grad = true;
    }
    return loss;
  }
  // Distribution loss of a random subnet on the layers at their original minimum weight bit-width.
  double distribution_step(const Policy& p) {
    double loss = 0;
    const int orig_min = *std::min_element(net_.options().weight_bits.begin(), net_.options().weight_bits.end());
    for (std::size_t l = 0; l < net_.size(); ++l) {
      if (p[l].weight_bits != orig_min) continue;
      nn::QuantLayer& ql = net_.layer(l);
      nn::Parameter& W = ql.master_weight();
      nn::LsqQuantizer& q = ql.weight_quantizer();
      const Index per = W.value.size() / q.channels();
      for (Index i = 0; i < W.value.size(); ++i) {
        const float s = std::max(q.step_size(orig_min).value[i / per], 1e-8f);
        const float lo = static_cast<float>(q.qmin(orig_min)) * s, hi = static_cast<float>(q.qmax(orig_min)) * s;
        const float w = W.value[i], c = std::min(hi, std::max(lo, w));
        loss += opt_.distribution_weight * 0.5 * c * c;
        if (w > lo && w < hi) W.grad[i] += opt_.distribution_weight * c;
      }
      W.has_grad = true;
    }
    return loss;
  }

  Supernet& net_;
  OneShotOptions opt_;
  Index total_;
  Index step_ = 0;
  std::mt19937_64 rng_;
  BitWidthScheduler scheduler_;
  std::vector<nn::Parameter*> all_, trainable_;
  std::unique_ptr<nn::Sgd> sgd_decay_, sgd_;
  std::unique_ptr<nn::Adam> adam_;
  std::unique_ptr<nn::WeightEma> ema_;
  nn::Tensor grad_, kd_grad_, teacher_;
  std::vector<nn::Tensor> targets_, idm_grad_;
  std::vector<bool> idm_on_;
  std::vector<double> idm_loss_;
  std::vector<Policy> last_;
  Index correct_ = 0;
};

}  // namespace mixq::schedule
