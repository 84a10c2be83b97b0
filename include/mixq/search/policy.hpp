#pragma once
/// @file
/// From a solved layer problem to a network's bit-widths: the per-layer policy of a Solution (the search's
/// output), and the map nn::set_bits takes.
///
///   const Problem p = limpq_problem(table, indicators, budgets);
///   const Solution s = solve(p);
///   const BitPolicy policy = policy_from_solution(table, p, s);     // every layer, fixed ones included
///   nn::set_bits(model, layer_bit_map(table, policy));

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/search/cost_model.hpp"
#include "mixq/search/objectives.hpp"
#include "mixq/search/problem.hpp"
#include "mixq/search/solver.hpp"

namespace mixq::search {

/// Weight and activation bits of an option label "w{w}a{a}" (as label() writes them); mixq::error otherwise.
inline BitPair parse_label(const std::string& text) {
  int w = 0, a = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "w%da%d%c", &w, &a, &tail) != 2 || w < 1 || w > 32 || a < 1 || a > 32 ||
      label(BitPair{w, a}) != text)
    mixq::detail::fail("parse_label: expected an option label like \"w4a8\", got '", text, "'");
  return BitPair{w, a};
}

/// The per-layer policy of a solution of a layer problem (layer_problem, limpq_problem, hawq_problem, or any
/// problem whose classes are named after the table's layers with options labelled "w{w}a{a}"): every layer of the
/// table, in table order; a layer absent from the problem must be fixed (it gets its fixed_bits). Throws
/// mixq::error when the solution has no choice (infeasible, unknown), a class names no layer of the table, a
/// label is not "w{w}a{a}", or a searchable layer has no class. Apply it to a network with nn::set_bits and
/// layer_bit_map.
inline BitPolicy policy_from_solution(const LayerTable& table, const Problem& problem, const Solution& solution) {
  if (solution.choice.size() != problem.classes.size())
    mixq::detail::fail("policy_from_solution: the solution has ", solution.choice.size(), " choices for ",
                       problem.classes.size(), " layers (status ", to_string(solution.status), ")");
  BitPolicy p;
  std::vector<bool> seen(table.size(), false);
  for (const Layer& l : table) {
    p.weight_bits.push_back(l.fixed_bits);
    p.activation_bits.push_back(l.fixed_bits);
  }
  for (std::size_t c = 0; c < problem.classes.size(); ++c) {
    const ChoiceClass& cl = problem.classes[c];
    std::size_t i = 0;
    while (i < table.size() && table[i].name != cl.name) ++i;
    if (i == table.size()) mixq::detail::fail("policy_from_solution: layer '", cl.name, "' of the problem is not in the table");
    const int o = solution.choice[c];
    if (o < 0 || o >= static_cast<int>(cl.options.size()))
      mixq::detail::fail("policy_from_solution: layer '", cl.name, "' has choice ", o, " of ", cl.options.size());
    const BitPair b = parse_label(cl.options[static_cast<std::size_t>(o)].label);
    p.weight_bits[i] = b.weight_bits;
    p.activation_bits[i] = b.activation_bits;
    seen[i] = true;
  }
  for (std::size_t i = 0; i < table.size(); ++i)
    if (!seen[i] && table[i].fixed_bits == 0)
      mixq::detail::fail("policy_from_solution: searchable layer '", table[i].name, "' is not in the problem");
  detail::check_policy(table, p);
  return p;
}

/// A policy as a map layer name -> (weight bits, activation bits), every layer of the table (the argument of
/// nn::set_bits).
inline std::map<std::string, std::pair<int, int>> layer_bit_map(const LayerTable& table, const BitPolicy& policy) {
  detail::check_policy(table, policy);
  std::map<std::string, std::pair<int, int>> m;
  for (std::size_t i = 0; i < table.size(); ++i) m[table[i].name] = {policy.weight_bits[i], policy.activation_bits[i]};
  return m;
}

}  // namespace mixq::search
