#pragma once
/// @file
/// Pareto sweeps: the optimal objective and policy for a list of budgets, reusing work between budgets.
/// The problem is validated, tie-merged and dominance-filtered once; budgets are solved from the tightest to
/// the loosest and each optimum is the first incumbent of the next solve (it stays feasible).

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/search/problem.hpp"
#include "mixq/search/solver.hpp"

namespace mixq::search {

/// Solves the problem for every budget vector of budget_list (each of size K); results in input order.
inline std::vector<Solution> pareto_sweep(const Problem& problem,
                                          const std::vector<std::vector<std::int64_t>>& budget_list,
                                          const SolveOptions& options = {}) {
  const Solver solver(problem);
  const std::size_t K = problem.budgets.size();
  for (std::size_t i = 0; i < budget_list.size(); ++i)
    if (budget_list[i].size() != K)
      mixq::detail::fail("pareto_sweep: budget vector ", i, " has ", budget_list[i].size(), " entries, expected K=", K);
  std::vector<std::size_t> order(budget_list.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::vector<double> key(budget_list.size(), 0.0);
  for (std::size_t i = 0; i < budget_list.size(); ++i)
    for (std::size_t k = 0; k < K; ++k)
      key[i] += static_cast<double>(budget_list[i][k]) / static_cast<double>(std::max<std::int64_t>(problem.budgets[k], 1));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key[a] < key[b]; });
  std::vector<Solution> out(budget_list.size());
  const std::vector<int>* warm = nullptr;
  for (std::size_t i : order) {
    out[i] = solver.solve(budget_list[i], options, warm);
    if (!out[i].choice.empty()) warm = &out[i].choice;
  }
  return out;
}

/// Sweeps one resource over values (the other budgets as in the problem); results in input order.
inline std::vector<Solution> pareto_sweep(const Problem& problem, std::size_t resource,
                                          const std::vector<std::int64_t>& values, const SolveOptions& options = {}) {
  if (resource >= problem.budgets.size())
    mixq::detail::fail("pareto_sweep: resource=", resource, " out of range for K=", problem.budgets.size());
  std::vector<std::vector<std::int64_t>> list;
  for (std::int64_t v : values) {
    list.push_back(problem.budgets);
    list.back()[resource] = v;
  }
  return pareto_sweep(problem, list, options);
}

/// Indices of the Pareto-optimal results of a sweep over one resource: solved points whose objective is
/// strictly lower than that of every point using less of the resource, sorted by use.
inline std::vector<std::size_t> pareto_front(const std::vector<Solution>& results, std::size_t resource) {
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < results.size(); ++i)
    if (!results[i].choice.empty() && resource < results[i].use.size()) idx.push_back(i);
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    if (results[a].use[resource] != results[b].use[resource]) return results[a].use[resource] < results[b].use[resource];
    return results[a].objective < results[b].objective;
  });
  std::vector<std::size_t> front;
  for (std::size_t i : idx)
    if (front.empty() || results[i].objective < results[front.back()].objective) front.push_back(i);
  return front;
}

}  // namespace mixq::search
