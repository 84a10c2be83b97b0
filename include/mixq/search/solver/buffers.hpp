#pragma once
/// @file
/// Memory kept per thread between solves (fresh memory at every solve costs page faults and allocations: a sweep
/// solves the same problem for many budgets): dp::Buffer, the uninitialised memory of a DP table (and of the node
/// LP's running sums), and Scratch, the per-group vectors of one solve, handed from one Engine to the next on the
/// same thread (Engine's constructor takes them, its destructor gives them back: engine.hpp). Also the two LP types
/// Scratch holds: Segment, a hull segment of the LP relaxation, and LpSnapshot, a copy of that relaxation
/// (lp_relaxation.hpp). Uses nothing else of the solver.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace mixq::search::detail {

/// A segment of a group's lower convex hull in the surrogate LP: efficiency eff = gain / ds, surrogate use ds, cost
/// gain; du0, du1: the change of rows 0 and 1 (K = 2 only); group and position on its hull.
struct Segment { double eff, ds, gain, du0, du1; int group, pos; };

/// The LP relaxation's state (weights, surrogate uses and budget, multiplier, value, hulls, sorted segments, integer
/// part), saved after the root rounds and loaded at the start of each threshold attempt.
struct LpSnapshot {
  std::vector<double> w, s;
  double R = 0.0, lambda = 0.0, value = 0.0;
  std::vector<std::vector<int>> hull;
  std::vector<Segment> seg;
  std::vector<int> hull_pos;
};

namespace dp {

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

/// The per-group vectors of one solve (Engine's act_, act0_, hull_, sorted_, cand_, snap_, seg_, s_, delta_, the LP
/// arrays, the DP penalties and units, the hull scratch). The flat vectors are handed over empty (their uses resize
/// or assign them, as in a fresh solve); the per-group ones keep their entries, which a solve overwrites before
/// reading (act_ entirely, the others for every free group; entries of groups that are not free are not read).
struct Scratch {
  std::vector<std::vector<int>> act, act0, hull, sorted;
  std::vector<std::vector<std::pair<double, int>>> cand;
  LpSnapshot snap;
  std::vector<Segment> seg;
  std::vector<double> s, delta, lpc, lpu, lps, dp_pen, side_pen;
  std::vector<std::int64_t> dp_units;
  std::vector<int> lpo, lpid, hs;
};

/// This thread's kept Scratch sets (at most two: a solve and the infeasibility analysis it may start).
inline std::vector<Scratch>& scratch_stash() {
  thread_local std::vector<Scratch> st;
  return st;
}

}  // namespace mixq::search::detail
