#pragma once
/// @file
/// Supervised training loops on an image set, shared by the methods of the schedule layer: float training
/// (one-cycle learning rate), LSQ quantization-aware fine-tuning (cosine learning rate), and test accuracy.
/// The network's bit-widths are set by the caller (nn::set_uniform_bits, nn::set_bits) before training.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/io/fashion_mnist.hpp"
#include "mixq/nn/batchnorm.hpp"
#include "mixq/nn/data.hpp"
#include "mixq/nn/loss.hpp"
#include "mixq/nn/module.hpp"
#include "mixq/nn/optim.hpp"

namespace mixq::schedule {

using Index = nn::Index;

/// Learning-rate schedule of train_supervised.
enum class LrSchedule {
  one_cycle,  ///< PyTorch's OneCycleLR (float training from scratch)
  cosine      ///< cosine decay to 0 (fine-tuning, QAT)
};

/// Options of train_supervised: SGD with Nesterov momentum 0.9.
struct TrainOptions {
  int epochs = 1;
  Index batch_size = 128;
  Index train_limit = 0;      ///< images per epoch (a random subset each epoch); 0: the whole set
  float lr = 0.1f;            ///< peak (one-cycle) or initial (cosine) learning rate
  float weight_decay = 5e-4f;
  float label_smoothing = 0.f;
  LrSchedule schedule = LrSchedule::one_cycle;
  std::uint64_t seed = 1;     ///< shuffling
  /// Called after every epoch with (epoch, mean training loss, training accuracy).
  std::function<void(int, double, double)> on_epoch;
};

namespace detail {
inline void check_train_options(const TrainOptions& o, const char* who) {
  if (o.epochs < 1 || o.batch_size < 2 || o.train_limit < 0 || !(o.lr > 0.f) || o.weight_decay < 0.f)
    mixq::detail::fail(who, ": epochs=", o.epochs, ", batch_size=", o.batch_size, ", train_limit=", o.train_limit,
                       ", lr=", o.lr, ", weight_decay=", o.weight_decay,
                       " (need epochs >= 1, batch_size >= 2, train_limit >= 0, lr > 0, weight_decay >= 0)");
}
inline void check_image_set(const io::ImageSet& s, const char* who) {
  if (s.size() <= 0 || s.rows <= 0 || s.cols <= 0)
    mixq::detail::fail(who, ": empty image set (", s.size(), " images of ", s.rows, "x", s.cols, ")");
}
/// Images per epoch of an options' train_limit on a set.
inline Index epoch_images(const io::ImageSet& s, Index limit) {
  return limit > 0 ? std::min<Index>(limit, s.size()) : s.size();
}
}  // namespace detail

/// Trains `model` (its current bit-widths) on `train` with softmax cross-entropy; returns the mean training loss
/// of the last epoch. The model is left in training mode.
inline double train_supervised(nn::Module& model, const io::ImageSet& train, const TrainOptions& options) {
  detail::check_train_options(options, "train_supervised");
  detail::check_image_set(train, "train_supervised");
  const Index n = detail::epoch_images(train, options.train_limit);
  const Index steps_per_epoch = (n + options.batch_size - 1) / options.batch_size;
  const Index total = std::max<Index>(2, steps_per_epoch * options.epochs);
  nn::Sgd opt(nn::trainable_parameters(model), options.lr, 0.9f, true, options.weight_decay);
  std::mt19937_64 rng(options.seed);
  nn::Tensor x, grad;
  std::vector<std::int32_t> y;
  Index step = 0;
  double last_loss = 0;
  model.set_training(true);
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    auto order = nn::epoch_order(train.size(), &rng);
    order.resize(static_cast<std::size_t>(n));
    double loss_sum = 0;
    Index seen = 0, correct = 0;
    for (Index b = 0; b + 2 <= n; b += options.batch_size) {
      const Index e = std::min<Index>(n, b + options.batch_size);
      nn::make_batch(train.images.data(), train.labels.data(), order, b, e, 1, train.rows, train.cols,
                     io::fashion_mnist_mean, io::fashion_mnist_std, x, y);
      opt.set_lr(options.schedule == LrSchedule::one_cycle ? nn::one_cycle_lr(step, total, options.lr)
                                                          : nn::cosine_lr(step, total, options.lr));
      nn::zero_grad(model);
      const nn::Tensor& logits = model.forward(x);
      const float loss = nn::cross_entropy(logits, y, grad, options.label_smoothing);
      correct += nn::count_correct(logits, y);
      model.backward(grad);
      opt.step();
      ++step;
      loss_sum += static_cast<double>(loss) * static_cast<double>(e - b);
      seen += e - b;
    }
    last_loss = seen > 0 ? loss_sum / static_cast<double>(seen) : 0.0;
    if (options.on_epoch)
      options.on_epoch(epoch, last_loss, seen > 0 ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0);
  }
  return last_loss;
}

/// Top-1 accuracy of `model` (its current bit-widths, evaluation mode) on the first `limit` images of `test`
/// (0: all). Restores the training flag.
inline double evaluate_accuracy(nn::Module& model, const io::ImageSet& test, Index limit = 0, Index batch_size = 500) {
  detail::check_image_set(test, "evaluate_accuracy");
  if (limit < 0 || batch_size < 1)
    mixq::detail::fail("evaluate_accuracy: limit=", limit, " and batch_size=", batch_size, " must be >= 0 and >= 1");
  const bool was_training = model.training();
  model.set_training(false);
  const Index n = detail::epoch_images(test, limit);
  const auto order = nn::epoch_order(n);
  nn::Tensor x;
  std::vector<std::int32_t> y;
  Index correct = 0;
  for (Index b = 0; b < n; b += batch_size) {
    const Index e = std::min<Index>(n, b + batch_size);
    nn::make_batch(test.images.data(), test.labels.data(), order, b, e, 1, test.rows, test.cols,
                   io::fashion_mnist_mean, io::fashion_mnist_std, x, y);
    correct += nn::count_correct(model.forward(x), y);
  }
  model.set_training(was_training);
  return static_cast<double>(correct) / static_cast<double>(n);
}

/// Re-estimates the running statistics of every BatchNorm2d of `model` (in a switchable bank, the active one)
/// with frozen weights and step sizes: forward passes in training mode over `batches` mini-batches of
/// `batch_size` training images (a random subset drawn with `seed`), the running statistics ending as the plain
/// average of the batches' statistics (mean, unbiased variance). Returns the number of BatchNorm2d modules found
/// (the inactive BNs of a switchable bank included: they are not run, so their statistics stay as they were).
/// Restores each BN's momentum and the model's training flag, also when a forward throws.
///
/// Why: after quantization-aware training the running statistics are an exponential average over weights and
/// step sizes that kept moving, and at 2-4 bits they can be far from the final network's statistics (an
/// evaluation-mode accuracy tens of points below the training-mode one on the same images was measured here).
/// Nagel et al. (2022, "Overcoming oscillations in quantization-aware training") recommend this re-estimation.
inline std::size_t reestimate_batchnorm(nn::Module& model, const io::ImageSet& train, Index batches = 32,
                                        Index batch_size = 128, std::uint64_t seed = 1) {
  detail::check_image_set(train, "reestimate_batchnorm");
  if (batches < 1 || batch_size < 2 || batches * batch_size > train.size())
    mixq::detail::fail("reestimate_batchnorm: batches=", batches, ", batch_size=", batch_size,
                       " (need batches >= 1, batch_size >= 2, batches * batch_size <= ", train.size(),
                       " training images)");
  std::vector<nn::BatchNorm2d*> bns;
  for (auto& nm : nn::named_modules(model))
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(nm.module)) bns.push_back(bn);
  std::vector<float> momentum;
  for (auto* bn : bns) momentum.push_back(bn->momentum());
  const bool was_training = model.training();
  struct Restore {  // momentum and training flag come back even when a forward throws
    std::vector<nn::BatchNorm2d*>& bns;
    std::vector<float>& momentum;
    nn::Module& model;
    bool training;
    ~Restore() {  // cannot throw: each value passed the constructor's own range check
      for (std::size_t i = 0; i < bns.size(); ++i) bns[i]->set_momentum(momentum[i]);
      model.set_training(training);
    }
  } restore{bns, momentum, model, was_training};
  model.set_training(true);
  std::mt19937_64 rng(seed);
  const auto order = nn::epoch_order(train.size(), &rng);
  nn::Tensor x;
  std::vector<std::int32_t> y;
  for (Index k = 0; k < batches; ++k) {
    for (auto* bn : bns) bn->set_momentum(1.f / static_cast<float>(k + 1));
    nn::make_batch(train.images.data(), train.labels.data(), order, k * batch_size, (k + 1) * batch_size, 1,
                   train.rows, train.cols, io::fashion_mnist_mean, io::fashion_mnist_std, x, y);
    model.forward(x);
  }
  return bns.size();
}

/// The first `n` images of a set (or all when n >= size) as a new set: small subsets for tests and quick runs.
inline io::ImageSet head(const io::ImageSet& s, Index n) {
  if (n < 0) mixq::detail::fail("head: n must be >= 0, got ", n);
  io::ImageSet out;
  out.rows = s.rows;
  out.cols = s.cols;
  const Index k = std::min<Index>(n, s.size());
  out.images = s.images.topRows(k);
  out.labels.assign(s.labels.begin(), s.labels.begin() + static_cast<std::ptrdiff_t>(k));
  return out;
}

}  // namespace mixq::schedule
