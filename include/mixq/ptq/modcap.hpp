#pragma once
/// @file
/// MRECG (Ma et al., CVPR 2023): module capacity (ModCap) of each base unit, the differentials between adjacent
/// units, the top-k selection whose pairs are merged (adjacent selections chain into one unit), random merges of the
/// same k (the control), merge lists given by hand, and the oscillation measures of a per-unit loss sequence.
///
/// The paper's ModCap equations could not be read (methods/PTQ.md §5.1, tags [U]); the forms here are parameters:
/// - data-dependent: MC_i = -ln(L_i / E_i), L_i the unit's RTN reconstruction error (unit_errors: quantized input,
///   float target) and E_i the float output's energy: a larger relative error is a smaller capacity;
/// - data-free: MC_i = sum over the unit's weight layers of alpha(stride) * params * weight_bits, alpha(1) = 1,
///   alpha(2) a parameter (1 by default);
/// - differential D_i = |MC_i - MC_{i+1}| (absolute) or MC_i - MC_{i+1} (signed: a capacity drop ranks first).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/ptq/network.hpp"
#include "mixq/ptq/reconstruction.hpp"

namespace mixq::ptq {

/// Data-free ModCap options.
struct DataFreeOptions {
  double alpha_stride1 = 1.0;  ///< alpha of stride-1 layers
  double alpha_stride2 = 1.0;  ///< alpha of layers with stride >= 2 (the paper's value is not known)
};

/// Data-free capacity of each unit from its layers (params, weight bits, stride).
inline std::vector<double> data_free_capacity(const std::vector<UnitLayers>& units, const DataFreeOptions& o = {}) {
  if (!(o.alpha_stride1 > 0) || !(o.alpha_stride2 > 0))
    mixq::detail::fail("data_free_capacity: alphas must be > 0, got ", o.alpha_stride1, " and ", o.alpha_stride2);
  std::vector<double> mc;
  for (const UnitLayers& u : units) {
    double c = 0;
    for (const WeightLayerInfo& l : u.layers)
      c += (l.stride >= 2 ? o.alpha_stride2 : o.alpha_stride1) * static_cast<double>(l.params) *
           static_cast<double>(l.weight_bits);
    mc.push_back(c);
  }
  return mc;
}

/// Data-dependent capacity -ln(loss / energy) of each unit (a relative error of 0 is capped at 1e-12).
inline std::vector<double> data_dependent_capacity(const UnitErrors& e) {
  if (e.loss.size() != e.energy.size() || e.loss.empty())
    mixq::detail::fail("data_dependent_capacity: ", e.loss.size(), " losses and ", e.energy.size(), " energies");
  std::vector<double> mc;
  for (std::size_t i = 0; i < e.loss.size(); ++i) {
    if (!(e.loss[i] >= 0) || !(e.energy[i] > 0))
      mixq::detail::fail("data_dependent_capacity: unit ", i, " has loss ", e.loss[i], " and energy ", e.energy[i]);
    mc.push_back(-std::log(std::max(e.loss[i] / e.energy[i], 1e-12)));
  }
  return mc;
}

/// How adjacent capacities are compared.
enum class Differential {
  absolute,  ///< |MC_i - MC_{i+1}|
  signed_drop  ///< MC_i - MC_{i+1}: the largest capacity drops rank first
};

/// D_i for each adjacent pair (i, i + 1), i = 0..L-2.
inline std::vector<double> capacity_differentials(const std::vector<double>& mc, Differential d = Differential::absolute) {
  if (mc.size() < 2) mixq::detail::fail("capacity_differentials: need at least 2 capacities, got ", mc.size());
  std::vector<double> out;
  for (std::size_t i = 0; i + 1 < mc.size(); ++i) {
    const double diff = mc[i] - mc[i + 1];
    out.push_back(d == Differential::absolute ? std::fabs(diff) : diff);
  }
  return out;
}

/// Merges the chosen pairs (pair i joins units i and i + 1; adjacent pairs chain) into groups of `units` units.
inline UnitGroups groups_from_pairs(const std::vector<Index>& pairs, Index units) {
  if (units < 1) mixq::detail::fail("groups_from_pairs: units must be >= 1, got ", units);
  std::vector<bool> join(static_cast<std::size_t>(std::max<Index>(units - 1, 0)), false);
  for (Index p : pairs) {
    if (p < 0 || p >= units - 1) mixq::detail::fail("groups_from_pairs: pair ", p, " is not in [0, ", units - 2, "]");
    if (join[static_cast<std::size_t>(p)]) mixq::detail::fail("groups_from_pairs: pair ", p, " is named twice");
    join[static_cast<std::size_t>(p)] = true;
  }
  UnitGroups g;
  Index start = 0;
  for (Index u = 0; u < units; ++u)
    if (u == units - 1 || !join[static_cast<std::size_t>(u)]) {
      g.emplace_back(start, u);
      start = u + 1;
    }
  return g;
}

/// The k pairs with the largest differentials (ties: the earlier pair), in increasing order. Throws mixq::error
/// unless 0 <= k <= number of pairs.
inline std::vector<Index> top_k_pairs(const std::vector<double>& differentials, Index k) {
  const auto pairs = static_cast<Index>(differentials.size());
  if (k < 0 || k > pairs)
    mixq::detail::fail("top_k_pairs: k must be in [0, ", pairs, "] (the adjacent pairs), got ", k);
  std::vector<Index> order(static_cast<std::size_t>(pairs));
  std::iota(order.begin(), order.end(), Index{0});
  std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) {
    return differentials[static_cast<std::size_t>(a)] > differentials[static_cast<std::size_t>(b)];
  });
  order.resize(static_cast<std::size_t>(k));
  std::sort(order.begin(), order.end());
  return order;
}

/// MRECG's merge: the top-k pairs of the capacities' differentials, chained into groups.
inline UnitGroups modcap_groups(const std::vector<double>& capacity, Index k, Differential d = Differential::absolute) {
  return groups_from_pairs(top_k_pairs(capacity_differentials(capacity, d), k), static_cast<Index>(capacity.size()));
}

/// k pairs drawn uniformly without replacement with `seed` (the control of the same k).
inline std::vector<Index> random_pairs(Index units, Index k, std::uint64_t seed) {
  const Index pairs = units - 1;
  if (units < 2 || k < 0 || k > pairs)
    mixq::detail::fail("random_pairs: k must be in [0, ", std::max<Index>(pairs, 0), "] (the adjacent pairs), got ", k);
  std::mt19937_64 rng(seed);
  std::vector<Index> order(static_cast<std::size_t>(pairs));
  std::iota(order.begin(), order.end(), Index{0});
  std::shuffle(order.begin(), order.end(), rng);
  order.resize(static_cast<std::size_t>(k));
  std::sort(order.begin(), order.end());
  return order;
}

/// Parses a merge list over unit names: groups separated by ',', the units of a group joined by '+'
/// ("stem,stage1+stage2,stage3,head"). Throws mixq::error for an unknown name, a unit named twice, units out of
/// order or not adjacent, or a list that does not cover the network.
inline UnitGroups parse_groups(const std::string& list, const std::vector<std::string>& names) {
  UnitGroups g;
  std::vector<bool> seen(names.size(), false);
  auto find = [&](const std::string& n) -> Index {
    for (std::size_t i = 0; i < names.size(); ++i)
      if (names[i] == n) return static_cast<Index>(i);
    mixq::detail::fail("parse_groups: unknown unit '", n, "' in merge list '", list, "'");
  };
  std::size_t pos = 0;
  while (pos <= list.size()) {
    const std::size_t comma = std::min(list.find(',', pos), list.size());
    const std::string group = list.substr(pos, comma - pos);
    std::vector<Index> ids;
    std::size_t p = 0;
    while (p <= group.size()) {
      const std::size_t plus = std::min(group.find('+', p), group.size());
      const Index id = find(group.substr(p, plus - p));
      if (seen[static_cast<std::size_t>(id)])
        mixq::detail::fail("parse_groups: unit '", names[static_cast<std::size_t>(id)], "' is named twice in '", list, "'");
      seen[static_cast<std::size_t>(id)] = true;
      if (!ids.empty() && id != ids.back() + 1)
        mixq::detail::fail("parse_groups: '", group, "' joins units that are not adjacent and in order");
      ids.push_back(id);
      p = plus + 1;
    }
    g.emplace_back(ids.front(), ids.back());
    pos = comma + 1;
  }
  check_groups(g, static_cast<Index>(names.size()), "parse_groups");
  return g;
}

/// The groups as a merge list ("stem,stage1+stage2,...").
inline std::string format_groups(const UnitGroups& g, const std::vector<std::string>& names) {
  std::string s;
  for (const auto& [a, b] : g) {
    if (!s.empty()) s += ",";
    for (Index u = a; u <= b; ++u) s += (u > a ? "+" : "") + names.at(static_cast<std::size_t>(u));
  }
  return s;
}

/// Oscillation of a loss sequence along the network (methods/PTQ.md §9): with d_i = L_{i+1} - L_i, the number of
/// sign changes of d, the sum of the rises max(0, d_i), the sum of the drops max(0, -d_i), and the largest loss.
struct Oscillation {
  Index sign_changes = 0;
  double total_rise = 0, total_drop = 0, max_loss = 0;
};

inline Oscillation oscillation(const std::vector<double>& losses) {
  Oscillation o;
  int last_sign = 0;
  for (std::size_t i = 0; i < losses.size(); ++i) {
    o.max_loss = std::max(o.max_loss, losses[i]);
    if (i == 0) continue;
    const double d = losses[i] - losses[i - 1];
    if (d > 0) o.total_rise += d;
    if (d < 0) o.total_drop -= d;
    const int sign = d > 0 ? 1 : (d < 0 ? -1 : 0);
    if (sign != 0 && last_sign != 0 && sign != last_sign) ++o.sign_changes;
    if (sign != 0) last_sign = sign;
  }
  return o;
}

/// Pearson correlation of two equally long sequences (0 when either is constant).
inline double correlation(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2)
    mixq::detail::fail("correlation: need two sequences of the same length >= 2, got ", a.size(), " and ", b.size());
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n, mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

}  // namespace mixq::ptq
