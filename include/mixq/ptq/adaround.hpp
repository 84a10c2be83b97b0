#pragma once
/// @file
/// AdaRound (Nagel et al., ICML 2020) on a per-output-channel asymmetric weight grid: the rectified sigmoid h(V),
/// the initialisation of V that makes the soft weight equal the float weight, the rounding regulariser with its
/// annealed exponent beta, hard rounding by V >= 0, and the hand-written backward from dL/d(soft weight) to dL/dV.
/// WeightQuantizer holds one layer's weight grid (MSE p = 2.4 per-channel calibration, docs: methods/PTQ.md §1-2)
/// and gives the effective weight of each rounding mode: float, nearest (RTN), soft (AdaRound), hard.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "mixq/detail/eigen.hpp"
#include "mixq/error.hpp"
#include "mixq/kernels/fake_quant.hpp"
#include "mixq/nn/tensor.hpp"
#include "mixq/quant/observers.hpp"
#include "mixq/quant/spec.hpp"

namespace mixq::ptq {

using nn::Index;

/// Stretch parameters of the rectified sigmoid (AdaRound's zeta and gamma).
inline constexpr float kZeta = 1.1f;
inline constexpr float kGamma = -0.1f;

/// h(V) = clamp(sigmoid(V) * (zeta - gamma) + gamma, 0, 1).
inline float rectified_sigmoid(float v) {
  const float s = 1.f / (1.f + std::exp(-v));
  return std::clamp(s * (kZeta - kGamma) + kGamma, 0.f, 1.f);
}

/// dh/dV = (zeta - gamma) sigmoid(V) (1 - sigmoid(V)) where 0 < h < 1, else 0 (the clamp passes nothing).
inline float rectified_sigmoid_grad(float v) {
  const float s = 1.f / (1.f + std::exp(-v));
  const float h = s * (kZeta - kGamma) + kGamma;
  return h > 0.f && h < 1.f ? (kZeta - kGamma) * s * (1.f - s) : 0.f;
}

/// V0 = log((r - gamma) / (zeta - r)) for a rounding residual r = w/s - floor(w/s) in [0, 1): h(V0) = r.
inline float adaround_init(float r) { return std::log((r - kGamma) / (kZeta - r)); }

/// Regulariser term of one weight, 1 - |2h - 1|^beta (0 when h is 0 or 1, 1 at h = 0.5).
inline float rounding_regularizer(float h, float beta) { return 1.f - std::pow(std::fabs(2.f * h - 1.f), beta); }

/// d/dh of rounding_regularizer: -2 beta |2h - 1|^(beta - 1) sign(2h - 1).
inline float rounding_regularizer_grad(float h, float beta) {
  const float u = 2.f * h - 1.f;
  if (u == 0.f) return 0.f;
  return -2.f * beta * std::pow(std::fabs(u), beta - 1.f) * (u > 0.f ? 1.f : -1.f);
}

/// The annealed exponent of the rounding regulariser (MQBench/BRECQ LinearTempDecay): steps t = 1..total; the
/// regulariser is off for t < warmup * total (beta held at `start`), then beta decays linearly from `start` to `end`
/// at t = total.
struct BetaSchedule {
  Index total = 20000;
  double warmup = 0.2;
  float start = 20.f, end = 2.f;

  void validate() const {
    if (total < 1) mixq::detail::fail("BetaSchedule: total must be >= 1, got ", total);
    if (!(warmup >= 0.0 && warmup < 1.0)) mixq::detail::fail("BetaSchedule: warmup must be in [0, 1), got ", warmup);
    if (!(start >= 1.f) || !(end >= 1.f) || end > start)
      mixq::detail::fail("BetaSchedule: need start >= end >= 1, got start=", start, " end=", end);
  }
  /// First step with the regulariser on.
  double decay_start() const { return warmup * static_cast<double>(total); }
  /// Whether the regulariser is part of the loss at step t (1-based).
  bool regularized(Index t) const { return static_cast<double>(t) >= decay_start(); }
  /// beta at step t (1-based).
  float beta(Index t) const {
    const double t0 = decay_start();
    if (static_cast<double>(t) < t0) return start;
    if (t >= total) return end;
    const double rel = (static_cast<double>(t) - t0) / (static_cast<double>(total) - t0);
    return static_cast<float>(end + (start - end) * std::max(0.0, 1.0 - rel));
  }
};

/// How a layer's weights are rounded onto the grid.
enum class Rounding {
  float_weights,  ///< no weight quantization
  nearest,        ///< round to nearest (RTN), the fake_quant kernel
  soft,           ///< AdaRound's soft weight s * (clamp(floor(w/s) + h(V) + z, qmin, qmax) - z), learnable V
  hard            ///< AdaRound's result: floor(w/s) + 1[V >= 0]
};

inline const char* to_string(Rounding r) {
  switch (r) {
    case Rounding::float_weights: return "float";
    case Rounding::nearest: return "nearest";
    case Rounding::soft: return "soft";
    case Rounding::hard: return "hard";
  }
  return "?";
}

/// Smallest and largest weight or activation bit-width the PTQ layer supports.
inline constexpr int kMinBits = 2;
inline constexpr int kMaxBits = 8;

/// Throws mixq::error naming `what` when bits is outside [kMinBits, kMaxBits].
inline void check_bits(const char* what, int bits) {
  if (bits < kMinBits || bits > kMaxBits)
    mixq::detail::fail(what, " must be in [", kMinBits, ", ", kMaxBits, "], got ", bits);
}

/// The quantization grid of one layer's weight [out_channels][K] (per output channel, asymmetric, unsigned codes
/// [0, 2^b - 1], MSE p = 2.4 range search) and its AdaRound state. The float weight is given at every call, so one
/// quantizer serves a layer that owns its weight.
class WeightQuantizer {
 public:
  WeightQuantizer() = default;

  /// Calibrates the grid of weight w (out_channels rows of w.size() / out_channels) at `bits` with MseObserver
  /// (p = `p`); mode becomes Rounding::nearest.
  void calibrate(const Eigen::VectorXf& w, Index out_channels, int bits, float p = 2.4f) {
    check_bits("WeightQuantizer: bits", bits);
    if (out_channels < 1 || w.size() % out_channels != 0 || w.size() == 0)
      mixq::detail::fail("WeightQuantizer: ", w.size(), " weights do not split into ", out_channels, " channels");
    bits_ = bits;
    out_ = out_channels;
    per_ = w.size() / out_channels;
    const QuantSpec spec = QuantSpec::per_channel(bits, 0, false, false);
    MseObserver obs(spec, p);
    obs.observe(w.data(), Shape{static_cast<std::int64_t>(out_), static_cast<std::int64_t>(per_)});
    const std::vector<QuantParams> params = obs.params();
    scale_.resize(out_);
    zero_point_.resize(static_cast<std::size_t>(out_));
    for (Index c = 0; c < out_; ++c) {
      scale_[c] = params[static_cast<std::size_t>(c)].scale;
      zero_point_[static_cast<std::size_t>(c)] = params[static_cast<std::size_t>(c)].zero_point;
    }
    qmin_ = spec.qmin();
    qmax_ = spec.qmax();
    mode_ = Rounding::nearest;
    v_ = nn::Parameter();
    dsoft_.resize(0);
  }

  bool calibrated() const { return bits_ > 0; }
  int bits() const { return bits_; }
  std::int32_t qmin() const { return qmin_; }
  std::int32_t qmax() const { return qmax_; }
  const Eigen::VectorXf& scales() const { return scale_; }
  const std::vector<std::int32_t>& zero_points() const { return zero_point_; }
  Rounding mode() const { return mode_; }
  /// The AdaRound variables V ("adaround_v": empty before init_adaround) with their gradient: what the optimiser
  /// moves.
  nn::Parameter& v() { return v_; }
  const nn::Parameter& v() const { return v_; }

  /// Sets float or nearest rounding (hard and soft need init_adaround first).
  void set_mode(Rounding m) {
    if ((m == Rounding::soft || m == Rounding::hard) && v_.value.size() == 0)
      mixq::detail::fail("WeightQuantizer::set_mode: ", to_string(m), " rounding needs init_adaround() first");
    if (m != Rounding::float_weights && !calibrated())
      mixq::detail::fail("WeightQuantizer::set_mode: ", to_string(m), " rounding needs calibrate() first");
    mode_ = m;
  }

  /// V0 = adaround_init(w/s - floor(w/s)) for every weight: the soft weight equals w (inside the clip range).
  /// Mode becomes Rounding::soft.
  void init_adaround(const Eigen::VectorXf& w) {
    check_weight(w, "init_adaround");
    v_ = nn::Parameter("adaround_v", {w.size()}, true, false);
    floor_.resize(w.size());
    for (Index c = 0; c < out_; ++c) {
      const float inv = 1.f / scale_[c];
      for (Index i = c * per_; i < (c + 1) * per_; ++i) {
        const float q = w[i] * inv;
        const float f = std::floor(q);
        floor_[i] = f;
        v_.value[i] = adaround_init(std::clamp(q - f, 0.f, 1.f));
      }
    }
    mode_ = Rounding::soft;
  }

  /// The weight as the layer uses it in the current mode, written to out (resized to w's size). Soft mode also
  /// keeps dL/dV's factor s * dh/dV of every weight (zero where the clamp cuts) for the next backward().
  void effective_weight(const Eigen::VectorXf& w, Eigen::VectorXf& out) {
    check_weight(w, "effective_weight");
    out.resize(w.size());
    switch (mode_) {
      case Rounding::float_weights: out = w; return;
      case Rounding::nearest:
        kernels::fake_quant_per_channel(w.data(), out.data(), 1, out_, per_, scale_.data(), zero_point_.data(), qmin_,
                                        qmax_);
        return;
      case Rounding::soft:
      case Rounding::hard: {
        const bool soft = mode_ == Rounding::soft;
        if (soft) dsoft_.resize(w.size());
        const float lo = static_cast<float>(qmin_), hi = static_cast<float>(qmax_);
        for (Index c = 0; c < out_; ++c) {
          const float s = scale_[c], z = static_cast<float>(zero_point_[static_cast<std::size_t>(c)]);
          for (Index i = c * per_; i < (c + 1) * per_; ++i) {
            const float h = soft ? rectified_sigmoid(v_.value[i]) : (v_.value[i] >= 0.f ? 1.f : 0.f);
            const float u = floor_[i] + h + z;
            out[i] = s * (std::clamp(u, lo, hi) - z);
            if (soft) dsoft_[i] = u >= lo && u <= hi ? s * rectified_sigmoid_grad(v_.value[i]) : 0.f;
          }
        }
        return;
      }
    }
  }

  /// Soft mode: v().grad += dL/dV from dL/d(soft weight) at the V of the last effective_weight() (the clamp passes
  /// the gradient where floor + h + z lies in [qmin, qmax]). Other modes: nothing.
  void backward(const float* dweight) {
    if (mode_ != Rounding::soft) return;
    if (dsoft_.size() != v_.value.size()) mixq::detail::fail("WeightQuantizer::backward: no soft forward before it");
    v_.grad.array() += Eigen::Map<const Eigen::ArrayXf>(dweight, dsoft_.size()) * dsoft_.array();
    v_.has_grad = true;
  }

  /// lambda * sum(1 - |2h - 1|^beta) over the weights; with accumulate, also adds its gradient to v().grad.
  double regularizer(float beta, float lambda, bool accumulate) {
    const Index n = v_.value.size();
    if (n == 0) return 0.0;
    double sum = 0.0;
    for (Index i = 0; i < n; ++i) {
      const float v = v_.value[i], h = rectified_sigmoid(v);
      sum += rounding_regularizer(h, beta);
      if (accumulate) v_.grad[i] += lambda * rounding_regularizer_grad(h, beta) * rectified_sigmoid_grad(v);
    }
    if (accumulate) v_.has_grad = true;
    return lambda * sum;
  }

  /// Share of the weights whose h(V) is strictly between 0 and 1 (0 once the regulariser has done its work).
  double soft_share() const {
    const Index total = v_.value.size();
    if (total == 0) return 0.0;
    Index n = 0;
    for (Index i = 0; i < total; ++i) {
      const float h = rectified_sigmoid(v_.value[i]);
      n += h > 0.f && h < 1.f ? 1 : 0;
    }
    return static_cast<double>(n) / static_cast<double>(total);
  }

  /// Share of the weights whose hard rounding differs from round-to-nearest.
  double flipped_share(const Eigen::VectorXf& w) const {
    const Index total = v_.value.size();
    if (total == 0) return 0.0;
    Index n = 0;
    for (Index c = 0; c < out_; ++c)
      for (Index i = c * per_; i < (c + 1) * per_; ++i) {
        const float q = w[i] / scale_[c];
        const bool up_nearest = q - floor_[i] >= 0.5f;
        n += (v_.value[i] >= 0.f) != up_nearest ? 1 : 0;
      }
    return static_cast<double>(n) / static_cast<double>(total);
  }

 private:
  void check_weight(const Eigen::VectorXf& w, const char* fn) const {
    if (mode_ != Rounding::float_weights && w.size() != out_ * per_)
      mixq::detail::fail("WeightQuantizer::", fn, ": weight has ", w.size(), " elements, calibrated for ",
                         out_ * per_);
  }
  int bits_ = 0;
  Index out_ = 0, per_ = 0;
  Eigen::VectorXf scale_;
  std::vector<std::int32_t> zero_point_;
  std::int32_t qmin_ = 0, qmax_ = 255;
  Rounding mode_ = Rounding::float_weights;
  nn::Parameter v_;
  Eigen::VectorXf floor_, dsoft_;
};

}  // namespace mixq::ptq
