#pragma once
/// @file
/// The state of one solve of a compiled problem for one budget vector: class Engine. Its members are grouped by the
/// concept that owns them, and each group names the header of solver/ that defines its functions (presolve,
/// LP relaxation, multiplier search, heuristics, DP bound, fixing, branch and bound, the solve itself); every
/// concept reads the shared state declared here: the active options act_, the free groups, the residual budgets
/// rb_, the incumbent and the cutoff cut_. This header defines only the constructor and destructor, which take and
/// give back the per-thread memory, and the cutoff. Uses: compile.hpp (Compiled), buffers.hpp (dp::Buffer,
/// Scratch, Segment, LpSnapshot), kernels.hpp (dp::wide_rows), mixq/search/solution.hpp (Solution, SolveOptions).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "mixq/search/solution.hpp"
#include "mixq/search/solver/buffers.hpp"
#include "mixq/search/solver/compile.hpp"
#include "mixq/search/solver/kernels.hpp"

namespace mixq::search::detail {

/// Fenwick tree over doubles (prefix sums of hull-segment lengths and gains).
struct Fenwick {
  std::vector<double> t;
  void reset(std::size_t n) { t.assign(n + 1, 0.0); }
  void add(std::size_t i, double v) {
    for (++i; i < t.size(); i += i & (~i + 1)) t[i] += v;
  }
};

/// One solve of a compiled problem for one budget vector (see the method in mixq/search/solver.hpp).
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

  // ---- LP relaxation (lp_relaxation.hpp) ----
  std::vector<double> w_;              // surrogate weight per row (mu_k / max(rb_k, 1))
  double R_ = 0.0;                     // surrogate budget
  std::vector<double> s_;              // surrogate use per option
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
  void save_lp(LpSnapshot& a) const;
  void load_lp(const LpSnapshot& a);

  // ---- memory kept per thread between solves (buffers.hpp; taken and given back below) ----
  std::vector<std::vector<int>> act0_;  // run_impl: the active options after the root rounds
  LpSnapshot snap_;                     // run_impl: their LP
  void swap_scratch(Scratch& x);
  void take_scratch();
  void give_scratch();

  // ---- the cutoff ----
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

  // ---- presolve (row_filter.hpp) ----
  int row_filter(std::int64_t& min_use_out);
  void fold_constants();

  // ---- LP relaxation, continued (lp_relaxation.hpp) ----
  // The free groups' active options for the LP, flat and by row (filled at the start of every multiplier choice,
  // read by each of its LP evaluations): per free group free_[i], entries lpo_[i] .. lpo_[i + 1] - 1, in increasing
  // cost order (as act_).
  std::vector<int> lpo_, lpid_;
  std::vector<double> lpc_, lpu_, lps_;  // cost; use (row k at k * n + entry); surrogate use (scratch)
  std::vector<int> hs_;                  // hull scratch
  void gather_lp();
  static int lower_hull(const double* c, const double* sv, int b, int e, int* h);
  void push_segments(const int* h, int m, int g, const double* c, const double* sv, const double* u, std::size_t n);
  double build_lp(const std::vector<double>& w, bool value_only = false);
  double greedy_value(double base_s, double base_c);
  double s_tol() const { return 1e-9 * (std::fabs(R_) + 1.0); }

  // the value-only LP's bracket (bracket_value)
  double lam_hint_ = -1.0;    // multiplier of the last value-only LP (<= 0: none)
  double lam_margin_ = 0.1;
  std::vector<int> br_lo_, br_hi_;  // per free group: the minimisers at lo and hi
  bool bracket_value(double& v);

  // ---- heuristics (heuristics.hpp) ----
  bool feasible(const std::vector<int>& choice, double& cost) const;
  void offer(const std::vector<int>& choice);
  void heuristic();
  std::vector<int> repair_start(const std::vector<int>& warm) const;
  std::vector<std::pair<double, std::size_t>> repair_heap_;  // heuristic_from's lazy max-heap
  void heuristic_from(std::vector<int> cur);
  void improve(std::vector<int>& cur, std::vector<std::int64_t>& tot);

  // ---- multiplier search (multiplier_search.hpp) ----
  std::vector<double> phi_;  // the multipliers' angles
  std::vector<double> mu_of(const std::vector<double>& ph) const;
  double eval_weights(const std::vector<double>& ph, bool value_only = true);
  bool warm_angle_ = false;  // set_angle: start from phi_[1], stepping by warm_step_ to a bracket
  double warm_step_ = 0.0;

 public:
  /// K = 2: start the multiplier search at angle a, first stepping by step (see bisect_weights); ignored otherwise.
  void set_angle(double a, double step);
  /// K = 2: the angle of the root multipliers after the solve (NaN when no search ran).
  double angle() const { return K_ == 2 && phi_.size() == 2 ? phi_[1] : std::numeric_limits<double>::quiet_NaN(); }

 private:
  double bisect_weights();
  double choose_weights(bool search);

  // ---- branch and bound (branch_and_bound.hpp), with the reduced costs of fixing.hpp ----
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
  // ---- DP bound (dp_bound.hpp) ----
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

  static std::int64_t gcd64(std::int64_t a, std::int64_t b);
  bool dp_infeasible_ = false;
  bool dp_small_ = false;
  int dp_row0_ = -1;  // the DP row, chosen once (smallest excess) and kept across rounds
  std::vector<double> lambda0_;  // per row: lambda * w of the first surrogate LP

  void build_dp_table();
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

  void build_side_tables();
  std::vector<std::pair<std::int64_t, double>> row_opts_;  // dp_row's options, values and offsets
  std::vector<double> row_v_;
  std::vector<std::int64_t> row_off_;
  void dp_row(double* out, const double* in, int grp, bool reversed);

  // ---- fixing (fixing.hpp) ----
  void lagrangian();
  bool reduced_cost_fixing();

  // ---- node LP of the branch and bound (branch_and_bound.hpp) ----
  bool sfx_ = false;
  std::vector<std::size_t> sfx_off_;                      // per depth: first entry
  // running ds and gain (inclusive), ds and gain: four arrays of the same length in sfx_buf_ (kept per thread
  // between solves like the DP tables: fresh memory at every solve cost page faults)
  dp::Buffer sfx_buf_;
  double *sfx_cds_ = nullptr, *sfx_cg_ = nullptr, *sfx_ds_ = nullptr, *sfx_gain_ = nullptr;
  std::vector<int> depth_of_;

  double node_lp(int d, double r_sur) const;
  void remove_group(int g, double sign);
  bool limits_hit();

  // ---- DP bound, continued (dp_bound.hpp; dp_fixing in fixing.hpp) ----
  // Forward table, reversed: fwd_[d * (E + 1) + E - e] = min over classes order_[0..d-1] with excess <= e.
  dp::Buffer fwd_buf_;
  double* fwd_ = nullptr;

  void build_forward();
  // Root bound of the DP relaxation (without const).
  double dp_root() const { return table_[static_cast<std::size_t>(dp_excess_)] - dp_L0_; }

  bool dp_fixing(bool& empty);
  std::vector<std::int64_t> path_rem_;  // dp_path's units left per depth (DP fixing)
  std::vector<int> dp_path(std::vector<std::int64_t>* rem = nullptr) const;


  // ---- branch and bound, continued (branch_and_bound.hpp) ----
  void set_order();
  std::vector<std::vector<std::pair<double, int>>> cand_;  // per depth: (bound, option)

  template <int KC>
  void dfs(int d, double cost, double sur, double dsum, double pen);

  std::int64_t bb_start_ = 0;    // nodes_ when the current branch and bound started
  std::int64_t side_after_ = 0;  // its side_after()
  bool dp_current_ = false;  // order_ and the DP table match act_ (built in the last root round, nothing fixed since)

  void branch_and_bound();

  // ---- root fixing rounds (fixing.hpp) ----
  double round0_bound_ = 0.0;  // bound of round 0 of the last root_rounds (with const)
  int max_rounds_ = 4;
  bool root_rounds();

  // ---- one solve: root, rounds, threshold attempts (solve_compiled.hpp) ----
  Solution run_impl(const std::vector<int>* warm);

  // Thresholds of the attempts, as fractions of the gap between the root bound and the first incumbent.
  static std::vector<double> threshold_fractions() { return {0.1, 0.25, 0.5}; }
};

inline void Engine::swap_scratch(Scratch& x) {
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

inline void Engine::take_scratch() {
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

inline void Engine::give_scratch() {
  std::vector<Scratch>& st = scratch_stash();
  if (st.size() >= 2) return;
  st.emplace_back();
  swap_scratch(st.back());
}

}  // namespace mixq::search::detail
