#pragma once
/// @file
/// The LP relaxation of the surrogate row (step 3 of the method in mixq/search/solver.hpp): sum_k w_k use_k <=
/// sum_k w_k rb_k over the free groups, solved exactly by the greedy over each group's lower convex hull (Sinha and
/// Zoltners). build_lp gives the full LP (sorted segments, multiplier lambda_, integer part hull_pos_: what the
/// heuristics, the Lagrangian and the node bounds read); its value-only form, used by the multiplier search, needs
/// the value and the solution's row uses only: by LP duality from a bracket of the last multiplier (bracket_value,
/// one pass over the options), else by weighted quickselect (greedy_value). Uses: engine.hpp, kernels.hpp (lpv::,
/// the bracket pass and the surrogate uses), buffers.hpp (Segment, LpSnapshot). Its multipliers come from
/// multiplier_search.hpp.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "mixq/search/solver/engine.hpp"
#include "mixq/search/solver/kernels.hpp"

namespace mixq::search::detail {

inline void Engine::save_lp(LpSnapshot& a) const {
  a.w = w_;
  a.s = s_;
  a.R = R_;
  a.lambda = lambda_;
  a.value = lp_value_;
  a.hull = hull_;
  a.seg = seg_;
  a.hull_pos = hull_pos_;
}

inline void Engine::load_lp(const LpSnapshot& a) {
  w_ = a.w;
  s_ = a.s;
  R_ = a.R;
  lambda_ = a.lambda;
  lp_value_ = a.value;
  hull_ = a.hull;
  seg_ = a.seg;
  hull_pos_ = a.hull_pos;
  lp_current_ = true;
}

inline void Engine::gather_lp() {
  std::size_t n = 0;
  for (int g : free_) n += act_[static_cast<std::size_t>(g)].size();
  lpo_.clear();
  lpid_.clear();
  lpc_.clear();
  lpu_.resize(n * static_cast<std::size_t>(K_));
  lps_.resize(n);
  for (int g : free_) {
    lpo_.push_back(static_cast<int>(lpid_.size()));
    for (int j : act_[static_cast<std::size_t>(g)]) {
      const std::size_t i = lpid_.size();
      for (int k = 0; k < K_; ++k) lpu_[static_cast<std::size_t>(k) * n + i] = use_k(j, k);
      lpid_.push_back(j);
      lpc_.push_back(cp_.cost[static_cast<std::size_t>(j)]);
    }
  }
  lpo_.push_back(static_cast<int>(lpid_.size()));
}

// The lower convex hull of options b..e-1 (cost c, surrogate use sv), taken in increasing cost order: those with a
// surrogate use below that of every cheaper option form the (cost, use) frontier, whose hull is built in the same
// pass (monotone chain, by decreasing use); an option of the same cost as the last hull point and a smaller use
// replaces it. Writes the hull to h (h[m - 1] has the smallest use) and returns m.
inline int Engine::lower_hull(const double* c, const double* sv, int b, int e, int* h) {
  int m = 0;
  double smin = std::numeric_limits<double>::infinity();
  for (int i = b; i < e; ++i) {
    const double si = sv[i];
    if (!(si < smin)) continue;
    smin = si;
    const double ci = c[i];
    if (m > 0 && c[h[m - 1]] == ci) --m;
    while (m >= 2) {
      // (s, c) in increasing use: i, y = h[m - 1], x = h[m - 2]; y is dropped unless strictly below the chord
      const int x = h[m - 2], y = h[m - 1];
      if ((c[y] - ci) * (sv[x] - sv[y]) >= (c[x] - c[y]) * (sv[y] - si)) --m;
      else break;
    }
    h[m++] = i;
  }
  return m;
}

// Appends the segments of hull h[0..m-1] of group g to seg_, from h[m - 1] (smallest use) towards h[0]; the rows'
// changes du0, du1 only for K = 2 (u: the flat uses, row k at k * n + entry).
inline void Engine::push_segments(const int* h, int m, int g, const double* c, const double* sv, const double* u, std::size_t n) {
  for (int t = m - 1; t > 0; --t) {
    const int lo = h[t], hi = h[t - 1];
    const double ds = sv[hi] - sv[lo], gain = c[lo] - c[hi];
    double du0 = 0.0, du1 = 0.0;
    if (K_ == 2) {
      du0 = u[hi] - u[lo];
      du1 = u[n + static_cast<std::size_t>(hi)] - u[n + static_cast<std::size_t>(lo)];
    }
    seg_.push_back(Segment{gain / ds, ds, gain, du0, du1, g, m - 1 - t});
  }
}

// Surrogate LP over the free groups with weights w (gather_lp() must describe the current active options).
// Returns the bound (without const_cost_), +inf when the surrogate is infeasible. Fills s_, hull_, seg_ (sorted),
// lambda_, hull_pos_.
// value_only: only the bound and the solution's row uses are needed (multiplier search): from the bracket of the
// last multiplier (bracket_value) when it holds, else a weighted selection replaces the sort; s_ and hull_ are not
// written.
inline double Engine::build_lp(const std::vector<double>& w, bool value_only) {
  w_ = w;
  R_ = 0.0;
  for (int k = 0; k < K_; ++k) R_ += w[static_cast<std::size_t>(k)] * static_cast<double>(rb_[static_cast<std::size_t>(k)]);
  const std::size_t n = lpid_.size();
  double* sv = lps_.data();
  const double* u = lpu_.data();
  if (K_ == 2) {
    const double w0 = w[0], w1 = w[1];
    std::size_t i = 0;
#if defined(MIXQ_KERNELS_X86)
    if (avx2_) i = lpv::combine2_avx2(sv, u, u + n, n, w0, w1);
#endif
    for (; i < n; ++i) sv[i] = w0 * u[i] + w1 * u[n + i];
  } else {
    for (std::size_t i = 0; i < n; ++i) sv[i] = w[0] * u[i];
    for (int k = 1; k < K_; ++k)
      for (std::size_t i = 0; i < n; ++i) sv[i] += w[static_cast<std::size_t>(k)] * u[static_cast<std::size_t>(k) * n + i];
  }
  if (value_only && lam_hint_ > 0.0) {
    double v = 0.0;
    if (bracket_value(v)) return v;
  }
  if (!value_only) {
    s_.resize(cp_.cost.size());
    for (std::size_t i = 0; i < n; ++i) s_[static_cast<std::size_t>(lpid_[i])] = sv[i];
    hull_.resize(static_cast<std::size_t>(cp_.groups()));
  }
  seg_.clear();
  double base_s = 0.0, base_c = 0.0;
  base_u_[0] = base_u_[1] = 0.0;
  const double* c = lpc_.data();
  hs_.resize(n + 1);
  int* h = hs_.data();
  for (std::size_t gi = 0; gi < free_.size(); ++gi) {
    const int m = lower_hull(c, sv, lpo_[gi], lpo_[gi + 1], h);
    // h[m - 1] has the smallest surrogate use: the LP's starting point; segments go from it towards h[0]
    const int g = free_[gi];
    const int i0 = h[m - 1];
    base_s += sv[i0];
    base_c += c[i0];
    if (K_ == 2) {
      base_u_[0] += u[i0];
      base_u_[1] += u[n + static_cast<std::size_t>(i0)];
    }
    if (!value_only) {
      std::vector<int>& hg = hull_[static_cast<std::size_t>(g)];
      hg.resize(static_cast<std::size_t>(m));
      for (int t = 0; t < m; ++t) hg[static_cast<std::size_t>(t)] = lpid_[static_cast<std::size_t>(h[m - 1 - t])];
    }
    push_segments(h, m, g, c, sv, u, n);
  }
  lp_current_ = false;
  if (value_only) return greedy_value(base_s, base_c);
  std::sort(seg_.begin(), seg_.end(), [](const Segment& a, const Segment& b) {
    if (a.eff != b.eff) return a.eff > b.eff;
    if (a.group != b.group) return a.group < b.group;
    return a.pos < b.pos;
  });
  hull_pos_.assign(static_cast<std::size_t>(cp_.groups()), 0);
  lambda_ = 0.0;
  double r = R_ - base_s;
  if (r < -s_tol()) return std::numeric_limits<double>::infinity();
  r = std::max(r, 0.0);
  double value = base_c;
  lp_current_ = true;
  for (const Segment& sg : seg_) {
    if (sg.ds <= r) {
      r -= sg.ds;
      value -= sg.gain;
      ++hull_pos_[static_cast<std::size_t>(sg.group)];
    } else {
      value -= sg.gain * (r / sg.ds);
      lambda_ = sg.eff;
      break;
    }
  }
  lp_value_ = value;
  if (lambda_ > 0.0) lam_hint_ = lambda_;  // the next value-only evaluation's bracket starts from it
  return value;
}

// The greedy LP value over the unsorted segments by weighted quickselect (expected linear time): the segments more
// efficient than a pivot are moved to the front; if they fit in the remaining capacity they are taken and the
// search goes on among the others, otherwise among them.
inline double Engine::greedy_value(double base_s, double base_c) {
  double r = R_ - base_s;
  if (r < -s_tol()) return std::numeric_limits<double>::infinity();
  r = std::max(r, 0.0);
  double value = base_c;
  double u0 = base_u_[0], u1 = base_u_[1];
  Segment* a = seg_.data();
  std::size_t lo = 0, hi = seg_.size();
  // takes a[k] whole, or the fitting fraction of it (then the LP solution is complete: returns true)
  lam_hint_ = -1.0;
  const auto take = [&](const Segment& m) {
    if (m.ds > r) {
      lam_hint_ = m.eff;
      const double f = r / m.ds;
      value -= m.gain * f;
      u0 += f * m.du0;
      u1 += f * m.du1;
      return true;
    }
    r -= m.ds;
    value -= m.gain;
    u0 += m.du0;
    u1 += m.du1;
    return false;
  };
  bool done = false;
  while (!done && hi - lo > 8) {
    const double x = a[lo].eff, y = a[lo + (hi - lo) / 2].eff, z = a[hi - 1].eff;
    const double p = std::max(std::min(x, y), std::min(std::max(x, y), z));  // median of three
    std::size_t i = lo;
    double ds = 0.0, gain = 0.0, d0 = 0.0, d1 = 0.0;
    for (std::size_t k = lo; k < hi; ++k)
      if (a[k].eff > p) {
        std::swap(a[i], a[k]);
        ds += a[i].ds;
        gain += a[i].gain;
        d0 += a[i].du0;
        d1 += a[i].du1;
        ++i;
      }
    if (ds > r) {
      hi = i;
      continue;
    }
    r -= ds;
    value -= gain;
    u0 += d0;
    u1 += d1;
    if (i == lo) {
      // nothing above the pivot: the segments of the pivot's efficiency come next, in any order
      for (std::size_t k = lo; k < hi; ++k)
        if (a[k].eff == p) std::swap(a[i++], a[k]);
      for (std::size_t k = lo; k < i && !done; ++k) done = take(a[k]);
    }
    lo = i;
  }
  if (!done) {
    std::sort(a + lo, a + hi, [](const Segment& m, const Segment& n) { return m.eff > n.eff; });
    for (std::size_t k = lo; k < hi && !done; ++k) done = take(a[k]);
  }
  lp_u_[0] = u0;
  lp_u_[1] = u1;
  return value;
}

// Value-only LP from a bracket of its multiplier. The LP value is max over lam >= 0 of
// Phi(lam) = sum_g min_i (c_i + lam s_i) - lam R (LP duality), and at lam the per-group minimisers (the first of
// equals in cost order: the largest surrogate use) have summed use S(lam), non-increasing in lam. With
// S(lo) > R > S(hi) the optimum multiplier lies in [lo, hi); only the groups whose minimisers differ at lo and hi
// have hull segments of efficiency in that range (the path between the two minimisers), so the greedy from the
// minimisers at hi over those segments alone is the LP solution. lo and hi are the last LP's multiplier (lam_hint_)
// divided and multiplied by 1 + lam_margin_ (one pass over the options for both); a bracket that misses moves to
// the side the optimum is on, each time 4 times wider (at most 4 passes); the margin follows how far the multiplier
// moved. Returns false when no bracket held (the caller then takes the full greedy), else the value in v (+inf
// when the surrogate is infeasible).
inline bool Engine::bracket_value(double& v) {
  const std::size_t n = lpid_.size();
  const double* sv = lps_.data();
  const double* c = lpc_.data();
  const double* u = lpu_.data();
  double lam_lo = lam_hint_ / (1.0 + lam_margin_), lam_hi = lam_hint_ * (1.0 + lam_margin_);
  const std::size_t G = free_.size();
  br_lo_.resize(G);
  br_hi_.resize(G);
  const double R = R_;
  double s_lo = 0.0, s_hi = 0.0;
  // up to 4 passes: a bracket that misses moves to the side the optimum lies on, 4 times wider each time
  double widen = 4.0 * lam_margin_;
  for (int pass = 0;; ++pass) {
    double s_min = 0.0;
    s_lo = s_hi = 0.0;
    for (std::size_t gi = 0; gi < G; ++gi) {
      const int b = lpo_[gi], e = lpo_[gi + 1];
      int il, ih;
#if defined(MIXQ_KERNELS_X86)
      const double sm = avx2_ && e - b >= 8 ? lpv::argmin2_avx2(c, sv, b, e, lam_lo, lam_hi, il, ih)
                                            : lpv::argmin2(c, sv, b, e, lam_lo, lam_hi, il, ih);
#else
      const double sm = lpv::argmin2(c, sv, b, e, lam_lo, lam_hi, il, ih);
#endif
      br_lo_[gi] = il;
      br_hi_[gi] = ih;
      s_lo += sv[il];
      s_hi += sv[ih];
      s_min += sm;
    }
    if (s_min > R + s_tol()) {
      v = std::numeric_limits<double>::infinity();
      return true;
    }
    if (s_lo > R && s_hi < R) break;
    if (pass == 3) {
      lam_margin_ = std::min(4.0 * lam_margin_, 1.0);  // missed: a wider bracket next time
      return false;
    }
    if (!(s_lo > R)) {  // the optimum is at or below lam_lo
      lam_hi = lam_lo;
      lam_lo = lam_lo / (1.0 + widen);
    } else {  // at or above lam_hi
      lam_lo = lam_hi;
      lam_hi = lam_hi * (1.0 + widen);
    }
    widen *= 4.0;
  }
  // the greedy from the minimisers at hi over the segments between the two minimisers of each group
  double value = 0.0, us0 = 0.0, us1 = 0.0;
  seg_.clear();
  hs_.resize(n + 1);
  int* h = hs_.data();
  for (std::size_t gi = 0; gi < G; ++gi) {
    const int il = br_lo_[gi], ih = br_hi_[gi];
    value += c[ih];
    if (K_ == 2) {
      us0 += u[ih];
      us1 += u[n + static_cast<std::size_t>(ih)];
    }
    if (il == ih) continue;
    // options il..ih in cost order: the lower hull from il (larger use) to ih
    push_segments(h, lower_hull(c, sv, il, ih + 1, h), free_[gi], c, sv, u, n);
  }
  std::sort(seg_.begin(), seg_.end(), [](const Segment& a, const Segment& b) { return a.eff > b.eff; });
  double r = R - s_hi;
  double lam = lam_hint_;
  for (const Segment& sg : seg_) {
    if (sg.ds <= r) {
      r -= sg.ds;
      value -= sg.gain;
      us0 += sg.du0;
      us1 += sg.du1;
    } else {
      const double f = r / sg.ds;
      value -= sg.gain * f;
      us0 += f * sg.du0;
      us1 += f * sg.du1;
      lam = sg.eff;
      break;
    }
  }
  lp_current_ = false;
  lp_u_[0] = us0;
  lp_u_[1] = us1;
  // the next bracket: three times the relative move of the multiplier, within [1/64, 1/2]
  const double move = std::fabs(lam / lam_hint_ - 1.0);
  lam_margin_ = std::min(0.5, std::max(1.0 / 64.0, 3.0 * move));
  lam_hint_ = lam;
  v = value;
  return true;
}

}  // namespace mixq::search::detail
