// Observers (MinMax, EMA MinMax, Percentile, MSE p = 2 / 2.4) and the LSQ step-size initialisers: statistics,
// NaN/Inf handling, bad input, and the MSE search's quality against MinMax and a brute-force grid.
#include <mixq/quant.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test_support.hpp"

using mixq::QuantSpec;
using mixq::Shape;

namespace {

using mixq_test::expect_error;

std::vector<float> sample(std::size_t n, std::uint32_t seed, bool laplace) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::exponential_distribution<float> expo(1.0f);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> x(n);
  for (float& v : x) v = laplace ? (sign(gen) ? expo(gen) : -expo(gen)) : normal(gen);
  return x;
}

/// Reference error sum |x - fq(x)|^p in double with std::pow (independent of the search's arithmetic).
double reference_error(const std::vector<float>& x, const mixq::QuantParams& qp, const QuantSpec& s, double p) {
  std::vector<float> y(x.size());
  mixq::kernels::fake_quant(x.data(), y.data(), static_cast<std::ptrdiff_t>(x.size()), qp.scale, qp.zero_point,
                            s.qmin(), s.qmax());
  double e = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double d = std::fabs(static_cast<double>(x[i]) - y[i]);
    e += p == 2.0 ? d * d : std::pow(d, p);
  }
  return e;
}

}  // namespace

TEST(MinMaxObserver, PerTensorAndPerChannelRanges) {
  const std::vector<float> x{1.0f, -2.0f, 3.0f, 0.5f, 4.0f, -1.0f};  // [2, 3]
  mixq::MinMaxObserver t(QuantSpec::per_tensor(8));
  t.observe(x.data(), {2, 3});
  const auto r = t.ranges();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].lo, -2.0);
  EXPECT_EQ(r[0].hi, 4.0);
  EXPECT_FLOAT_EQ(t.params()[0].scale, 4.0f / 127.0f);

  mixq::MinMaxObserver c(QuantSpec::per_channel(8, 1, true, false));
  c.observe(x.data(), {2, 3});
  const auto rc = c.ranges();
  ASSERT_EQ(rc.size(), 3u);
  EXPECT_EQ(rc[0].lo, 0.5);
  EXPECT_EQ(rc[0].hi, 1.0);
  EXPECT_EQ(rc[1].lo, -2.0);
  EXPECT_EQ(rc[1].hi, 4.0);
  EXPECT_EQ(rc[2].lo, -1.0);
  EXPECT_EQ(rc[2].hi, 3.0);
  // a second tensor widens the running range
  const std::vector<float> x2{9.0f, 0.0f, 0.0f, 0.0f, 0.0f, -9.0f};
  c.observe(x2.data(), {2, 3});
  EXPECT_EQ(c.ranges()[0].hi, 9.0);
  EXPECT_EQ(c.ranges()[2].lo, -9.0);
  EXPECT_EQ(c.num_batches(), 2);
  // large tensors go through the SIMD min/max kernel
  std::vector<float> big = sample(1000, 1, false);
  big[517] = 100.0f;
  big[3] = -50.0f;
  mixq::MinMaxObserver b(QuantSpec::per_tensor(8));
  b.observe(big.data(), {1000});
  EXPECT_EQ(b.ranges()[0].hi, 100.0);
  EXPECT_EQ(b.ranges()[0].lo, -50.0);
}

TEST(Observers, SkipNaNAndInfAndSaySoWhenNothingFiniteIsLeft) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = sample(200, 2, false);
  x[0] = nan, x[10] = inf, x[100] = -inf, x[199] = nan;
  const QuantSpec s = QuantSpec::per_tensor(4);
  mixq::MinMaxObserver mm(s);
  mm.observe(x.data(), {200});
  std::vector<float> finite;
  for (float v : x)
    if (std::isfinite(v)) finite.push_back(v);
  EXPECT_EQ(mm.ranges()[0].lo, *std::min_element(finite.begin(), finite.end()));
  EXPECT_EQ(mm.ranges()[0].hi, *std::max_element(finite.begin(), finite.end()));
  mixq::PercentileObserver pc(s, 99.0);
  pc.observe(x.data(), {200});
  EXPECT_TRUE(std::isfinite(pc.params()[0].scale));
  mixq::MseObserver ms(s, 2.4f);
  ms.observe(x.data(), {200});
  EXPECT_TRUE(std::isfinite(ms.params()[0].scale));
  mixq::EmaMinMaxObserver em(s);
  em.observe(x.data(), {200});
  EXPECT_TRUE(std::isfinite(em.params()[0].scale));
  const std::vector<float> lsq = mixq::lsq_init_step_sizes(x.data(), {200}, s);
  EXPECT_TRUE(std::isfinite(lsq[0]));

  const std::vector<float> bad{nan, inf, -inf, nan};
  auto check = [&](auto observer) {
    observer.observe(bad.data(), {4});
    expect_error([&] { (void)observer.params(); }, "no finite value");
  };
  check(mixq::MinMaxObserver(s));
  check(mixq::EmaMinMaxObserver(s));
  check(mixq::PercentileObserver(s));
  check(mixq::MseObserver(s));
  expect_error([&] { mixq::lsq_init_step_sizes(bad.data(), {4}, s); }, "no finite value");
  expect_error([&] { mixq::three_sigma_step_sizes(bad.data(), {4}, s); }, "no finite value");
  // per channel: the message names the group
  const std::vector<float> half{1.0f, nan, 2.0f, nan};
  mixq::MinMaxObserver c(QuantSpec::per_channel(4, 1));
  c.observe(half.data(), {2, 2});
  expect_error([&] { (void)c.params(); }, "quantization group 1 has no finite value");
}

TEST(Observers, BadInputThrows) {
  const std::vector<float> x(12, 1.0f);
  mixq::MinMaxObserver c(QuantSpec::per_channel(4, 0));
  expect_error([&] { (void)c.params(); }, "no tensor observed");
  expect_error([&] { c.observe(x.data(), {0, 3}); }, "empty tensor");
  expect_error([&] { c.observe(x.data(), {3, 4}); c.observe(x.data(), {4, 3}); }, "earlier ones had 3");
  expect_error([&] { mixq::MinMaxObserver(QuantSpec::per_channel(4, 2)).observe(x.data(), {3, 4}); }, "axis 2");
  expect_error([&] { mixq::MinMaxObserver(QuantSpec::per_tensor(0)); }, "bit_width");
  expect_error([&] { mixq::EmaMinMaxObserver(QuantSpec::per_tensor(4), 1.0); }, "momentum");
  expect_error([&] { mixq::PercentileObserver(QuantSpec::per_tensor(4), 0.0); }, "percentile");
  expect_error([&] { mixq::PercentileObserver(QuantSpec::per_tensor(4), 99.0, 4); }, "bins");
  expect_error([&] { mixq::MseObserver(QuantSpec::per_tensor(4), 0.5f); }, "p must be");
  expect_error([&] { mixq::lsq_init_step_sizes(x.data(), {0}, QuantSpec::per_tensor(4)); }, "empty tensor");
  c.reset();
  EXPECT_NO_THROW(c.observe(x.data(), {4, 3}));
}

TEST(EmaMinMaxObserver, MovingAverageWithMomentum) {
  const QuantSpec s = QuantSpec::per_tensor(8, true, false);
  mixq::EmaMinMaxObserver e(s, 0.75);
  const std::vector<float> a{-1.0f, 1.0f}, b{-5.0f, 9.0f};
  e.observe(a.data(), {2});
  EXPECT_EQ(e.ranges()[0].lo, -1.0);
  e.observe(b.data(), {2});
  EXPECT_DOUBLE_EQ(e.ranges()[0].lo, 0.75 * -1.0 + 0.25 * -5.0);
  EXPECT_DOUBLE_EQ(e.ranges()[0].hi, 0.75 * 1.0 + 0.25 * 9.0);
  const mixq::QuantParams p = e.params()[0];
  const mixq::QuantParams want = mixq::params_from_range(s, -2.0, 3.0);
  EXPECT_EQ(p.scale, want.scale);
  EXPECT_EQ(p.zero_point, want.zero_point);
}

TEST(PercentileObserver, HistogramPercentiles) {
  std::vector<float> x(10000);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);  // uniform on [0, 9999]
  mixq::PercentileObserver u(QuantSpec::per_tensor(8, false, false), 99.0);
  u.observe(x.data(), {10000});
  EXPECT_NEAR(u.ranges()[0].hi, 9900.0, 10.0);
  EXPECT_NEAR(u.ranges()[0].lo, 100.0, 10.0);
  mixq::PercentileObserver all(QuantSpec::per_tensor(8, false, false), 100.0);
  all.observe(x.data(), {10000});
  EXPECT_EQ(all.ranges()[0].hi, 9999.0);
  // symmetric: percentile of |x|, robust to one outlier
  std::vector<float> g = sample(20000, 4, false);
  g[7] = 1000.0f;
  mixq::PercentileObserver s(QuantSpec::per_tensor(8), 99.9);
  s.observe(g.data(), {20000});
  EXPECT_GT(s.ranges()[0].hi, 2.8);  // |N(0,1)| 99.9th percentile is 3.29
  EXPECT_LT(s.ranges()[0].hi, 3.8);
  EXPECT_EQ(s.ranges()[0].lo, -s.ranges()[0].hi);
}

TEST(MseObserver, NeverWorseThanMinMaxAndWithinOnePercentOfABruteForceGrid) {
  for (bool laplace : {false, true})
    for (double p : {2.0, 2.4})
      for (int bits = 2; bits <= 8; ++bits)
        for (std::size_t n : {std::size_t{1500}, std::size_t{4500}}) {  // exact coarse grid / histogram coarse grid
          if (n == 1500 && bits % 3 != 2) continue;                       // a few exact-path cases are enough
          const std::vector<float> x = sample(n, static_cast<std::uint32_t>(bits * 10 + laplace), laplace);
          const QuantSpec s = QuantSpec::per_tensor(bits, true, bits % 2 == 0);  // symmetric and affine
          mixq::MinMaxObserver mm(s);
          mm.observe(x.data(), {static_cast<std::int64_t>(n)});
          mixq::MseObserver ms(s, static_cast<float>(p));
          ms.observe(x.data(), {static_cast<std::int64_t>(n)});
          const double e_mse = reference_error(x, ms.params()[0], s, p);
          const double e_minmax = reference_error(x, mm.params()[0], s, p);
          // brute force: 120 alphas over (0, 1], then 101 more at steps of 1e-4 around the best
          const auto r = mm.ranges()[0];
          auto at = [&](double a) { return reference_error(x, mixq::params_from_range(s, a * r.lo, a * r.hi), s, p); };
          double best = std::numeric_limits<double>::infinity(), best_a = 1.0;
          for (int k = 1; k <= 120; ++k) {
            const double e = at(k / 120.0);
            if (e < best) best = e, best_a = k / 120.0;
          }
          for (int k = -50; k <= 50; ++k) {
            const double a = best_a + k / 10000.0;
            if (a <= 0.0 || a > 1.0) continue;
            best = std::min(best, at(a));
          }
          const std::string what = std::string(laplace ? "laplace" : "gauss") + " p=" + std::to_string(p) +
                                   " bits=" + std::to_string(bits) + " n=" + std::to_string(n);
          EXPECT_LE(e_mse, e_minmax * (1.0 + 1e-5)) << what;
          EXPECT_LE(e_mse, best * 1.01) << what << ": mse " << e_mse << " brute force " << best;
        }
}

TEST(MseObserver, LargeTensorsSearchedOnASampleStayWithinOnePercent) {
  const std::int64_t n = 100000;  // > sample_size: the search runs on a stratified sample of 32768 elements
  for (int bits : {3, 6}) {
    const std::vector<float> x = sample(static_cast<std::size_t>(n), static_cast<std::uint32_t>(bits), bits == 3);
    const QuantSpec s = QuantSpec::per_tensor(bits);
    mixq::MseObserver ms(s, 2.0f);
    ms.observe(x.data(), {n});
    mixq::MinMaxObserver mm(s);
    mm.observe(x.data(), {n});
    const auto r = mm.ranges()[0];
    double best = std::numeric_limits<double>::infinity();
    for (int k = 1; k <= 200; ++k)
      best = std::min(best, reference_error(x, mixq::params_from_range(s, k / 200.0 * r.lo, k / 200.0 * r.hi), s, 2.0));
    const double e = reference_error(x, ms.params()[0], s, 2.0);
    EXPECT_LE(e, best * 1.01) << bits;
    EXPECT_LE(e, reference_error(x, mm.params()[0], s, 2.0)) << bits;
  }
}

TEST(MseObserver, PerChannelSearchesEachChannel) {
  const QuantSpec s = QuantSpec::per_channel(3, 0);
  std::vector<float> w = sample(4 * 300, 8, true);
  for (std::size_t i = 0; i < 300; ++i) w[300 + i] *= 10.0f;  // channel 1 ten times wider
  mixq::MseObserver ms(s, 2.0f);
  ms.observe(w.data(), {4, 300});
  const auto pc = ms.params();
  ASSERT_EQ(pc.size(), 4u);
  EXPECT_NEAR(pc[1].scale / pc[0].scale, 10.0, 3.0);
  for (std::size_t c = 0; c < 4; ++c) {
    mixq::MseObserver one(QuantSpec::per_tensor(3), 2.0f);
    one.observe(w.data() + 300 * c, {300});
    EXPECT_EQ(one.params()[0].scale, pc[c].scale) << c;
  }
}

// Per channel, the coarse grid of each group runs on a histogram (MseObserver::group_options) instead of exactly
// on every element: the losses stay within 1 % of the exact coarse grid (exact_coarse_limit covering the groups).
TEST(MseObserver, PerChannelHistogramCoarseGridStaysWithinOnePercentOfExact) {
  const std::int64_t channels = 32, inner = 4096;
  std::vector<float> w = sample(static_cast<std::size_t>(channels * inner), 21, false);
  for (std::int64_t c = 0; c < channels; ++c)  // standard deviations over a factor of 20, some 3x outliers
    for (std::int64_t i = 0; i < inner; ++i) {
      float& v = w[static_cast<std::size_t>(c * inner + i)];
      v *= std::exp(-2.0f + 3.0f * static_cast<float>(c) / channels) * (i % 97 == 0 ? 3.0f : 1.0f);
    }
  for (int bits : {2, 4, 8}) {
    const QuantSpec s = QuantSpec::per_channel(bits, 0);
    mixq::MseSearchOptions exact_options;
    exact_options.sample_size = 0;
    exact_options.exact_coarse_limit = inner;
    exact_options.group_histogram = false;
    mixq::MseObserver fast(s, 2.4f);
    EXPECT_LT(fast.group_options(channels, inner).exact_coarse_limit, inner);  // the fast path is taken
    EXPECT_EQ(fast.group_options(1, inner).bins, 1024);                        // per tensor: as given
    EXPECT_EQ(mixq::MseObserver(s, 2.4f, exact_options).group_options(channels, inner).exact_coarse_limit, inner);
    mixq::MseObserver exact(s, 2.4f, exact_options);
    exact.observe(w.data(), {channels, inner});
    fast.observe(w.data(), {channels, inner});
    const auto pe = exact.params(), pf = fast.params();
    double e_exact = 0.0, e_fast = 0.0;
    for (std::int64_t c = 0; c < channels; ++c) {
      const float* x = w.data() + c * inner;
      e_exact += mixq::detail::fake_quant_error(x, inner, pe[static_cast<std::size_t>(c)], s, 2.4f, 1.0f);
      e_fast += mixq::detail::fake_quant_error(x, inner, pf[static_cast<std::size_t>(c)], s, 2.4f, 1.0f);
    }
    EXPECT_LE(e_fast, e_exact * 1.01) << bits << " bits";
  }
}

TEST(LsqInit, LsqThreeSigmaAndFromObserver) {
  const std::vector<float> x{1.0f, -1.0f, 2.0f, -2.0f};
  const QuantSpec s = QuantSpec::per_tensor(4);
  EXPECT_FLOAT_EQ(mixq::lsq_init_step_sizes(x.data(), {4}, s)[0], static_cast<float>(2.0 * 1.5 / std::sqrt(7.0)));
  EXPECT_FLOAT_EQ(mixq::three_sigma_step_sizes(x.data(), {4}, s)[0], static_cast<float>(3.0 * std::sqrt(2.5) / 8.0));
  const std::vector<float> shifted{3.0f, 5.0f, 3.0f, 5.0f};  // mu 4, sigma 1: max(|1|, |7|) / 2^(b-1)
  EXPECT_FLOAT_EQ(mixq::three_sigma_step_sizes(shifted.data(), {4}, s)[0], 7.0f / 8.0f);
  // per channel [2, 2] on axis 0
  const std::vector<float> pc = mixq::lsq_init_step_sizes(x.data(), {2, 2}, QuantSpec::per_channel(4, 0));
  ASSERT_EQ(pc.size(), 2u);
  EXPECT_FLOAT_EQ(pc[0], static_cast<float>(2.0 / std::sqrt(7.0)));
  EXPECT_FLOAT_EQ(pc[1], static_cast<float>(4.0 / std::sqrt(7.0)));
  // from any observer
  mixq::MinMaxObserver mm(s);
  mm.observe(x.data(), {4});
  EXPECT_EQ(mixq::step_sizes_from_observer(mm)[0], mm.params()[0].scale);
  EXPECT_EQ((mixq::step_sizes_from_observer<mixq::PercentileObserver>(x.data(), {4}, s, 100.0)[0]),
            mm.params()[0].scale);
  // all zero: step size 1
  const std::vector<float> zeros(8, 0.0f);
  EXPECT_EQ(mixq::lsq_init_step_sizes(zeros.data(), {8}, s)[0], 1.0f);
  EXPECT_EQ(mixq::three_sigma_step_sizes(zeros.data(), {8}, s)[0], 1.0f);
  // into a quantizer
  mixq::PerTensorQuantizer q(s);
  q.set_step_sizes(mixq::lsq_init_step_sizes(x.data(), {4}, s));
  EXPECT_TRUE(q.calibrated());
  EXPECT_EQ(q.zero_points()[0], 0);
}
