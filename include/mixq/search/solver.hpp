#pragma once
/// @file
/// Exact solver of the mixed-precision search problem (MCKP with K resource rows).
///
/// Method (all steps keep exactness):
/// 1. Ties are merged into one class (summed costs and uses per option index); fixed and forbidden options
///    are removed; an option dominated by another of its class (no cheaper, no smaller use in any row) is
///    removed; each class keeps its options in increasing cost order.
/// 2. Row filtering: an option whose use of resource k plus the minimum use of every other class exceeds
///    budget k is removed (exact int64 arithmetic); classes left with one option become constants.
/// 3. Bound: the LP relaxation of a surrogate row sum_k mu_k use_k / budget_k <= sum_k mu_k, solved exactly by
///    the greedy over per-class lower convex hulls (Sinha and Zoltners; each hull comes from the class's options
///    in cost order, no sort). For K = 1 this is the LP bound; for K >= 2 the multipliers mu are chosen to maximise
///    the bound (the surrogate dual): for K = 2 by bisection on the angle of mu, steered by which row the
///    surrogate's LP solution exceeds, to a bracket of 1/4096 of the quarter circle (12 evaluations from pi/4; a
///    sweep starts from an angle predicted by its last solves and gallops from it to a bracket); for K >= 3 by
///    coordinate golden-section search. The search needs only the LP's value and its solution's row uses, over a
///    flat copy of the active options taken once per search: by LP duality the value is the maximum over the
///    multiplier lam of sum_class min_option (cost + lam * use) - lam * budget, so one pass (AVX2 when active)
///    finds each class's minimisers at the two ends of a bracket around the last evaluation's multiplier, and the
///    greedy runs only over the hull segments between them; a bracket that misses moves and widens (at most 4
///    passes), then the greedy over all hull segments by weighted quickselect.
/// 4. Incumbent: the LP solution rounded down and the warm start (if any), repaired row by row (the best ratio of
///    cost to violation removed first; each class's best move kept in a lazy max-heap) and improved by
///    single-class moves; later also the optimal path of the DP relaxation (step 5), repaired the same way.
/// 5. Root fixing rounds: reduced-cost fixing with the Lagrangian multiplier of the surrogate LP; a DP relaxation
///    (exact over the excess of one row in units of the gcd of its option differences, the other rows
///    Lagrangian-relaxed) gives a bound, a heuristic path and DP fixing (a table row is the minimum over the class's
///    options of a shifted previous row plus the option's value, computed with every option's term in registers,
///    4 doubles at a time with AVX2 when the kernels' dispatch has it active, 2 with SSE2/NEON otherwise: same
///    values; the forward table is stored reversed, so fixing an option is one contiguous sum-and-minimum of two
///    rows). The DP is built only when its table is small (a coarser unit, rounding uses down, relaxes the row
///    further and keeps the bound valid), and in the threshold attempts (step 6) only once reduced-cost fixing has
///    reached a fixpoint; after a large table the later rounds fix with the LP only and the branch and bound builds
///    the table once.
/// 6. Threshold attempts (iterative deepening on the bound): with root bound L and incumbent U, attempts with
///    T = L + (U - L) / 10, L + (U - L) / 4, L + (U - L) / 2, then T = +inf look only for solutions cheaper than
///    min(incumbent, T): fixing (step 5) and pruning use that cutoff, so they are much stronger while T is close to
///    L. An attempt that ends with incumbent <= T has searched everything cheaper than the incumbent (optimal);
///    otherwise it proved that no solution is cheaper than T - tol, and the next attempt starts from the state
///    after step 5.
/// 7. In each attempt, depth-first branch and bound; every node is bounded by the surrogate LP of the classes
///    still open (the open classes at depth d are always the same suffix of the class order, so running sums of
///    their hull segments in efficiency order give it by one binary search; a Fenwick tree for very large
///    problems), by the fixed-multiplier Lagrangian bound, by the DP table (O(1)), and by exact per-row minimum uses.
///    A search that runs long builds two side tables with the other rows' multipliers scaled by 0.9 and 1.1, and
///    takes the largest of the three DP bounds.
/// Tolerance: a node is pruned when its bound >= c - tol, c = min(incumbent, T), tol = relative_tolerance *
/// max(1, |c|) (default 1e-9). OPTIMAL therefore means: no solution is cheaper than the returned one by more than
/// tol.
///
/// Where each step lives (mixq/search/solver/, one header per concept, each opening with what it computes and what
/// it uses):
/// - compile.hpp: step 1, tie merging and the dominance filter (once per problem);
/// - engine.hpp: class Engine, the state of one solve, grouped by concept; buffers.hpp: the memory kept per thread
///   between solves (DP tables, per-group vectors); kernels.hpp: the vector primitives with their scalar paths;
/// - row_filter.hpp: step 2; lp_relaxation.hpp and multiplier_search.hpp: step 3; heuristics.hpp: step 4;
///   dp_bound.hpp and fixing.hpp: step 5; solve_compiled.hpp: steps 2 to 7 in order, with the threshold attempts
///   of step 6; branch_and_bound.hpp: step 7.
/// Status, SolveOptions and Solution are in mixq/search/solution.hpp (included here).

#include <string>
#include <utility>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/search/problem.hpp"
#include "mixq/search/solution.hpp"
#include "mixq/search/solver/compile.hpp"
#include "mixq/search/solver/solve_compiled.hpp"

namespace mixq::search {

namespace detail {
struct SweepAccess;
}

/// A reusable exact solver of one problem: validation, tie merging and dominance filtering are done once;
/// solve() may then be called for many budget vectors (see pareto.hpp).
class Solver {
 public:
  /// Validates and compiles the problem (throws mixq::error on bad input).
  explicit Solver(Problem problem) : problem_(std::move(problem)), compiled_(detail::compile(problem_)) {}

  /// Solves with the problem's budgets.
  Solution solve(const SolveOptions& options = {}) const { return solve(problem_.budgets, options); }

  /// Solves with other budgets (same K). warm_start: an optional per-class choice tried as first incumbent.
  Solution solve(const std::vector<std::int64_t>& budgets, const SolveOptions& options = {},
                 const std::vector<int>* warm_start = nullptr) const {
    return detail::solve_problem(problem_, compiled_, budgets, options, warm_start);
  }

  const Problem& problem() const { return problem_; }

 private:
  friend struct detail::SweepAccess;
  Problem problem_;
  detail::Compiled compiled_;
};

namespace detail {
/// pareto_sweep's access to a Solver: solves that pass the multiplier angle from one budget to the next.
struct SweepAccess {
  static Solution solve(const Solver& s, const std::vector<std::int64_t>& budgets, const SolveOptions& options,
                        const std::vector<int>* warm_start, AngleHint* angle) {
    return solve_problem(s.problem_, s.compiled_, budgets, options, warm_start, angle);
  }
};
}  // namespace detail

/// Solves a problem exactly (see the file comment for the method and the tolerance). The problem is not copied.
inline Solution solve(const Problem& problem, const SolveOptions& options = {}) {
  const detail::Compiled compiled = detail::compile(problem);
  return detail::solve_problem(problem, compiled, problem.budgets, options, nullptr);
}

/// A one-line description of an infeasible solution: the resource and its minimum possible use.
inline std::string describe_infeasibility(const Problem& p, const Solution& s) {
  if (s.status != Status::infeasible) return "";
  return p.resource_name(static_cast<std::size_t>(s.infeasible_resource)) + " cannot be met: minimum possible use " +
         std::to_string(s.minimum_use) + " > budget " +
         std::to_string(p.budgets[static_cast<std::size_t>(s.infeasible_resource)]);
}

}  // namespace mixq::search
