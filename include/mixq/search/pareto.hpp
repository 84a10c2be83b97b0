#pragma once
/// @file
/// Pareto sweeps: the optimal objective and policy for a list of budgets, reusing work between budgets.
/// The problem is validated, tie-merged and dominance-filtered once; budgets are solved from the loosest to the
/// tightest; an optimum that still fits a tighter budget is reused without a solve, otherwise it is repaired into
/// the first incumbent of the next solve; with two rows, the root multiplier search starts from an angle predicted
/// from the last two solves.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/search/problem.hpp"
#include "mixq/search/solver.hpp"

namespace mixq::search {

/// Solves the problem for every budget vector of budget_list (each of size K); results in input order.
/// Budgets are solved from the loosest to the tightest. A proven optimum x of budgets b1 is also optimal for any
/// tighter budgets b2 <= b1 (componentwise) that x still meets: the feasible set only shrank and still holds x.
/// Such budgets reuse x without a solve (nodes = 0); the others start from the previous optimum, repaired.
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
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key[a] > key[b]; });
  std::vector<Solution> out(budget_list.size());
  std::vector<std::size_t> solved;  // indices with a proven optimum, in solve order
  const std::vector<int>* warm = nullptr;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  double last_angle[2] = {nan, nan};  // two rows: the root multiplier angles of the last two solves
  for (std::size_t i : order) {
    const std::vector<std::int64_t>& b = budget_list[i];
    bool reused = false;
    for (auto it = solved.rbegin(); it != solved.rend() && !reused; ++it) {
      const std::vector<std::int64_t>& b1 = budget_list[*it];
      const Solution& s1 = out[*it];
      bool ok = true;
      for (std::size_t k = 0; k < K && ok; ++k) ok = b[k] <= b1[k] && s1.use[k] <= b[k];
      if (ok) {
        const auto t0 = std::chrono::steady_clock::now();
        out[i] = s1;
        out[i].nodes = 0;
        out[i].solve_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        reused = true;
      }
    }
    if (reused) continue;
    // the next root multiplier angle, predicted from the last two (the angle moves steadily along a sweep)
    const double half_pi = 1.5707963267948966;
    detail::AngleHint angle;
    if (std::isfinite(last_angle[1])) {
      const double move = std::isfinite(last_angle[0]) ? last_angle[1] - last_angle[0] : 0.0;
      angle.start = std::min(std::max(last_angle[1] + move, 0.0), half_pi - 1e-9);
      angle.step = std::max(half_pi / 256.0, 0.5 * std::fabs(move));
    }
    out[i] = detail::SweepAccess::solve(solver, b, options, warm, &angle);
    if (std::isfinite(angle.found)) {
      last_angle[0] = last_angle[1];
      last_angle[1] = angle.found;
    }
    if (!out[i].choice.empty()) warm = &out[i].choice;
    if (out[i].status == Status::optimal) solved.push_back(i);
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
