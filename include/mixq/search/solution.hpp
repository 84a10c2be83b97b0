#pragma once
/// @file
/// What a solve of the exact solver (mixq/search/solver.hpp) takes and returns: Status, SolveOptions, Solution.
/// In a header of their own because the solver's engine (mixq/search/solver/) returns them too and solver.hpp
/// builds on the engine. Include mixq/search/solver.hpp to solve.

#include <cstdint>
#include <limits>
#include <vector>

namespace mixq::search {

/// Outcome of a solve.
enum class Status {
  optimal,     ///< proven optimal (within SolveOptions::relative_tolerance)
  feasible,    ///< a node or time limit stopped the search: best solution found and proven gap
  infeasible,  ///< no choice meets every budget: see infeasible_resource and minimum_use
  unknown      ///< a limit stopped the search before any feasible solution was found
};

/// "optimal", "feasible", "infeasible" or "unknown".
inline const char* to_string(Status s) {
  switch (s) {
    case Status::optimal: return "optimal";
    case Status::feasible: return "feasible";
    case Status::infeasible: return "infeasible";
    default: return "unknown";
  }
}

/// Limits and tolerance of a solve. 0 means no limit.
struct SolveOptions {
  std::int64_t node_limit = 0;       ///< branch-and-bound nodes
  double time_limit_seconds = 0.0;   ///< wall time of the branch and bound
  double relative_tolerance = 1e-9;  ///< optimality tolerance relative to max(1, |objective|)
};

/// Result of a solve.
struct Solution {
  Status status = Status::unknown;
  double objective = std::numeric_limits<double>::quiet_NaN();  ///< summed cost of the chosen options
  std::vector<int> choice;              ///< per class: the chosen option index (empty when none found)
  std::vector<std::int64_t> use;        ///< per resource: total use of the chosen options
  double bound = -std::numeric_limits<double>::infinity();  ///< proven lower bound on the optimum
  double gap = std::numeric_limits<double>::infinity();     ///< objective - bound (0 when optimal)
  int infeasible_resource = -1;         ///< INFEASIBLE: the resource row that cannot be met
  std::int64_t minimum_use = 0;         ///< INFEASIBLE: its minimum possible use (given the rows before it)
  std::int64_t nodes = 0;               ///< branch-and-bound nodes visited
  double solve_seconds = 0.0;
};

}  // namespace mixq::search
