#pragma once
/// @file
/// Per-solve presolve (step 2 of the method in mixq/search/solver.hpp): row filtering removes every option whose use
/// of a row plus the other groups' minimum uses exceeds the row's budget (exact int64 arithmetic, to a fixpoint) and
/// reports the first violated row; fold_constants turns groups left with one option into constants (their cost and
/// the residual budgets rb_). Run at the start and after every fixing round. Uses: engine.hpp (the active options).

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "mixq/search/solver/engine.hpp"

namespace mixq::search::detail {

// Row filtering. Returns -1 if fine, else the violated row (min_use_out set).
inline int Engine::row_filter(std::int64_t& min_use_out) {
  lp_current_ = false;
  const int G = cp_.groups();
  std::vector<std::int64_t> gmin(static_cast<std::size_t>(G * K_));
  bool first = true;
  for (bool changed = true; changed; first = false) {
    changed = false;
    for (int k = 0; k < K_; ++k) {
      std::int64_t tot = 0;
      for (int g = 0; g < G; ++g) {
        std::int64_t m = std::numeric_limits<std::int64_t>::max();
        for (int j : act_[static_cast<std::size_t>(g)]) m = std::min(m, iuse(j, k));
        gmin[static_cast<std::size_t>(g * K_ + k)] = m;
        tot += m;
      }
      if (tot > b_[static_cast<std::size_t>(k)]) {
        // exact only for row 0 before any filtering; otherwise the caller analyses the infeasibility
        min_use_out = (first && k == 0) ? tot : -1;
        return k;
      }
      for (int g = 0; g < G; ++g) {
        std::vector<int>& a = act_[static_cast<std::size_t>(g)];
        const std::int64_t slack = b_[static_cast<std::size_t>(k)] - tot + gmin[static_cast<std::size_t>(g * K_ + k)];
        const std::size_t before = a.size();
        a.erase(std::remove_if(a.begin(), a.end(), [&](int j) { return iuse(j, k) > slack; }), a.end());
        if (a.size() != before) changed = true;
      }
    }
  }
  return -1;
}

inline void Engine::fold_constants() {
  lp_current_ = false;
  const int G = cp_.groups();
  const double ub_abs = ub_ + const_cost_;
  free_.clear();
  fixed_choice_.assign(static_cast<std::size_t>(G), -1);
  const_cost_ = 0.0;
  rb_ = b_;
  for (int g = 0; g < G; ++g) {
    const std::vector<int>& a = act_[static_cast<std::size_t>(g)];
    if (a.size() == 1) {
      fixed_choice_[static_cast<std::size_t>(g)] = a[0];
      const_cost_ += cp_.cost[static_cast<std::size_t>(a[0])];
      for (int k = 0; k < K_; ++k) rb_[static_cast<std::size_t>(k)] -= iuse(a[0], k);
    } else {
      free_.push_back(g);
    }
  }
  ub_ = ub_abs - const_cost_;
  update_cut();
}

}  // namespace mixq::search::detail
