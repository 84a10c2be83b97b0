#pragma once
/// @file
/// Depth-first branch and bound (step 7 of the method in mixq/search/solver.hpp). Groups in decreasing cost range
/// (set_order), options by reduced cost; a candidate is pruned by the Lagrangian bound with its reduced cost, exact
/// per-row minimum uses of the open groups, the DP table (and side tables), and the node LP: the open groups at
/// depth d are always the same suffix of the order, so per-depth running sums of their hull segments give it by one
/// binary search (a Fenwick tree above node_lp_sums_limit entries). Candidates are visited in increasing bound.
/// Uses: engine.hpp, lp_relaxation.hpp (segments, surrogate uses), dp_bound.hpp (tables), fixing.hpp (reduced
/// costs), buffers.hpp (the running sums' memory).

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "mixq/search/solver/engine.hpp"

namespace mixq::search::detail {

/// Largest number of entries of the per-depth running sums the branch and bound uses for its node LP (see
/// Engine::node_lp); above it, a Fenwick tree. A variable so that the tests can run both paths.
inline std::size_t node_lp_sums_limit = std::size_t{1} << 21;

// Node LP: the open classes at depth d are always order_[d..], so each depth gets the running sums of its classes'
// hull segments in efficiency order and a node's LP is one binary search. When those arrays would exceed
// node_lp_sums_limit entries, a Fenwick tree over all segments, updated as classes are entered and left, gives
// the same sums.
inline double Engine::node_lp(int d, double r_sur) const {
  double avail = r_sur - suf_base_s_[static_cast<std::size_t>(d)];
  if (avail < -s_tol()) return std::numeric_limits<double>::infinity();
  if (avail < 0.0) avail = 0.0;
  if (sfx_) {
    const std::size_t b = sfx_off_[static_cast<std::size_t>(d)], len = sfx_off_[static_cast<std::size_t>(d) + 1] - b;
    const double* cds = sfx_cds_ + b;
    const std::size_t p = static_cast<std::size_t>(std::upper_bound(cds, cds + len, avail) - cds);
    const double acc_s = p > 0 ? cds[p - 1] : 0.0, acc_g = p > 0 ? sfx_cg_[b + p - 1] : 0.0;
    double value = suf_base_c_[static_cast<std::size_t>(d)] - acc_g;
    if (p < len && sfx_ds_[b + p] > 0.0) value -= sfx_gain_[b + p] * std::min(1.0, (avail - acc_s) / sfx_ds_[b + p]);
    return value;
  }
  // largest prefix p with sum ds <= avail
  std::size_t pos = 0;
  double acc_s = 0.0, acc_g = 0.0;
  const std::size_t n = fs_.t.size() - 1;
  for (int step = log2n_; step >= 0; --step) {
    const std::size_t nxt = pos + (std::size_t{1} << step);
    if (nxt <= n && acc_s + fs_.t[nxt] <= avail) {
      pos = nxt;
      acc_s += fs_.t[nxt];
      acc_g += fg_.t[nxt];
    }
  }
  double value = suf_base_c_[static_cast<std::size_t>(d)] - acc_g;
  if (pos < n && cur_ds_[pos] > 0.0) value -= cur_gain_[pos] * std::min(1.0, (avail - acc_s) / cur_ds_[pos]);
  return value;
}

inline void Engine::remove_group(int g, double sign) {
  for (int p : seg_of_[static_cast<std::size_t>(g)]) {
    const Segment& sg = seg_[static_cast<std::size_t>(p)];
    fs_.add(static_cast<std::size_t>(p), sign * sg.ds);
    fg_.add(static_cast<std::size_t>(p), sign * sg.gain);
    cur_ds_[static_cast<std::size_t>(p)] = sign > 0 ? sg.ds : 0.0;
    cur_gain_[static_cast<std::size_t>(p)] = sign > 0 ? sg.gain : 0.0;
  }
}

inline bool Engine::limits_hit() {
  if (opt_.node_limit > 0 && nodes_ >= opt_.node_limit) return true;
  if (opt_.time_limit_seconds > 0 && (nodes_ & 255) == 0 &&
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count() > opt_.time_limit_seconds)
    return true;
  return false;
}

inline void Engine::set_order() {
  order_ = free_;
  std::vector<double> range(static_cast<std::size_t>(cp_.groups()), 0.0);
  for (int g : free_) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (int j : act_[static_cast<std::size_t>(g)]) {
      lo = std::min(lo, cp_.cost[static_cast<std::size_t>(j)]);
      hi = std::max(hi, cp_.cost[static_cast<std::size_t>(j)]);
    }
    range[static_cast<std::size_t>(g)] = hi - lo;
  }
  // by decreasing cost range, ties in free_ order (increasing group): stable without stable_sort's buffer
  std::sort(order_.begin(), order_.end(), [&](int a, int b) {
    const double ra = range[static_cast<std::size_t>(a)], rb = range[static_cast<std::size_t>(b)];
    return ra > rb || (ra == rb && a < b);
  });
}

// KC: the number of rows when known at compile time (2), else 0 (K_).
template <int KC>
inline void Engine::dfs(int d, double cost, double sur, double dsum, double pen) {
  const int K = KC > 0 ? KC : K_;
  const std::int64_t* use = cp_.use.data();
  ++nodes_;
  if (limits_hit()) { aborted_ = true; return; }
  if (side_ == 0 && K > 1 && dp_row_ >= 0 && nodes_ - bb_start_ == side_after_) build_side_tables();
  const int nf = static_cast<int>(order_.size());
  if (d == nf) {
    if (cost < ub_) {
      ub_ = cost;
      inc_ = fixed_choice_;
      for (int g : free_) inc_[static_cast<std::size_t>(g)] = choice_[static_cast<std::size_t>(g)];
      update_cut();
    }
    return;
  }
  const int g = order_[static_cast<std::size_t>(d)];
  if (!sfx_) remove_group(g, -1.0);
  const std::int64_t* smin = &suf_min_[static_cast<std::size_t>((d + 1) * K)];
  std::vector<std::pair<double, int>>& cand = cand_[static_cast<std::size_t>(d)];
  cand.clear();
  for (int j : sorted_[static_cast<std::size_t>(g)]) {
    const double dj = delta_[static_cast<std::size_t>(j)];
    if (lag_ + dsum + dj >= cut_) break;
    bool ok = true;
    const std::int64_t* uj = use + static_cast<std::size_t>(j) * static_cast<std::size_t>(K);
    for (int k = 0; k < K && ok; ++k)
      ok = used_[static_cast<std::size_t>(k)] + uj[k] + smin[k] <= rb_[static_cast<std::size_t>(k)];
    if (!ok) continue;
    const double nc = cost + cp_.cost[static_cast<std::size_t>(j)];
    double lb = nc;
    if (d + 1 < nf) {
      if (dp_row_ >= 0) {
        const std::int64_t rem = dp_excess_ - e_used_ - dp_units_[static_cast<std::size_t>(j)];
        if (rem < 0) continue;
        lb = nc + table_[static_cast<std::size_t>(static_cast<std::int64_t>(d + 1) * (dp_excess_ + 1) + rem)] -
             (dp_L0_ - pen - dp_pen_[static_cast<std::size_t>(j)]);
        if (lb >= cut_) continue;
        if (side_ > 0) {
          // the side tables at the same entry; their penalty terms scale with their factors
          const std::size_t at = static_cast<std::size_t>(static_cast<std::int64_t>(d + 1) * (dp_excess_ + 1) + rem);
          const std::size_t cells = static_cast<std::size_t>((static_cast<std::int64_t>(nf) + 1) * (dp_excess_ + 1));
          const double rest = dp_L0_ - pen - dp_pen_[static_cast<std::size_t>(j)];
          bool pruned = false;
          for (int t = 0; t < side_ && !pruned; ++t) {
            const double v = nc + side_tab_[static_cast<std::size_t>(t) * cells + at] - side_factor(t) * rest;
            pruned = v >= cut_;
            lb = std::max(lb, v);
          }
          if (pruned) continue;
        }
      }
      lb = std::max(lb, nc + node_lp(d + 1, R_ - sur - s_[static_cast<std::size_t>(j)]));
    }
    if (lb >= cut_) continue;
    cand.emplace_back(lb, j);
  }
  std::sort(cand.begin(), cand.end());
  for (std::size_t i = 0; i < cand.size(); ++i) {
    const auto [lb, j] = cand_[static_cast<std::size_t>(d)][i];
    if (lb >= cut_) break;
    const std::int64_t* uj = use + static_cast<std::size_t>(j) * static_cast<std::size_t>(K);
    for (int k = 0; k < K; ++k) used_[static_cast<std::size_t>(k)] += uj[k];
    choice_[static_cast<std::size_t>(g)] = j;
    const std::int64_t du = dp_row_ >= 0 ? dp_units_[static_cast<std::size_t>(j)] : 0;
    e_used_ += du;
    dfs<KC>(d + 1, cost + cp_.cost[static_cast<std::size_t>(j)], sur + s_[static_cast<std::size_t>(j)],
            dsum + delta_[static_cast<std::size_t>(j)], pen + (dp_row_ >= 0 ? dp_pen_[static_cast<std::size_t>(j)] : 0.0));
    e_used_ -= du;
    for (int k = 0; k < K; ++k) used_[static_cast<std::size_t>(k)] -= uj[k];
    if (aborted_) break;
  }
  if (!sfx_) remove_group(g, 1.0);
}

inline void Engine::branch_and_bound() {
  if (!dp_current_) set_order();
  sorted_.resize(static_cast<std::size_t>(cp_.groups()));  // the inner vectors keep their memory between calls
  for (int g : free_) {
    std::vector<int>& v = sorted_[static_cast<std::size_t>(g)];
    v = act_[static_cast<std::size_t>(g)];
    // by reduced cost, ties in act_ order (increasing index): a stable order without stable_sort's buffer
    std::sort(v.begin(), v.end(), [&](int a, int b) {
      const double da = delta_[static_cast<std::size_t>(a)], db = delta_[static_cast<std::size_t>(b)];
      return da < db || (da == db && a < b);
    });
  }
  const int nf = static_cast<int>(order_.size());
  suf_base_s_.assign(static_cast<std::size_t>(nf + 1), 0.0);
  suf_base_c_.assign(static_cast<std::size_t>(nf + 1), 0.0);
  suf_min_.assign(static_cast<std::size_t>((nf + 1) * K_), 0);
  for (int d = nf - 1; d >= 0; --d) {
    const int g = order_[static_cast<std::size_t>(d)];
    const int h0 = hull_[static_cast<std::size_t>(g)][0];
    suf_base_s_[static_cast<std::size_t>(d)] = suf_base_s_[static_cast<std::size_t>(d) + 1] + s_[static_cast<std::size_t>(h0)];
    suf_base_c_[static_cast<std::size_t>(d)] = suf_base_c_[static_cast<std::size_t>(d) + 1] + cp_.cost[static_cast<std::size_t>(h0)];
    for (int k = 0; k < K_; ++k) {
      std::int64_t m = std::numeric_limits<std::int64_t>::max();
      for (int j : act_[static_cast<std::size_t>(g)]) m = std::min(m, iuse(j, k));
      suf_min_[static_cast<std::size_t>(d * K_ + k)] = suf_min_[static_cast<std::size_t>((d + 1) * K_ + k)] + m;
    }
  }
  const std::size_t n = seg_.size();
  depth_of_.assign(static_cast<std::size_t>(cp_.groups()), -1);
  for (int d = 0; d < nf; ++d) depth_of_[static_cast<std::size_t>(order_[static_cast<std::size_t>(d)])] = d;
  std::size_t total = 0;
  for (const Segment& sg : seg_) total += static_cast<std::size_t>(depth_of_[static_cast<std::size_t>(sg.group)] + 1);
  sfx_ = total <= node_lp_sums_limit;
  if (sfx_) {
    sfx_off_.assign(static_cast<std::size_t>(nf) + 2, 0);
    sfx_cds_ = sfx_buf_.get(4 * total);
    sfx_cg_ = sfx_cds_ + total;
    sfx_ds_ = sfx_cg_ + total;
    sfx_gain_ = sfx_ds_ + total;
    std::size_t t = 0;
    for (int d = 0; d <= nf; ++d) {
      sfx_off_[static_cast<std::size_t>(d)] = t;
      double cs = 0.0, cg = 0.0;
      for (const Segment& sg : seg_) {
        if (depth_of_[static_cast<std::size_t>(sg.group)] < d) continue;
        cs += sg.ds;
        cg += sg.gain;
        sfx_cds_[t] = cs;
        sfx_cg_[t] = cg;
        sfx_ds_[t] = sg.ds;
        sfx_gain_[t] = sg.gain;
        ++t;
      }
    }
    sfx_off_[static_cast<std::size_t>(nf) + 1] = t;
  } else {
    fs_.reset(n);
    fg_.reset(n);
    cur_ds_.assign(n, 0.0);
    cur_gain_.assign(n, 0.0);
    seg_of_.assign(static_cast<std::size_t>(cp_.groups()), {});
    for (std::size_t p = 0; p < n; ++p) seg_of_[static_cast<std::size_t>(seg_[p].group)].push_back(static_cast<int>(p));
    for (int g : free_) remove_group(g, 1.0);
    log2n_ = 0;
    while ((std::size_t{1} << (log2n_ + 1)) <= n) ++log2n_;
  }
  choice_.assign(static_cast<std::size_t>(cp_.groups()), -1);
  used_.assign(static_cast<std::size_t>(K_), 0);
  if (cand_.size() < static_cast<std::size_t>(nf)) cand_.resize(static_cast<std::size_t>(nf));  // dfs clears each
  if (!dp_current_) build_dp_table();
  e_used_ = 0;
  bb_start_ = nodes_;
  side_after_ = side_after();
  if (K_ == 2) dfs<2>(0, 0.0, 0.0, 0.0, 0.0);
  else dfs<0>(0, 0.0, 0.0, 0.0, 0.0);
}

}  // namespace mixq::search::detail
