#pragma once
/// @file
/// Objectives of mixed-precision search and the problems they give on a layer table:
/// - LIMPQ (Tang et al., ECCV 2022): cost = S_a(b_a) + alpha * S_w(b_w) from learned LSQ step sizes;
/// - any user cost table over (weight, activation) bit-width options;
/// - HAWQ-V3 style (Yao et al., ICML 2021) in hawq.hpp.
/// Budgets are for the whole network: layers with fixed_bits are in the problem as one-option classes at their
/// fixed bit-width (the solver folds them into constants), so a Solution's use is the whole network's and its
/// choices cover every layer; policy_from_solution (search/policy.hpp) turns it into a BitPolicy.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <istream>
#include <sstream>
#include <string>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/search/cost_model.hpp"
#include "mixq/search/problem.hpp"

namespace mixq::search {

/// A (weight, activation) bit-width option of a layer.
struct BitPair {
  int weight_bits = 8;
  int activation_bits = 8;
};

/// A resource row of a layer problem.
enum class Resource {
  bit_operations,  ///< sum MACs * w_bits * a_bits
  size_bits        ///< sum weights * w_bits
};

/// Name of a resource row ("BitOps", "size").
inline const char* to_string(Resource r) { return r == Resource::bit_operations ? "BitOps" : "size"; }

/// Every (w, a) pair of the candidate lists, weight bits outer: {w0 a0, w0 a1, ..., w1 a0, ...}.
inline std::vector<BitPair> bit_pairs(const std::vector<int>& weight_bits, const std::vector<int>& activation_bits) {
  std::vector<BitPair> v;
  for (int w : weight_bits)
    for (int a : activation_bits) v.push_back(BitPair{w, a});
  return v;
}

/// Label of an option: "w4a8".
inline std::string label(const BitPair& p) {
  return "w" + std::to_string(p.weight_bits) + "a" + std::to_string(p.activation_bits);
}

namespace detail {
inline std::int64_t resource_use(Resource r, std::int64_t weights, std::int64_t layer_macs, int w, int a) {
  return r == Resource::bit_operations ? layer_macs * w * a : weights * w;
}
}  // namespace detail

/// The problem of a layer table with a user cost table: one class per layer of the table, in table order.
/// cost[l][o]: cost of options[o] for the l-th searchable layer (fixed_bits == 0, in table order);
/// allowed (optional, same shape): false forbids the option. budgets: one per resource, whole network.
/// A fixed layer is a class with the single option "w{b}a{b}" (b = fixed_bits, cost 0): the budgets, the
/// solution's use and its choices are the whole network's. Throws mixq::error when a budget is below the fixed
/// layers' use alone. macs_override (optional): MACs of the searchable layers to use instead of the table's
/// (e.g. LIMPQ's hook).
inline Problem layer_problem(const LayerTable& table, const std::vector<std::vector<double>>& cost,
                             const std::vector<BitPair>& options, const std::vector<Resource>& resources,
                             const std::vector<std::int64_t>& budgets,
                             const std::vector<std::vector<bool>>* allowed = nullptr,
                             const std::vector<std::int64_t>* macs_override = nullptr) {
  if (options.empty()) mixq::detail::fail("layer_problem: options is empty");
  for (const BitPair& p : options)
    if (p.weight_bits <= 0 || p.weight_bits > 32 || p.activation_bits <= 0 || p.activation_bits > 32)
      mixq::detail::fail("layer_problem: option bit-widths must be in 1..32, got ", label(p));
  if (resources.size() != budgets.size())
    mixq::detail::fail("layer_problem: ", resources.size(), " resources but ", budgets.size(), " budgets");
  std::vector<std::size_t> searchable;
  for (std::size_t i = 0; i < table.size(); ++i)
    if (table[i].fixed_bits == 0) searchable.push_back(i);
  if (cost.size() != searchable.size())
    mixq::detail::fail("layer_problem: cost has ", cost.size(), " rows, the table has ", searchable.size(),
                       " searchable layers");
  if (allowed && allowed->size() != cost.size())
    mixq::detail::fail("layer_problem: allowed has ", allowed->size(), " rows, expected ", cost.size());
  if (macs_override && macs_override->size() != cost.size())
    mixq::detail::fail("layer_problem: macs_override has ", macs_override->size(), " rows, expected ", cost.size());
  std::vector<std::int64_t> b = budgets;
  std::vector<std::string> names;
  for (Resource r : resources) names.emplace_back(to_string(r));
  for (const Layer& l : table) {
    if (l.fixed_bits == 0) continue;
    for (std::size_t k = 0; k < resources.size(); ++k)
      b[k] -= detail::resource_use(resources[k], weight_count(l), macs(l), l.fixed_bits, l.fixed_bits);
  }
  for (std::size_t k = 0; k < b.size(); ++k)
    if (b[k] < 0)
      mixq::detail::fail("layer_problem: budget ", budgets[k], " of ", names[k],
                         " is below the use of the fixed-precision layers (", budgets[k] - b[k], ")");
  Problem p(budgets, names);
  std::size_t l = 0;
  for (const Layer& layer : table) {
    if (layer.fixed_bits != 0) {
      Option op;
      op.label = label(BitPair{layer.fixed_bits, layer.fixed_bits});
      for (Resource r : resources)
        op.use.push_back(detail::resource_use(r, weight_count(layer), macs(layer), layer.fixed_bits, layer.fixed_bits));
      p.add_class(layer.name, {std::move(op)});
      continue;
    }
    if (cost[l].size() != options.size())
      mixq::detail::fail("layer_problem: cost row ", l, " ('", layer.name, "') has ", cost[l].size(),
                         " entries, expected ", options.size());
    if (allowed && (*allowed)[l].size() != options.size())
      mixq::detail::fail("layer_problem: allowed row ", l, " has ", (*allowed)[l].size(), " entries, expected ",
                         options.size());
    const std::int64_t wc = weight_count(layer);
    const std::int64_t m = macs_override ? (*macs_override)[l] : macs(layer);
    std::vector<Option> opts;
    for (std::size_t o = 0; o < options.size(); ++o) {
      Option op;
      op.label = label(options[o]);
      op.cost = cost[l][o];
      op.allowed = allowed ? static_cast<bool>((*allowed)[l][o]) : true;
      for (Resource r : resources)
        op.use.push_back(detail::resource_use(r, wc, m, options[o].weight_bits, options[o].activation_bits));
      opts.push_back(std::move(op));
    }
    p.add_class(layer.name, std::move(opts));
    ++l;
  }
  return p;
}

/// LIMPQ importance indicators of the searchable layers (the column format of ../shared/data/limpq_r50_*.txt):
/// params MACs S_w(b_0) ... S_w(b_{n-1}) S_a(b_0) ... S_a(b_{n-1}) per line, bit_widths descending.
struct LimpqIndicators {
  std::vector<int> bit_widths{6, 5, 4, 3, 2};
  std::vector<std::int64_t> params;
  std::vector<std::int64_t> macs;
  std::vector<std::vector<double>> weight_step;      ///< [layer][bit index]
  std::vector<std::vector<double>> activation_step;  ///< [layer][bit index]
};

/// LIMPQ's marker of a forbidden bit-width in its indicator files (values >= this are not costs).
inline constexpr double limpq_forbidden_marker = 1e8;

/// Reads LIMPQ indicators from a stream (one layer per non-empty line).
inline LimpqIndicators read_limpq_indicators(std::istream& in, const std::vector<int>& bit_widths = {6, 5, 4, 3, 2},
                                             const std::string& source = "indicators") {
  LimpqIndicators ind;
  ind.bit_widths = bit_widths;
  const std::size_t n = bit_widths.size();
  if (n == 0) mixq::detail::fail("read_limpq_indicators: bit_widths is empty");
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::istringstream ls(line);
    double params = 0, m = 0;
    std::vector<double> v;
    double x;
    ls >> params >> m;
    while (ls >> x) v.push_back(x);
    if (!ls.eof() || v.size() != 2 * n || !(params > 0) || !(m > 0) || params != std::floor(params) ||
        m != std::floor(m))
      mixq::detail::fail(source, ":", line_no, ": expected params MACs and ", 2 * n, " step sizes, got '", line, "'");
    for (double s : v)
      if (!std::isfinite(s) || !(s > 0))
        mixq::detail::fail(source, ":", line_no, ": step sizes must be positive and finite, got ", s);
    ind.params.push_back(static_cast<std::int64_t>(params));
    ind.macs.push_back(static_cast<std::int64_t>(m));
    ind.weight_step.emplace_back(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
    ind.activation_step.emplace_back(v.begin() + static_cast<std::ptrdiff_t>(n), v.end());
  }
  if (ind.params.empty()) mixq::detail::fail(source, ": no layers");
  return ind;
}

/// Reads LIMPQ indicators from a file.
inline LimpqIndicators read_limpq_indicators(const std::string& path,
                                             const std::vector<int>& bit_widths = {6, 5, 4, 3, 2}) {
  std::ifstream f(path);
  if (!f) mixq::detail::fail("read_limpq_indicators: cannot open '", path, "'");
  return read_limpq_indicators(f, bit_widths, path);
}

/// Allowed bit-widths of one indicator vector (descending bit-widths): LIMPQ's "wired points": a lower
/// bit-width whose step size is below the step size of the next higher bit-width is forbidden, and so is any
/// value >= limpq_forbidden_marker.
inline std::vector<bool> limpq_allowed(const std::vector<double>& step) {
  std::vector<bool> ok(step.size(), true);
  for (std::size_t i = 0; i < step.size(); ++i) {
    if (step[i] >= limpq_forbidden_marker) ok[i] = false;
    if (i > 0 && step[i - 1] < limpq_forbidden_marker && step[i] < step[i - 1]) ok[i] = false;
  }
  return ok;
}

/// Budgets of a LIMPQ search, whole network (fixed layers included).
struct LimpqBudgets {
  std::int64_t bit_operations = 0;
  std::int64_t size_bits = 0;
};

/// The LIMPQ ILP on a layer table: one class per searchable layer (matched in order with the indicator rows;
/// the params column must equal the layer's weight count), options bit_pairs(bits, bits) with
/// cost S_a(b_a) + alpha * S_w(b_w), rows BitOps and size. use_indicator_macs: take the MACs column of the
/// indicators (LIMPQ's own hook) instead of the table's exact MACs.
inline Problem limpq_problem(const LayerTable& table, const LimpqIndicators& ind, const LimpqBudgets& budgets,
                             double alpha = 2.0, bool use_indicator_macs = true) {
  if (!std::isfinite(alpha) || alpha < 0) mixq::detail::fail("limpq_problem: alpha must be finite and >= 0, got ", alpha);
  const std::size_t n = ind.bit_widths.size();
  std::vector<std::size_t> searchable;
  for (std::size_t i = 0; i < table.size(); ++i)
    if (table[i].fixed_bits == 0) searchable.push_back(i);
  if (searchable.size() != ind.params.size())
    mixq::detail::fail("limpq_problem: the table has ", searchable.size(), " searchable layers, the indicators ",
                       ind.params.size());
  std::vector<std::vector<double>> cost(searchable.size(), std::vector<double>(n * n));
  std::vector<std::vector<bool>> allowed(searchable.size(), std::vector<bool>(n * n));
  for (std::size_t l = 0; l < searchable.size(); ++l) {
    if (weight_count(table[searchable[l]]) != ind.params[l])
      mixq::detail::fail("limpq_problem: indicator row ", l, " has params=", ind.params[l], " but layer '",
                         table[searchable[l]].name, "' has ", weight_count(table[searchable[l]]), " weights");
    if (ind.weight_step[l].size() != n || ind.activation_step[l].size() != n)
      mixq::detail::fail("limpq_problem: indicator row ", l, " needs ", n, " weight and activation step sizes");
    const std::vector<bool> ok_w = limpq_allowed(ind.weight_step[l]);
    const std::vector<bool> ok_a = limpq_allowed(ind.activation_step[l]);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        const bool ok = ok_w[i] && ok_a[j];
        allowed[l][i * n + j] = ok;
        cost[l][i * n + j] = ok ? ind.activation_step[l][j] + alpha * ind.weight_step[l][i] : 0.0;
      }
  }
  return layer_problem(table, cost, bit_pairs(ind.bit_widths, ind.bit_widths),
                       {Resource::bit_operations, Resource::size_bits}, {budgets.bit_operations, budgets.size_bits},
                       &allowed, use_indicator_macs ? &ind.macs : nullptr);
}

/// LIMPQ's budgets: BitOps of the level "W{w}A{a}" on the searchable layers (MACs as in the problem) plus the
/// fixed layers at their bits; size = floor(32 * total_weights / compression_ratio) bits.
inline LimpqBudgets limpq_budgets(const LayerTable& table, const LimpqIndicators& ind, int level_weight_bits,
                                  int level_activation_bits, double compression_ratio, bool use_indicator_macs = true) {
  if (level_weight_bits <= 0 || level_activation_bits <= 0)
    mixq::detail::fail("limpq_budgets: level bit-widths must be positive, got W", level_weight_bits, "A",
                       level_activation_bits);
  if (!std::isfinite(compression_ratio) || !(compression_ratio > 0))
    mixq::detail::fail("limpq_budgets: compression_ratio must be positive, got ", compression_ratio);
  LimpqBudgets b;
  std::size_t l = 0;
  for (const Layer& layer : table) {
    if (layer.fixed_bits) {
      b.bit_operations += macs(layer) * layer.fixed_bits * layer.fixed_bits;
    } else {
      if (l >= ind.macs.size()) mixq::detail::fail("limpq_budgets: more searchable layers than indicator rows");
      const std::int64_t m = use_indicator_macs ? ind.macs[l] : macs(layer);
      b.bit_operations += m * level_weight_bits * level_activation_bits;
      ++l;
    }
  }
  b.size_bits = static_cast<std::int64_t>(std::floor(32.0 * static_cast<double>(total_weights(table)) / compression_ratio));
  return b;
}

/// Parses a level "W3A4" (case-insensitive) into weight and activation bits.
inline BitPair parse_level(const std::string& level) {
  int w = 0, a = 0;
  char c1 = 0, c2 = 0, extra = 0;
  if (std::sscanf(level.c_str(), " %c%d%c%d %c", &c1, &w, &c2, &a, &extra) != 4 || (c1 != 'W' && c1 != 'w') ||
      (c2 != 'A' && c2 != 'a') || w <= 0 || a <= 0 || w > 32 || a > 32)
    mixq::detail::fail("parse_level: expected a level like \"W3A4\", got '", level, "'");
  return BitPair{w, a};
}

/// Synthetic, strictly monotone LIMPQ indicators for a layer table (for tests and benchmarks when no trained
/// indicators exist): S(b) = base * 2^(-b) * (1 + 0.3 u), base log-uniform per layer, u uniform in [0, 1), from
/// a fixed 64-bit linear congruential generator seeded with seed.
inline LimpqIndicators synthetic_limpq_indicators(const LayerTable& table, std::uint64_t seed = 1,
                                                  const std::vector<int>& bit_widths = {6, 5, 4, 3, 2}) {
  std::uint64_t state = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  auto uniform = [&]() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(state >> 11) * (1.0 / 9007199254740992.0);
  };
  LimpqIndicators ind;
  ind.bit_widths = bit_widths;
  for (const Layer& l : table) {
    if (l.fixed_bits) continue;
    ind.params.push_back(weight_count(l));
    ind.macs.push_back(macs(l));
    std::vector<double> w, a;
    const double bw = std::exp(std::log(0.01) + uniform() * std::log(50.0));
    const double ba = std::exp(std::log(0.01) + uniform() * std::log(50.0));
    for (int b : bit_widths) {
      w.push_back(bw * std::ldexp(1.0, -b) * (1.0 + 0.3 * uniform()));
      a.push_back(ba * std::ldexp(1.0, -b) * (1.0 + 0.3 * uniform()));
    }
    // keep strictly monotone in the bit-width order
    for (std::size_t i = 1; i < w.size(); ++i) {
      if (bit_widths[i] < bit_widths[i - 1] && w[i] <= w[i - 1]) w[i] = w[i - 1] * 1.01;
      if (bit_widths[i] < bit_widths[i - 1] && a[i] <= a[i - 1]) a[i] = a[i - 1] * 1.01;
    }
    ind.weight_step.push_back(std::move(w));
    ind.activation_step.push_back(std::move(a));
  }
  return ind;
}

}  // namespace mixq::search
