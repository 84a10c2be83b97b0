#pragma once
/// @file
/// Losses with their gradients: softmax cross-entropy with label smoothing, KL distillation, feature MSE.
/// Each returns the mean loss over the batch and writes dL/d(input) for that mean.

#include <cmath>
#include <cstdint>
#include <vector>

#include "mixq/nn/tensor.hpp"

namespace mixq::nn {

namespace detail {
/// Row-wise log-softmax of logits / temperature into out (N x K).
inline void log_softmax(const Tensor& logits, float temperature, MatrixRM& out) {
  const Index N = logits.n(), K = logits.sample_size();
  out = logits.matrix() / temperature;
  for (Index i = 0; i < N; ++i) {
    const float m = out.row(i).maxCoeff();
    const float lse = m + std::log((out.row(i).array() - m).exp().sum());
    out.row(i).array() -= lse;
  }
  (void)K;
}
}  // namespace detail

/// Softmax cross-entropy with label smoothing eps: target = (1 - eps) * onehot + eps / K. Returns the mean
/// loss; writes d(mean loss)/d(logits) into `grad`. Labels must be in [0, K).
inline float cross_entropy(const Tensor& logits, const std::vector<std::int32_t>& labels, Tensor& grad,
                           float label_smoothing = 0.f) {
  const Index N = logits.n(), K = logits.sample_size();
  if (static_cast<Index>(labels.size()) != N)
    mixq::detail::fail("cross_entropy: ", labels.size(), " labels for a batch of ", N);
  if (label_smoothing < 0.f || label_smoothing >= 1.f)
    mixq::detail::fail("cross_entropy: label_smoothing must be in [0, 1), got ", label_smoothing);
  MatrixRM lp;
  detail::log_softmax(logits, 1.f, lp);
  grad.resize_like(logits);
  MapRM g = grad.matrix();
  double loss = 0;
  const float off = label_smoothing / static_cast<float>(K), on = 1.f - label_smoothing + off;
  for (Index i = 0; i < N; ++i) {
    const std::int32_t y = labels[static_cast<std::size_t>(i)];
    if (y < 0 || y >= K) mixq::detail::fail("cross_entropy: label ", y, " at index ", i, " outside [0, ", K, ")");
    double li = -(on - off) * lp(i, y) - off * lp.row(i).sum();
    loss += li;
    g.row(i) = lp.row(i).array().exp() - off;
    g(i, y) -= on - off;
  }
  g /= static_cast<float>(N);
  return static_cast<float>(loss / static_cast<double>(N));
}

/// Knowledge-distillation loss T^2 * KL(softmax(teacher/T) || softmax(student/T)), mean over the batch
/// (Hinton et al., 2015). Writes the gradient with respect to the student logits; the teacher is constant.
inline float kl_distillation(const Tensor& student, const Tensor& teacher, Tensor& grad, float temperature = 1.f) {
  if (!student.same_shape(teacher)) mixq::detail::fail("kl_distillation: student and teacher shapes differ");
  if (!(temperature > 0.f)) mixq::detail::fail("kl_distillation: temperature must be positive, got ", temperature);
  const Index N = student.n();
  MatrixRM ls, lt;
  detail::log_softmax(student, temperature, ls);
  detail::log_softmax(teacher, temperature, lt);
  const MatrixRM pt = lt.array().exp().matrix();
  const double loss = (pt.array() * (lt - ls).array()).sum();
  grad.resize_like(student);
  grad.matrix() = (ls.array().exp() - pt.array()).matrix() * (temperature / static_cast<float>(N));
  return static_cast<float>(loss * temperature * temperature / static_cast<double>(N));
}

/// Feature alignment loss mean((a - b)^2) over all elements; writes the gradient with respect to a.
inline float feature_mse(const Tensor& a, const Tensor& b, Tensor& grad) {
  if (!a.same_shape(b)) mixq::detail::fail("feature_mse: shapes differ");
  grad.resize_like(a);
  grad.data = a.data - b.data;
  const double loss = grad.data.squaredNorm() / static_cast<double>(a.size());
  grad.data *= 2.f / static_cast<float>(a.size());
  return static_cast<float>(loss);
}

/// Number of rows whose arg-max equals the label.
inline Index count_correct(const Tensor& logits, const std::vector<std::int32_t>& labels) {
  Index correct = 0;
  auto m = logits.matrix();
  for (Index i = 0; i < logits.n(); ++i) {
    Index arg;
    m.row(i).maxCoeff(&arg);
    if (arg == labels[static_cast<std::size_t>(i)]) ++correct;
  }
  return correct;
}

}  // namespace mixq::nn
