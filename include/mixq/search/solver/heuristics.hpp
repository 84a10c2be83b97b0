#pragma once
/// @file
/// Primal heuristics (step 4 of the method in mixq/search/solver.hpp): the incumbent. A start (the LP solution
/// rounded down, a warm start mapped onto the active options, the DP relaxation's optimal path) is repaired row by
/// row (the best ratio of cost to normalised violation removed first, each group's best move in a lazy max-heap),
/// improved by single-class moves, and offered: a feasible choice cheaper than the incumbent replaces it and lowers
/// the cutoff. Uses: engine.hpp (active options, residual budgets, cutoff), lp_relaxation.hpp (hull_, hull_pos_ for
/// the rounded start); its starts come from solve_compiled.hpp and fixing.hpp (dp_path of dp_bound.hpp).

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "mixq/search/solver/engine.hpp"

namespace mixq::search::detail {

inline bool Engine::feasible(const std::vector<int>& choice, double& cost) const {
  cost = 0.0;
  for (int k = 0; k < K_; ++k) {
    std::int64_t u = 0;
    for (int g = 0; g < cp_.groups(); ++g) u += iuse(choice[static_cast<std::size_t>(g)], k);
    if (u > b_[static_cast<std::size_t>(k)]) return false;
  }
  for (int g = 0; g < cp_.groups(); ++g) cost += cp_.cost[static_cast<std::size_t>(choice[static_cast<std::size_t>(g)])];
  return true;
}

inline void Engine::offer(const std::vector<int>& choice) {
  double c;
  if (!feasible(choice, c)) return;
  c -= const_cost_;
  if (c < ub_) {
    ub_ = c;
    inc_ = choice;
    update_cut();
  }
}

// LP rounding + repair + single-class improvement moves, over the free groups' active options.
inline void Engine::heuristic() {
  std::vector<int> cur(static_cast<std::size_t>(cp_.groups()));
  for (int g = 0; g < cp_.groups(); ++g)
    cur[static_cast<std::size_t>(g)] = fixed_choice_[static_cast<std::size_t>(g)];
  for (int g : free_)
    cur[static_cast<std::size_t>(g)] = hull_[static_cast<std::size_t>(g)][static_cast<std::size_t>(hull_pos_[static_cast<std::size_t>(g)])];
  heuristic_from(std::move(cur));
}

// A start from a warm choice (e.g. the optimum of looser budgets): constants as folded, and options removed by
// row filtering replaced by the active option of smallest normalised use.
inline std::vector<int> Engine::repair_start(const std::vector<int>& warm) const {
  std::vector<int> cur = warm;
  for (int g = 0; g < cp_.groups(); ++g) {
    const std::size_t gs = static_cast<std::size_t>(g);
    if (fixed_choice_[gs] >= 0) {
      cur[gs] = fixed_choice_[gs];
      continue;
    }
    const std::vector<int>& a = act_[gs];
    if (std::find(a.begin(), a.end(), cur[gs]) != a.end()) continue;
    double best = std::numeric_limits<double>::infinity();
    for (int j : a) {
      double v = 0.0;
      for (int k = 0; k < K_; ++k)
        v += use_k(j, k) / static_cast<double>(std::max<std::int64_t>(rb_[static_cast<std::size_t>(k)], 1));
      if (v < best) {
        best = v;
        cur[gs] = j;
      }
    }
  }
  return cur;
}

// Repairs a start (per group; fixed groups already set) row by row, improves it, offers it.
inline void Engine::heuristic_from(std::vector<int> cur) {
  std::vector<std::int64_t> tot(static_cast<std::size_t>(K_), 0);
  for (int k = 0; k < K_; ++k)
    for (int g : free_) tot[static_cast<std::size_t>(k)] += iuse(cur[static_cast<std::size_t>(g)], k);
  auto apply = [&](int g, int j) {
    for (int k = 0; k < K_; ++k) tot[static_cast<std::size_t>(k)] += iuse(j, k) - iuse(cur[static_cast<std::size_t>(g)], k);
    cur[static_cast<std::size_t>(g)] = j;
  };
  // Repair: reduce the violated rows at the best cost per unit of normalised violation removed (ties: the first
  // group in free_ order, then the first option). While the set of violated rows stays the same, a move only lowers
  // the other groups' scores (violations shrink, slack in the other rows shrinks, their costs stay), so each
  // group's best score is kept in a max-heap and recomputed only when it comes to the top (lazy greedy: the same
  // moves as rescanning every option per move); the heap is rebuilt when a row stops being violated.
  const auto best_of = [&](std::size_t gi, int& bj) {
    const int g = free_[gi];
    const int c0 = cur[static_cast<std::size_t>(g)];
    double best = -std::numeric_limits<double>::infinity();
    bj = -1;
    for (int j : act_[static_cast<std::size_t>(g)]) {
      if (j == c0) continue;
      double benefit = 0.0;
      bool ok = true;
      for (int k = 0; k < K_; ++k) {
        const std::int64_t nt = tot[static_cast<std::size_t>(k)] + iuse(j, k) - iuse(c0, k);
        const std::int64_t over = tot[static_cast<std::size_t>(k)] - rb_[static_cast<std::size_t>(k)];
        if (over > 0) {
          const std::int64_t red = std::min(over, tot[static_cast<std::size_t>(k)] - nt);
          if (nt > tot[static_cast<std::size_t>(k)]) { ok = false; break; }
          benefit += static_cast<double>(red) / static_cast<double>(std::max<std::int64_t>(rb_[static_cast<std::size_t>(k)], 1));
        } else if (nt > rb_[static_cast<std::size_t>(k)]) {
          ok = false;
          break;
        }
      }
      if (!ok || benefit <= 0.0) continue;
      const double dc = cp_.cost[static_cast<std::size_t>(j)] - cp_.cost[static_cast<std::size_t>(c0)];
      const double score = dc <= 0.0 ? 1e300 * benefit : benefit / dc;
      if (score > best) { best = score; bj = j; }
    }
    return best;
  };
  // rows only leave the violated set (a move keeps the other rows within budget), so the set changed iff its size did
  const auto violated = [&]() {
    int v = 0;
    for (int k = 0; k < K_; ++k) v += tot[static_cast<std::size_t>(k)] > rb_[static_cast<std::size_t>(k)] ? 1 : 0;
    return v;
  };
  int moves = 0;
  const int max_moves = 4 * static_cast<int>(free_.size()) * K_ + 8;
  for (int rows = violated(); rows != 0;) {
    // heap entries (score, group position); the top: the largest score, then the smallest position
    const auto below = [](const std::pair<double, std::size_t>& a, const std::pair<double, std::size_t>& b) {
      return a.first < b.first || (a.first == b.first && a.second > b.second);
    };
    std::vector<std::pair<double, std::size_t>>& heap = repair_heap_;
    heap.clear();
    for (std::size_t gi = 0; gi < free_.size(); ++gi) {
      int bj;
      const double sc = best_of(gi, bj);
      if (bj >= 0) heap.emplace_back(sc, gi);
    }
    std::make_heap(heap.begin(), heap.end(), below);
    bool rebuild = false;
    while (!heap.empty() && moves < max_moves) {
      std::pop_heap(heap.begin(), heap.end(), below);
      const std::size_t gi = heap.back().second;
      heap.pop_back();
      int bj;
      const double sc = best_of(gi, bj);  // its current score (no higher than the stored one)
      if (bj < 0) continue;
      if (!heap.empty() && below(std::make_pair(sc, gi), heap.front())) {
        heap.emplace_back(sc, gi);  // stale: another group may now be better
        std::push_heap(heap.begin(), heap.end(), below);
        continue;
      }
      apply(free_[gi], bj);
      ++moves;
      const int now = violated();
      if (now != rows) {
        rows = now;
        rebuild = true;
        break;
      }
      const double sn = best_of(gi, bj);
      if (bj >= 0) {
        heap.emplace_back(sn, gi);
        std::push_heap(heap.begin(), heap.end(), below);
      }
    }
    if (!rebuild || moves >= max_moves) break;
  }
  for (int k = 0; k < K_; ++k)
    if (tot[static_cast<std::size_t>(k)] > rb_[static_cast<std::size_t>(k)]) return;
  improve(cur, tot);
  offer(cur);
}

// Best-improvement local search over single-class moves.
inline void Engine::improve(std::vector<int>& cur, std::vector<std::int64_t>& tot) {
  for (int it = 0; it < 16 * static_cast<int>(free_.size()) + 16; ++it) {
    double best = 0.0;
    int bg = -1, bj = -1;
    for (int g : free_) {
      const int c0 = cur[static_cast<std::size_t>(g)];
      for (int j : act_[static_cast<std::size_t>(g)]) {
        if (j == c0) continue;
        const double dc = cp_.cost[static_cast<std::size_t>(j)] - cp_.cost[static_cast<std::size_t>(c0)];
        if (dc >= best) break;  // act_ is in increasing cost order: no later option is cheaper
        bool ok = true;
        for (int k = 0; k < K_ && ok; ++k)
          ok = tot[static_cast<std::size_t>(k)] + iuse(j, k) - iuse(c0, k) <= rb_[static_cast<std::size_t>(k)];
        if (ok) { best = dc; bg = g; bj = j; }
      }
    }
    if (bg < 0 || best > -1e-15) break;
    for (int k = 0; k < K_; ++k) tot[static_cast<std::size_t>(k)] += iuse(bj, k) - iuse(cur[static_cast<std::size_t>(bg)], k);
    cur[static_cast<std::size_t>(bg)] = bj;
  }
}

}  // namespace mixq::search::detail
