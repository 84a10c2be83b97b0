#pragma once
/// @file
/// Retraining-free evaluation and search on a trained Supernet (Tang et al., CVPR 2024;
/// ../shared/methods/ONESHOT.md sections 3 and 7), every search under the same BitOps (and optionally size)
/// budget, scored on held-out training images, never the test set:
/// - evaluate_policy: set the policy, re-estimate BN statistics on training images (cumulative average), evaluate;
/// - greedy_search: the paper's bidirectional greedy search (weights, then activations; one-bit moves scored by
///   1.5 * err / max err + BitOps / max BitOps - 1 on a fixed held-out batch with batch-statistics BN);
/// - exact_search: issue 5's exact solver on sensitivities measured on the supernet itself (held-out loss when one
///   layer moves to (w, a) with every other layer at its maximum, minus the all-max loss: L x |B|^2 forwards);
/// - limpq_supernet_search: LIMPQ's objective S_a(b_a) + alpha S_w(b_w) on the supernet's learned step sizes;
/// - random_feasible_policy: a uniformly random policy lowered at random until it fits the budget (the baseline).
/// Every search respects the supernet's current (scheduler-shrunk) candidates.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/io/fashion_mnist.hpp"
#include "mixq/nn/data.hpp"
#include "mixq/nn/loss.hpp"
#include "mixq/schedule/supernet.hpp"
#include "mixq/schedule/training.hpp"
#include "mixq/search/objectives.hpp"
#include "mixq/search/policy.hpp"
#include "mixq/search/solver.hpp"

namespace mixq::schedule {

/// Sets `p`, re-estimates every active BN on `batches` x `batch_size` training images (drawn with `seed`;
/// the statistics end as the plain average of the batches'), returns the test accuracy on `test` (first
/// `test_limit` images, 0: all). No weight or step size changes.
inline double evaluate_policy(Supernet& net, const Policy& p, const io::ImageSet& calibration, const io::ImageSet& test,
                              Index batches = 32, Index batch_size = 128, std::uint64_t seed = 1, Index test_limit = 0) {
  net.set_policy(p);
  reestimate_batchnorm(net.model(), calibration, batches, batch_size, seed);
  return evaluate_accuracy(net.model(), test, test_limit);
}

/// Scores policies on one fixed batch of held-out images with batch-statistics BN (training mode, no
/// gradients; BN running statistics move, which evaluate_policy's re-estimation overwrites).
class BatchScorer {
 public:
  BatchScorer(Supernet& net, const io::ImageSet& heldout, Index images) : net_(net) {
    detail::check_image_set(heldout, "BatchScorer");
    if (images < 2 || images > heldout.size())
      mixq::detail::fail("BatchScorer: images=", images, " (need 2..", heldout.size(), " held-out images)");
    const auto order = nn::epoch_order(heldout.size());
    nn::make_batch(heldout.images.data(), heldout.labels.data(), order, 0, images, 1, heldout.rows, heldout.cols,
                   io::fashion_mnist_mean, io::fashion_mnist_std, x_, y_);
  }
  /// Top-1 error and cross-entropy of `p` on the batch.
  std::pair<double, double> error_and_loss(const Policy& p) {
    net_.set_policy(p);
    net_.model().set_training(true);
    const nn::Tensor& z = net_.model().forward(x_);
    ++evaluations_;
    const double loss = nn::cross_entropy(z, y_, grad_);
    const double err = 1.0 - static_cast<double>(nn::count_correct(z, y_)) / static_cast<double>(y_.size());
    return {err, loss};
  }
  double error(const Policy& p) { return error_and_loss(p).first; }
  double loss(const Policy& p) { return error_and_loss(p).second; }
  /// Forwards run so far.
  Index evaluations() const { return evaluations_; }

 private:
  Supernet& net_;
  nn::Tensor x_, grad_;
  std::vector<std::int32_t> y_;
  Index evaluations_ = 0;
};

/// A searched policy.
struct SearchResult {
  std::string method;
  Policy policy;
  std::int64_t bit_operations = 0;
  std::int64_t size_bits = 0;
  double seconds = 0;       ///< wall time of the search (scoring forwards included; not the sensitivities)
  Index evaluations = 0;    ///< scoring forwards
  double objective = 0;     ///< the method's objective (exact, LIMPQ), or the last score (greedy)
};

namespace detail {

/// The smallest BitOps any policy of the current candidates reaches.
inline std::int64_t minimum_bit_operations(const Supernet& net) {
  Policy p;
  for (std::size_t l = 0; l < net.size(); ++l) p.push_back({net.weight_candidates(l).front(), net.activation_candidates(l).front()});
  return net.bit_operations(p);
}

inline void check_budget(const Supernet& net, std::int64_t budget, const char* who) {
  const std::int64_t lo = minimum_bit_operations(net);
  if (budget < lo)
    mixq::detail::fail(who, ": budget BitOps=", budget, " is infeasible: the minimum over the current candidates is ",
                       lo);
}

inline SearchResult finish(const Supernet& net, std::string method, Policy p, std::chrono::steady_clock::time_point t0) {
  SearchResult r;
  r.method = std::move(method);
  r.bit_operations = net.bit_operations(p);
  r.size_bits = net.size_bits(p);
  r.policy = std::move(p);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// Index of b in v (ascending), -1 when absent.
inline int position(const std::vector<int>& v, int b) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] == b) return static_cast<int>(i);
  return -1;
}

}  // namespace detail

/// BitOps of the budget "uniform WbAb" (every searchable layer at (b, b)), whatever the candidates.
inline std::int64_t uniform_bit_operations(const Supernet& net, int w, int a) {
  return net.bit_operations(Policy(net.size(), search::BitPair{w, a}));
}

/// Options of the bidirectional greedy search.
struct GreedyOptions {
  int start_bits = 5;             ///< start from uniform W{start}A{start} (raised to k + 1 for a k-bit-level budget)
  double weight_phase_factor = 0.95;  ///< the weight phase ends at factor * BitOps(W_k A_start)
  double error_weight = 1.5;      ///< weight of the normalised error in the score
  int max_iterations = 32;        ///< per phase; afterwards only "-" moves (the released code can loop)
};

/// The paper's bidirectional greedy search (brief section 7), adapted to any budget: k = the highest uniform
/// level whose BitOps fit the budget, bit floor k - 1 (the brief's adaptation of b_floor), start uniform at
/// max(start_bits, k + 1). Phase 1 moves weight bits until BitOps <= factor * BitOps(W_k A_start), phase 2
/// activation bits until BitOps <= budget. Each iteration tries one bit down ("-", not below the floor or the
/// layer's current minimum) and one bit up ("+"; not the reverse of the move just made, and after max_iterations
/// none) for every layer and applies the lowest score. The result never
/// exceeds the budget; throws mixq::error when the budget is below the minimum of the current candidates.
inline SearchResult greedy_search(Supernet& net, BatchScorer& scorer, std::int64_t budget, const GreedyOptions& o = {}) {
  detail::check_budget(net, budget, "greedy_search");
  const auto t0 = std::chrono::steady_clock::now();
  const Index eval0 = scorer.evaluations();
  std::vector<int> levels = net.options().weight_bits;
  std::sort(levels.begin(), levels.end());
  int k = levels.front();
  for (int b : levels)
    if (uniform_bit_operations(net, b, b) <= budget) k = b;
  const int top = levels.back();
  const int start = std::min(top, std::max(o.start_bits, k + 1));
  const int floor_bits = std::max(levels.front(), k - 1);
  const std::size_t L = net.size();
  Policy p(L);
  for (std::size_t l = 0; l < L; ++l) {
    auto pick = [&](const std::vector<int>& c) {
      int v = c.front();
      for (int b : c)
        if (b <= start) v = b;
      return v;
    };
    p[l] = {pick(net.weight_candidates(l)), pick(net.activation_candidates(l))};
  }
  const std::int64_t weight_target = static_cast<std::int64_t>(
      o.weight_phase_factor * static_cast<double>(net.bit_operations(Policy(L, search::BitPair{k, start}))));
  double last_score = 0;
  for (int phase = 0; phase < 2; ++phase) {
    const std::int64_t target = phase == 0 ? std::min(weight_target, budget) : budget;
    bool relaxed_floor = false;
    std::size_t last_layer = L;  // the move just applied may not be undone at once (no two-move cycles)
    int last_bits = 0;
    for (int it = 0; net.bit_operations(p) > target; ++it) {
      struct Move { std::size_t layer; int bits; double err; std::int64_t bitops; };
      std::vector<Move> moves;
      for (std::size_t l = 0; l < L; ++l) {
        const std::vector<int>& c = phase == 0 ? net.weight_candidates(l) : net.activation_candidates(l);
        const int cur = phase == 0 ? p[l].weight_bits : p[l].activation_bits;
        const int i = detail::position(c, cur);
        const int lowest = relaxed_floor ? c.front() : std::max(c.front(), floor_bits);
        if (i > 0 && c[static_cast<std::size_t>(i - 1)] >= lowest) moves.push_back({l, c[static_cast<std::size_t>(i - 1)], 0, 0});
        if (it < o.max_iterations && i >= 0 && i + 1 < static_cast<int>(c.size()) && !(l == last_layer && cur < last_bits))
          moves.push_back({l, c[static_cast<std::size_t>(i + 1)], 0, 0});
      }
      bool any_down = false;
      for (const Move& m : moves)
        any_down = any_down || m.bits < (phase == 0 ? p[m.layer].weight_bits : p[m.layer].activation_bits);
      if (!any_down) {
        if (phase == 0) break;  // every weight at the floor: go on with activations
        if (relaxed_floor) mixq::detail::fail("greedy_search: no move left above budget ", budget);
        relaxed_floor = true;   // the floor blocks the budget: allow the current minimum
        continue;
      }
      double max_err = 0, max_ops = 0;
      for (Move& m : moves) {
        Policy q = p;
        (phase == 0 ? q[m.layer].weight_bits : q[m.layer].activation_bits) = m.bits;
        m.err = scorer.error(q);
        m.bitops = net.bit_operations(q);
        max_err = std::max(max_err, m.err);
        max_ops = std::max(max_ops, static_cast<double>(m.bitops));
      }
      double best = std::numeric_limits<double>::infinity();
      const Move* pick = nullptr;
      for (const Move& m : moves) {
        const double s = (max_err > 0 ? o.error_weight * m.err / max_err : 0.0) + static_cast<double>(m.bitops) / max_ops - 1.0;
        if (s < best) {
          best = s;
          pick = &m;
        }
      }
      int& moved = phase == 0 ? p[pick->layer].weight_bits : p[pick->layer].activation_bits;
      last_layer = pick->layer;
      last_bits = moved;
      moved = pick->bits;
      last_score = best;
    }
  }
  SearchResult r = detail::finish(net, "greedy", p, t0);
  r.evaluations = scorer.evaluations() - eval0;
  r.objective = last_score;
  return r;
}

/// Per-layer sensitivities of a supernet: loss[l][o] = held-out loss with layer l at options[o] and every other
/// layer at its maximum, minus the all-max loss (NaN for options outside the current candidates).
struct Sensitivities {
  std::vector<search::BitPair> options;
  std::vector<std::vector<double>> loss;
  double base_loss = 0;
  double seconds = 0;
  Index evaluations = 0;
};

/// Measures Sensitivities on the scorer's batch (L x |Bw| x |Ba| forwards).
inline Sensitivities measure_sensitivities(Supernet& net, BatchScorer& scorer) {
  const auto t0 = std::chrono::steady_clock::now();
  Sensitivities s;
  std::vector<int> wb = net.options().weight_bits, ab = net.options().activation_bits;
  std::sort(wb.begin(), wb.end());
  std::sort(ab.begin(), ab.end());
  s.options = search::bit_pairs(wb, ab);
  const Policy top = net.max_policy();
  s.base_loss = scorer.loss(top);
  for (std::size_t l = 0; l < net.size(); ++l) {
    std::vector<double> row;
    for (const search::BitPair& o : s.options) {
      if (detail::position(net.weight_candidates(l), o.weight_bits) < 0 ||
          detail::position(net.activation_candidates(l), o.activation_bits) < 0) {
        row.push_back(std::numeric_limits<double>::quiet_NaN());
        continue;
      }
      Policy p = top;
      p[l] = o;
      row.push_back(scorer.loss(p) - s.base_loss);
    }
    s.loss.push_back(std::move(row));
  }
  s.evaluations = static_cast<Index>(net.size() * s.options.size()) + 1;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

namespace detail {

// Solves a cost table over the supernet's options exactly under BitOps (and size when size_budget > 0).
inline SearchResult solve_table(Supernet& net, const std::string& method, const std::vector<std::vector<double>>& cost,
                                const std::vector<std::vector<bool>>& allowed, const std::vector<search::BitPair>& options,
                                std::int64_t budget, std::int64_t size_budget) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<search::Resource> res{search::Resource::bit_operations};
  std::vector<std::int64_t> bud{budget};
  if (size_budget > 0) {
    res.push_back(search::Resource::size_bits);
    bud.push_back(size_budget);
  }
  const search::Problem problem = search::layer_problem(net.table(), cost, options, res, bud, &allowed);
  const search::Solution sol = search::solve(problem);
  if (sol.status != search::Status::optimal && sol.status != search::Status::feasible)
    mixq::detail::fail(method, ": the solver found no policy (", search::to_string(sol.status), ") within BitOps ",
                       budget, size_budget > 0 ? " and the size budget" : "");
  const search::BitPolicy bp = search::policy_from_solution(net.table(), problem, sol);
  Policy p;
  for (std::size_t i = 0; i < net.table().size(); ++i)
    if (net.table()[i].fixed_bits == 0) p.push_back({bp.weight_bits[i], bp.activation_bits[i]});
  SearchResult r = finish(net, method, p, t0);
  r.objective = sol.objective;
  return r;
}

}  // namespace detail

/// The cost table of exact_search: per layer, the sensitivities shifted by the row's minimum (each layer takes
/// exactly one option, so a per-layer constant does not move the optimum, and negative measurements stay usable)
/// plus tie_break * (1 - w a / max w a), which among policies of equal measured loss prefers more bits.
/// `allowed` gets false for options outside the current candidates or not measured.
inline std::vector<std::vector<double>> exact_costs(const Supernet& net, const Sensitivities& s,
                                                    std::vector<std::vector<bool>>& allowed, double tie_break = 1e-6) {
  if (s.loss.size() != net.size()) mixq::detail::fail("exact_search: sensitivities of ", s.loss.size(), " layers for ", net.size());
  double max_wa = 1;
  for (const search::BitPair& o : s.options) max_wa = std::max(max_wa, static_cast<double>(o.weight_bits * o.activation_bits));
  std::vector<std::vector<double>> cost(s.loss.size());
  allowed.assign(s.loss.size(), {});
  for (std::size_t l = 0; l < s.loss.size(); ++l) {
    double lo = std::numeric_limits<double>::infinity();
    for (std::size_t o = 0; o < s.options.size(); ++o) {
      const double v = s.loss[l][o];
      const bool ok = std::isfinite(v) && detail::position(net.weight_candidates(l), s.options[o].weight_bits) >= 0 &&
                      detail::position(net.activation_candidates(l), s.options[o].activation_bits) >= 0;
      allowed[l].push_back(ok);
      if (ok) lo = std::min(lo, v);
    }
    for (std::size_t o = 0; o < s.options.size(); ++o) {
      const double wa = static_cast<double>(s.options[o].weight_bits * s.options[o].activation_bits);
      cost[l].push_back(allowed[l][o] ? s.loss[l][o] - lo + tie_break * (1.0 - wa / max_wa) : 0.0);
    }
  }
  return cost;
}

/// Issue 5's exact solver on the supernet's sensitivities (exact_costs): the policy of least summed
/// sensitivity under the BitOps budget (and size_budget bits when > 0), options outside the current candidates
/// forbidden.
inline SearchResult exact_search(Supernet& net, const Sensitivities& s, std::int64_t budget, std::int64_t size_budget = 0) {
  detail::check_budget(net, budget, "exact_search");
  std::vector<std::vector<bool>> allowed;
  const std::vector<std::vector<double>> cost = exact_costs(net, s, allowed);
  return detail::solve_table(net, "exact", cost, allowed, s.options, budget, size_budget);
}

/// LIMPQ's objective on the supernet's own learned step sizes: cost S_a(b_a) + alpha * S_w(b_w) (S: the step
/// size, averaged over channels), LIMPQ's "wired points" forbidden (a lower bit-width whose step size is below
/// the next higher one's) unless that leaves a layer without options, current candidates only; solved exactly.
inline SearchResult limpq_supernet_search(Supernet& net, std::int64_t budget, double alpha = 2.0, std::int64_t size_budget = 0) {
  detail::check_budget(net, budget, "limpq_supernet_search");
  std::vector<int> wb = net.options().weight_bits, ab = net.options().activation_bits;
  std::sort(wb.begin(), wb.end());
  std::sort(ab.begin(), ab.end());
  const std::vector<search::BitPair> options = search::bit_pairs(wb, ab);
  auto descending_allowed = [](nn::LsqQuantizer& q, const std::vector<int>& bits, std::vector<double>& step) {
    std::vector<double> desc;
    for (auto it = bits.rbegin(); it != bits.rend(); ++it) desc.push_back(static_cast<double>(q.step_size(*it).value.mean()));
    std::vector<bool> ok = search::limpq_allowed(desc);
    step.assign(desc.rbegin(), desc.rend());
    return std::vector<bool>(ok.rbegin(), ok.rend());  // ascending bits
  };
  std::vector<std::vector<double>> cost(net.size());
  std::vector<std::vector<bool>> allowed(net.size());
  for (std::size_t l = 0; l < net.size(); ++l) {
    std::vector<double> sw, sa;
    const std::vector<bool> okw = descending_allowed(net.layer(l).weight_quantizer(), wb, sw);
    const std::vector<bool> oka = descending_allowed(net.layer(l).input_quantizer(), ab, sa);
    bool any = false;
    for (int pass = 0; pass < 2 && !any; ++pass) {
      cost[l].clear();
      allowed[l].clear();
      for (std::size_t i = 0; i < wb.size(); ++i)
        for (std::size_t j = 0; j < ab.size(); ++j) {
          const bool cand = detail::position(net.weight_candidates(l), wb[i]) >= 0 &&
                            detail::position(net.activation_candidates(l), ab[j]) >= 0;
          const bool ok = cand && (pass == 1 || (okw[i] && oka[j]));
          allowed[l].push_back(ok);
          cost[l].push_back(sa[j] + alpha * sw[i]);
          any = any || ok;
        }
    }
  }
  try {
    return detail::solve_table(net, "limpq", cost, allowed, options, budget, size_budget);
  } catch (const mixq::error&) {  // the wired points make the budget infeasible: every candidate allowed
    for (std::size_t l = 0; l < net.size(); ++l)
      for (std::size_t o = 0; o < options.size(); ++o)
        allowed[l][o] = detail::position(net.weight_candidates(l), options[o].weight_bits) >= 0 &&
                        detail::position(net.activation_candidates(l), options[o].activation_bits) >= 0;
    return detail::solve_table(net, "limpq", cost, allowed, options, budget, size_budget);
  }
}

/// A random policy of the current candidates, lowered one random bit at a time until it fits the budget.
inline Policy random_feasible_policy(Supernet& net, std::int64_t budget, std::mt19937_64& rng) {
  detail::check_budget(net, budget, "random_feasible_policy");
  Policy p = net.random_policy(rng);
  while (net.bit_operations(p) > budget) {
    std::vector<std::pair<std::size_t, bool>> down;  // (layer, weight?)
    for (std::size_t l = 0; l < net.size(); ++l) {
      if (p[l].weight_bits > net.weight_candidates(l).front()) down.push_back({l, true});
      if (p[l].activation_bits > net.activation_candidates(l).front()) down.push_back({l, false});
    }
    std::uniform_int_distribution<std::size_t> d(0, down.size() - 1);
    const auto [l, w] = down[d(rng)];
    const std::vector<int>& c = w ? net.weight_candidates(l) : net.activation_candidates(l);
    int& b = w ? p[l].weight_bits : p[l].activation_bits;
    b = c[static_cast<std::size_t>(detail::position(c, b) - 1)];
  }
  return p;
}

/// `count` BitOps budgets from `low` to `high`, evenly spaced on a log scale (both ends included).
inline std::vector<std::int64_t> frontier_budgets(std::int64_t low, std::int64_t high, int count) {
  if (count < 2 || low <= 0 || high < low)
    mixq::detail::fail("frontier_budgets: count=", count, ", low=", low, ", high=", high, " (need count >= 2, 0 < low <= high)");
  std::vector<std::int64_t> v;
  for (int i = 0; i < count; ++i) {
    const double t = static_cast<double>(i) / (count - 1);
    v.push_back(static_cast<std::int64_t>(std::exp(std::log(static_cast<double>(low)) * (1 - t) +
                                                   std::log(static_cast<double>(high)) * t)));
  }
  v.front() = low;
  v.back() = high;
  return v;
}

/// Kendall's tau-a between two equally long score lists (ties count 0).
inline double kendall_tau(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2) mixq::detail::fail("kendall_tau: need two lists of the same length >= 2");
  double s = 0;
  const std::size_t n = a.size();
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i + 1; j < n; ++j) {
      const double x = a[i] - a[j], y = b[i] - b[j];
      if (x != 0.0 && y != 0.0) s += (x > 0.0) == (y > 0.0) ? 1.0 : -1.0;
    }
  return s / (static_cast<double>(n) * static_cast<double>(n - 1) / 2.0);
}

}  // namespace mixq::schedule
