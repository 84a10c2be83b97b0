#pragma once
/// @file
/// The DP relaxation (steps 5 and 7 of the method in mixq/search/solver.hpp): exact over the excess of one row A
/// (in units of the gcd of its option differences, coarser when the table would be large: rounding uses down
/// relaxes the row and keeps the bound valid), the other rows Lagrangian-relaxed with the root surrogate LP's
/// multipliers. The backward table gives an O(1) bound per branch-and-bound candidate and the root bound; the forward
/// table (stored reversed) serves DP fixing (fixing.hpp); dp_path is the relaxation's optimal choice, a heuristic
/// start (heuristics.hpp). Side tables with the multipliers scaled by 0.9 and 1.1 are built once a branch and bound
/// has run long. Uses: engine.hpp, kernels.hpp (dp::rows), buffers.hpp (dp::Buffer), the multipliers of
/// lp_relaxation.hpp (lambda_, w_).

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "mixq/search/solver/engine.hpp"
#include "mixq/search/solver/kernels.hpp"

namespace mixq::search::detail {

inline std::int64_t Engine::gcd64(std::int64_t a, std::int64_t b) {
  while (b != 0) {
    const std::int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

inline void Engine::build_dp_table() {
  dp_row_ = -1;
  dp_infeasible_ = false;
  const std::int64_t nf = static_cast<std::int64_t>(order_.size());
  // A coarser unit (at most 64 gcds; the row's uses divided by it and rounded down) relaxes the row (every
  // feasible choice still fits), so the bound stays valid.
  // Before the threshold attempts (dp_small_): exact tables of at most 2^16 entries only; in the attempts
  // (after stronger fixing) exact up to 2^18 entries, else ~2^16 entries with a coarser unit (an exact table of
  // 2^18 to 2^20 entries, e.g. MobileNetV2's 44 x 16,406, cost more than its sharper bound saved: same node count;
  // so did a coarse one of ~2^17 entries: 127 nodes with either)
  const int lx = dp_small_ ? 16 : 18, lc = dp_small_ ? 14 : 16, mf = dp_small_ ? 1 : 64;
  const std::int64_t cells = std::max<std::int64_t>(16, (std::int64_t{1} << lc) / (nf + 1));
  std::int64_t best_f = std::numeric_limits<std::int64_t>::max(), best_e = 0, best_g = 1;
  for (int k = 0; k < K_; ++k) {
    std::int64_t g = 0, summin = 0;
    for (int grp : free_) {
      std::int64_t m = std::numeric_limits<std::int64_t>::max();
      for (int j : act_[static_cast<std::size_t>(grp)]) m = std::min(m, iuse(j, k));
      summin += m;
      for (int j : act_[static_cast<std::size_t>(grp)]) g = gcd64(g, iuse(j, k) - m);
    }
    if (rb_[static_cast<std::size_t>(k)] < summin) {
      dp_infeasible_ = true;  // no completion meets row k: nothing better than the incumbent exists
      dp_row_ = -1;
      return;
    }
    if (g == 0) continue;
    const std::int64_t e = (rb_[static_cast<std::size_t>(k)] - summin) / g;
    const std::int64_t f = (e + 1) * (nf + 1) <= (std::int64_t{1} << lx) ? 1 : (e + cells - 1) / (cells - 1);
    if (f > mf) continue;  // too coarse to help
    if ((dp_row0_ < 0 || dp_row0_ == k) && (f < best_f || (f == best_f && e / f < best_e))) {
      best_f = f;
      best_e = (rb_[static_cast<std::size_t>(k)] - summin) / (g * f);
      best_g = g * f;
      dp_row_ = k;
    }
  }
  if (dp_row_ < 0) return;
  dp_row0_ = dp_row_;
  const std::int64_t E = best_e;
  dp_excess_ = E;
  dp_units_.assign(cp_.cost.size(), 0);
  // multipliers of the other rows: from the first (fully searched) surrogate LP, kept across rounds
  if (lambda0_.empty()) {
    lambda0_.assign(static_cast<std::size_t>(K_), 0.0);
    for (int k = 0; k < K_; ++k) lambda0_[static_cast<std::size_t>(k)] = lambda_ * w_[static_cast<std::size_t>(k)];
  }
  dp_lambda_ = lambda0_;
  dp_lambda_[static_cast<std::size_t>(dp_row_)] = 0.0;
  for (int grp : free_) {
    std::int64_t m = std::numeric_limits<std::int64_t>::max();
    for (int j : act_[static_cast<std::size_t>(grp)]) m = std::min(m, iuse(j, dp_row_));
    for (int j : act_[static_cast<std::size_t>(grp)]) dp_units_[static_cast<std::size_t>(j)] = (iuse(j, dp_row_) - m) / best_g;
  }
  dp_pen_.assign(cp_.cost.size(), 0.0);
  dp_L0_ = 0.0;
  for (int k = 0; k < K_; ++k) dp_L0_ += dp_lambda_[static_cast<std::size_t>(k)] * static_cast<double>(rb_[static_cast<std::size_t>(k)]);
  for (int grp : free_)
    for (int j : act_[static_cast<std::size_t>(grp)]) {
      double v = 0.0;
      for (int k = 0; k < K_; ++k) v += dp_lambda_[static_cast<std::size_t>(k)] * use_k(j, k);
      dp_pen_[static_cast<std::size_t>(j)] = v;
    }
  // no fill: the last row is 0, every other row starts as a copy of the next one shifted by an option of zero
  // excess (each class has one: units count the use above the class minimum)
  table_ = table_buf_.get(static_cast<std::size_t>((nf + 1) * (E + 1)));
  std::fill(table_ + nf * (E + 1), table_ + (nf + 1) * (E + 1), 0.0);
  for (std::int64_t d = nf - 1; d >= 0; --d)
    dp_row(&table_[static_cast<std::size_t>(d * (E + 1))], &table_[static_cast<std::size_t>((d + 1) * (E + 1))],
           order_[static_cast<std::size_t>(d)], false);
  side_ = 0;
}

inline void Engine::build_side_tables() {
  const std::int64_t nf = static_cast<std::int64_t>(order_.size()), E = dp_excess_;
  const std::size_t cells = static_cast<std::size_t>((nf + 1) * (E + 1));
  side_tab_ = side_buf_.get(side_max * cells);
  side_pen_ = dp_pen_;
  for (int t = 0; t < side_max; ++t) {
    const double f = side_factor(t);
    for (int grp : free_)
      for (int j : act_[static_cast<std::size_t>(grp)])
        dp_pen_[static_cast<std::size_t>(j)] = f * side_pen_[static_cast<std::size_t>(j)];
    double* tb = side_tab_ + static_cast<std::size_t>(t) * cells;
    std::fill(tb + nf * (E + 1), tb + (nf + 1) * (E + 1), 0.0);
    for (std::int64_t d = nf - 1; d >= 0; --d)
      dp_row(&tb[static_cast<std::size_t>(d * (E + 1))], &tb[static_cast<std::size_t>((d + 1) * (E + 1))],
             order_[static_cast<std::size_t>(d)], false);
  }
  dp_pen_.swap(side_pen_);
  side_ = side_max;
}

// One DP row over the options of group grp (values cost + dp_pen_). Backward (table_): out[e] = min over options of
// v + in[e - u] for e >= u. Reversed (fwd_, indexed by E - e): out[i] = min over options of v + in[i + u] for
// i <= E - u. Entries no option reaches are +inf. With the options in increasing u, the stretch between two
// consecutive u values has a fixed prefix of them: each stretch is one pass of dp::rows over that prefix.
// Table rows are monotone (more excess never costs more), so an option with more units and no smaller value than
// an earlier one never gives the minimum (its term is no smaller after rounding too): only the options whose value
// falls as u rises take part.
inline void Engine::dp_row(double* out, const double* in, int grp, bool reversed) {
  const std::int64_t E = dp_excess_;
  row_opts_.clear();
  for (int j : act_[static_cast<std::size_t>(grp)]) {
    const std::int64_t u = dp_units_[static_cast<std::size_t>(j)];
    if (u <= E) row_opts_.emplace_back(u, cp_.cost[static_cast<std::size_t>(j)] + dp_pen_[static_cast<std::size_t>(j)]);
  }
  std::sort(row_opts_.begin(), row_opts_.end());
  std::size_t kept = 0;
  for (const auto& o : row_opts_)
    if (kept == 0 || o.second < row_opts_[kept - 1].second) row_opts_[kept++] = o;
  row_opts_.resize(kept);
  const int m = static_cast<int>(row_opts_.size());
  row_v_.resize(static_cast<std::size_t>(m));
  row_off_.resize(static_cast<std::size_t>(m));
  for (int j = 0; j < m; ++j) {
    row_v_[static_cast<std::size_t>(j)] = row_opts_[static_cast<std::size_t>(j)].second;
    row_off_[static_cast<std::size_t>(j)] = reversed ? row_opts_[static_cast<std::size_t>(j)].first : -row_opts_[static_cast<std::size_t>(j)].first;
  }
  const double inf = std::numeric_limits<double>::infinity();
  if (m == 0) {
    std::fill(out, out + E + 1, inf);
    return;
  }
  // stretch k: options 0..k reach it; backward [u_k, u_{k+1}), reversed (E - u_{k+1}, E - u_k]
  const std::int64_t u0 = row_opts_[0].first;
  if (reversed)
    std::fill(out + (E + 1 - u0), out + E + 1, inf);
  else
    std::fill(out, out + u0, inf);
  for (int k = 0; k < m; ++k) {
    const std::int64_t a = row_opts_[static_cast<std::size_t>(k)].first;
    const std::int64_t b = k + 1 < m ? row_opts_[static_cast<std::size_t>(k) + 1].first : E + 1;
    if (a == b) continue;
    if (reversed)
      dp::rows(out, in, E + 1 - b, E + 1 - a, row_v_.data(), row_off_.data(), k + 1, avx2_);
    else
      dp::rows(out, in, a, b, row_v_.data(), row_off_.data(), k + 1, avx2_);
  }
}

inline void Engine::build_forward() {
  const std::int64_t nf = static_cast<std::int64_t>(order_.size()), E = dp_excess_;
  fwd_ = fwd_buf_.get(static_cast<std::size_t>((nf + 1) * (E + 1)));
  std::fill(fwd_, fwd_ + (E + 1), 0.0);
  for (std::int64_t d = 0; d < nf; ++d)
    dp_row(&fwd_[static_cast<std::size_t>((d + 1) * (E + 1))], &fwd_[static_cast<std::size_t>(d * (E + 1))],
           order_[static_cast<std::size_t>(d)], true);
}

// The optimal solution of the DP relaxation (meets row A exactly), as a heuristic start. rem: if given, the units
// of row A the path has left before each depth.
inline std::vector<int> Engine::dp_path(std::vector<std::int64_t>* rem) const {
  std::vector<int> cur = fixed_choice_;
  std::int64_t e = dp_excess_;
  const std::int64_t E = dp_excess_;
  if (rem) rem->resize(order_.size());
  for (std::size_t d = 0; d < order_.size(); ++d) {
    const int grp = order_[d];
    if (rem) (*rem)[d] = e;
    const double* t = &table_[(d + 1) * static_cast<std::size_t>(E + 1)];
    double best = std::numeric_limits<double>::infinity();
    int bj = act_[static_cast<std::size_t>(grp)][0];
    for (int j : act_[static_cast<std::size_t>(grp)]) {
      const std::int64_t u = dp_units_[static_cast<std::size_t>(j)];
      if (u > e) continue;
      const double v = cp_.cost[static_cast<std::size_t>(j)] + dp_pen_[static_cast<std::size_t>(j)] + t[e - u];
      if (v < best) { best = v; bj = j; }
    }
    cur[static_cast<std::size_t>(grp)] = bj;
    e -= std::min(e, dp_units_[static_cast<std::size_t>(bj)]);
  }
  return cur;
}

}  // namespace mixq::search::detail
