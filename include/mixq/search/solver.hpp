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

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/kernels/dispatch.hpp"
#include "mixq/search/problem.hpp"

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

namespace detail {

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

/// Fenwick tree over doubles (prefix sums of hull-segment lengths and gains).
struct Fenwick {
  std::vector<double> t;
  void reset(std::size_t n) { t.assign(n + 1, 0.0); }
  void add(std::size_t i, double v) {
    for (++i; i < t.size(); i += i & (~i + 1)) t[i] += v;
  }
};

// DP rows (step 5): two primitives over rows of doubles, in explicit vector code (4 lanes with AVX2 when the
// kernels' dispatch has it active, 2 with SSE2 or NEON otherwise) so that the speed does not depend on the
// optimisation level. Every element gets the same additions and comparisons in any path, so the values are the same.
// `avx2` is read once per solve (wide_rows()) and passed down, not asked of the dispatch per row.
namespace dp {

/// True when the AVX2 rows may run: AVX2 or AVX-512 active in the kernels' dispatch (CPUID, MIXQ_FORCE_ISA).
inline bool wide_rows() {
#if defined(MIXQ_KERNELS_X86)
  const kernels::Isa isa = kernels::active_isa();
  return isa == kernels::Isa::avx2 || isa == kernels::Isa::avx512;
#else
  return false;
#endif
}

#if defined(MIXQ_KERNELS_X86)
MIXQ_TARGET_AVX2 inline std::int64_t rows_avx2(double* out, const double* in, std::int64_t lo, std::int64_t hi,
                                                const double* v, const std::int64_t* off, int m) {
  std::int64_t x = lo;
  for (; x + 16 <= hi; x += 16) {
    const __m256d v0 = _mm256_set1_pd(v[0]);
    const double* p = in + x + off[0];
    __m256d a0 = _mm256_add_pd(v0, _mm256_loadu_pd(p)), a1 = _mm256_add_pd(v0, _mm256_loadu_pd(p + 4));
    __m256d a2 = _mm256_add_pd(v0, _mm256_loadu_pd(p + 8)), a3 = _mm256_add_pd(v0, _mm256_loadu_pd(p + 12));
    for (int j = 1; j < m; ++j) {
      const __m256d vj = _mm256_set1_pd(v[j]);
      const double* q = in + x + off[j];
      a0 = _mm256_min_pd(_mm256_add_pd(vj, _mm256_loadu_pd(q)), a0);
      a1 = _mm256_min_pd(_mm256_add_pd(vj, _mm256_loadu_pd(q + 4)), a1);
      a2 = _mm256_min_pd(_mm256_add_pd(vj, _mm256_loadu_pd(q + 8)), a2);
      a3 = _mm256_min_pd(_mm256_add_pd(vj, _mm256_loadu_pd(q + 12)), a3);
    }
    _mm256_storeu_pd(out + x, a0);
    _mm256_storeu_pd(out + x + 4, a1);
    _mm256_storeu_pd(out + x + 8, a2);
    _mm256_storeu_pd(out + x + 12, a3);
  }
  for (; x + 4 <= hi; x += 4) {
    __m256d a = _mm256_add_pd(_mm256_set1_pd(v[0]), _mm256_loadu_pd(in + x + off[0]));
    for (int j = 1; j < m; ++j) a = _mm256_min_pd(_mm256_add_pd(_mm256_set1_pd(v[j]), _mm256_loadu_pd(in + x + off[j])), a);
    _mm256_storeu_pd(out + x, a);
  }
  return x;
}
MIXQ_TARGET_AVX2 inline std::int64_t min_sum_avx2(const double* a, const double* b, std::int64_t n, double& best) {
  __m256d m0 = _mm256_set1_pd(best), m1 = m0;
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    m0 = _mm256_min_pd(_mm256_add_pd(_mm256_loadu_pd(a + i), _mm256_loadu_pd(b + i)), m0);
    m1 = _mm256_min_pd(_mm256_add_pd(_mm256_loadu_pd(a + i + 4), _mm256_loadu_pd(b + i + 4)), m1);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_min_pd(m0, m1));
  for (double x : lanes) best = x < best ? x : best;
  return i;
}
#define MIXQ_DP_V2 __m128d
#define MIXQ_DP_SET1(x) _mm_set1_pd(x)
#define MIXQ_DP_LOAD(p) _mm_loadu_pd(p)
#define MIXQ_DP_STORE(p, x) _mm_storeu_pd(p, x)
#define MIXQ_DP_ADD(a, b) _mm_add_pd(a, b)
#define MIXQ_DP_MIN(a, b) _mm_min_pd(a, b)
#elif defined(MIXQ_KERNELS_NEON)
#define MIXQ_DP_V2 float64x2_t
#define MIXQ_DP_SET1(x) vdupq_n_f64(x)
#define MIXQ_DP_LOAD(p) vld1q_f64(p)
#define MIXQ_DP_STORE(p, x) vst1q_f64(p, x)
#define MIXQ_DP_ADD(a, b) vaddq_f64(a, b)
#define MIXQ_DP_MIN(a, b) vminq_f64(a, b)
#endif

/// out[x] = min over j < m of v[j] + in[x + off[j]], for lo <= x < hi (m >= 1). The terms are compared in the same
/// way in every path (no NaN can occur: entries are finite or +inf), so every path gives the same values.
inline void rows(double* __restrict out, const double* __restrict in, std::int64_t lo, std::int64_t hi, const double* v,
                 const std::int64_t* off, int m, bool avx2) {
  std::int64_t x = lo;
#if defined(MIXQ_KERNELS_X86)
  if (avx2) x = rows_avx2(out, in, lo, hi, v, off, m);
#else
  (void)avx2;
#endif
#if defined(MIXQ_DP_V2)
  for (; x + 2 <= hi; x += 2) {
    MIXQ_DP_V2 a = MIXQ_DP_ADD(MIXQ_DP_SET1(v[0]), MIXQ_DP_LOAD(in + x + off[0]));
    for (int j = 1; j < m; ++j) a = MIXQ_DP_MIN(MIXQ_DP_ADD(MIXQ_DP_SET1(v[j]), MIXQ_DP_LOAD(in + x + off[j])), a);
    MIXQ_DP_STORE(out + x, a);
  }
#endif
  for (; x < hi; ++x) {
    double a = v[0] + in[x + off[0]];
    for (int j = 1; j < m; ++j) {
      const double c = v[j] + in[x + off[j]];
      a = c < a ? c : a;
    }
    out[x] = a;
  }
}

/// min over i < n of a[i] + b[i] (+inf when n = 0). No NaN can occur: entries are finite or +inf.
inline double min_sum(const double* a, const double* b, std::int64_t n, bool avx2) {
  double best = std::numeric_limits<double>::infinity();
  std::int64_t i = 0;
#if defined(MIXQ_KERNELS_X86)
  if (avx2) i = min_sum_avx2(a, b, n, best);
#else
  (void)avx2;
#endif
#if defined(MIXQ_DP_V2)
  MIXQ_DP_V2 m = MIXQ_DP_SET1(best);
  for (; i + 2 <= n; i += 2) m = MIXQ_DP_MIN(MIXQ_DP_ADD(MIXQ_DP_LOAD(a + i), MIXQ_DP_LOAD(b + i)), m);
  double lanes[2];
  MIXQ_DP_STORE(lanes, m);
  for (double x : lanes) best = x < best ? x : best;
#endif
  for (; i < n; ++i) {
    const double c = a[i] + b[i];
    best = c < best ? c : best;
  }
  return best;
}

#undef MIXQ_DP_V2
#undef MIXQ_DP_SET1
#undef MIXQ_DP_LOAD
#undef MIXQ_DP_STORE
#undef MIXQ_DP_ADD
#undef MIXQ_DP_MIN

/// Memory of a DP table: grows, never shrinks, is not initialised (every row is written before it is read).
struct Buffer {
  std::unique_ptr<double[]> data;
  std::size_t capacity = 0;
  double* get(std::size_t n) {
    if (n > capacity) {
      data.reset();
      data.reset(new double[n]);
      capacity = n;
    }
    return data.get();
  }
};

/// The DP tables' memory (and the node LP's running sums), kept per thread between solves (fresh memory at every
/// solve costs page faults). At most four buffers are kept, each of at most 2^21 doubles (larger ones are freed).
/// One solve uses four (eight while an infeasible problem is analysed), and below 16,384 classes its tables have at
/// most 2^18 entries (2 MiB; the two side tables share one buffer of twice that).
inline std::vector<Buffer>& stash() {
  thread_local std::vector<Buffer> s;
  return s;
}
inline void take(Buffer& b) {
  std::vector<Buffer>& s = stash();
  if (!s.empty()) {
    b = std::move(s.back());
    s.pop_back();
  }
}
inline void give(Buffer& b) {
  std::vector<Buffer>& s = stash();
  if (b.capacity > 0 && b.capacity <= (std::size_t{1} << 21) && s.size() < 4) s.push_back(std::move(b));
}

}  // namespace dp

// The bracket pass of the value-only LP (Engine::bracket_value): per class, the first option (in cost order)
// minimising c + lo * s, the first minimising c + hi * s, and the smallest s. The AVX2 path gives the same indices
// as the scalar loop: the products are rounded before the additions in both (an empty asm keeps the compiler from
// fusing them), each lane keeps its first minimum, and the lanes are reduced by (value, index).
namespace lpv {

/// Scalar reference: options b..e-1 (b < e).
inline double argmin2(const double* c, const double* s, int b, int e, double lo, double hi, int& il, int& ih) {
  il = ih = b;
  double tl = c[b] + lo * s[b], th = c[b] + hi * s[b], sm = s[b];
  for (int i = b + 1; i < e; ++i) {
    const double a = c[i] + lo * s[i], h = c[i] + hi * s[i];
    if (a < tl) { tl = a; il = i; }
    if (h < th) { th = h; ih = i; }
    sm = s[i] < sm ? s[i] : sm;
  }
  return sm;
}

#if defined(MIXQ_KERNELS_X86)
/// out[i] = w0 * a[i] + w1 * b[i] for i < n, 4 at a time (products rounded before the sum, as in the scalar loop).
MIXQ_TARGET_AVX2 inline std::size_t combine2_avx2(double* out, const double* a, const double* b, std::size_t n,
                                                  double w0, double w1) {
  const __m256d v0 = _mm256_set1_pd(w0), v1 = _mm256_set1_pd(w1);
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m256d p = _mm256_mul_pd(v0, _mm256_loadu_pd(a + i)), q = _mm256_mul_pd(v1, _mm256_loadu_pd(b + i));
    __asm__("" : "+x"(p), "+x"(q));
    _mm256_storeu_pd(out + i, _mm256_add_pd(p, q));
  }
  return i;
}

MIXQ_TARGET_AVX2 inline double argmin2_avx2(const double* c, const double* s, int b, int e, double lo, double hi,
                                            int& il, int& ih) {
  const __m256d vlo = _mm256_set1_pd(lo), vhi = _mm256_set1_pd(hi), four = _mm256_set1_pd(4.0);
  __m256d idx = _mm256_setr_pd(b, b + 1, b + 2, b + 3);
  __m256d vc = _mm256_loadu_pd(c + b), vs = _mm256_loadu_pd(s + b);
  __m256d pl = _mm256_mul_pd(vlo, vs), ph = _mm256_mul_pd(vhi, vs);
  __asm__("" : "+x"(pl), "+x"(ph));
  __m256d bl = _mm256_add_pd(vc, pl), bh = _mm256_add_pd(vc, ph), il4 = idx, ih4 = idx, sm = vs;
  int i = b + 4;
  for (; i + 4 <= e; i += 4) {
    idx = _mm256_add_pd(idx, four);
    vc = _mm256_loadu_pd(c + i);
    vs = _mm256_loadu_pd(s + i);
    pl = _mm256_mul_pd(vlo, vs);
    ph = _mm256_mul_pd(vhi, vs);
    __asm__("" : "+x"(pl), "+x"(ph));
    const __m256d tl = _mm256_add_pd(vc, pl), th = _mm256_add_pd(vc, ph);
    const __m256d ml = _mm256_cmp_pd(tl, bl, _CMP_LT_OQ), mh = _mm256_cmp_pd(th, bh, _CMP_LT_OQ);
    bl = _mm256_blendv_pd(bl, tl, ml);
    il4 = _mm256_blendv_pd(il4, idx, ml);
    bh = _mm256_blendv_pd(bh, th, mh);
    ih4 = _mm256_blendv_pd(ih4, idx, mh);
    sm = _mm256_min_pd(vs, sm);
  }
  alignas(32) double v[4], x[4], w[4], y[4], z[4];
  _mm256_store_pd(v, bl);
  _mm256_store_pd(x, il4);
  _mm256_store_pd(w, bh);
  _mm256_store_pd(y, ih4);
  _mm256_store_pd(z, sm);
  double tl = v[0], th = w[0], smin = z[0], fl = x[0], fh = y[0];
  for (int l = 1; l < 4; ++l) {
    if (v[l] < tl || (v[l] == tl && x[l] < fl)) { tl = v[l]; fl = x[l]; }
    if (w[l] < th || (w[l] == th && y[l] < fh)) { th = w[l]; fh = y[l]; }
    smin = z[l] < smin ? z[l] : smin;
  }
  il = static_cast<int>(fl);
  ih = static_cast<int>(fh);
  for (; i < e; ++i) {
    double pa = lo * s[i], pb = hi * s[i];
    __asm__("" : "+x"(pa), "+x"(pb));
    const double a = c[i] + pa, h = c[i] + pb;
    if (a < tl) { tl = a; il = i; }
    if (h < th) { th = h; ih = i; }
    smin = s[i] < smin ? s[i] : smin;
  }
  return smin;
}
#endif

}  // namespace lpv

/// Largest number of entries of the per-depth running sums the branch and bound uses for its node LP (see
/// Engine::node_lp); above it, a Fenwick tree. A variable so that the tests can run both paths.
inline std::size_t node_lp_sums_limit = std::size_t{1} << 21;

/// One solve of a compiled problem for one budget vector.
class Engine {
 public:
  Engine(const Compiled& cp, const std::vector<std::int64_t>& budgets, const SolveOptions& opt)
      : cp_(cp), K_(cp.K), b_(budgets), opt_(opt), avx2_(dp::wide_rows()) {
    dp::take(table_buf_);
    dp::take(fwd_buf_);
    dp::take(sfx_buf_);
    dp::take(side_buf_);
    take_scratch();
  }
  ~Engine() {
    dp::give(table_buf_);
    dp::give(fwd_buf_);
    dp::give(sfx_buf_);
    dp::give(side_buf_);
    give_scratch();
  }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Solves; choice is per group (index into cp arrays), warm is an optional per-group start.
  Solution run(const std::vector<int>* warm) {
    const auto t0 = std::chrono::steady_clock::now();
    start_ = t0;
    Solution s = run_impl(warm);
    s.nodes = nodes_;
    s.solve_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s;
  }

  std::vector<int> best_choice;  ///< per group, option index into cp arrays (empty if none)

 private:
  const Compiled& cp_;
  int K_;
  std::vector<std::int64_t> b_;
  SolveOptions opt_;
  bool avx2_;  // the DP rows' AVX2 path may run (dp::wide_rows(), read once per solve)
  std::chrono::steady_clock::time_point start_;
  std::int64_t nodes_ = 0;
  bool aborted_ = false;

  std::vector<std::vector<int>> act_;  // per group: active options
  std::vector<int> free_;              // free groups
  std::vector<int> fixed_choice_;      // per group: chosen option when a singleton, else -1
  double const_cost_ = 0.0;
  std::vector<std::int64_t> rb_;       // residual budgets after constants
  double ub_ = std::numeric_limits<double>::infinity();  // incumbent objective without const_cost_
  std::vector<int> inc_;               // per group incumbent (global option index)

  // LP data
  std::vector<double> w_;              // surrogate weight per row (mu_k / max(rb_k, 1))
  double R_ = 0.0;                     // surrogate budget
  std::vector<double> s_;              // surrogate use per option
  struct Segment { double eff, ds, gain, du0, du1; int group, pos; };  // du0, du1: change of rows 0 and 1 (K = 2)
  std::vector<std::vector<int>> hull_;  // per group: hull option ids, increasing surrogate use
  std::vector<Segment> seg_;
  double lambda_ = 0.0;
  std::vector<int> hull_pos_;           // LP integer part: hull index per group
  double base_u_[2] = {0.0, 0.0};       // K = 2: rows 0 and 1 of the LP's first hull points
  double lp_u_[2] = {0.0, 0.0};         // K = 2: rows 0 and 1 of the last value-only LP solution
  // lp_current_: the data above is the full (sorted) LP of the current active options at the current angles, with
  // value lp_value_ (a value-only evaluation or any change of the active options clears it)
  bool lp_current_ = false;
  double lp_value_ = 0.0;
  struct LpSnapshot {
    std::vector<double> w, s;
    double R = 0.0, lambda = 0.0, value = 0.0;
    std::vector<std::vector<int>> hull;
    std::vector<Segment> seg;
    std::vector<int> hull_pos;
  };
  void save_lp(LpSnapshot& a) const {
    a.w = w_;
    a.s = s_;
    a.R = R_;
    a.lambda = lambda_;
    a.value = lp_value_;
    a.hull = hull_;
    a.seg = seg_;
    a.hull_pos = hull_pos_;
  }
  void load_lp(const LpSnapshot& a) {
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

  // Memory kept per thread between solves (like the DP tables): a sweep's solves would otherwise allocate every
  // per-group vector again. The flat vectors are handed over empty (their uses resize or assign them, as in a fresh
  // solve); the per-group ones keep their entries, which the solve overwrites before reading (act_ entirely, the
  // others for every free group; entries of groups that are not free are not read).
  std::vector<std::vector<int>> act0_;  // run_impl: the active options after the root rounds
  LpSnapshot snap_;                     // run_impl: their LP
  struct Scratch {
    std::vector<std::vector<int>> act, act0, hull, sorted;
    std::vector<std::vector<std::pair<double, int>>> cand;
    LpSnapshot snap;
    std::vector<Segment> seg;
    std::vector<double> s, delta, lpc, lpu, lps, dp_pen, side_pen;
    std::vector<std::int64_t> dp_units;
    std::vector<int> lpo, lpid, hs;
  };
  static std::vector<Scratch>& scratch_stash() {
    thread_local std::vector<Scratch> st;
    return st;
  }
  void swap_scratch(Scratch& x) {
    act_.swap(x.act);
    act0_.swap(x.act0);
    hull_.swap(x.hull);
    sorted_.swap(x.sorted);
    cand_.swap(x.cand);
    std::swap(snap_, x.snap);
    seg_.swap(x.seg);
    s_.swap(x.s);
    delta_.swap(x.delta);
    lpc_.swap(x.lpc);
    lpu_.swap(x.lpu);
    lps_.swap(x.lps);
    dp_pen_.swap(x.dp_pen);
    side_pen_.swap(x.side_pen);
    dp_units_.swap(x.dp_units);
    lpo_.swap(x.lpo);
    lpid_.swap(x.lpid);
    hs_.swap(x.hs);
  }
  void take_scratch() {
    std::vector<Scratch>& st = scratch_stash();
    if (st.empty()) return;
    swap_scratch(st.back());
    st.pop_back();
    for (auto* v : {&s_, &delta_, &lpc_, &lpu_, &lps_, &dp_pen_, &side_pen_}) v->clear();
    seg_.clear();
    dp_units_.clear();
    lpo_.clear();
    lpid_.clear();
    hs_.clear();
  }
  void give_scratch() {
    std::vector<Scratch>& st = scratch_stash();
    if (st.size() >= 2) return;
    st.emplace_back();
    swap_scratch(st.back());
  }

  // Pruning: a node whose bound (without const_cost_) is >= cut_ cannot hold a solution cheaper than
  // min(incumbent, threshold) - tol, tol = relative_tolerance * max(1, |min(incumbent, threshold)|).
  double thr_ = std::numeric_limits<double>::infinity();  // threshold of the current attempt (with const)
  double cut_ = std::numeric_limits<double>::infinity();
  void update_cut() {
    const double lim = std::min(ub_ + const_cost_, thr_);
    cut_ = std::isfinite(lim) ? lim - opt_.relative_tolerance * std::max(1.0, std::fabs(lim)) - const_cost_
                              : std::numeric_limits<double>::infinity();
  }
  double use_k(int j, int k) const { return cp_.use_d[static_cast<std::size_t>(j * K_ + k)]; }
  std::int64_t iuse(int j, int k) const { return cp_.use[static_cast<std::size_t>(j * K_ + k)]; }

  Solution infeasible(int k, std::int64_t min_use) {
    Solution s;
    s.status = Status::infeasible;
    s.infeasible_resource = k;
    s.minimum_use = min_use;
    return s;
  }

  // Row filtering. Returns -1 if fine, else the violated row (min_use_out set).
  int row_filter(std::int64_t& min_use_out) {
    lp_current_ = false;
    const int G = cp_.groups();
    std::vector<std::int64_t> gmin(static_cast<std::size_t>(G * K_));
    bool first = true;
    for (bool changed = true; changed; first = false) {
      changed = false;
      for (int k = 0; k < K_; ++k) {
        std::int64_t tot = 0;
        for (int g = 0; g < G; ++g) {
          std::int64_t m = std::numeric_limits<std::int64_t>::max();
          for (int j : act_[static_cast<std::size_t>(g)]) m = std::min(m, iuse(j, k));
          gmin[static_cast<std::size_t>(g * K_ + k)] = m;
          tot += m;
        }
        if (tot > b_[static_cast<std::size_t>(k)]) {
          // exact only for row 0 before any filtering; otherwise the caller analyses the infeasibility
          min_use_out = (first && k == 0) ? tot : -1;
          return k;
        }
        for (int g = 0; g < G; ++g) {
          std::vector<int>& a = act_[static_cast<std::size_t>(g)];
          const std::int64_t slack = b_[static_cast<std::size_t>(k)] - tot + gmin[static_cast<std::size_t>(g * K_ + k)];
          const std::size_t before = a.size();
          a.erase(std::remove_if(a.begin(), a.end(), [&](int j) { return iuse(j, k) > slack; }), a.end());
          if (a.size() != before) changed = true;
        }
      }
    }
    return -1;
  }

  void fold_constants() {
    lp_current_ = false;
    const int G = cp_.groups();
    const double ub_abs = ub_ + const_cost_;
    free_.clear();
    fixed_choice_.assign(static_cast<std::size_t>(G), -1);
    const_cost_ = 0.0;
    rb_ = b_;
    for (int g = 0; g < G; ++g) {
      const std::vector<int>& a = act_[static_cast<std::size_t>(g)];
      if (a.size() == 1) {
        fixed_choice_[static_cast<std::size_t>(g)] = a[0];
        const_cost_ += cp_.cost[static_cast<std::size_t>(a[0])];
        for (int k = 0; k < K_; ++k) rb_[static_cast<std::size_t>(k)] -= iuse(a[0], k);
      } else {
        free_.push_back(g);
      }
    }
    ub_ = ub_abs - const_cost_;
    update_cut();
  }

  // The free groups' active options for the LP, flat and by row (filled at the start of every multiplier choice,
  // read by each of its LP evaluations): per free group free_[i], entries lpo_[i] .. lpo_[i + 1] - 1, in increasing
  // cost order (as act_).
  std::vector<int> lpo_, lpid_;
  std::vector<double> lpc_, lpu_, lps_;  // cost; use (row k at k * n + entry); surrogate use (scratch)
  std::vector<int> hs_;                  // hull scratch
  void gather_lp() {
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
  static int lower_hull(const double* c, const double* sv, int b, int e, int* h) {
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
  void push_segments(const int* h, int m, int g, const double* c, const double* sv, const double* u, std::size_t n) {
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
  double build_lp(const std::vector<double>& w, bool value_only = false) {
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
  double greedy_value(double base_s, double base_c) {
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

  double s_tol() const { return 1e-9 * (std::fabs(R_) + 1.0); }

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
  double lam_hint_ = -1.0;    // multiplier of the last value-only LP (<= 0: none)
  double lam_margin_ = 0.1;
  std::vector<int> br_lo_, br_hi_;  // per free group: the minimisers at lo and hi
  bool bracket_value(double& v) {
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

  bool feasible(const std::vector<int>& choice, double& cost) const {
    cost = 0.0;
    for (int k = 0; k < K_; ++k) {
      std::int64_t u = 0;
      for (int g = 0; g < cp_.groups(); ++g) u += iuse(choice[static_cast<std::size_t>(g)], k);
      if (u > b_[static_cast<std::size_t>(k)]) return false;
    }
    for (int g = 0; g < cp_.groups(); ++g) cost += cp_.cost[static_cast<std::size_t>(choice[static_cast<std::size_t>(g)])];
    return true;
  }

  void offer(const std::vector<int>& choice) {
    double c;
    if (!feasible(choice, c)) return;
    c -= const_cost_;
    if (c < ub_) {
      ub_ = c;
      inc_ = choice;
      update_cut();
    }
  }

  // LP rounding + repair + single-class improvement moves, over the free groups' active options.
  void heuristic() {
    std::vector<int> cur(static_cast<std::size_t>(cp_.groups()));
    for (int g = 0; g < cp_.groups(); ++g)
      cur[static_cast<std::size_t>(g)] = fixed_choice_[static_cast<std::size_t>(g)];
    for (int g : free_)
      cur[static_cast<std::size_t>(g)] = hull_[static_cast<std::size_t>(g)][static_cast<std::size_t>(hull_pos_[static_cast<std::size_t>(g)])];
    heuristic_from(std::move(cur));
  }

  // A start from a warm choice (e.g. the optimum of looser budgets): constants as folded, and options removed by
  // row filtering replaced by the active option of smallest normalised use.
  std::vector<int> repair_start(const std::vector<int>& warm) const {
    std::vector<int> cur = warm;
    for (int g = 0; g < cp_.groups(); ++g) {
      const std::size_t gs = static_cast<std::size_t>(g);
      if (fixed_choice_[gs] >= 0) {
        cur[gs] = fixed_choice_[gs];
        continue;
      }
      const std::vector<int>& a = act_[gs];
      if (std::find(a.begin(), a.end(), cur[gs]) != a.end()) continue;
      double best = std::numeric_limits<double>::infinity();
      for (int j : a) {
        double v = 0.0;
        for (int k = 0; k < K_; ++k)
          v += use_k(j, k) / static_cast<double>(std::max<std::int64_t>(rb_[static_cast<std::size_t>(k)], 1));
        if (v < best) {
          best = v;
          cur[gs] = j;
        }
      }
    }
    return cur;
  }

  // Repairs a start (per group; fixed groups already set) row by row, improves it, offers it.
  std::vector<std::pair<double, std::size_t>> repair_heap_;
  void heuristic_from(std::vector<int> cur) {
    std::vector<std::int64_t> tot(static_cast<std::size_t>(K_), 0);
    for (int k = 0; k < K_; ++k)
      for (int g : free_) tot[static_cast<std::size_t>(k)] += iuse(cur[static_cast<std::size_t>(g)], k);
    auto apply = [&](int g, int j) {
      for (int k = 0; k < K_; ++k) tot[static_cast<std::size_t>(k)] += iuse(j, k) - iuse(cur[static_cast<std::size_t>(g)], k);
      cur[static_cast<std::size_t>(g)] = j;
    };
    // Repair: reduce the violated rows at the best cost per unit of normalised violation removed (ties: the first
    // group in free_ order, then the first option). While the set of violated rows stays the same, a move only lowers
    // the other groups' scores (violations shrink, slack in the other rows shrinks, their costs stay), so each
    // group's best score is kept in a max-heap and recomputed only when it comes to the top (lazy greedy: the same
    // moves as rescanning every option per move); the heap is rebuilt when a row stops being violated.
    const auto best_of = [&](std::size_t gi, int& bj) {
      const int g = free_[gi];
      const int c0 = cur[static_cast<std::size_t>(g)];
      double best = -std::numeric_limits<double>::infinity();
      bj = -1;
      for (int j : act_[static_cast<std::size_t>(g)]) {
        if (j == c0) continue;
        double benefit = 0.0;
        bool ok = true;
        for (int k = 0; k < K_; ++k) {
          const std::int64_t nt = tot[static_cast<std::size_t>(k)] + iuse(j, k) - iuse(c0, k);
          const std::int64_t over = tot[static_cast<std::size_t>(k)] - rb_[static_cast<std::size_t>(k)];
          if (over > 0) {
            const std::int64_t red = std::min(over, tot[static_cast<std::size_t>(k)] - nt);
            if (nt > tot[static_cast<std::size_t>(k)]) { ok = false; break; }
            benefit += static_cast<double>(red) / static_cast<double>(std::max<std::int64_t>(rb_[static_cast<std::size_t>(k)], 1));
          } else if (nt > rb_[static_cast<std::size_t>(k)]) {
            ok = false;
            break;
          }
        }
        if (!ok || benefit <= 0.0) continue;
        const double dc = cp_.cost[static_cast<std::size_t>(j)] - cp_.cost[static_cast<std::size_t>(c0)];
        const double score = dc <= 0.0 ? 1e300 * benefit : benefit / dc;
        if (score > best) { best = score; bj = j; }
      }
      return best;
    };
    // rows only leave the violated set (a move keeps the other rows within budget), so the set changed iff its size did
    const auto violated = [&]() {
      int v = 0;
      for (int k = 0; k < K_; ++k) v += tot[static_cast<std::size_t>(k)] > rb_[static_cast<std::size_t>(k)] ? 1 : 0;
      return v;
    };
    int moves = 0;
    const int max_moves = 4 * static_cast<int>(free_.size()) * K_ + 8;
    for (int rows = violated(); rows != 0;) {
      // heap entries (score, group position); the top: the largest score, then the smallest position
      const auto below = [](const std::pair<double, std::size_t>& a, const std::pair<double, std::size_t>& b) {
        return a.first < b.first || (a.first == b.first && a.second > b.second);
      };
      std::vector<std::pair<double, std::size_t>>& heap = repair_heap_;
      heap.clear();
      for (std::size_t gi = 0; gi < free_.size(); ++gi) {
        int bj;
        const double sc = best_of(gi, bj);
        if (bj >= 0) heap.emplace_back(sc, gi);
      }
      std::make_heap(heap.begin(), heap.end(), below);
      bool rebuild = false;
      while (!heap.empty() && moves < max_moves) {
        std::pop_heap(heap.begin(), heap.end(), below);
        const std::size_t gi = heap.back().second;
        heap.pop_back();
        int bj;
        const double sc = best_of(gi, bj);  // its current score (no higher than the stored one)
        if (bj < 0) continue;
        if (!heap.empty() && below(std::make_pair(sc, gi), heap.front())) {
          heap.emplace_back(sc, gi);  // stale: another group may now be better
          std::push_heap(heap.begin(), heap.end(), below);
          continue;
        }
        apply(free_[gi], bj);
        ++moves;
        const int now = violated();
        if (now != rows) {
          rows = now;
          rebuild = true;
          break;
        }
        const double sn = best_of(gi, bj);
        if (bj >= 0) {
          heap.emplace_back(sn, gi);
          std::push_heap(heap.begin(), heap.end(), below);
        }
      }
      if (!rebuild || moves >= max_moves) break;
    }
    for (int k = 0; k < K_; ++k)
      if (tot[static_cast<std::size_t>(k)] > rb_[static_cast<std::size_t>(k)]) return;
    improve(cur, tot);
    offer(cur);
  }

  // Best-improvement local search over single-class moves.
  void improve(std::vector<int>& cur, std::vector<std::int64_t>& tot) {
    for (int it = 0; it < 16 * static_cast<int>(free_.size()) + 16; ++it) {
      double best = 0.0;
      int bg = -1, bj = -1;
      for (int g : free_) {
        const int c0 = cur[static_cast<std::size_t>(g)];
        for (int j : act_[static_cast<std::size_t>(g)]) {
          if (j == c0) continue;
          const double dc = cp_.cost[static_cast<std::size_t>(j)] - cp_.cost[static_cast<std::size_t>(c0)];
          if (dc >= best) break;  // act_ is in increasing cost order: no later option is cheaper
          bool ok = true;
          for (int k = 0; k < K_ && ok; ++k)
            ok = tot[static_cast<std::size_t>(k)] + iuse(j, k) - iuse(c0, k) <= rb_[static_cast<std::size_t>(k)];
          if (ok) { best = dc; bg = g; bj = j; }
        }
      }
      if (bg < 0 || best > -1e-15) break;
      for (int k = 0; k < K_; ++k) tot[static_cast<std::size_t>(k)] += iuse(bj, k) - iuse(cur[static_cast<std::size_t>(bg)], k);
      cur[static_cast<std::size_t>(bg)] = bj;
    }
  }

  // Surrogate multipliers mu on the unit sphere (angles phi_), chosen by coordinate golden-section search
  // maximising the surrogate LP bound; search = false reuses the current angles. Returns +inf as soon as one
  // surrogate is infeasible (then so is the problem restricted to the active options).
  std::vector<double> phi_;
  std::vector<double> mu_of(const std::vector<double>& ph) const {
    std::vector<double> m(static_cast<std::size_t>(K_), 1.0);
    if (K_ == 2) {
      m[0] = std::cos(ph[1]);
      m[1] = std::sin(ph[1]);
    } else {
      for (int k = 1; k < K_; ++k) m[static_cast<std::size_t>(k)] = std::tan(ph[static_cast<std::size_t>(k)]);
    }
    return m;
  }
  double eval_weights(const std::vector<double>& ph, bool value_only = true) {
    const std::vector<double> mu = mu_of(ph);
    std::vector<double> w(static_cast<std::size_t>(K_));
    for (int k = 0; k < K_; ++k)
      w[static_cast<std::size_t>(k)] =
          mu[static_cast<std::size_t>(k)] / static_cast<double>(std::max<std::int64_t>(rb_[static_cast<std::size_t>(k)], 1));
    return build_lp(w, value_only);
  }
  // K = 2: the surrogate dual by bisection on the angle. The LP solution of the surrogate uses u0, u1 of the two
  // rows; when it exceeds row 0 the best angle puts more weight on row 0 (smaller angle), when it exceeds row 1,
  // less; when it meets both it is optimal for the two-row LP and the bound cannot improve. The search starts at
  // phi_[1] and ends when the bracket is 1/4096 of the quarter circle (12 evaluations from pi/4). With a warm angle
  // (predicted from the last budgets of a sweep) the next evaluations step away from it on the side the last one
  // points to, by warm_step_ and then twice as far each time, until the optimum is bracketed; bisection goes on from
  // there.
  bool warm_angle_ = false;
  double warm_step_ = 0.0;

 public:
  /// K = 2: start the multiplier search at angle a, first stepping by step (see bisect_weights); ignored otherwise.
  void set_angle(double a, double step) {
    const double half_pi = 1.5707963267948966;
    if (K_ != 2 || !(a >= 0.0 && a < half_pi) || !(step > 0.0)) return;
    phi_.assign(2, half_pi / 2);
    phi_[1] = a;
    warm_angle_ = true;
    warm_step_ = step;
  }
  /// K = 2: the angle of the root multipliers after the solve (NaN when no search ran).
  double angle() const { return K_ == 2 && phi_.size() == 2 ? phi_[1] : std::numeric_limits<double>::quiet_NaN(); }

 private:
  double bisect_weights() {
    const double half_pi = 1.5707963267948966;
    const double width = half_pi / 4096.0;
    double lo = 0.0, hi = half_pi - 1e-9;
    double best = -std::numeric_limits<double>::infinity(), best_th = phi_[1];
    std::vector<double> ph = phi_;
    bool gallop = warm_angle_;
    double step = warm_step_;
    int dir = 0;  // side the last evaluation points to: -1 smaller angles, +1 larger
    for (int it = 0; it < 24 && hi - lo > width; ++it) {
      if (it == 0) {
        ph[1] = phi_[1];
      } else if (gallop) {
        // step away from the last angle on the side it points to; bisect once the step would leave the bracket
        const double next = ph[1] + dir * step;
        step *= 2.0;
        if (next > lo && next < hi) ph[1] = next;
        else {
          gallop = false;
          ph[1] = 0.5 * (lo + hi);
        }
      } else {
        ph[1] = 0.5 * (lo + hi);
      }
      const double f = eval_weights(ph);
      if (std::isinf(f)) return f;
      if (f > best) {
        best = f;
        best_th = ph[1];
      }
      const auto excess = [&](int k) {
        const double b = static_cast<double>(rb_[static_cast<std::size_t>(k)]);
        return (lp_u_[k] - b) / std::max(b, 1.0);
      };
      const double v0 = excess(0), v1 = excess(1);
      int d = 0;
      if (v0 > 1e-12 && v0 >= v1) {
        hi = ph[1];
        d = -1;
      } else if (v1 > 1e-12) {
        lo = ph[1];
        d = 1;
      } else {
        break;
      }
      if (it > 0 && d != dir) gallop = false;  // the direction turned: the optimum is bracketed
      dir = d;
    }
    phi_[1] = best_th;
    return eval_weights(phi_, false);
  }

  double choose_weights(bool search) {
    const double half_pi = 1.5707963267948966;
    gather_lp();
    if (phi_.size() != static_cast<std::size_t>(K_)) phi_.assign(static_cast<std::size_t>(K_), half_pi / 2);
    if (K_ == 1 || !search) return eval_weights(phi_, false);
    if (K_ == 2) return bisect_weights();
    double best = eval_weights(phi_);
    if (std::isinf(best)) return best;
    const int passes = K_ == 2 ? 1 : 2;
    const int iters = 12;
    const double gr = 0.6180339887498949;
    for (int pass = 0; pass < passes; ++pass) {
      for (int k = 1; k < K_; ++k) {
        double lo = 0.0, hi = half_pi - 1e-9;
        std::vector<double> ph = phi_;
        double x1 = hi - gr * (hi - lo), x2 = lo + gr * (hi - lo);
        ph[static_cast<std::size_t>(k)] = x1;
        double f1 = eval_weights(ph);
        if (std::isinf(f1)) return f1;
        ph[static_cast<std::size_t>(k)] = x2;
        double f2 = eval_weights(ph);
        if (std::isinf(f2)) return f2;
        for (int it = 0; it < iters; ++it) {
          if (f1 < f2) {
            lo = x1; x1 = x2; f1 = f2; x2 = lo + gr * (hi - lo);
            ph[static_cast<std::size_t>(k)] = x2;
            f2 = eval_weights(ph);
            if (std::isinf(f2)) return f2;
          } else {
            hi = x2; x2 = x1; f2 = f1; x1 = hi - gr * (hi - lo);
            ph[static_cast<std::size_t>(k)] = x1;
            f1 = eval_weights(ph);
            if (std::isinf(f1)) return f1;
          }
        }
        const double xb = f1 >= f2 ? x1 : x2, fb = std::max(f1, f2);
        if (fb > best) {
          best = fb;
          phi_[static_cast<std::size_t>(k)] = xb;
        }
      }
    }
    return eval_weights(phi_, false);
  }

  // ---- branch and bound ----
  std::vector<int> order_;
  std::vector<std::vector<int>> sorted_;      // per group: active options by reduced cost
  std::vector<double> delta_;                 // per option: reduced cost
  double lag_ = 0.0;                          // Lagrangian bound (without const)
  std::vector<double> suf_base_s_, suf_base_c_;
  std::vector<std::int64_t> suf_min_;         // (depth) * K + k
  Fenwick fs_, fg_;
  std::vector<double> cur_ds_, cur_gain_;
  std::vector<std::vector<int>> seg_of_;      // per group: positions in seg_
  std::vector<int> choice_;
  std::vector<std::int64_t> used_;
  int log2n_ = 0;
  // DP bound: exact over the excess of one row A (in units of the gcd of its option differences), Lagrangian
  // over the other rows: table_[d * (E + 1) + e] = min over classes order_[d..] with excess <= e of
  // sum (cost + sum_{k != A} lambda_k use_k).
  int dp_row_ = -1;
  std::int64_t dp_excess_ = 0;
  dp::Buffer table_buf_;
  double* table_ = nullptr;            // (nf + 1) * (E + 1) entries in table_buf_
  std::vector<std::int64_t> dp_units_;  // per option: excess units of row A
  std::vector<double> dp_lambda_;      // per row: multiplier (0 for row A)
  std::int64_t e_used_ = 0;
  std::vector<double> dp_pen_;         // per option: sum_{k != A} lambda_k use_k
  double dp_L0_ = 0.0;                 // sum_{k != A} lambda_k budget_k

  static std::int64_t gcd64(std::int64_t a, std::int64_t b) {
    while (b != 0) {
      const std::int64_t t = a % b;
      a = b;
      b = t;
    }
    return a;
  }

  bool dp_infeasible_ = false;
  bool dp_small_ = false;
  int dp_row0_ = -1;  // the DP row, chosen once (smallest excess) and kept across rounds
  std::vector<double> lambda0_;  // per row: lambda * w of the first surrogate LP

  void build_dp_table() {
    dp_row_ = -1;
    dp_infeasible_ = false;
    const std::int64_t nf = static_cast<std::int64_t>(order_.size());
    // A coarser unit (at most 64 gcds; the row's uses divided by it and rounded down) relaxes the row (every
    // feasible choice still fits), so the bound stays valid.
    // Before the threshold attempts (dp_small_): exact tables of at most 2^16 entries only; in the attempts
    // (after stronger fixing) exact up to 2^18 entries, else ~2^16 entries with a coarser unit (an exact table of
    // 2^18 to 2^20 entries, e.g. MobileNetV2's 44 x 16,406, cost more than its sharper bound saved: same node count;
    // so did a coarse one of ~2^17 entries: 127 nodes with either)
    const int lx = dp_small_ ? 16 : 18, lc = dp_small_ ? 14 : 16, mf = dp_small_ ? 1 : 64;
    const std::int64_t cells = std::max<std::int64_t>(16, (std::int64_t{1} << lc) / (nf + 1));
    std::int64_t best_f = std::numeric_limits<std::int64_t>::max(), best_e = 0, best_g = 1;
    for (int k = 0; k < K_; ++k) {
      std::int64_t g = 0, summin = 0;
      for (int grp : free_) {
        std::int64_t m = std::numeric_limits<std::int64_t>::max();
        for (int j : act_[static_cast<std::size_t>(grp)]) m = std::min(m, iuse(j, k));
        summin += m;
        for (int j : act_[static_cast<std::size_t>(grp)]) g = gcd64(g, iuse(j, k) - m);
      }
      if (rb_[static_cast<std::size_t>(k)] < summin) {
        dp_infeasible_ = true;  // no completion meets row k: nothing better than the incumbent exists
        dp_row_ = -1;
        return;
      }
      if (g == 0) continue;
      const std::int64_t e = (rb_[static_cast<std::size_t>(k)] - summin) / g;
      const std::int64_t f = (e + 1) * (nf + 1) <= (std::int64_t{1} << lx) ? 1 : (e + cells - 1) / (cells - 1);
      if (f > mf) continue;  // too coarse to help
      if ((dp_row0_ < 0 || dp_row0_ == k) && (f < best_f || (f == best_f && e / f < best_e))) {
        best_f = f;
        best_e = (rb_[static_cast<std::size_t>(k)] - summin) / (g * f);
        best_g = g * f;
        dp_row_ = k;
      }
    }
    if (dp_row_ < 0) return;
    dp_row0_ = dp_row_;
    const std::int64_t E = best_e;
    dp_excess_ = E;
    dp_units_.assign(cp_.cost.size(), 0);
    // multipliers of the other rows: from the first (fully searched) surrogate LP, kept across rounds
    if (lambda0_.empty()) {
      lambda0_.assign(static_cast<std::size_t>(K_), 0.0);
      for (int k = 0; k < K_; ++k) lambda0_[static_cast<std::size_t>(k)] = lambda_ * w_[static_cast<std::size_t>(k)];
    }
    dp_lambda_ = lambda0_;
    dp_lambda_[static_cast<std::size_t>(dp_row_)] = 0.0;
    for (int grp : free_) {
      std::int64_t m = std::numeric_limits<std::int64_t>::max();
      for (int j : act_[static_cast<std::size_t>(grp)]) m = std::min(m, iuse(j, dp_row_));
      for (int j : act_[static_cast<std::size_t>(grp)]) dp_units_[static_cast<std::size_t>(j)] = (iuse(j, dp_row_) - m) / best_g;
    }
    dp_pen_.assign(cp_.cost.size(), 0.0);
    dp_L0_ = 0.0;
    for (int k = 0; k < K_; ++k) dp_L0_ += dp_lambda_[static_cast<std::size_t>(k)] * static_cast<double>(rb_[static_cast<std::size_t>(k)]);
    for (int grp : free_)
      for (int j : act_[static_cast<std::size_t>(grp)]) {
        double v = 0.0;
        for (int k = 0; k < K_; ++k) v += dp_lambda_[static_cast<std::size_t>(k)] * use_k(j, k);
        dp_pen_[static_cast<std::size_t>(j)] = v;
      }
    // no fill: the last row is 0, every other row starts as a copy of the next one shifted by an option of zero
    // excess (each class has one: units count the use above the class minimum)
    table_ = table_buf_.get(static_cast<std::size_t>((nf + 1) * (E + 1)));
    std::fill(table_ + nf * (E + 1), table_ + (nf + 1) * (E + 1), 0.0);
    for (std::int64_t d = nf - 1; d >= 0; --d)
      dp_row(&table_[static_cast<std::size_t>(d * (E + 1))], &table_[static_cast<std::size_t>((d + 1) * (E + 1))],
             order_[static_cast<std::size_t>(d)], false);
    side_ = 0;
  }

  // Side tables: the DP bound with the other rows' multipliers scaled by 0.9 and 1.1 (any non-negative multipliers
  // give a valid Lagrangian bound, and deep in the tree the best ones differ from the root's). A candidate's DP
  // bound is the maximum over the main table and these. They are built during a branch and bound (the table does
  // not change in it) once it has run side_after() nodes, about as much work as building them (two tables cost
  // roughly one node per 256 cells): a search that ends sooner does not pay for them, a longer one at most doubles
  // the spending. On LIMPQ's ResNet-50 sweep they cut the node count by 41 %.
  static constexpr int side_max = 2;
  static constexpr double side_factor(int t) { return t == 0 ? 0.9 : 1.1; }
  std::int64_t side_after() const {
    return std::max<std::int64_t>(64, (static_cast<std::int64_t>(order_.size()) + 1) * (dp_excess_ + 1) / 256);
  }
  int side_ = 0;                 // side tables built for the current table_
  dp::Buffer side_buf_;
  double* side_tab_ = nullptr;   // side_ tables of (nf + 1) * (E + 1) entries, one after the other
  std::vector<double> side_pen_;

  void build_side_tables() {
    const std::int64_t nf = static_cast<std::int64_t>(order_.size()), E = dp_excess_;
    const std::size_t cells = static_cast<std::size_t>((nf + 1) * (E + 1));
    side_tab_ = side_buf_.get(side_max * cells);
    side_pen_ = dp_pen_;
    for (int t = 0; t < side_max; ++t) {
      const double f = side_factor(t);
      for (int grp : free_)
        for (int j : act_[static_cast<std::size_t>(grp)])
          dp_pen_[static_cast<std::size_t>(j)] = f * side_pen_[static_cast<std::size_t>(j)];
      double* tb = side_tab_ + static_cast<std::size_t>(t) * cells;
      std::fill(tb + nf * (E + 1), tb + (nf + 1) * (E + 1), 0.0);
      for (std::int64_t d = nf - 1; d >= 0; --d)
        dp_row(&tb[static_cast<std::size_t>(d * (E + 1))], &tb[static_cast<std::size_t>((d + 1) * (E + 1))],
               order_[static_cast<std::size_t>(d)], false);
    }
    dp_pen_.swap(side_pen_);
    side_ = side_max;
  }

  // One DP row over the options of group grp (values cost + dp_pen_). Backward (table_): out[e] = min over options of
  // v + in[e - u] for e >= u. Reversed (fwd_, indexed by E - e): out[i] = min over options of v + in[i + u] for
  // i <= E - u. Entries no option reaches are +inf. With the options in increasing u, the stretch between two
  // consecutive u values has a fixed prefix of them: each stretch is one pass of dp::rows over that prefix.
  // Table rows are monotone (more excess never costs more), so an option with more units and no smaller value than
  // an earlier one never gives the minimum (its term is no smaller after rounding too): only the options whose value
  // falls as u rises take part.
  std::vector<std::pair<std::int64_t, double>> row_opts_;
  std::vector<double> row_v_;
  std::vector<std::int64_t> row_off_;
  void dp_row(double* out, const double* in, int grp, bool reversed) {
    const std::int64_t E = dp_excess_;
    row_opts_.clear();
    for (int j : act_[static_cast<std::size_t>(grp)]) {
      const std::int64_t u = dp_units_[static_cast<std::size_t>(j)];
      if (u <= E) row_opts_.emplace_back(u, cp_.cost[static_cast<std::size_t>(j)] + dp_pen_[static_cast<std::size_t>(j)]);
    }
    std::sort(row_opts_.begin(), row_opts_.end());
    std::size_t kept = 0;
    for (const auto& o : row_opts_)
      if (kept == 0 || o.second < row_opts_[kept - 1].second) row_opts_[kept++] = o;
    row_opts_.resize(kept);
    const int m = static_cast<int>(row_opts_.size());
    row_v_.resize(static_cast<std::size_t>(m));
    row_off_.resize(static_cast<std::size_t>(m));
    for (int j = 0; j < m; ++j) {
      row_v_[static_cast<std::size_t>(j)] = row_opts_[static_cast<std::size_t>(j)].second;
      row_off_[static_cast<std::size_t>(j)] = reversed ? row_opts_[static_cast<std::size_t>(j)].first : -row_opts_[static_cast<std::size_t>(j)].first;
    }
    const double inf = std::numeric_limits<double>::infinity();
    if (m == 0) {
      std::fill(out, out + E + 1, inf);
      return;
    }
    // stretch k: options 0..k reach it; backward [u_k, u_{k+1}), reversed (E - u_{k+1}, E - u_k]
    const std::int64_t u0 = row_opts_[0].first;
    if (reversed)
      std::fill(out + (E + 1 - u0), out + E + 1, inf);
    else
      std::fill(out, out + u0, inf);
    for (int k = 0; k < m; ++k) {
      const std::int64_t a = row_opts_[static_cast<std::size_t>(k)].first;
      const std::int64_t b = k + 1 < m ? row_opts_[static_cast<std::size_t>(k) + 1].first : E + 1;
      if (a == b) continue;
      if (reversed)
        dp::rows(out, in, E + 1 - b, E + 1 - a, row_v_.data(), row_off_.data(), k + 1, avx2_);
      else
        dp::rows(out, in, a, b, row_v_.data(), row_off_.data(), k + 1, avx2_);
    }
  }

  void lagrangian() {
    delta_.assign(cp_.cost.size(), 0.0);
    lag_ = -lambda_ * R_;
    for (int g : free_) {
      double m = std::numeric_limits<double>::infinity();
      for (int j : act_[static_cast<std::size_t>(g)])
        m = std::min(m, cp_.cost[static_cast<std::size_t>(j)] + lambda_ * s_[static_cast<std::size_t>(j)]);
      for (int j : act_[static_cast<std::size_t>(g)])
        delta_[static_cast<std::size_t>(j)] = cp_.cost[static_cast<std::size_t>(j)] + lambda_ * s_[static_cast<std::size_t>(j)] - m;
      lag_ += m;
    }
  }

  // Reduced-cost fixing; returns true if some option was removed.
  bool reduced_cost_fixing() {
    if (!std::isfinite(cut_)) return false;
    bool changed = false;
    const double limit = cut_;
    for (int g : free_) {
      std::vector<int>& a = act_[static_cast<std::size_t>(g)];
      const std::size_t before = a.size();
      a.erase(std::remove_if(a.begin(), a.end(), [&](int j) { return lag_ + delta_[static_cast<std::size_t>(j)] >= limit; }), a.end());
      if (a.size() != before) changed = true;
    }
    if (changed) lp_current_ = false;
    return changed;
  }

  // Node LP: the open classes at depth d are always order_[d..], so each depth gets the running sums of its classes'
  // hull segments in efficiency order and a node's LP is one binary search. When those arrays would exceed
  // node_lp_sums_limit entries, a Fenwick tree over all segments, updated as classes are entered and left, gives
  // the same sums.
  bool sfx_ = false;
  std::vector<std::size_t> sfx_off_;                      // per depth: first entry
  // running ds and gain (inclusive), ds and gain: four arrays of the same length in sfx_buf_ (kept per thread
  // between solves like the DP tables: fresh memory at every solve cost page faults)
  dp::Buffer sfx_buf_;
  double *sfx_cds_ = nullptr, *sfx_cg_ = nullptr, *sfx_ds_ = nullptr, *sfx_gain_ = nullptr;
  std::vector<int> depth_of_;

  double node_lp(int d, double r_sur) const {
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

  void remove_group(int g, double sign) {
    for (int p : seg_of_[static_cast<std::size_t>(g)]) {
      const Segment& sg = seg_[static_cast<std::size_t>(p)];
      fs_.add(static_cast<std::size_t>(p), sign * sg.ds);
      fg_.add(static_cast<std::size_t>(p), sign * sg.gain);
      cur_ds_[static_cast<std::size_t>(p)] = sign > 0 ? sg.ds : 0.0;
      cur_gain_[static_cast<std::size_t>(p)] = sign > 0 ? sg.gain : 0.0;
    }
  }

  bool limits_hit() {
    if (opt_.node_limit > 0 && nodes_ >= opt_.node_limit) return true;
    if (opt_.time_limit_seconds > 0 && (nodes_ & 255) == 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count() > opt_.time_limit_seconds)
      return true;
    return false;
  }

  // Forward table, reversed: fwd_[d * (E + 1) + E - e] = min over classes order_[0..d-1] with excess <= e.
  dp::Buffer fwd_buf_;
  double* fwd_ = nullptr;

  void build_forward() {
    const std::int64_t nf = static_cast<std::int64_t>(order_.size()), E = dp_excess_;
    fwd_ = fwd_buf_.get(static_cast<std::size_t>((nf + 1) * (E + 1)));
    std::fill(fwd_, fwd_ + (E + 1), 0.0);
    for (std::int64_t d = 0; d < nf; ++d)
      dp_row(&fwd_[static_cast<std::size_t>((d + 1) * (E + 1))], &fwd_[static_cast<std::size_t>(d * (E + 1))],
             order_[static_cast<std::size_t>(d)], true);
  }

  // Root bound of the DP relaxation (without const).
  double dp_root() const { return table_[static_cast<std::size_t>(dp_excess_)] - dp_L0_; }

  // Removes every option whose DP-relaxation bound with the option forced is >= incumbent - tol.
  // Sets empty when a class loses every option (then nothing cheaper than the cutoff exists).
  bool dp_fixing(bool& empty) {
    if (dp_row_ < 0 || !std::isfinite(cut_)) return false;
    build_forward();
    const std::int64_t E = dp_excess_;
    const double limit = cut_ + dp_L0_;
    bool changed = false;
    dp_path(&path_rem_);
    for (std::size_t d = 0; d < order_.size(); ++d) {
      const int grp = order_[d];
      // with option j forced (u units): min over e1 + e2 = E - u of forward(e1) + backward(e2); in the reversed
      // forward row, forward(E - u - e2) sits at index u + e2, so this is one contiguous sum-and-minimum. The split
      // of the relaxation's optimal path (r units left before this class) gives one term of it, fr[r] + t[r - u]:
      // when that is already below the limit the option stays without the scan
      const double* fr = &fwd_[d * static_cast<std::size_t>(E + 1)];
      const double* t = &table_[(d + 1) * static_cast<std::size_t>(E + 1)];
      const std::int64_t r = path_rem_[d];
      std::vector<int>& a = act_[static_cast<std::size_t>(grp)];
      const std::size_t before = a.size();
      a.erase(std::remove_if(a.begin(), a.end(), [&](int j) {
                const std::int64_t u = dp_units_[static_cast<std::size_t>(j)];
                if (u > E) return true;
                const double v = cp_.cost[static_cast<std::size_t>(j)] + dp_pen_[static_cast<std::size_t>(j)];
                if (u <= r && v + (fr[r] + t[r - u]) < limit) return false;
                return v + dp::min_sum(fr + u, t, E + 1 - u, avx2_) >= limit;
              }),
              a.end());
      if (a.empty()) {
        empty = true;
        lp_current_ = false;
        return changed;
      }
      if (a.size() != before) changed = true;
    }
    if (changed) lp_current_ = false;
    return changed;
  }

  // The optimal solution of the DP relaxation (meets row A exactly), as a heuristic start. rem: if given, the units
  // of row A the path has left before each depth.
  std::vector<std::int64_t> path_rem_;
  std::vector<int> dp_path(std::vector<std::int64_t>* rem = nullptr) const {
    std::vector<int> cur = fixed_choice_;
    std::int64_t e = dp_excess_;
    const std::int64_t E = dp_excess_;
    if (rem) rem->resize(order_.size());
    for (std::size_t d = 0; d < order_.size(); ++d) {
      const int grp = order_[d];
      if (rem) (*rem)[d] = e;
      const double* t = &table_[(d + 1) * static_cast<std::size_t>(E + 1)];
      double best = std::numeric_limits<double>::infinity();
      int bj = act_[static_cast<std::size_t>(grp)][0];
      for (int j : act_[static_cast<std::size_t>(grp)]) {
        const std::int64_t u = dp_units_[static_cast<std::size_t>(j)];
        if (u > e) continue;
        const double v = cp_.cost[static_cast<std::size_t>(j)] + dp_pen_[static_cast<std::size_t>(j)] + t[e - u];
        if (v < best) { best = v; bj = j; }
      }
      cur[static_cast<std::size_t>(grp)] = bj;
      e -= std::min(e, dp_units_[static_cast<std::size_t>(bj)]);
    }
    return cur;
  }

  void set_order() {
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

  std::vector<std::vector<std::pair<double, int>>> cand_;  // per depth: (bound, option)

  // KC: the number of rows when known at compile time (2), else 0 (K_).
  template <int KC>
  void dfs(int d, double cost, double sur, double dsum, double pen) {
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

  std::int64_t bb_start_ = 0;    // nodes_ when the current branch and bound started
  std::int64_t side_after_ = 0;  // its side_after()
  bool dp_current_ = false;  // order_ and the DP table match act_ (built in the last root round, nothing fixed since)

  void branch_and_bound() {
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

  // Root fixing rounds under the current cutoff: surrogate LP, reduced-cost fixing, DP bound and DP fixing, row
  // filtering. Returns true when nothing cheaper than the cutoff is left (the attempt is then complete).
  double round0_bound_ = 0.0;  // bound of round 0 of the last root_rounds (with const)
  int max_rounds_ = 4;
  bool root_rounds() {
    dp_current_ = false;
    bool dp_large = false;  // a large table was built: later rounds fix with the LP only, the B&B rebuilds it
    bool first_dp = true;   // the first round that reaches the DP also takes the relaxation's path as an incumbent
    int lp_rounds = 0;      // rounds that fixed with the LP alone before a table (threshold attempts)
    for (int round = 0, iter = 0;; ++round, ++iter) {
      if (free_.empty()) {
        offer(fixed_choice_);
        return true;
      }
      // round 0 right after the multiplier search or at the start of an attempt: the LP is already there
      const double lp = lp_current_ ? lp_value_ : choose_weights(false);
      if (std::isinf(lp)) return true;  // the surrogate is infeasible: nothing cheaper than the incumbent exists
      lagrangian();
      if (iter == 0) round0_bound_ = std::max(lp, lag_) + const_cost_;
      if (std::max(lp, lag_) >= cut_) return true;
      bool changed = reduced_cost_fixing();
      if (!dp_small_ && changed && !dp_large && lp_rounds < 3) {
        // In the attempts (tables of up to 2^18 entries): LP fixing to a fixpoint first (at most 3 extra rounds), so
        // that the table is built over fewer options, often exact instead of coarse. Before the attempts the tables
        // are small and the relaxation's path is wanted early as an incumbent.
        ++lp_rounds;
        --round;
        std::int64_t unused = 0;
        if (row_filter(unused) >= 0) return true;
        fold_constants();
        continue;
      }
      if (dp_large) {
        if (round == max_rounds_ - 1 || !changed) return false;
        std::int64_t unused = 0;
        if (row_filter(unused) >= 0) return true;
        fold_constants();
        continue;
      }
      set_order();
      build_dp_table();
      if (dp_infeasible_) return true;
      const bool path = first_dp;
      first_dp = false;
      if (dp_row_ >= 0) {
        if (path) {
          heuristic_from(dp_path());
          if (iter == 0) round0_bound_ = std::max(round0_bound_, dp_root() + const_cost_);
        }
        if (dp_root() >= cut_) return true;
        // DP fixing costs about one table per round: only when the table is small
        std::size_t active = 0;
        for (int g : free_) active += act_[static_cast<std::size_t>(g)].size();
        const double cost = static_cast<double>(dp_excess_ + 1) * static_cast<double>(active);
        dp_large = cost > 262144.0;
        if (cost <= 131072.0) {
          bool empty = false;
          changed = dp_fixing(empty) || changed;
          if (empty) return true;
        }
      }
      dp_current_ = !changed;
      if (round == max_rounds_ - 1 || !changed) return false;
      // the fixed problem keeps every solution cheaper than the cutoff
      std::int64_t unused = 0;
      if (row_filter(unused) >= 0) return true;
      fold_constants();
    }
  }

  Solution run_impl(const std::vector<int>* warm) {
    const int G = cp_.groups();
    const double inf = std::numeric_limits<double>::infinity();
    act_.resize(static_cast<std::size_t>(G));  // every entry is overwritten (inner vectors keep their memory)
    for (int g = 0; g < G; ++g) {
      std::vector<int>& a = act_[static_cast<std::size_t>(g)];
      a.resize(static_cast<std::size_t>(cp_.begin[static_cast<std::size_t>(g) + 1] - cp_.begin[static_cast<std::size_t>(g)]));
      std::iota(a.begin(), a.end(), cp_.begin[static_cast<std::size_t>(g)]);
    }
    std::int64_t min_use = 0;
    const int bad = row_filter(min_use);
    if (bad >= 0) return min_use >= 0 ? infeasible(bad, min_use) : infeasible(-1, 0);
    fold_constants();
    if (warm && static_cast<int>(warm->size()) == G) offer(*warm);
    double root = -inf;  // proven lower bound (with const)
    bool proven = false;
    if (free_.empty()) {
      offer(fixed_choice_);
      proven = true;
    } else {
      const double lp = choose_weights(true);
      if (std::isinf(lp)) {
        proven = true;  // the surrogate is infeasible: no solution better than the incumbent exists
      } else {
        heuristic();
        if (warm && static_cast<int>(warm->size()) == G) heuristic_from(repair_start(*warm));
        lagrangian();
        root = std::max(lp, lag_) + const_cost_;
        proven = root - const_cost_ >= cut_;
      }
    }
    if (!proven) {
      // root fixing against the incumbent: the fixed problem keeps every solution cheaper than the incumbent
      dp_small_ = true;
      proven = root_rounds();
      dp_small_ = false;
      if (!proven) root = std::max(root, std::min(round0_bound_, ub_ + const_cost_));
    }
    if (!proven) {
      // Attempts with rising thresholds T (iterative deepening on the bound): an attempt searches only for
      // solutions cheaper than min(incumbent, T), so fixing and pruning are much stronger while T is close to the
      // root bound. An attempt that ends with incumbent <= T has searched everything below the incumbent (optimal);
      // otherwise it proved that no solution is cheaper than T - tol, and the next attempt uses a larger T. The
      // last attempt has T = +inf (the plain search).
      std::vector<std::vector<int>>& act0 = act0_;
      act0 = act_;
      const std::vector<int> free0 = free_, fixed0 = fixed_choice_;
      const bool lp0 = lp_current_;  // the root rounds ended without fixing anything: their last LP is act0's
      LpSnapshot& snap = snap_;
      if (lp0) save_lp(snap);
      const std::vector<std::int64_t> rb0 = rb_;
      const double const0 = const_cost_;
      std::vector<double> thresholds;
      const double gap = ub_ + const_cost_ - root;
      for (double f : threshold_fractions()) thresholds.push_back(root + gap * f);
      thresholds.push_back(inf);
      for (std::size_t a = 0; a < thresholds.size(); ++a) {
        thr_ = thresholds[a];
        if (std::isfinite(thr_) && thr_ >= ub_ + const_cost_) continue;  // not below the incumbent
        const double ub_abs = ub_ + const_cost_;
        act_ = act0;
        free_ = free0;
        fixed_choice_ = fixed0;
        rb_ = rb0;
        const_cost_ = const0;
        ub_ = ub_abs - const_cost_;
        update_cut();
        if (lp0) load_lp(snap);
        else lp_current_ = false;
        if (!root_rounds()) branch_and_bound();
        if (aborted_ || ub_ + const_cost_ <= thr_) break;
        root = std::max(root, thr_ - opt_.relative_tolerance * std::max(1.0, std::fabs(thr_)));
      }
      thr_ = inf;
      update_cut();
    }
    Solution s;
    if (!std::isfinite(ub_)) {
      if (aborted_) {
        s.status = Status::unknown;
        s.bound = root;
        return s;
      }
      return infeasible(-1, 0);  // joint infeasibility: analysed by the caller
    }
    best_choice = inc_;
    s.status = aborted_ ? Status::feasible : Status::optimal;
    s.objective = ub_ + const_cost_;
    s.bound = aborted_ ? std::min(root, s.objective) : s.objective;
    s.gap = s.objective - s.bound;
    return s;
  }

  // Thresholds of the attempts, as fractions of the gap between the root bound and the first incumbent.
  static std::vector<double> threshold_fractions() { return {0.1, 0.25, 0.5}; }
};

/// K = 2: where a solve's multiplier search starts (a sweep predicts it from its last solves) and where it ended.
struct AngleHint {
  double start = std::numeric_limits<double>::quiet_NaN();  ///< in: the angle to start from (NaN: none)
  double step = 0.0;                                        ///< in: the first step away from it
  double found = std::numeric_limits<double>::quiet_NaN();  ///< out: the angle found (unchanged if no search ran)
};

/// Solves one budget vector of a compiled problem; choice is filled per group. Handles joint infeasibility by
/// finding the first row k whose minimum use subject to rows 0..k-1 exceeds its budget.
inline Solution solve_compiled(const Compiled& cp, const std::vector<std::int64_t>& budgets, const SolveOptions& opt,
                               const std::vector<int>* warm, std::vector<int>& group_choice,
                               AngleHint* angle = nullptr) {
  Engine e(cp, budgets, opt);
  if (angle) e.set_angle(angle->start, angle->step);
  Solution s = e.run(warm);
  group_choice = e.best_choice;
  if (angle && std::isfinite(e.angle())) angle->found = e.angle();
  if (s.status == Status::infeasible && s.infeasible_resource < 0) {
    for (int k = 1; k < cp.K; ++k) {
      Compiled sub;
      sub.K = k;
      sub.n_classes = cp.n_classes;
      sub.members = cp.members;
      sub.group_of = cp.group_of;
      sub.begin = cp.begin;
      sub.option = cp.option;
      for (std::size_t j = 0; j < cp.cost.size(); ++j) {
        sub.cost.push_back(static_cast<double>(cp.use[j * static_cast<std::size_t>(cp.K) + static_cast<std::size_t>(k)]));
        for (int r = 0; r < k; ++r) sub.use.push_back(cp.use[j * static_cast<std::size_t>(cp.K) + static_cast<std::size_t>(r)]);
      }
      dominance_filter(sub);
      std::vector<int> dummy;
      SolveOptions o;
      o.relative_tolerance = 0.0;
      const Solution m = solve_compiled(sub, std::vector<std::int64_t>(budgets.begin(), budgets.begin() + k), o,
                                        nullptr, dummy);
      if (m.status == Status::infeasible) {
        s.infeasible_resource = m.infeasible_resource;
        s.minimum_use = m.minimum_use;
        break;
      }
      const std::int64_t v = std::llround(m.objective);
      if (v > budgets[static_cast<std::size_t>(k)]) {
        s.infeasible_resource = k;
        s.minimum_use = v;
        break;
      }
    }
  }
  return s;
}

/// Fills choice, objective and use of a solution from per-group choices, summing in class order.
inline void expand_solution(const Problem& p, const Compiled& cp, const std::vector<int>& group_choice, Solution& s) {
  if (group_choice.empty()) return;
  s.choice.assign(p.classes.size(), -1);
  s.use.assign(p.budgets.size(), 0);
  double obj = 0.0;
  for (std::size_t c = 0; c < p.classes.size(); ++c) {
    const int j = cp.option[static_cast<std::size_t>(group_choice[static_cast<std::size_t>(cp.group_of[c])])];
    s.choice[c] = j;
    const Option& o = p.classes[c].options[static_cast<std::size_t>(j)];
    obj += o.cost;
    for (std::size_t k = 0; k < p.budgets.size(); ++k) s.use[k] += o.use[k];
  }
  s.objective = obj;
  if (s.status == Status::optimal) s.bound = obj;
  s.gap = std::max(0.0, s.objective - s.bound);
}

}  // namespace detail

namespace detail {

/// Solves a compiled problem for one budget vector (checked here) and fills the per-class solution.
/// angle: see AngleHint.
inline Solution solve_problem(const Problem& problem, const Compiled& compiled,
                              const std::vector<std::int64_t>& budgets, const SolveOptions& options,
                              const std::vector<int>* warm_start, AngleHint* angle = nullptr) {
  if (budgets.size() != problem.budgets.size())
    mixq::detail::fail("solve: expected K=", problem.budgets.size(), " budgets, got ", budgets.size());
  for (std::size_t k = 0; k < budgets.size(); ++k)
    if (budgets[k] < 0) mixq::detail::fail("solve: budget of ", problem.resource_name(k), " is negative: ", budgets[k]);
  if (!(options.relative_tolerance >= 0.0) || !(options.time_limit_seconds >= 0.0) || options.node_limit < 0)
    mixq::detail::fail("solve: limits and tolerance must be non-negative, got relative_tolerance=",
                       options.relative_tolerance, " time_limit_seconds=", options.time_limit_seconds,
                       " node_limit=", options.node_limit);
  std::vector<int> warm_groups;
  const std::vector<int>* warm = nullptr;
  if (warm_start && warm_start->size() == problem.classes.size()) {
    // map class choices to compiled option indices
    warm_groups.assign(static_cast<std::size_t>(compiled.groups()), -1);
    bool ok = true;
    for (int g = 0; g < compiled.groups() && ok; ++g) {
      const int want = (*warm_start)[static_cast<std::size_t>(compiled.members[static_cast<std::size_t>(g)][0])];
      for (int j = compiled.begin[static_cast<std::size_t>(g)]; j < compiled.begin[static_cast<std::size_t>(g) + 1]; ++j)
        if (compiled.option[static_cast<std::size_t>(j)] == want) warm_groups[static_cast<std::size_t>(g)] = j;
      ok = warm_groups[static_cast<std::size_t>(g)] >= 0;
    }
    if (ok) warm = &warm_groups;
  }
  std::vector<int> group_choice;
  Solution s = solve_compiled(compiled, budgets, options, warm, group_choice, angle);
  expand_solution(problem, compiled, group_choice, s);
  return s;
}

}  // namespace detail

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
