#pragma once
/// @file
/// Budget-independent compilation of a search problem (step 1 of the method in mixq/search/solver.hpp): tied classes
/// merged into one group (summed costs and uses per option index), fixed-out and forbidden options removed, options
/// dominated within their group removed, the rest in increasing cost order, flat. A Solver compiles once and solves
/// many budget vectors. Uses: problem.hpp (Problem, validate) only; everything in solver/ reads a Compiled.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/search/problem.hpp"

namespace mixq::search::detail {

/// Budget-independent compiled form: merged tie groups and their surviving options, flat.
struct Compiled {
  int K = 0;
  int n_classes = 0;
  std::vector<std::vector<int>> members;  ///< per group: its class indices
  std::vector<int> group_of;              ///< per class: its group
  std::vector<int> begin;                 ///< per group: first option (size groups + 1)
  std::vector<double> cost;
  std::vector<std::int64_t> use;          ///< option * K + k
  std::vector<int> option;                ///< original option index
  std::vector<double> use_d;              ///< use as doubles (set by dominance_filter)
  int groups() const { return static_cast<int>(members.size()); }
};

/// Removes options dominated within their group (keeps the first of identical options) and stores the others by
/// increasing cost (then uses, then index). Options are visited in that order: a dominating option always comes
/// first, and dominance is transitive, so each option is compared with the kept ones only.
/// KC: the number of rows when known at compile time (dominance_filter instantiates 2), else 0 (cp.K).
template <int KC>
inline void dominance_filter_rows(Compiled& cp) {
  const int K = KC > 0 ? KC : cp.K;
  const std::size_t Ks = static_cast<std::size_t>(K);
  std::vector<int> begin{0};
  std::vector<double> cost(cp.cost.size());
  std::vector<std::int64_t> use(cp.use.size());
  std::vector<int> option(cp.option.size()), kept;
  std::vector<std::pair<double, int>> keyed;
  std::size_t n = 0;  // options kept so far
  std::vector<std::int64_t> kmin;  // per row: the smallest use of the kept options of the current group
  const auto u = [&](int j, int k) { return cp.use[static_cast<std::size_t>(j) * Ks + static_cast<std::size_t>(k)]; };
  for (int g = 0; g < cp.groups(); ++g) {
    const int b = cp.begin[static_cast<std::size_t>(g)], e = cp.begin[static_cast<std::size_t>(g) + 1];
    // sorted as (cost, index) pairs: the cost compares without an indirection, uses only on equal costs
    keyed.resize(static_cast<std::size_t>(e - b));
    for (int i = b; i < e; ++i) keyed[static_cast<std::size_t>(i - b)] = {cp.cost[static_cast<std::size_t>(i)], i};
    std::sort(keyed.begin(), keyed.end(), [&](const std::pair<double, int>& x, const std::pair<double, int>& y) {
      if (x.first != y.first) return x.first < y.first;
      for (int k = 0; k < K; ++k)
        if (u(x.second, k) != u(y.second, k)) return u(x.second, k) < u(y.second, k);
      return x.second < y.second;
    });
    kept.clear();
    kmin.assign(Ks, std::numeric_limits<std::int64_t>::max());
    for (const std::pair<double, int>& key : keyed) {
      const int i = key.second;
      // a kept option precedes i: cost no higher, and (uses lexicographically smaller, or identical with a lower
      // index); it dominates i when none of its uses is larger. Below the kept options' smallest use in some row,
      // nothing kept can dominate i (no scan).
      const std::int64_t* ui = cp.use.data() + static_cast<std::size_t>(i) * Ks;
      std::size_t k = 0;
      while (k < Ks && ui[k] >= kmin[k]) ++k;
      bool dominated = false;
      for (std::size_t t = 0; k == Ks && t < kept.size() && !dominated; ++t) {
        const std::int64_t* ut = cp.use.data() + static_cast<std::size_t>(kept[t]) * Ks;
        std::size_t r = 0;
        while (r < Ks && ut[r] <= ui[r]) ++r;
        dominated = r == Ks;
      }
      if (dominated) continue;
      for (k = 0; k < Ks; ++k) kmin[k] = std::min(kmin[k], ui[k]);
      kept.push_back(i);
      cost[n] = cp.cost[static_cast<std::size_t>(i)];
      for (k = 0; k < Ks; ++k) use[n * Ks + k] = ui[k];
      option[n] = cp.option[static_cast<std::size_t>(i)];
      ++n;
    }
    begin.push_back(static_cast<int>(n));
  }
  cost.resize(n);
  use.resize(n * Ks);
  option.resize(n);
  cp.begin = std::move(begin);
  cp.cost = std::move(cost);
  cp.use = std::move(use);
  cp.option = std::move(option);
}

inline void dominance_filter(Compiled& cp) {
  if (cp.K == 2)
    dominance_filter_rows<2>(cp);
  else
    dominance_filter_rows<0>(cp);
  cp.use_d.assign(cp.use.begin(), cp.use.end());
}

/// Validates, merges ties (union-find), removes fixed-out and forbidden options, filters dominated ones.
inline Compiled compile(const Problem& p) {
  validate(p);
  const int n = static_cast<int>(p.classes.size());
  std::vector<int> parent(static_cast<std::size_t>(n));
  std::iota(parent.begin(), parent.end(), 0);
  auto find = [&](int x) {
    while (parent[static_cast<std::size_t>(x)] != x) x = parent[static_cast<std::size_t>(x)] = parent[static_cast<std::size_t>(parent[static_cast<std::size_t>(x)])];
    return x;
  };
  for (const std::vector<int>& t : p.ties)
    for (int c : t) parent[static_cast<std::size_t>(find(c))] = find(t[0]);
  Compiled cp;
  cp.K = static_cast<int>(p.budgets.size());
  cp.n_classes = n;
  cp.group_of.assign(static_cast<std::size_t>(n), -1);
  std::vector<int> group_of_root(static_cast<std::size_t>(n), -1);
  for (int c = 0; c < n; ++c) {
    const int r = find(c);
    if (group_of_root[static_cast<std::size_t>(r)] < 0) {
      group_of_root[static_cast<std::size_t>(r)] = cp.groups();
      cp.members.emplace_back();
    }
    cp.group_of[static_cast<std::size_t>(c)] = group_of_root[static_cast<std::size_t>(r)];
    cp.members[static_cast<std::size_t>(group_of_root[static_cast<std::size_t>(r)])].push_back(c);
  }
  const std::size_t K = static_cast<std::size_t>(cp.K);
  cp.begin.push_back(0);
  std::size_t total = 0;
  for (const std::vector<int>& m : cp.members) total += p.classes[static_cast<std::size_t>(m[0])].options.size();
  // sized once for every option; trimmed to the kept ones at the end (no per-option growth)
  cp.cost.resize(total);
  cp.option.resize(total);
  cp.use.assign(total * K, 0);
  std::size_t kept = 0;
  for (const std::vector<int>& m : cp.members) {
    const std::size_t nopt = p.classes[static_cast<std::size_t>(m[0])].options.size();
    for (std::size_t j = 0; j < nopt; ++j) {
      bool ok = true;
      for (int ci : m) {
        const ChoiceClass& cl = p.classes[static_cast<std::size_t>(ci)];
        const Option& o = cl.options[j];
        if (!o.allowed || (cl.fixed_option >= 0 && cl.fixed_option != static_cast<int>(j))) { ok = false; break; }
      }
      if (!ok) continue;
      double c = 0.0;
      std::int64_t* u = cp.use.data() + kept * K;
      for (int ci : m) {
        const Option& o = p.classes[static_cast<std::size_t>(ci)].options[j];
        c += o.cost;
        for (std::size_t k = 0; k < K; ++k) u[k] += o.use[k];
      }
      cp.cost[kept] = c;
      cp.option[kept] = static_cast<int>(j);
      ++kept;
    }
    if (static_cast<int>(kept) == cp.begin.back()) {
      std::string names;
      for (int ci : m) names += (names.empty() ? "'" : ", '") + p.classes[static_cast<std::size_t>(ci)].name + "'";
      mixq::detail::fail("problem: tied classes ", names, " have no common allowed option");
    }
    cp.begin.push_back(static_cast<int>(kept));
  }
  cp.cost.resize(kept);
  cp.option.resize(kept);
  cp.use.resize(kept * K);
  dominance_filter(cp);
  return cp;
}

}  // namespace mixq::search::detail
