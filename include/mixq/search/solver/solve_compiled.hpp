#pragma once
/// @file
/// One solve of a compiled problem for one budget vector (steps 2 to 7 of the method in mixq/search/solver.hpp,
/// in order): row filtering and constants, the multiplier search and the first incumbents, root fixing rounds,
/// then the threshold attempts (iterative deepening on the bound), each a round of fixing and a branch and bound;
/// the solution and its status. Also solve_compiled (an Engine per call, and the analysis of a joint infeasibility:
/// the first row whose minimum use subject to the rows before it exceeds its budget) and solve_problem (checks the
/// budgets and options, maps a warm start and the solution between classes and groups), which Solver and
/// pareto_sweep call. Uses every other header of solver/.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "mixq/search/solver/branch_and_bound.hpp"
#include "mixq/search/solver/compile.hpp"
#include "mixq/search/solver/fixing.hpp"
#include "mixq/search/solver/heuristics.hpp"
#include "mixq/search/solver/row_filter.hpp"

namespace mixq::search::detail {

inline Solution Engine::run_impl(const std::vector<int>* warm) {
  const int G = cp_.groups();
  const double inf = std::numeric_limits<double>::infinity();
  act_.resize(static_cast<std::size_t>(G));  // every entry is overwritten (inner vectors keep their memory)
  for (int g = 0; g < G; ++g) {
    std::vector<int>& a = act_[static_cast<std::size_t>(g)];
    a.resize(static_cast<std::size_t>(cp_.begin[static_cast<std::size_t>(g) + 1] - cp_.begin[static_cast<std::size_t>(g)]));
    std::iota(a.begin(), a.end(), cp_.begin[static_cast<std::size_t>(g)]);
  }
  std::int64_t min_use = 0;
  const int bad = row_filter(min_use);
  if (bad >= 0) return min_use >= 0 ? infeasible(bad, min_use) : infeasible(-1, 0);
  fold_constants();
  if (warm && static_cast<int>(warm->size()) == G) offer(*warm);
  double root = -inf;  // proven lower bound (with const)
  bool proven = false;
  if (free_.empty()) {
    offer(fixed_choice_);
    proven = true;
  } else {
    const double lp = choose_weights(true);
    if (std::isinf(lp)) {
      proven = true;  // the surrogate is infeasible: no solution better than the incumbent exists
    } else {
      heuristic();
      if (warm && static_cast<int>(warm->size()) == G) heuristic_from(repair_start(*warm));
      lagrangian();
      root = std::max(lp, lag_) + const_cost_;
      proven = root - const_cost_ >= cut_;
    }
  }
  if (!proven) {
    // root fixing against the incumbent: the fixed problem keeps every solution cheaper than the incumbent
    dp_small_ = true;
    proven = root_rounds();
    dp_small_ = false;
    if (!proven) root = std::max(root, std::min(round0_bound_, ub_ + const_cost_));
  }
  if (!proven) {
    // Attempts with rising thresholds T (iterative deepening on the bound): an attempt searches only for
    // solutions cheaper than min(incumbent, T), so fixing and pruning are much stronger while T is close to the
    // root bound. An attempt that ends with incumbent <= T has searched everything below the incumbent (optimal);
    // otherwise it proved that no solution is cheaper than T - tol, and the next attempt uses a larger T. The
    // last attempt has T = +inf (the plain search).
    std::vector<std::vector<int>>& act0 = act0_;
    act0 = act_;
    const std::vector<int> free0 = free_, fixed0 = fixed_choice_;
    const bool lp0 = lp_current_;  // the root rounds ended without fixing anything: their last LP is act0's
    LpSnapshot& snap = snap_;
    if (lp0) save_lp(snap);
    const std::vector<std::int64_t> rb0 = rb_;
    const double const0 = const_cost_;
    std::vector<double> thresholds;
    const double gap = ub_ + const_cost_ - root;
    for (double f : threshold_fractions()) thresholds.push_back(root + gap * f);
    thresholds.push_back(inf);
    for (std::size_t a = 0; a < thresholds.size(); ++a) {
      thr_ = thresholds[a];
      if (std::isfinite(thr_) && thr_ >= ub_ + const_cost_) continue;  // not below the incumbent
      const double ub_abs = ub_ + const_cost_;
      act_ = act0;
      free_ = free0;
      fixed_choice_ = fixed0;
      rb_ = rb0;
      const_cost_ = const0;
      ub_ = ub_abs - const_cost_;
      update_cut();
      if (lp0) load_lp(snap);
      else lp_current_ = false;
      if (!root_rounds()) branch_and_bound();
      if (aborted_ || ub_ + const_cost_ <= thr_) break;
      root = std::max(root, thr_ - opt_.relative_tolerance * std::max(1.0, std::fabs(thr_)));
    }
    thr_ = inf;
    update_cut();
  }
  Solution s;
  if (!std::isfinite(ub_)) {
    if (aborted_) {
      s.status = Status::unknown;
      s.bound = root;
      return s;
    }
    return infeasible(-1, 0);  // joint infeasibility: analysed by the caller
  }
  best_choice = inc_;
  s.status = aborted_ ? Status::feasible : Status::optimal;
  s.objective = ub_ + const_cost_;
  s.bound = aborted_ ? std::min(root, s.objective) : s.objective;
  s.gap = s.objective - s.bound;
  return s;
}

/// K = 2: where a solve's multiplier search starts (a sweep predicts it from its last solves) and where it ended.
struct AngleHint {
  double start = std::numeric_limits<double>::quiet_NaN();  ///< in: the angle to start from (NaN: none)
  double step = 0.0;                                        ///< in: the first step away from it
  double found = std::numeric_limits<double>::quiet_NaN();  ///< out: the angle found (unchanged if no search ran)
};

/// Solves one budget vector of a compiled problem; choice is filled per group. Handles joint infeasibility by
/// finding the first row k whose minimum use subject to rows 0..k-1 exceeds its budget.
inline Solution solve_compiled(const Compiled& cp, const std::vector<std::int64_t>& budgets, const SolveOptions& opt,
                               const std::vector<int>* warm, std::vector<int>& group_choice,
                               AngleHint* angle = nullptr) {
  Engine e(cp, budgets, opt);
  if (angle) e.set_angle(angle->start, angle->step);
  Solution s = e.run(warm);
  group_choice = e.best_choice;
  if (angle && std::isfinite(e.angle())) angle->found = e.angle();
  if (s.status == Status::infeasible && s.infeasible_resource < 0) {
    for (int k = 1; k < cp.K; ++k) {
      Compiled sub;
      sub.K = k;
      sub.n_classes = cp.n_classes;
      sub.members = cp.members;
      sub.group_of = cp.group_of;
      sub.begin = cp.begin;
      sub.option = cp.option;
      for (std::size_t j = 0; j < cp.cost.size(); ++j) {
        sub.cost.push_back(static_cast<double>(cp.use[j * static_cast<std::size_t>(cp.K) + static_cast<std::size_t>(k)]));
        for (int r = 0; r < k; ++r) sub.use.push_back(cp.use[j * static_cast<std::size_t>(cp.K) + static_cast<std::size_t>(r)]);
      }
      dominance_filter(sub);
      std::vector<int> dummy;
      SolveOptions o;
      o.relative_tolerance = 0.0;
      const Solution m = solve_compiled(sub, std::vector<std::int64_t>(budgets.begin(), budgets.begin() + k), o,
                                        nullptr, dummy);
      if (m.status == Status::infeasible) {
        s.infeasible_resource = m.infeasible_resource;
        s.minimum_use = m.minimum_use;
        break;
      }
      const std::int64_t v = std::llround(m.objective);
      if (v > budgets[static_cast<std::size_t>(k)]) {
        s.infeasible_resource = k;
        s.minimum_use = v;
        break;
      }
    }
  }
  return s;
}

/// Fills choice, objective and use of a solution from per-group choices, summing in class order.
inline void expand_solution(const Problem& p, const Compiled& cp, const std::vector<int>& group_choice, Solution& s) {
  if (group_choice.empty()) return;
  s.choice.assign(p.classes.size(), -1);
  s.use.assign(p.budgets.size(), 0);
  double obj = 0.0;
  for (std::size_t c = 0; c < p.classes.size(); ++c) {
    const int j = cp.option[static_cast<std::size_t>(group_choice[static_cast<std::size_t>(cp.group_of[c])])];
    s.choice[c] = j;
    const Option& o = p.classes[c].options[static_cast<std::size_t>(j)];
    obj += o.cost;
    for (std::size_t k = 0; k < p.budgets.size(); ++k) s.use[k] += o.use[k];
  }
  s.objective = obj;
  if (s.status == Status::optimal) s.bound = obj;
  s.gap = std::max(0.0, s.objective - s.bound);
}

/// Solves a compiled problem for one budget vector (checked here) and fills the per-class solution.
/// angle: see AngleHint.
inline Solution solve_problem(const Problem& problem, const Compiled& compiled,
                              const std::vector<std::int64_t>& budgets, const SolveOptions& options,
                              const std::vector<int>* warm_start, AngleHint* angle = nullptr) {
  if (budgets.size() != problem.budgets.size())
    mixq::detail::fail("solve: expected K=", problem.budgets.size(), " budgets, got ", budgets.size());
  for (std::size_t k = 0; k < budgets.size(); ++k)
    if (budgets[k] < 0) mixq::detail::fail("solve: budget of ", problem.resource_name(k), " is negative: ", budgets[k]);
  if (!(options.relative_tolerance >= 0.0) || !(options.time_limit_seconds >= 0.0) || options.node_limit < 0)
    mixq::detail::fail("solve: limits and tolerance must be non-negative, got relative_tolerance=",
                       options.relative_tolerance, " time_limit_seconds=", options.time_limit_seconds,
                       " node_limit=", options.node_limit);
  std::vector<int> warm_groups;
  const std::vector<int>* warm = nullptr;
  if (warm_start && warm_start->size() == problem.classes.size()) {
    // map class choices to compiled option indices
    warm_groups.assign(static_cast<std::size_t>(compiled.groups()), -1);
    bool ok = true;
    for (int g = 0; g < compiled.groups() && ok; ++g) {
      const int want = (*warm_start)[static_cast<std::size_t>(compiled.members[static_cast<std::size_t>(g)][0])];
      for (int j = compiled.begin[static_cast<std::size_t>(g)]; j < compiled.begin[static_cast<std::size_t>(g) + 1]; ++j)
        if (compiled.option[static_cast<std::size_t>(j)] == want) warm_groups[static_cast<std::size_t>(g)] = j;
      ok = warm_groups[static_cast<std::size_t>(g)] >= 0;
    }
    if (ok) warm = &warm_groups;
  }
  std::vector<int> group_choice;
  Solution s = solve_compiled(compiled, budgets, options, warm, group_choice, angle);
  expand_solution(problem, compiled, group_choice, s);
  return s;
}

}  // namespace mixq::search::detail
