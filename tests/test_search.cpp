// Tests of the search layer: cost model and network tables, problem validation, the exact solver against brute
// force on random instances, LIMPQ's published ResNet-50 instance, Pareto sweeps, width alignment, HAWQ costs.
#include <mixq/kernels.hpp>
#include <mixq/search.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace ms = mixq::search;

namespace {

// Random-instance count scale: MIXQ_SEARCH_TEST_SCALE (default 1; the sanitizer and qemu stages may lower it).
double test_scale() {
  const char* s = std::getenv("MIXQ_SEARCH_TEST_SCALE");
  return s ? std::max(0.01, std::atof(s)) : 1.0;
}

std::string data_path(const std::string& name) { return std::string(MIXQ_SHARED_DATA_DIR) + "/" + name; }

// ---------------------------------------------------------------------------------------------------------------
// Cost model and tables

TEST(SearchCostModel, TorchvisionTotals) {
  EXPECT_EQ(ms::total_parameters(ms::resnet18()), 11689512);
  EXPECT_EQ(ms::total_macs(ms::resnet18()), 1814073344);
  EXPECT_EQ(ms::total_parameters(ms::resnet50()), 25557032);
  EXPECT_EQ(ms::total_macs(ms::resnet50()), 4089184256);
  EXPECT_EQ(ms::total_parameters(ms::mobilenet_v2()), 3504872);
  EXPECT_EQ(ms::total_macs(ms::mobilenet_v2()), 300774272);
  EXPECT_EQ(ms::resnet18().size(), 21u);
  EXPECT_EQ(ms::resnet50().size(), 54u);
  EXPECT_EQ(ms::mobilenet_v2().size(), 53u);
}

TEST(SearchCostModel, ResNet50MatchesLimpqIndicatorColumns) {
  // The params and (exact) MACs columns of LIMPQ's file are the searchable layers of our table, in order.
  const ms::LayerTable t = ms::resnet50();
  const ms::LimpqIndicators ind = ms::read_limpq_indicators(data_path("limpq_r50_real.txt"));
  ASSERT_EQ(ind.params.size(), 52u);
  std::size_t l = 0;
  for (const ms::Layer& layer : t) {
    if (layer.fixed_bits) continue;
    EXPECT_EQ(ms::weight_count(layer), ind.params[l]) << layer.name;
    EXPECT_EQ(ms::macs(layer), ind.macs[l]) << layer.name;
    ++l;
  }
  EXPECT_EQ(t.front().fixed_bits, 8);
  EXPECT_EQ(t.back().fixed_bits, 8);
  EXPECT_EQ(ms::weight_count(t.front()), 9408);
  EXPECT_EQ(ms::weight_count(t.back()), 2048000);
}

TEST(SearchCostModel, LayerFormulas) {
  const ms::Layer c = ms::conv_layer("c", 64, 128, 3, 2, 1, 56, 56);
  EXPECT_EQ(ms::output_height(c), 28);
  EXPECT_EQ(ms::weight_count(c), 128 * 64 * 9);
  EXPECT_EQ(ms::parameter_count(c), 128 * 64 * 9 + 2 * 128);
  EXPECT_EQ(ms::macs(c), 128 * 64 * 9 * 28 * 28);
  EXPECT_EQ(ms::bit_operations(c, 4, 8), ms::macs(c) * 32);
  const ms::Layer d = ms::depthwise_conv_layer("d", 96, 3, 1, 1, 14, 14);
  EXPECT_EQ(ms::weight_count(d), 96 * 9);
  EXPECT_EQ(ms::macs(d), 96 * 9 * 14 * 14);
  const ms::Layer f = ms::linear_layer("f", 512, 10);
  EXPECT_EQ(ms::parameter_count(f), 5130);
  EXPECT_EQ(ms::macs(f), 5120);
  const ms::LayerTable t = ms::resnet18();
  const ms::BitPolicy p = ms::uniform_policy(t, 4, 4);
  EXPECT_EQ(ms::model_size_bits(t, p), 4 * ms::total_weights(t) + 4 * (9408 + 512000));
  EXPECT_NEAR(ms::average_bit_width(t, ms::uniform_policy(t, 8, 8)), 8.0, 1e-12);
  EXPECT_THROW(ms::weight_count(ms::conv_layer("bad", 10, 20, 3, 1, 1, 8, 8, true, false, 3)), mixq::error);
  EXPECT_THROW(ms::macs(ms::conv_layer("bad", 10, 20, 0, 1, 1, 8, 8)), mixq::error);
  EXPECT_THROW(ms::bit_operations(c, 0, 8), mixq::error);
  EXPECT_THROW(ms::network_by_name("vgg"), mixq::error);
}

// ---------------------------------------------------------------------------------------------------------------
// Brute force

struct Brute {
  bool feasible = false;
  double best = std::numeric_limits<double>::infinity();
  int bad_resource = -1;
  std::int64_t min_use = 0;
};

bool allowed_choice(const ms::Problem& p, const std::vector<int>& c) {
  for (const auto& t : p.ties)
    for (int x : t)
      if (c[static_cast<std::size_t>(x)] != c[static_cast<std::size_t>(t[0])]) return false;
  for (std::size_t i = 0; i < c.size(); ++i) {
    const ms::ChoiceClass& cl = p.classes[i];
    if (!cl.options[static_cast<std::size_t>(c[i])].allowed) return false;
    if (cl.fixed_option >= 0 && cl.fixed_option != c[i]) return false;
  }
  return true;
}

template <class F>
void for_each_choice(const ms::Problem& p, F&& f) {
  std::vector<int> c(p.classes.size(), 0);
  while (true) {
    if (allowed_choice(p, c)) f(c);
    std::size_t i = 0;
    while (i < c.size() && ++c[i] == static_cast<int>(p.classes[i].options.size())) c[i++] = 0;
    if (i == c.size()) return;
  }
}

std::vector<std::int64_t> uses_of(const ms::Problem& p, const std::vector<int>& c) {
  std::vector<std::int64_t> u(p.budgets.size(), 0);
  for (std::size_t i = 0; i < c.size(); ++i)
    for (std::size_t k = 0; k < u.size(); ++k) u[k] += p.classes[i].options[static_cast<std::size_t>(c[i])].use[k];
  return u;
}

Brute brute_force(const ms::Problem& p) {
  Brute r;
  const std::size_t K = p.budgets.size();
  for_each_choice(p, [&](const std::vector<int>& c) {
    const auto u = uses_of(p, c);
    for (std::size_t k = 0; k < K; ++k)
      if (u[k] > p.budgets[k]) return;
    double cost = 0;
    for (std::size_t i = 0; i < c.size(); ++i) cost += p.classes[i].options[static_cast<std::size_t>(c[i])].cost;
    r.feasible = true;
    r.best = std::min(r.best, cost);
  });
  if (r.feasible) return r;
  // the documented infeasibility report: the first row k whose minimum use subject to rows 0..k-1 exceeds b_k
  for (std::size_t k = 0; k < K; ++k) {
    std::int64_t m = std::numeric_limits<std::int64_t>::max();
    for_each_choice(p, [&](const std::vector<int>& c) {
      const auto u = uses_of(p, c);
      for (std::size_t r2 = 0; r2 < k; ++r2)
        if (u[r2] > p.budgets[r2]) return;
      m = std::min(m, u[k]);
    });
    if (m > p.budgets[k]) {
      r.bad_resource = static_cast<int>(k);
      r.min_use = m;
      break;
    }
  }
  return r;
}

ms::Problem random_problem(std::mt19937_64& rng, int K, int n, int max_options) {
  ms::Problem p;
  std::vector<std::int64_t> sum_min(static_cast<std::size_t>(K), 0), sum_max(static_cast<std::size_t>(K), 0);
  const bool integer_costs = rng() % 2 == 0;
  const bool correlated = rng() % 2 == 0;
  for (int c = 0; c < n; ++c) {
    const int m = 1 + static_cast<int>(rng() % static_cast<unsigned>(max_options));
    std::vector<ms::Option> opts;
    for (int j = 0; j < m; ++j) {
      ms::Option o;
      o.label = "o" + std::to_string(j);
      for (int k = 0; k < K; ++k) o.use.push_back(static_cast<std::int64_t>(rng() % 12));
      if (correlated) {
        o.cost = 20.0 - static_cast<double>(o.use[0]) + static_cast<double>(rng() % 5);
      } else {
        o.cost = integer_costs ? static_cast<double>(rng() % 20) - 5.0
                               : std::uniform_real_distribution<double>(-1.0, 5.0)(rng);
      }
      o.allowed = rng() % 6 != 0;
      opts.push_back(o);
    }
    bool any = false;
    for (const auto& o : opts) any = any || o.allowed;
    if (!any) opts[0].allowed = true;
    for (int k = 0; k < K; ++k) {
      std::int64_t lo = std::numeric_limits<std::int64_t>::max(), hi = 0;
      for (const auto& o : opts) {
        lo = std::min(lo, o.use[static_cast<std::size_t>(k)]);
        hi = std::max(hi, o.use[static_cast<std::size_t>(k)]);
      }
      sum_min[static_cast<std::size_t>(k)] += lo;
      sum_max[static_cast<std::size_t>(k)] += hi;
    }
    p.add_class("c" + std::to_string(c), opts);
  }
  for (int k = 0; k < K; ++k) {
    const std::int64_t lo = sum_min[static_cast<std::size_t>(k)], hi = sum_max[static_cast<std::size_t>(k)];
    p.budgets.push_back(std::max<std::int64_t>(0, lo - 1 + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(hi - lo + 2))));
  }
  if (n >= 2 && rng() % 3 == 0) {
    const int a = static_cast<int>(rng() % static_cast<unsigned>(n)), b = static_cast<int>(rng() % static_cast<unsigned>(n));
    if (a != b && p.classes[static_cast<std::size_t>(a)].options.size() == p.classes[static_cast<std::size_t>(b)].options.size())
      p.ties.push_back({a, b});
  }
  if (rng() % 4 == 0) {
    const std::size_t a = rng() % static_cast<unsigned>(n);
    p.classes[a].fixed_option = static_cast<int>(rng() % p.classes[a].options.size());
  }
  return p;
}

void check_solution(const ms::Problem& p, const ms::Solution& s) {
  ASSERT_EQ(s.choice.size(), p.classes.size());
  EXPECT_TRUE(allowed_choice(p, s.choice));
  const auto u = uses_of(p, s.choice);
  EXPECT_EQ(u, s.use);
  for (std::size_t k = 0; k < u.size(); ++k) EXPECT_LE(u[k], p.budgets[k]);
  double cost = 0;
  for (std::size_t i = 0; i < s.choice.size(); ++i) cost += p.classes[i].options[static_cast<std::size_t>(s.choice[i])].cost;
  EXPECT_DOUBLE_EQ(cost, s.objective);
}

TEST(SearchSolver, AgreesWithBruteForceOnRandomInstances) {
  const int count = static_cast<int>(4000 * test_scale());
  int solved = 0, infeasible = 0, error_count = 0;
  for (int it = 0; it < count; ++it) {
    std::mt19937_64 rng(static_cast<std::uint64_t>(it) * 7919u + 17u);
    const int K = 1 + it % 3;
    const int n = 1 + static_cast<int>(rng() % 7);
    ms::Problem p = random_problem(rng, K, n, 5);
    Brute b;
    ms::Solution s;
    try {
      s = ms::solve(p);
    } catch (const mixq::error&) {
      ++error_count;  // e.g. a tie whose classes share no allowed option
      continue;
    }
    b = brute_force(p);
    SCOPED_TRACE("instance " + std::to_string(it));
    if (b.feasible) {
      ASSERT_EQ(s.status, ms::Status::optimal);
      EXPECT_NEAR(s.objective, b.best, 1e-9 * std::max(1.0, std::fabs(b.best)));
      check_solution(p, s);
      ++solved;
    } else {
      ASSERT_EQ(s.status, ms::Status::infeasible);
      EXPECT_EQ(s.infeasible_resource, b.bad_resource);
      EXPECT_EQ(s.minimum_use, b.min_use);
      EXPECT_TRUE(s.choice.empty());
      ++infeasible;
    }
  }
  EXPECT_GT(solved, count / 3);
  EXPECT_GT(infeasible, 0);
  EXPECT_LT(error_count, count / 10 + 1);
}

TEST(SearchSolver, LargerRandomInstancesAgreeWithBruteForce) {
  // 9-10 classes x up to 6 options: up to 6e7 choices is too many, so 8 classes x 6 options (1.7e6) for a few.
  const int count = std::max(1, static_cast<int>(12 * test_scale()));
  for (int it = 0; it < count; ++it) {
    std::mt19937_64 rng(1000003u + static_cast<std::uint64_t>(it));
    ms::Problem p = random_problem(rng, 1 + it % 3, 7, 6);
    p.ties.clear();
    for (ms::ChoiceClass& c : p.classes)  // a class fixed to a forbidden option is bad input, tested elsewhere
      if (c.fixed_option >= 0 && !c.options[static_cast<std::size_t>(c.fixed_option)].allowed) c.fixed_option = -1;
    ms::Solution s;
    ASSERT_NO_THROW(s = ms::solve(p));
    const Brute b = brute_force(p);
    ASSERT_EQ(b.feasible, s.status == ms::Status::optimal);
    if (b.feasible) {
      EXPECT_NEAR(s.objective, b.best, 1e-9 * std::max(1.0, std::fabs(b.best)));
    }
  }
}

// Exact oracle for K = 2 without ties: a DP over the classes and the used amounts of both rows.
double two_row_dp_optimum(const ms::Problem& p) {
  const std::int64_t b0 = p.budgets[0], b1 = p.budgets[1];
  const double inf = std::numeric_limits<double>::infinity();
  const std::size_t width = static_cast<std::size_t>(b1 + 1);
  std::vector<double> cur(static_cast<std::size_t>((b0 + 1) * (b1 + 1)), inf), next;
  cur[0] = 0.0;
  for (const ms::ChoiceClass& cl : p.classes) {
    next.assign(cur.size(), inf);
    for (std::int64_t u0 = 0; u0 <= b0; ++u0)
      for (std::int64_t u1 = 0; u1 <= b1; ++u1) {
        const double v = cur[static_cast<std::size_t>(u0) * width + static_cast<std::size_t>(u1)];
        if (v == inf) continue;
        for (std::size_t j = 0; j < cl.options.size(); ++j) {
          const ms::Option& o = cl.options[j];
          if (!o.allowed || (cl.fixed_option >= 0 && cl.fixed_option != static_cast<int>(j))) continue;
          const std::int64_t n0 = u0 + o.use[0], n1 = u1 + o.use[1];
          if (n0 > b0 || n1 > b1) continue;
          double& t = next[static_cast<std::size_t>(n0) * width + static_cast<std::size_t>(n1)];
          t = std::min(t, v + o.cost);
        }
      }
    cur.swap(next);
  }
  return *std::min_element(cur.begin(), cur.end());
}

// Bit-width-like classes: uses grow with the option index, costs fall steeply (the LIMPQ shape), so the root
// bound leaves a gap, the first incumbent is not optimal, and the threshold attempts, reduced-cost and DP fixing
// and the branch and bound all run.
ms::Problem bit_width_like_problem(std::mt19937_64& rng, int n, int max_options) {
  ms::Problem p;
  std::int64_t lo0 = 0, hi0 = 0, lo1 = 0, hi1 = 0;
  for (int c = 0; c < n; ++c) {
    const int m = 2 + static_cast<int>(rng() % static_cast<unsigned>(max_options - 1));
    const double sensitivity = std::exp(std::uniform_real_distribution<double>(-3.0, 1.0)(rng));
    const std::int64_t w0 = 1 + static_cast<std::int64_t>(rng() % 3), w1 = 1 + static_cast<std::int64_t>(rng() % 3);
    std::vector<ms::Option> opts;
    for (int j = 0; j < m; ++j) {
      ms::Option o;
      o.label = "b" + std::to_string(j);
      o.use = {w0 * (1 + j) + static_cast<std::int64_t>(rng() % 2), w1 * (1 + (j * 7 + c) % m)};
      o.cost = sensitivity * std::ldexp(1.0, -j) * std::uniform_real_distribution<double>(0.9, 1.1)(rng);
      o.allowed = rng() % 9 != 0 || j == 0;
      opts.push_back(o);
    }
    lo0 += opts.front().use[0];
    hi0 += opts.back().use[0];
    std::int64_t a = INT64_MAX, b = 0;
    for (const auto& o : opts) {
      a = std::min(a, o.use[1]);
      b = std::max(b, o.use[1]);
    }
    lo1 += a;
    hi1 += b;
    p.add_class("c" + std::to_string(c), opts);
  }
  p.budgets = {lo0 + (hi0 - lo0) * static_cast<std::int64_t>(2 + rng() % 6) / 10,
               lo1 + (hi1 - lo1) * static_cast<std::int64_t>(3 + rng() % 6) / 10};
  if (rng() % 3 == 0) p.classes[rng() % static_cast<unsigned>(n)].fixed_option = 0;
  return p;
}

// Each instance is solved twice: with the branch and bound's node LP as per-depth running sums (the default) and
// as the Fenwick tree kept for problems whose sums would be too large. Both must give the optimum, with node counts
// that differ at most by rounding.
TEST(SearchSolver, AgreesWithTwoRowDpOnMediumInstances) {
  const int count = std::max(1, static_cast<int>(80 * test_scale()));
  const std::size_t saved = ms::detail::node_lp_sums_limit;
  int with_nodes = 0;
  long long nodes_sums = 0, nodes_fenwick = 0;
  for (int it = 0; it < count; ++it) {
    std::mt19937_64 rng(555u + static_cast<std::uint64_t>(it) * 101u);
    const ms::Problem p = bit_width_like_problem(rng, 10 + it % 9, 4 + it % 4);
    SCOPED_TRACE("instance " + std::to_string(it));
    const double want = two_row_dp_optimum(p);
    for (const std::size_t limit : {saved, std::size_t{0}}) {
      SCOPED_TRACE(limit == 0 ? "Fenwick node LP" : "running-sums node LP");
      ms::detail::node_lp_sums_limit = limit;
      const ms::Solution s = ms::solve(p);
      ms::detail::node_lp_sums_limit = saved;
      if (std::isinf(want)) {
        EXPECT_EQ(s.status, ms::Status::infeasible);
        continue;
      }
      ASSERT_EQ(s.status, ms::Status::optimal);
      EXPECT_NEAR(s.objective, want, 1e-9 * std::max(1.0, std::fabs(want)));
      check_solution(p, s);
      (limit == 0 ? nodes_fenwick : nodes_sums) += s.nodes;
      if (limit != 0) with_nodes += s.nodes > 0;
    }
  }
  EXPECT_GT(with_nodes, count / 5);  // the branch and bound ran on many of them (about 1 in 4 at every scale)
  EXPECT_GT(nodes_fenwick, count);
  EXPECT_LE(std::llabs(nodes_sums - nodes_fenwick), nodes_sums / 100 + 1);
}

// The DP rows' vector code (AVX2, and SSE2 or NEON) against a plain loop: bit-identical minima, with +inf entries,
// ranges of every length and alignment, and one to nine terms.
TEST(SearchSolver, DpRowsMatchScalarReference) {
  namespace dp = ms::detail::dp;
  std::mt19937_64 rng(77);
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<bool> paths{false};
  if (dp::wide_rows()) paths.push_back(true);
  for (int it = 0; it < 400; ++it) {
    const std::int64_t n = 1 + static_cast<std::int64_t>(rng() % 300);
    std::vector<double> in(static_cast<std::size_t>(n));
    for (double& x : in) x = rng() % 7 == 0 ? inf : std::uniform_real_distribution<double>(-5.0, 5.0)(rng);
    const int m = 1 + static_cast<int>(rng() % 9);
    std::vector<double> v(static_cast<std::size_t>(m));
    std::vector<std::int64_t> off(static_cast<std::size_t>(m));
    std::int64_t max_off = 0;
    for (int j = 0; j < m; ++j) {
      v[static_cast<std::size_t>(j)] = std::uniform_real_distribution<double>(-3.0, 3.0)(rng);
      off[static_cast<std::size_t>(j)] = static_cast<std::int64_t>(rng() % static_cast<unsigned>(n));
      max_off = std::max(max_off, off[static_cast<std::size_t>(j)]);
    }
    const std::int64_t lo = static_cast<std::int64_t>(rng() % static_cast<unsigned>(n - max_off));
    const std::int64_t hi = lo + static_cast<std::int64_t>(rng() % static_cast<unsigned>(n - max_off - lo + 1));
    std::vector<double> want(static_cast<std::size_t>(n), 7.0);
    for (std::int64_t x = lo; x < hi; ++x) {
      double a = inf;
      for (int j = 0; j < m; ++j)
        a = std::min(a, v[static_cast<std::size_t>(j)] + in[static_cast<std::size_t>(x + off[static_cast<std::size_t>(j)])]);
      want[static_cast<std::size_t>(x)] = a;
    }
    for (const bool wide : paths) {
      std::vector<double> got(static_cast<std::size_t>(n), 7.0);
      dp::rows(got.data(), in.data(), lo, hi, v.data(), off.data(), m, wide);
      ASSERT_EQ(got, want) << "iteration " << it << (wide ? " (AVX2)" : " (narrow)");
      const std::int64_t len = n - max_off;
      const double best = dp::min_sum(in.data() + max_off, in.data(), len, wide);
      double ref = inf;
      for (std::int64_t i = 0; i < len; ++i)
        ref = std::min(ref, in[static_cast<std::size_t>(max_off + i)] + in[static_cast<std::size_t>(i)]);
      ASSERT_EQ(best, ref) << "iteration " << it << (wide ? " (AVX2)" : " (narrow)");
    }
  }
}

// The LP bracket pass: the AVX2 path finds the same first minimisers (and smallest use) as the scalar loop, with
// many exact ties (values on a coarse grid) and every class length from 1 to 40; both agree with a plain search.
// Also the AVX2 surrogate uses (w0 * row 0 + w1 * row 1) against the scalar expression.
TEST(SearchSolver, BracketArgminMatchesScalarReference) {
  namespace lpv = ms::detail::lpv;
  std::mt19937_64 rng(31);
  int ties = 0;
  for (int it = 0; it < 2000; ++it) {
    const int n = 1 + it % 40;
    std::vector<double> c(static_cast<std::size_t>(n)), s(static_cast<std::size_t>(n));
    const bool grid = it % 2 == 0;  // coarse grid: many equal values of c + lam * s
    for (int i = 0; i < n; ++i) {
      c[static_cast<std::size_t>(i)] = grid ? static_cast<double>(rng() % 5) : std::uniform_real_distribution<double>(0.0, 4.0)(rng);
      s[static_cast<std::size_t>(i)] = grid ? static_cast<double>(rng() % 5) : std::uniform_real_distribution<double>(0.0, 4.0)(rng);
    }
    const double lo = grid ? 0.5 : std::uniform_real_distribution<double>(0.0, 2.0)(rng);
    const double hi = grid ? 1.0 : lo * 1.25;
    // reference: first index of the smallest value, scanning in order
    int wl = 0, wh = 0;
    double ws = s[0];
    for (int i = 1; i < n; ++i) {
      const std::size_t k = static_cast<std::size_t>(i);
      if (c[k] + lo * s[k] < c[static_cast<std::size_t>(wl)] + lo * s[static_cast<std::size_t>(wl)]) wl = i;
      if (c[k] + hi * s[k] < c[static_cast<std::size_t>(wh)] + hi * s[static_cast<std::size_t>(wh)]) wh = i;
      ws = std::min(ws, s[k]);
      ties += c[k] + lo * s[k] == c[static_cast<std::size_t>(wl)] + lo * s[static_cast<std::size_t>(wl)] && i != wl;
    }
    int il = -1, ih = -1;
    ASSERT_EQ(lpv::argmin2(c.data(), s.data(), 0, n, lo, hi, il, ih), ws) << "iteration " << it;
    ASSERT_EQ(il, wl) << "iteration " << it;
    ASSERT_EQ(ih, wh) << "iteration " << it;
#if defined(MIXQ_KERNELS_X86)
    if (ms::detail::dp::wide_rows()) {
      // the surrogate uses of the LP: w0 * row 0 + w1 * row 1, bit for bit as the scalar loop
      std::vector<double> got(static_cast<std::size_t>(n), -1.0);
      const std::size_t done = lpv::combine2_avx2(got.data(), c.data(), s.data(), static_cast<std::size_t>(n), lo, hi);
      ASSERT_EQ(done, static_cast<std::size_t>(n) / 4 * 4);
      for (std::size_t i = 0; i < done; ++i) ASSERT_EQ(got[i], lo * c[i] + hi * s[i]) << "iteration " << it;
    }
    if (ms::detail::dp::wide_rows() && n >= 4) {
      il = ih = -1;
      ASSERT_EQ(lpv::argmin2_avx2(c.data(), s.data(), 0, n, lo, hi, il, ih), ws) << "iteration " << it << " (AVX2)";
      ASSERT_EQ(il, wl) << "iteration " << it << " (AVX2)";
      ASSERT_EQ(ih, wh) << "iteration " << it << " (AVX2)";
    }
#endif
  }
  EXPECT_GT(ties, 1000);  // the grid instances do exercise the first-of-equals rule
}

// The solver gives the same solution and node count whichever DP row code runs (AVX2 or the narrow vectors).
TEST(SearchSolver, SameSearchWithNarrowDpRows) {
  namespace mk = mixq::kernels;
  if (!ms::detail::dp::wide_rows()) GTEST_SKIP() << "no AVX2 DP rows here: only the narrow ones run";
  const mk::Isa best = mk::active_isa();
  std::vector<ms::Problem> problems;
  for (int it = 0; it < 40; ++it) {
    std::mt19937_64 rng(9000u + static_cast<std::uint64_t>(it));
    problems.push_back(bit_width_like_problem(rng, 12 + it % 8, 5 + it % 4));
  }
  const ms::LayerTable t = ms::mobilenet_v2();
  const ms::LimpqIndicators ind = ms::synthetic_limpq_indicators(t, 1);
  problems.push_back(ms::limpq_problem(t, ind, ms::limpq_budgets(t, ind, 4, 4, 6.0)));
  std::vector<ms::Solution> wide;
  for (const ms::Problem& p : problems) wide.push_back(ms::solve(p));
  mk::force_isa(mk::Isa::scalar);
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const ms::Solution s = ms::solve(problems[i]);
    EXPECT_EQ(s.status, wide[i].status) << "problem " << i;
    EXPECT_EQ(s.objective, wide[i].objective) << "problem " << i;
    EXPECT_EQ(s.choice, wide[i].choice) << "problem " << i;
    EXPECT_EQ(s.nodes, wide[i].nodes) << "problem " << i;
  }
  mk::force_isa(best);
}

TEST(SearchSolver, TiesChooseTheSameOption) {
  ms::Problem p({10});
  p.add_class("block", {{"lo", 5.0, {1}, true}, {"hi", 1.0, {5}, true}});
  p.add_class("downsample", {{"lo", 5.0, {1}, true}, {"hi", 1.0, {6}, true}});
  p.add_class("other", {{"lo", 3.0, {1}, true}, {"hi", 0.0, {4}, true}});
  // untied optimum: block hi + downsample lo + other hi (use 10, cost 6) -- tied it must change
  p.tie({"block", "downsample"});
  const ms::Solution s = ms::solve(p);
  ASSERT_EQ(s.status, ms::Status::optimal);
  EXPECT_EQ(s.choice[0], s.choice[1]);
  const Brute b = brute_force(p);
  EXPECT_DOUBLE_EQ(s.objective, b.best);
}

TEST(SearchSolver, ForbiddenOptionsAreNeverChosenAndNeverCosts) {
  ms::Problem p({100});
  p.add_class("a", {{"cheap", -1e9, {0}, true}, {"ok", 1.0, {1}, true}});
  p.add_class("b", {{"x", 2.0, {1}, true}, {"y", 1.0, {2}, true}});
  p.forbid("a", 0);
  const ms::Solution s = ms::solve(p);
  ASSERT_EQ(s.status, ms::Status::optimal);
  EXPECT_EQ(s.choice[0], 1);
  EXPECT_DOUBLE_EQ(s.objective, 2.0);
  p.fix("b", 0);
  EXPECT_DOUBLE_EQ(ms::solve(p).objective, 3.0);
}

TEST(SearchSolver, InfeasibleReportsTheResourceAndItsMinimumUse) {
  ms::Problem p({5, 100}, {"BitOps", "size"});
  p.add_class("a", {{"x", 1.0, {3, 1}, true}, {"y", 0.0, {4, 1}, true}});
  p.add_class("b", {{"x", 1.0, {3, 1}, true}, {"y", 0.0, {9, 0}, true}});
  const ms::Solution s = ms::solve(p);
  EXPECT_EQ(s.status, ms::Status::infeasible);
  EXPECT_EQ(s.infeasible_resource, 0);
  EXPECT_EQ(s.minimum_use, 6);
  EXPECT_NE(ms::describe_infeasibility(p, s).find("BitOps"), std::string::npos);
  // each row alone can be met, both together cannot: row 1's minimum use given row 0 is reported
  ms::Problem q({4, 4});
  q.add_class("a", {{"x", 0.0, {0, 4}, true}, {"y", 0.0, {4, 0}, true}});
  q.add_class("b", {{"x", 0.0, {0, 4}, true}, {"y", 0.0, {4, 0}, true}});
  q.add_class("c", {{"x", 0.0, {1, 1}, true}});
  const ms::Solution t = ms::solve(q);
  EXPECT_EQ(t.status, ms::Status::infeasible);
  EXPECT_EQ(t.infeasible_resource, 1);
  EXPECT_EQ(t.minimum_use, 9);  // row 0 <= 4 forces both x: 4 + 4 + 1
}

TEST(SearchSolver, BadInputThrows) {
  auto opt = [](double cost, std::vector<std::int64_t> use) { return ms::Option{"o", cost, std::move(use), true}; };
  ms::Problem empty({1});
  EXPECT_THROW(ms::solve(empty), mixq::error);
  ms::Problem no_budget;
  no_budget.add_class("a", {opt(1, {})});
  EXPECT_THROW(ms::solve(no_budget), mixq::error);
  ms::Problem neg_budget({-1});
  neg_budget.add_class("a", {opt(1, {0})});
  EXPECT_THROW(ms::solve(neg_budget), mixq::error);
  ms::Problem neg_use({1});
  neg_use.add_class("a", {opt(1, {-1})});
  EXPECT_THROW(ms::solve(neg_use), mixq::error);
  ms::Problem bad_k({1, 1});
  bad_k.add_class("a", {opt(1, {0})});
  EXPECT_THROW(ms::solve(bad_k), mixq::error);
  for (double c : {std::nan(""), std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()}) {
    ms::Problem nan_cost({1});
    nan_cost.add_class("a", {opt(c, {0})});
    EXPECT_THROW(ms::solve(nan_cost), mixq::error);
  }
  ms::Problem no_allowed({1});
  no_allowed.add_class("a", {opt(1, {0})});
  no_allowed.forbid("a", 0);
  EXPECT_THROW(ms::solve(no_allowed), mixq::error);
  ms::Problem no_options({1});
  no_options.add_class("a", {});
  EXPECT_THROW(ms::solve(no_options), mixq::error);
  ms::Problem tie({5});
  tie.add_class("a", {opt(1, {0}), opt(0, {1})});
  tie.add_class("b", {opt(1, {0})});
  EXPECT_THROW(tie.tie({"a", "zzz"}), mixq::error);
  tie.tie({"a", "b"});
  EXPECT_THROW(ms::solve(tie), mixq::error);
  ms::Problem dup({1});
  dup.add_class("a", {opt(1, {0})});
  dup.add_class("a", {opt(1, {0})});
  EXPECT_THROW(ms::solve(dup), mixq::error);
  ms::Problem fixed({1});
  fixed.add_class("a", {opt(1, {0})});
  EXPECT_THROW(fixed.fix("a", 3), mixq::error);
  try {
    ms::Problem m({1});
    m.add_class("conv7", {opt(std::nan(""), {0})});
    ms::solve(m);
  } catch (const mixq::error& e) {
    EXPECT_NE(std::string(e.what()).find("conv7"), std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// LIMPQ's published ResNet-50 instance

ms::Problem limpq_instance(const std::string& file, ms::LimpqBudgets* out = nullptr) {
  const ms::LayerTable t = ms::resnet50();
  const ms::LimpqIndicators ind = ms::read_limpq_indicators(data_path(file));
  const ms::LimpqBudgets b = ms::limpq_budgets(t, ind, 3, 4, 12.2);
  if (out) *out = b;
  return ms::limpq_problem(t, ind, b);
}

TEST(SearchLimpq, BudgetsFollowTheReadme) {
  const ms::LimpqIndicators ind = ms::read_limpq_indicators(data_path("limpq_r50_real.txt"));
  const ms::Problem p = limpq_instance("limpq_r50_real.txt");
  std::int64_t macs = 0, params = 0;
  for (std::size_t l = 0; l < ind.macs.size(); ++l) {
    macs += ind.macs[l];
    params += ind.params[l];
  }
  const double p_total = static_cast<double>(params + 9408 + 2048000);
  // whole-network budgets: the 8-bit first conv and FC are in the problem as one-option classes
  const std::int64_t conv1_macs = 9408LL * 112 * 112, fc_macs = 2048000;
  EXPECT_EQ(p.budgets[0], macs * 12 + 64 * (conv1_macs + fc_macs));
  EXPECT_EQ(p.budgets[1], static_cast<std::int64_t>(std::floor(32.0 * p_total / 12.2)));
  ASSERT_EQ(p.classes.size(), 54u);
  EXPECT_EQ(p.classes[0].name, "conv1");
  ASSERT_EQ(p.classes[0].options.size(), 1u);
  EXPECT_EQ(p.classes[0].options[0].label, "w8a8");
  EXPECT_EQ(p.classes[0].options[0].use, (std::vector<std::int64_t>{64 * conv1_macs, 8 * 9408}));
  EXPECT_EQ(p.classes[53].options.size(), 1u);
  EXPECT_EQ(p.classes[1].options.size(), 25u);
  EXPECT_EQ(p.classes[1].options[0].label, "w6a6");
  // the file's 1e8 entries are forbidden options, never costs
  int forbidden = 0;
  for (const auto& c : p.classes)
    for (const auto& o : c.options) {
      if (!o.allowed) ++forbidden;
      EXPECT_LT(o.cost, 1.0);
    }
  EXPECT_GT(forbidden, 0);
}

TEST(SearchLimpq, RealInstanceOptimum) {
  const ms::Problem p = limpq_instance("limpq_r50_real.txt");
  const ms::Solution s = ms::solve(p);
  ASSERT_EQ(s.status, ms::Status::optimal);
  EXPECT_NEAR(s.objective, 4.63086621, 5e-9);
  EXPECT_GT(std::fabs(s.objective - 4.6517), 1e-3);  // not GLPK's big-M answer
  check_solution(p, s);
}

TEST(SearchLimpq, QuirkInstanceOptimum) {
  const ms::Problem p = limpq_instance("limpq_r50_real_quirk.txt");
  const ms::Solution s = ms::solve(p);
  ASSERT_EQ(s.status, ms::Status::optimal);
  EXPECT_NEAR(s.objective, 4.61743923, 5e-9);
  check_solution(p, s);
}

TEST(SearchLimpq, NodeLimitGivesFeasibleWithProvenGap) {
  const ms::Problem p = limpq_instance("limpq_r50_real.txt");
  ms::SolveOptions o;
  o.node_limit = 3;
  const ms::Solution s = ms::solve(p, o);
  ASSERT_TRUE(s.status == ms::Status::feasible || s.status == ms::Status::optimal);
  check_solution(p, s);
  EXPECT_LE(s.bound, 4.63086621 + 1e-9);
  EXPECT_GE(s.objective, 4.63086621 - 1e-9);
  EXPECT_NEAR(s.gap, s.objective - s.bound, 1e-12);
  if (s.status == ms::Status::feasible) {
    EXPECT_GT(s.gap, 0.0);
  }
}

TEST(SearchLimpq, WiredPointsForbidTheLowerBitWidth) {
  const std::vector<bool> ok = ms::limpq_allowed({0.01, 0.005, 0.02, 1e8, 0.05});
  EXPECT_EQ(ok, (std::vector<bool>{true, false, true, false, true}));
  std::istringstream bad("1 2 3\n");
  EXPECT_THROW(ms::read_limpq_indicators(bad), mixq::error);
  EXPECT_THROW(ms::parse_level("3A4"), mixq::error);
  EXPECT_EQ(ms::parse_level("w2a8").activation_bits, 8);
}

TEST(SearchLimpq, SyntheticNetworksSolveToOptimality) {
  // MobileNetV2's 8-bit FC alone exceeds a 12.2x budget: W4A4 at 6x there, W3A4 at 10x for ResNet-18
  for (const bool mobile : {false, true}) {
    const ms::LayerTable t = mobile ? ms::mobilenet_v2() : ms::resnet18();
    const ms::LimpqIndicators ind = ms::synthetic_limpq_indicators(t, 3);
    const ms::LimpqBudgets b = ms::limpq_budgets(t, ind, mobile ? 4 : 3, 4, mobile ? 6.0 : 10.0);
    const ms::Problem p = ms::limpq_problem(t, ind, b);
    const ms::Solution s = ms::solve(p);
    ASSERT_EQ(s.status, ms::Status::optimal);
    check_solution(p, s);
    // exactness spot check: forcing any single layer away from its choice never beats the optimum
    const ms::Solver solver(p);
    for (std::size_t c = 0; c < p.classes.size(); c += 7) {
      if (p.classes[c].options.size() < 2) continue;  // the 8-bit first and last layers: nothing to forbid
      ms::Problem q = p;
      q.forbid(q.classes[c].name, s.choice[c]);
      const ms::Solution r = ms::solve(q);
      if (r.status == ms::Status::optimal) {
        EXPECT_GE(r.objective, s.objective - 1e-9);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Pareto sweeps

TEST(SearchPareto, SweepEqualsIndependentSolves) {
  const ms::Problem p = limpq_instance("limpq_r50_real.txt");
  std::vector<std::int64_t> values;
  const std::int64_t b = p.budgets[0];
  for (int i = 0; i < 8; ++i) values.push_back(b / 2 + i * (b / 4));
  const auto sweep = ms::pareto_sweep(p, 0, values);
  ASSERT_EQ(sweep.size(), values.size());
  const ms::Solver solver(p);
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::vector<std::int64_t> budgets = p.budgets;
    budgets[0] = values[i];
    const ms::Solution s = solver.solve(budgets);
    ASSERT_EQ(sweep[i].status, s.status);
    if (s.status == ms::Status::optimal) {
      EXPECT_NEAR(sweep[i].objective, s.objective, 1e-9);
      EXPECT_LE(sweep[i].use[0], values[i]);
    }
  }
  const auto front = ms::pareto_front(sweep, 0);
  ASSERT_FALSE(front.empty());
  for (std::size_t i = 1; i < front.size(); ++i) {
    EXPECT_LT(sweep[front[i]].objective, sweep[front[i - 1]].objective);
    EXPECT_GT(sweep[front[i]].use[0], sweep[front[i - 1]].use[0]);
  }
  EXPECT_THROW(ms::pareto_sweep(p, 5, values), mixq::error);
}

TEST(SearchPareto, SweepsOfRandomInstancesEqualIndependentSolves) {
  // A sweep over row 0 and a list of random budget vectors (both rows change): reused optima, repaired warm starts
  // and independent solves must give the same objectives and statuses.
  const int count = std::max(1, static_cast<int>(12 * test_scale()));
  int reused = 0;
  for (int it = 0; it < count; ++it) {
    std::mt19937_64 rng(9090u + static_cast<std::uint64_t>(it));
    const ms::Problem p = bit_width_like_problem(rng, 8 + it % 6, 5);
    std::vector<std::vector<std::int64_t>> list;
    for (int i = 0; i < 24; ++i) {
      std::vector<std::int64_t> b = p.budgets;
      if (i < 12) {
        b[0] = p.budgets[0] * (4 + i) / 10;
      } else {
        b[0] = p.budgets[0] * static_cast<std::int64_t>(3 + rng() % 12) / 10;
        b[1] = p.budgets[1] * static_cast<std::int64_t>(5 + rng() % 10) / 10;
      }
      list.push_back(b);
    }
    list.push_back(list[3]);  // a repeated budget
    const auto sweep = ms::pareto_sweep(p, list);
    ASSERT_EQ(sweep.size(), list.size());
    const ms::Solver solver(p);
    for (std::size_t i = 0; i < list.size(); ++i) {
      SCOPED_TRACE("instance " + std::to_string(it) + " budget " + std::to_string(i));
      const ms::Solution s = solver.solve(list[i]);
      ASSERT_EQ(sweep[i].status, s.status);
      if (s.status != ms::Status::optimal) continue;
      EXPECT_NEAR(sweep[i].objective, s.objective, 1e-9 * std::max(1.0, std::fabs(s.objective)));
      ms::Problem q = p;
      q.budgets = list[i];
      check_solution(q, sweep[i]);
      reused += sweep[i].nodes == 0;
    }
  }
  EXPECT_GT(reused, 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Width alignment (Chin et al.)

TEST(SearchWidth, LargestMultiplierThatFits) {
  const ms::LayerTable t = ms::resnet18();
  const std::int64_t target = ms::size_at_bits(t, 8);  // the 8-bit network's size
  const ms::WidthAlignment a = ms::align_width(t, 2, target);
  EXPECT_GT(a.multiplier, 1.5);
  EXPECT_LE(a.size_bits, target);
  EXPECT_GT(ms::size_at_bits(ms::widen(t, a.multiplier * (1 + 1e-6), 8), 2), target);
  EXPECT_EQ(a.table.front().in_channels, 3);
  EXPECT_EQ(a.table.back().out_channels, 1000);
  for (const ms::Layer& l : a.table) {
    if (&l != &a.table.back()) {
      EXPECT_EQ(l.out_channels % 8, 0) << l.name;
    }
  }
  // consecutive layers stay consistent: every scaled channel count maps the same way
  EXPECT_EQ(a.table[1].in_channels, a.table[0].out_channels);
  // multiplier 1 with divisor 8 leaves these tables unchanged
  const ms::LayerTable same = ms::widen(ms::mobilenet_v2(), 1.0);
  EXPECT_EQ(ms::total_parameters(same), ms::total_parameters(ms::mobilenet_v2()));
  for (const ms::Layer& l : ms::widen(ms::mobilenet_v2(), 1.37))
    if (l.kind == ms::LayerKind::depthwise_conv) {
      EXPECT_EQ(l.groups, l.in_channels);
    }
  EXPECT_THROW(ms::align_width(t, 2, 10), mixq::error);
  EXPECT_EQ(ms::scale_channels(64, 1.3), 80);
  EXPECT_EQ(ms::scale_channels(3, 0.1), 8);
}

// ---------------------------------------------------------------------------------------------------------------
// HAWQ-V3 costs

TEST(SearchHawq, PerturbationMatchesScalarReferenceAndDecreasesWithBits) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  const std::int64_t out = 4, inner = 37;
  std::vector<float> w(static_cast<std::size_t>(out * inner));
  for (float& v : w) v = nd(rng);
  double prev = std::numeric_limits<double>::infinity();
  for (int b = 2; b <= 8; ++b) {
    const double e = ms::weight_perturbation(w.data(), out * inner, out, b);
    // scalar reference of the same quantizer
    const float qmax = static_cast<float>((1 << (b - 1)) - 1), qmin = -static_cast<float>(1 << (b - 1));
    double ref = 0;
    for (std::int64_t c = 0; c < out; ++c) {
      float m = 0;
      for (std::int64_t i = 0; i < inner; ++i) m = std::max(m, std::fabs(w[static_cast<std::size_t>(c * inner + i)]));
      const float scale = m / qmax, inv = 1.0f / scale;
      for (std::int64_t i = 0; i < inner; ++i) {
        const float x = w[static_cast<std::size_t>(c * inner + i)];
        const float q = std::min(std::max(std::nearbyint(x * inv), qmin), qmax) * scale;
        ref += (double(x) - double(q)) * (double(x) - double(q));
      }
    }
    EXPECT_NEAR(e, ref, 1e-6 * ref + 1e-12) << b;
    EXPECT_LT(e, prev);
    prev = e;
  }
  EXPECT_THROW(ms::weight_perturbation(w.data(), out * inner, 5, 4), mixq::error);
}

TEST(SearchHawq, CostTableGivesASolvableProblem) {
  ms::LayerTable t = {ms::conv_layer("c0", 3, 8, 3, 1, 1, 8, 8), ms::conv_layer("c1", 8, 16, 3, 1, 1, 8, 8),
                      ms::conv_layer("c2", 16, 16, 3, 1, 1, 8, 8), ms::linear_layer("fc", 16, 10)};
  t.front().fixed_bits = 8;
  t.back().fixed_bits = 8;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 0.2f);
  std::vector<std::vector<float>> weights;
  for (std::size_t i = 1; i + 1 < t.size(); ++i) {
    weights.emplace_back(static_cast<std::size_t>(ms::weight_count(t[i])));
    for (float& v : weights.back()) v = nd(rng);
  }
  const std::vector<ms::BitPair> options = {{8, 8}, {4, 4}, {2, 2}};
  const auto cost = ms::hawq_costs(t, {10.0, 1.0}, weights, options);
  ASSERT_EQ(cost.size(), 2u);
  EXPECT_GT(cost[0][2], cost[0][0]);
  const ms::BitPolicy p4 = ms::uniform_policy(t, 4, 4);
  const ms::Problem p = ms::layer_problem(t, cost, options, {ms::Resource::bit_operations, ms::Resource::size_bits},
                                          {ms::total_bit_operations(t, p4), ms::model_size_bits(t, p4)});
  const ms::Solution s = ms::solve(p);
  ASSERT_EQ(s.status, ms::Status::optimal);
  check_solution(p, s);
  EXPECT_THROW(ms::hawq_costs(t, {1.0}, weights, options), mixq::error);
}

}  // namespace
