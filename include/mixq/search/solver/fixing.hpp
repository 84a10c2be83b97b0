#pragma once
/// @file
/// Root fixing (step 5 of the method in mixq/search/solver.hpp): the Lagrangian bound and reduced costs of the
/// surrogate LP, reduced-cost fixing, DP fixing (an option goes when the DP relaxation with it forced cannot beat
/// the cutoff), and root_rounds, the loop that alternates them with row filtering until nothing changes (at most
/// max_rounds_ rounds, the DP only when its table is small). Every removed option is one no solution cheaper than
/// the cutoff uses. Uses: engine.hpp, row_filter.hpp, lp_relaxation.hpp and multiplier_search.hpp (the LP and its
/// multiplier), dp_bound.hpp (tables, path), heuristics.hpp (the path as a start), kernels.hpp (dp::min_sum).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "mixq/search/solver/dp_bound.hpp"
#include "mixq/search/solver/heuristics.hpp"
#include "mixq/search/solver/kernels.hpp"
#include "mixq/search/solver/multiplier_search.hpp"
#include "mixq/search/solver/row_filter.hpp"

namespace mixq::search::detail {

inline void Engine::lagrangian() {
  delta_.assign(cp_.cost.size(), 0.0);
  lag_ = -lambda_ * R_;
  for (int g : free_) {
    double m = std::numeric_limits<double>::infinity();
    for (int j : act_[static_cast<std::size_t>(g)])
      m = std::min(m, cp_.cost[static_cast<std::size_t>(j)] + lambda_ * s_[static_cast<std::size_t>(j)]);
    for (int j : act_[static_cast<std::size_t>(g)])
      delta_[static_cast<std::size_t>(j)] = cp_.cost[static_cast<std::size_t>(j)] + lambda_ * s_[static_cast<std::size_t>(j)] - m;
    lag_ += m;
  }
}

// Reduced-cost fixing; returns true if some option was removed.
inline bool Engine::reduced_cost_fixing() {
  if (!std::isfinite(cut_)) return false;
  bool changed = false;
  const double limit = cut_;
  for (int g : free_) {
    std::vector<int>& a = act_[static_cast<std::size_t>(g)];
    const std::size_t before = a.size();
    a.erase(std::remove_if(a.begin(), a.end(), [&](int j) { return lag_ + delta_[static_cast<std::size_t>(j)] >= limit; }), a.end());
    if (a.size() != before) changed = true;
  }
  if (changed) lp_current_ = false;
  return changed;
}

// Removes every option whose DP-relaxation bound with the option forced is >= incumbent - tol.
// Sets empty when a class loses every option (then nothing cheaper than the cutoff exists).
inline bool Engine::dp_fixing(bool& empty) {
  if (dp_row_ < 0 || !std::isfinite(cut_)) return false;
  build_forward();
  const std::int64_t E = dp_excess_;
  const double limit = cut_ + dp_L0_;
  bool changed = false;
  dp_path(&path_rem_);
  for (std::size_t d = 0; d < order_.size(); ++d) {
    const int grp = order_[d];
    // with option j forced (u units): min over e1 + e2 = E - u of forward(e1) + backward(e2); in the reversed
    // forward row, forward(E - u - e2) sits at index u + e2, so this is one contiguous sum-and-minimum. The split
    // of the relaxation's optimal path (r units left before this class) gives one term of it, fr[r] + t[r - u]:
    // when that is already below the limit the option stays without the scan
    const double* fr = &fwd_[d * static_cast<std::size_t>(E + 1)];
    const double* t = &table_[(d + 1) * static_cast<std::size_t>(E + 1)];
    const std::int64_t r = path_rem_[d];
    std::vector<int>& a = act_[static_cast<std::size_t>(grp)];
    const std::size_t before = a.size();
    a.erase(std::remove_if(a.begin(), a.end(), [&](int j) {
              const std::int64_t u = dp_units_[static_cast<std::size_t>(j)];
              if (u > E) return true;
              const double v = cp_.cost[static_cast<std::size_t>(j)] + dp_pen_[static_cast<std::size_t>(j)];
              if (u <= r && v + (fr[r] + t[r - u]) < limit) return false;
              return v + dp::min_sum(fr + u, t, E + 1 - u, avx2_) >= limit;
            }),
            a.end());
    if (a.empty()) {
      empty = true;
      lp_current_ = false;
      return changed;
    }
    if (a.size() != before) changed = true;
  }
  if (changed) lp_current_ = false;
  return changed;
}

// Root fixing rounds under the current cutoff: surrogate LP, reduced-cost fixing, DP bound and DP fixing, row
// filtering. Returns true when nothing cheaper than the cutoff is left (the attempt is then complete).
inline bool Engine::root_rounds() {
  dp_current_ = false;
  bool dp_large = false;  // a large table was built: later rounds fix with the LP only, the B&B rebuilds it
  bool first_dp = true;   // the first round that reaches the DP also takes the relaxation's path as an incumbent
  int lp_rounds = 0;      // rounds that fixed with the LP alone before a table (threshold attempts)
  for (int round = 0, iter = 0;; ++round, ++iter) {
    if (free_.empty()) {
      offer(fixed_choice_);
      return true;
    }
    // round 0 right after the multiplier search or at the start of an attempt: the LP is already there
    const double lp = lp_current_ ? lp_value_ : choose_weights(false);
    if (std::isinf(lp)) return true;  // the surrogate is infeasible: nothing cheaper than the incumbent exists
    lagrangian();
    if (iter == 0) round0_bound_ = std::max(lp, lag_) + const_cost_;
    if (std::max(lp, lag_) >= cut_) return true;
    bool changed = reduced_cost_fixing();
    if (!dp_small_ && changed && !dp_large && lp_rounds < 3) {
      // In the attempts (tables of up to 2^18 entries): LP fixing to a fixpoint first (at most 3 extra rounds), so
      // that the table is built over fewer options, often exact instead of coarse. Before the attempts the tables
      // are small and the relaxation's path is wanted early as an incumbent.
      ++lp_rounds;
      --round;
      std::int64_t unused = 0;
      if (row_filter(unused) >= 0) return true;
      fold_constants();
      continue;
    }
    if (dp_large) {
      if (round == max_rounds_ - 1 || !changed) return false;
      std::int64_t unused = 0;
      if (row_filter(unused) >= 0) return true;
      fold_constants();
      continue;
    }
    set_order();
    build_dp_table();
    if (dp_infeasible_) return true;
    const bool path = first_dp;
    first_dp = false;
    if (dp_row_ >= 0) {
      if (path) {
        heuristic_from(dp_path());
        if (iter == 0) round0_bound_ = std::max(round0_bound_, dp_root() + const_cost_);
      }
      if (dp_root() >= cut_) return true;
      // DP fixing costs about one table per round: only when the table is small
      std::size_t active = 0;
      for (int g : free_) active += act_[static_cast<std::size_t>(g)].size();
      const double cost = static_cast<double>(dp_excess_ + 1) * static_cast<double>(active);
      dp_large = cost > 262144.0;
      if (cost <= 131072.0) {
        bool empty = false;
        changed = dp_fixing(empty) || changed;
        if (empty) return true;
      }
    }
    dp_current_ = !changed;
    if (round == max_rounds_ - 1 || !changed) return false;
    // the fixed problem keeps every solution cheaper than the cutoff
    std::int64_t unused = 0;
    if (row_filter(unused) >= 0) return true;
    fold_constants();
  }
}

}  // namespace mixq::search::detail
