// CBC (COIN-OR 2.10) as an independent oracle for the exact search on hundreds of medium random instances
// (correlated and uncorrelated costs, K = 1, 2, 3, ties, fixed and forbidden options) and on LIMPQ's instance.
#include <mixq/search.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "search_cbc_model.hpp"

namespace ms = mixq::search;

namespace {

double test_scale() {
  const char* s = std::getenv("MIXQ_SEARCH_TEST_SCALE");
  return s ? std::max(0.01, std::atof(s)) : 1.0;
}

// Medium random instance: classes x options, K rows. Correlated: cost falls as use grows (MPQ-like);
// uncorrelated: independent uniform costs.
ms::Problem medium_instance(std::mt19937_64& rng, int classes, int options, int K, bool correlated) {
  ms::Problem p;
  std::vector<std::int64_t> lo(static_cast<std::size_t>(K), 0), hi(static_cast<std::size_t>(K), 0);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  for (int c = 0; c < classes; ++c) {
    const int m = 2 + static_cast<int>(rng() % static_cast<unsigned>(options - 1));
    const double scale = std::exp(4.0 * u01(rng));
    std::vector<ms::Option> opts;
    for (int j = 0; j < m; ++j) {
      ms::Option o;
      o.label = "o" + std::to_string(j);
      double total = 0;
      for (int k = 0; k < K; ++k) {
        const std::int64_t use = static_cast<std::int64_t>(scale * (1 + (rng() % 64)));
        o.use.push_back(use);
        total += static_cast<double>(use) / scale;
      }
      o.cost = correlated ? std::exp(-0.05 * total) * (1.0 + 0.1 * u01(rng)) * scale : u01(rng) * 10.0;
      o.allowed = rng() % 10 != 0;
      opts.push_back(o);
    }
    opts[0].allowed = true;
    for (int k = 0; k < K; ++k) {
      std::int64_t a = opts[0].use[static_cast<std::size_t>(k)], b = a;
      for (const auto& o : opts) {
        if (!o.allowed) continue;
        a = std::min(a, o.use[static_cast<std::size_t>(k)]);
        b = std::max(b, o.use[static_cast<std::size_t>(k)]);
      }
      lo[static_cast<std::size_t>(k)] += a;
      hi[static_cast<std::size_t>(k)] += b;
    }
    p.add_class("c" + std::to_string(c), opts);
  }
  for (int k = 0; k < K; ++k)
    p.budgets.push_back(lo[static_cast<std::size_t>(k)] +
                        static_cast<std::int64_t>((0.2 + 0.6 * u01(rng)) * static_cast<double>(hi[static_cast<std::size_t>(k)] - lo[static_cast<std::size_t>(k)])));
  if (rng() % 3 == 0) {
    // tie two classes with the same option count
    for (int a = 0; a < classes; ++a)
      for (int b = a + 1; b < classes; ++b)
        if (p.classes[static_cast<std::size_t>(a)].options.size() == p.classes[static_cast<std::size_t>(b)].options.size() &&
            p.classes[static_cast<std::size_t>(a)].options[0].allowed && p.ties.empty())
          p.ties.push_back({a, b});
  }
  if (rng() % 3 == 0) p.classes[rng() % static_cast<unsigned>(classes)].fixed_option = 0;
  return p;
}

bool exactly_feasible(const ms::Problem& p, const std::vector<int>& choice) {
  for (std::size_t k = 0; k < p.budgets.size(); ++k) {
    std::int64_t u = 0;
    for (std::size_t c = 0; c < choice.size(); ++c) u += p.classes[c].options[static_cast<std::size_t>(choice[c])].use[k];
    if (u > p.budgets[k]) return false;
  }
  return true;
}

TEST(SearchCbc, AgreesOnMediumRandomInstances) {
  const int count = std::max(6, static_cast<int>(200 * test_scale()));
  int compared = 0;
  for (int it = 0; it < count; ++it) {
    std::mt19937_64 rng(424242u + static_cast<std::uint64_t>(it));
    const int K = 1 + it % 3;
    const bool correlated = (it / 3) % 2 == 0;
    const int classes = 8 + static_cast<int>(rng() % 13);
    const ms::Problem p = medium_instance(rng, classes, 10, K, correlated);
    SCOPED_TRACE("instance " + std::to_string(it) + " K=" + std::to_string(K) + (correlated ? " correlated" : ""));
    const ms::Solution s = ms::solve(p);
    const mixq_test::CbcResult c = mixq_test::cbc_solve(p, true);
    if (c.infeasible) {
      EXPECT_EQ(s.status, ms::Status::infeasible);
      continue;
    }
    ASSERT_TRUE(c.optimal);
    ASSERT_EQ(s.status, ms::Status::optimal);
    const double tol = 1e-6 * std::max(1.0, std::fabs(c.objective));
    ASSERT_TRUE(exactly_feasible(p, s.choice));
    EXPECT_GE(s.objective, c.objective - tol);  // CBC's bound (its rows are met to 1e-7 relative)
    if (exactly_feasible(p, c.choice)) {
      EXPECT_LE(s.objective, c.objective + tol);
      ++compared;
    }
  }
  EXPECT_GT(compared, count / 2);
}

// The problem CBC is given: the one-option classes (the 8-bit first and last layers of a layer problem) folded
// into the budgets, as mixq's solver folds them. CBC's feasibility and gap tolerances scale with the rows'
// magnitudes, and the first conv's 7.5e9 constant BitOps left CBC 1e-5 above the optimum.
ms::Problem without_constant_classes(const ms::Problem& p) {
  ms::Problem q(p.budgets, p.resource_names);
  for (const ms::ChoiceClass& c : p.classes) {
    if (c.options.size() == 1 && p.ties.empty()) {
      for (std::size_t k = 0; k < q.budgets.size(); ++k) q.budgets[k] -= c.options[0].use[k];
      continue;
    }
    q.classes.push_back(c);
  }
  if (!p.ties.empty()) return p;
  return q;
}

TEST(SearchCbc, AgreesOnLimpqInstances) {
  for (const char* f : {"limpq_r50_real.txt", "limpq_r50_real_quirk.txt"}) {
    const ms::LayerTable t = ms::resnet50();
    const ms::LimpqIndicators ind = ms::read_limpq_indicators(std::string(MIXQ_SHARED_DATA_DIR) + "/" + f);
    const ms::Problem p = ms::limpq_problem(t, ind, ms::limpq_budgets(t, ind, 3, 4, 12.2));
    const ms::Solution s = ms::solve(p);
    const mixq_test::CbcResult c = mixq_test::cbc_solve(without_constant_classes(p), true);
    ASSERT_TRUE(c.optimal);
    EXPECT_NEAR(s.objective, c.objective, 1e-7) << f;
  }
}

TEST(SearchCbc, AgreesOnSyntheticNetworks) {
  for (const bool mobile : {false, true}) {
    const ms::LayerTable t = mobile ? ms::mobilenet_v2() : ms::resnet18();
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
      const ms::LimpqIndicators ind = ms::synthetic_limpq_indicators(t, seed);
      const ms::Problem p = ms::limpq_problem(t, ind, ms::limpq_budgets(t, ind, mobile ? 4 : 3, 4, mobile ? 6.0 : 10.0));
      const ms::Solution s = ms::solve(p);
      const mixq_test::CbcResult c = mixq_test::cbc_solve(without_constant_classes(p), true);
      ASSERT_TRUE(c.optimal);
      ASSERT_EQ(s.status, ms::Status::optimal);
      EXPECT_NEAR(s.objective, c.objective, 1e-7 * std::max(1.0, c.objective)) << (mobile ? "mobilenet_v2" : "resnet18");
    }
  }
}

}  // namespace
