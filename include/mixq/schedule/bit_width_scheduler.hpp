#pragma once
/// @file
/// The bit-width scheduler of one-shot weight coupling (Tang et al., CVPR 2024; ../shared/methods/ONESHOT.md
/// section 5), usable by any training loop over a Supernet:
/// - turbulence: per layer and current weight candidate b, the share of latent weights within (p/2) * s_b of a
///   rounding threshold (more than (1 - p)/2 * s_b from their level's centre towards a neighbouring level; the
///   lowest level counts only upwards, the highest only downwards: clipped weights pile up outside them),
///   divided by b, averaged over the layer's current weight candidates (p = 0.25);
/// - events at the start of epoch e (0-based) when e > 5E/150 and (e + 1) mod T == 0, T = max(1, round(2E/150))
///   up to floor(0.72 E), then T = max(1, round(15E/150)): the released code's schedule (7, 9, ..., 107, 119,
///   134, 149 at E = 150) scaled to E epochs;
/// - ratio r = r_end + (r_start - r_end) / 2 * (1 + cos(pi k / k_max)), k = floor((e - e0) / T_early) with
///   e0 = floor(5E/150), k_max = E / T_early (the code's CosineSched(0, E/2, 0.5, 0.2) at E = 150): 0.5 -> 0.2;
/// - at an event every layer gets its full candidates back (not cumulative), then the floor(L r) most turbulent
///   layers (or random ones: the ablation) lose their minimum weight bit-width (and activation bit-width in the
///   coupled mode) when it is <= removable_bits (2, the released code's rule: only 2 bits are ever removed).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/schedule/supernet.hpp"

namespace mixq::schedule {

/// Share of the n weights w (quantized with step `step` on the signed `bits` grid [-2^(b-1), 2^(b-1) - 1])
/// lying within (proportion / 2) * step of a rounding threshold: |w/s - level| > (1 - proportion) / 2 towards a
/// neighbouring level, one-sided at the two clipped ends. proportion in (0, 1].
inline double boundary_share(const float* w, Index n, float step, int bits, double proportion = 0.25) {
  if (n <= 0) return 0.0;
  if (!(step > 0.f) || !std::isfinite(step)) mixq::detail::fail("boundary_share: step must be positive, got ", step);
  if (bits < 2 || bits > 16) mixq::detail::fail("boundary_share: bits must be in [2, 16], got ", bits);
  if (!(proportion > 0.0 && proportion <= 1.0))
    mixq::detail::fail("boundary_share: proportion must be in (0, 1], got ", proportion);
  const double qn = -std::ldexp(1.0, bits - 1), qp = std::ldexp(1.0, bits - 1) - 1.0;
  const double t = (1.0 - proportion) / 2.0, inv = 1.0 / static_cast<double>(step);
  Index shifted = 0;
  // Branch-free, no libm call: x is clamped to [qn - 1, qp + 1] (the counts do not change: beyond the ends only
  // the uncounted outward side grows), so floor(x + 1/2) is a truncation of a positive number. A tie
  // x = k + 1/2 counts whichever level it goes to.
  const double base = qn - 1.0;
  for (Index i = 0; i < n; ++i) {
    const double x = std::min(qp + 1.0, std::max(base, static_cast<double>(w[i]) * inv));
    const double level = std::min(qp, std::max(qn, static_cast<double>(static_cast<std::int64_t>(x + 0.5 - base)) + base));
    const double d = x - level;
    const bool up = d > t, down = d < -t;
    shifted += static_cast<Index>((up && level != qp) || (down && level != qn));
  }
  return static_cast<double>(shifted) / static_cast<double>(n);
}

/// The scheduler's metric of searchable layer l: mean over its current weight candidates b of
/// boundary_share(W, s_b, b) / b (per-channel step sizes: the share over every channel with its own step).
inline double turbulence(Supernet& net, std::size_t l, double proportion = 0.25) {
  nn::QuantLayer& q = net.layer(l);
  const Eigen::VectorXf& w = q.master_weight().value;
  nn::LsqQuantizer& wq = q.weight_quantizer();
  const Index ch = wq.channels(), per = w.size() / ch;
  double sum = 0;
  const std::vector<int>& bits = net.weight_candidates(l);
  for (int b : bits) {
    const Eigen::VectorXf& s = wq.step_size(b).value;
    double share = 0;
    for (Index c = 0; c < ch; ++c)
      share += boundary_share(w.data() + c * per, per, std::max(s[c], 1e-8f), b, proportion) * static_cast<double>(per);
    sum += share / static_cast<double>(w.size()) / static_cast<double>(b);
  }
  return bits.empty() ? 0.0 : sum / static_cast<double>(bits.size());
}

/// Options of the bit-width scheduler.
struct SchedulerOptions {
  int epochs = 150;            ///< length of the training the schedule is scaled to
  double proportion = 0.25;    ///< p of the turbulence metric
  double ratio_start = 0.5;    ///< share of layers frozen at the first event
  double ratio_end = 0.2;      ///< ... at the end
  bool random_layers = false;  ///< freeze random layers (same count) instead of the most turbulent: the ablation
  /// A selected layer loses its minimum weight bit-width only when that minimum is <= this (the released code:
  /// 2; a layer whose minimum is already 3 is counted but keeps its candidates).
  int removable_bits = 2;
  std::uint64_t seed = 1;      ///< for random_layers
};

/// One scheduler event, as logged.
struct SchedulerEvent {
  int epoch = 0;
  double ratio = 0;
  std::vector<double> metric;        ///< per searchable layer, before the event's reset
  std::vector<std::string> frozen;   ///< layers whose minimum bit-width was removed
  double microseconds = 0;           ///< wall time of the event (metric, ranking, candidate update)
};

/// The bit-width scheduler (see the file comment). Stateless between events apart from its log and RNG.
class BitWidthScheduler {
 public:
  explicit BitWidthScheduler(const SchedulerOptions& o = {}) : opt_(o), rng_(o.seed) {
    if (o.epochs < 1) mixq::detail::fail("BitWidthScheduler: epochs must be >= 1, got ", o.epochs);
    if (!(o.ratio_start >= 0.0 && o.ratio_start <= 1.0))
      mixq::detail::fail("BitWidthScheduler: ratio_start must be in [0, 1], got ", o.ratio_start);
    if (!(o.ratio_end >= 0.0 && o.ratio_end <= 1.0))
      mixq::detail::fail("BitWidthScheduler: ratio_end must be in [0, 1], got ", o.ratio_end);
    if (!(o.proportion > 0.0 && o.proportion <= 1.0))
      mixq::detail::fail("BitWidthScheduler: proportion must be in (0, 1], got ", o.proportion);
  }
  const SchedulerOptions& options() const { return opt_; }
  /// Period of the early events (epochs).
  int early_period() const { return std::max(1, static_cast<int>(std::lround(2.0 * opt_.epochs / 150.0))); }
  /// Period of the late events (epochs).
  int late_period() const { return std::max(1, static_cast<int>(std::lround(15.0 * opt_.epochs / 150.0))); }
  /// First epoch that can hold an event is first_epoch() + 1.
  int first_epoch() const { return static_cast<int>(std::floor(5.0 * opt_.epochs / 150.0)); }
  /// Last epoch of the early period.
  int early_end() const { return static_cast<int>(std::floor(0.72 * opt_.epochs)); }
  /// Whether an event happens at the start of 0-based epoch e.
  bool is_event(int e) const {
    if (e <= first_epoch() || e >= opt_.epochs) return false;
    const int T = e <= early_end() ? early_period() : late_period();
    return (e + 1) % T == 0;
  }
  /// Every event epoch of the run, ascending.
  std::vector<int> event_epochs() const {
    std::vector<int> v;
    for (int e = 0; e < opt_.epochs; ++e)
      if (is_event(e)) v.push_back(e);
    return v;
  }
  /// The freezing ratio at epoch e.
  double ratio(int e) const {
    const double kmax = static_cast<double>(opt_.epochs) / early_period();
    const double k = std::min(kmax, std::floor(static_cast<double>(std::max(0, e - first_epoch())) / early_period()));
    const double pi = 3.14159265358979323846;
    return opt_.ratio_end + (opt_.ratio_start - opt_.ratio_end) / 2.0 * (1.0 + std::cos(pi * k / kmax));
  }
  /// Runs an event at epoch e with ratio r (in [0, 1]): metric, reset, freeze the top floor(L r) layers. Logged.
  const SchedulerEvent& apply(Supernet& net, int e, double r) {
    if (!(r >= 0.0 && r <= 1.0)) mixq::detail::fail("BitWidthScheduler: ratio must be in [0, 1], got ", r);
    const auto t0 = std::chrono::steady_clock::now();
    SchedulerEvent ev;
    ev.epoch = e;
    ev.ratio = r;
    const std::size_t L = net.size();
    for (std::size_t l = 0; l < L; ++l) ev.metric.push_back(turbulence(net, l, opt_.proportion));
    std::vector<std::size_t> order(L);
    std::iota(order.begin(), order.end(), std::size_t{0});
    if (opt_.random_layers)
      std::shuffle(order.begin(), order.end(), rng_);
    else
      std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return ev.metric[a] > ev.metric[b]; });
    net.reset_candidates();
    const std::size_t count = static_cast<std::size_t>(std::floor(static_cast<double>(L) * r + 1e-9));
    for (std::size_t i = 0; i < count && i < L; ++i)
      if (net.weight_candidates(order[i]).front() <= opt_.removable_bits && net.remove_min_bits(order[i]))
        ev.frozen.push_back(net.name(order[i]));
    ev.microseconds = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    log_.push_back(std::move(ev));
    return log_.back();
  }
  /// At the start of epoch e: runs the event if there is one; returns whether it ran.
  bool on_epoch_start(Supernet& net, int e) {
    if (!is_event(e)) return false;
    apply(net, e, ratio(e));
    return true;
  }
  const std::vector<SchedulerEvent>& log() const { return log_; }

 private:
  SchedulerOptions opt_;
  std::mt19937_64 rng_;
  std::vector<SchedulerEvent> log_;
};

}  // namespace mixq::schedule
