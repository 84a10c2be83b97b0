// One-shot weight coupling (schedule/supernet.hpp, bit_width_scheduler.hpp, oneshot.hpp, oneshot_search.hpp,
// oneshot_report.hpp) on the small ResNet with 14x14 synthetic images: the turbulence metric, the event
// schedule, non-cumulative freezing, IDM, the BN grid, the distillation gradient, the searches, determinism,
// the report's fields and the bad-input errors.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "mixq/mixq.hpp"
#include "mixq/schedule.hpp"
#include "nn_test_support.hpp"

namespace oneshot_test {

namespace nn = mixq::nn;
namespace sc = mixq::schedule;
namespace search = mixq::search;

constexpr int kSide = 14;

/// n synthetic 14x14 images: class c is a bright horizontal band at rows 1 + c, plus noise.
inline mixq::io::ImageSet synthetic(nn::Index n, std::uint64_t seed) {
  mixq::io::ImageSet s;
  s.rows = s.cols = kSide;
  s.images.resize(n, kSide * kSide);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> noise(0, 60), label(0, 9);
  for (nn::Index i = 0; i < n; ++i) {
    const int c = label(rng);
    s.labels.push_back(static_cast<std::uint8_t>(c));
    for (int r = 0; r < kSide; ++r)
      for (int k = 0; k < kSide; ++k)
        s.images(i, r * kSide + k) = static_cast<std::uint8_t>(noise(rng) + (r == 1 + c ? 180 : 0));
  }
  return s;
}

inline sc::SupernetOptions tiny_options() {
  sc::SupernetOptions o;
  o.height = o.width = kSide;
  return o;
}

inline nn::Tensor batch(const mixq::io::ImageSet& s, nn::Index n, std::vector<std::int32_t>& y) {
  nn::Tensor x;
  nn::make_batch(s.images.data(), s.labels.data(), nn::epoch_order(s.size()), 0, n, 1, s.rows, s.cols,
                 mixq::io::fashion_mnist_mean, mixq::io::fashion_mnist_std, x, y);
  return x;
}


TEST(OneshotTurbulence, ExactCountWithOneSidedClippedEnds) {
  // 2 bits, step 1: levels -2..1, thresholds at -1.5, -0.5, 0.5; p = 0.25 counts |x - level| > 0.375.
  const std::vector<float> w{
      0.0f, 0.4f,   // level 0: 0.4 counts (towards 1)
      -0.45f,       // level 0 from below: counts
      0.3f,         // level 0: no
      1.0f, 0.6f,   // level 1 (top): 0.6 counts (downwards), 1.0 no
      1.45f, 3.0f,  // top level upwards / clipped: one-sided, no
      -2.0f, -1.6f, // bottom level -2: -1.6 counts (upwards)
      -2.45f, -5.f, // bottom level downwards / clipped: no
  };
  EXPECT_DOUBLE_EQ(sc::boundary_share(w.data(), static_cast<nn::Index>(w.size()), 1.f, 2, 0.25), 4.0 / 12.0);
  // p = 1: every weight not exactly on its level's centre counts on the sides that count.
  const std::vector<float> v{0.1f, -0.1f, 1.2f, 0.9f, -2.2f, -1.9f};
  EXPECT_DOUBLE_EQ(sc::boundary_share(v.data(), 6, 1.f, 2, 1.0), 4.0 / 6.0);
  EXPECT_THROW(sc::boundary_share(w.data(), 3, 0.f, 2), mixq::error);
  EXPECT_THROW(sc::boundary_share(w.data(), 3, 1.f, 2, 0.0), mixq::error);
}

TEST(OneshotScheduler, EventScheduleOfTheReleasedCodeAndScaled) {
  sc::SchedulerOptions o;
  o.epochs = 150;
  sc::BitWidthScheduler s(o);
  std::vector<int> want;
  for (int e = 7; e <= 107; e += 2) want.push_back(e);
  want.insert(want.end(), {119, 134, 149});
  EXPECT_EQ(s.event_epochs(), want);
  EXPECT_EQ(want.size(), 54u);
  EXPECT_NEAR(s.ratio(7), 0.2 + 0.15 * (1 + std::cos(3.14159265358979 / 75)), 1e-12);
  EXPECT_EQ(static_cast<int>(std::floor(8 * s.ratio(7))), 3);
  EXPECT_NEAR(s.ratio(149), 0.2 + 0.15 * (1 + std::cos(3.14159265358979 * 72 / 75)), 1e-12);
  // 30 epochs: early period 1 (round(0.4)), late period 3; events from epoch 2 to 21, then 23, 26, 29.
  o.epochs = 30;
  sc::BitWidthScheduler t(o);
  std::vector<int> want30;
  for (int e = 2; e <= 21; ++e) want30.push_back(e);
  want30.insert(want30.end(), {23, 26, 29});
  EXPECT_EQ(t.event_epochs(), want30);
  EXPECT_GT(t.ratio(2), 0.49);
  o.ratio_start = 1.5;
  EXPECT_THROW(sc::BitWidthScheduler{o}, mixq::error);
}

TEST(OneshotScheduler, FreezingIsNotCumulative) {
  sc::Supernet net("resnet", tiny_options(), 3);
  std::vector<std::int32_t> y;
  const auto data = synthetic(16, 1);
  net.initialize_step_sizes(batch(data, 16, y));
  sc::SchedulerOptions so;
  so.epochs = 150;
  sc::BitWidthScheduler s(so);
  // Layer 0's weights all sit on a 2-bit rounding boundary: it is the most turbulent.
  auto put_on_boundary = [&](std::size_t l) {
    nn::Parameter& W = net.layer(l).master_weight();
    const float st = net.layer(l).weight_quantizer().step_size(2).value[0];
    W.value.setConstant(0.5f * st);
  };
  put_on_boundary(0);
  const sc::SchedulerEvent& e1 = s.apply(net, 7, 1.0 / 8);  // floor(8 / 8) = 1 layer
  ASSERT_EQ(e1.frozen.size(), 1u);
  EXPECT_EQ(e1.frozen[0], net.name(0));
  EXPECT_EQ(net.weight_candidates(0), (std::vector<int>{3, 4, 5, 6}));
  EXPECT_EQ(net.activation_candidates(0), (std::vector<int>{2, 3, 4, 5, 6}));  // split mode: weights only
  EXPECT_THROW(net.set_policy(net.uniform_policy(2, 2)), mixq::error);
  // Now layer 1 is the most turbulent, layer 0 quiet: layer 0 gets its 2 bits back.
  net.layer(0).master_weight().value.setZero();
  put_on_boundary(1);
  const sc::SchedulerEvent& e2 = s.apply(net, 9, 1.0 / 8);
  ASSERT_EQ(e2.frozen.size(), 1u);
  EXPECT_EQ(e2.frozen[0], net.name(1));
  EXPECT_EQ(net.weight_candidates(0), (std::vector<int>{2, 3, 4, 5, 6}));
  EXPECT_EQ(net.weight_candidates(1), (std::vector<int>{3, 4, 5, 6}));
  EXPECT_EQ(s.log().size(), 2u);
  // Only 2 bits are ever removed (the released code): a layer whose minimum is 3 is counted, not shrunk.
  sc::SupernetOptions o3 = tiny_options();
  o3.weight_bits = o3.activation_bits = {3, 4, 5, 6};
  sc::Supernet net3("resnet", o3, 3);
  net3.initialize_step_sizes(batch(data, 16, y));
  const sc::SchedulerEvent& e3 = s.apply(net3, 11, 0.5);
  EXPECT_TRUE(e3.frozen.empty());
  EXPECT_EQ(net3.weight_candidates(0), (std::vector<int>{3, 4, 5, 6}));
  EXPECT_THROW(s.apply(net, 11, 1.5), mixq::error);
  EXPECT_THROW(s.apply(net, 11, -0.1), mixq::error);
}

TEST(OneshotSupernet, BatchNormGridSwitchesByLayerPair) {
  sc::Supernet net("resnet", tiny_options(), 3);
  std::vector<std::int32_t> y;
  const auto data = synthetic(16, 2);
  const nn::Tensor x = batch(data, 16, y);
  net.initialize_step_sizes(x);
  net.model().set_training(false);
  sc::Policy p = net.max_policy();
  p[1] = {3, 4};
  net.set_policy(p);
  EXPECT_EQ(net.batch_norm(1)->key(), "w3a4");
  EXPECT_EQ(net.batch_norm(0)->key(), "w6a6");
  const nn::Tensor z1 = net.model().forward(x);
  net.batch_norm(1)->at("w3a4").bias().value.array() += 1.f;  // only the (3, 4) copy of layer 1 changes
  const nn::Tensor z2 = net.model().forward(x);
  EXPECT_GT((z2.data - z1.data).cwiseAbs().maxCoeff(), 1e-4f);
  p[1] = {3, 5};
  net.set_policy(p);
  EXPECT_EQ(net.batch_norm(1)->key(), "w3a5");
  net.batch_norm(1)->at("w3a4").bias().value.array() -= 1.f;
  p[1] = {3, 4};
  net.set_policy(p);
  const nn::Tensor z3 = net.model().forward(x);
  EXPECT_EQ(z3.data, z1.data);
  // One set of buffers per grid: at most one copy holds an output.
  std::mt19937_64 rng(5);
  for (int i = 0; i < 6; ++i) {
    net.set_policy(net.random_policy(rng));
    net.model().forward(x);
  }
  for (std::size_t l = 0; l < net.size(); ++l) {
    int holding = 0;
    for (const std::string& k : net.batch_norm(l)->keys()) holding += net.batch_norm(l)->at(k).output().size() > 0;
    EXPECT_LE(holding, 1) << net.name(l);
  }
  EXPECT_EQ(net.memory().bn_copies, 25);
  EXPECT_EQ(net.size(), 8u);
}

TEST(OneshotTraining, KlDistillationGradientMatchesFiniteDifferences) {
  // The random subnets' loss 1/2 CE + 1/2 KL(teacher || student) and its gradient in the student logits.
  nn::Tensor z = mixq_test::random_tensor(3, 5, 1, 1, 11), t = mixq_test::random_tensor(3, 5, 1, 1, 12);
  const std::vector<std::int32_t> y{1, 4, 0};
  auto loss = [&](const nn::Tensor& s, nn::Tensor& g) {
    nn::Tensor gk;
    const float ce = nn::cross_entropy(s, y, g);
    const float kl = nn::kl_distillation(s, t, gk);
    g.data = 0.5f * g.data + 0.5f * gk.data;
    return 0.5 * ce + 0.5 * kl;
  };
  nn::Tensor g, tmp;
  loss(z, g);
  for (nn::Index i = 0; i < z.size(); ++i) {
    nn::Tensor zp = z, zm = z;
    zp.data[i] += 1e-2f;
    zm.data[i] -= 1e-2f;
    const double fd = (loss(zp, tmp) - loss(zm, tmp)) / 2e-2;
    EXPECT_NEAR(g.data[i], fd, 2e-4) << i;
  }
}

TEST(OneshotTraining, IdmValueMatchesDirectComputation) {
  sc::SupernetOptions so = tiny_options();
  so.weight_bits = {3, 4};  // a random subnet puts several layers at their minimum (3)
  sc::Supernet net("resnet", so, 4);
  const auto data = synthetic(32, 3);
  std::vector<std::int32_t> y;
  const nn::Tensor x = batch(data, 32, y);
  net.initialize_step_sizes(x);
  sc::OneShotOptions o;
  o.random_subnets = 1;
  o.idm_weight = 0.5f;
  o.lr = 1e-30f;
  o.step_lr = 0.f;
  o.scheduler = false;
  sc::OneShotTrainer tr(net, o, 10);
  const sc::StepStats st = tr.step(x, y);
  ASSERT_EQ(tr.last_policies().size(), 1u);
  const sc::Policy p = tr.last_policies()[0];
  // Direct: the BN outputs of the max and the sampled subnet (training-mode BN, the same weights).
  auto outputs = [&](const sc::Policy& q) {
    net.set_policy(q);
    net.model().set_training(true);
    std::vector<nn::Tensor> f;
    std::vector<std::string> names;
    for (std::size_t l = 0; l < net.size(); ++l) net.batch_norm(l)->set_forward_hook([&f](nn::Module&, const nn::Tensor& t) { f.push_back(t); });
    net.model().forward(x);
    for (std::size_t l = 0; l < net.size(); ++l) net.batch_norm(l)->clear_hooks();
    return f;
  };
  const auto T = outputs(net.max_policy());
  const auto F = outputs(p);
  double want = 0;
  int at_min = 0;
  for (std::size_t l = 0; l < net.size(); ++l)
    if (p[l].weight_bits == 3) {
      want += (F[l].data - T[l].data).squaredNorm() / static_cast<double>(F[l].size());
      ++at_min;
    }
  ASSERT_GT(at_min, 0);
  EXPECT_NEAR(st.idm, 0.5 * want, 1e-5 * std::max(1.0, want));
}

TEST(OneshotSearch, GreedyStaysWithinBudgetAndCandidates) {
  sc::SupernetOptions so = tiny_options();
  so.weight_bits = so.activation_bits = {2, 3};
  sc::Supernet net("resnet", so, 5);
  const auto data = synthetic(64, 4);
  std::vector<std::int32_t> y;
  net.initialize_step_sizes(batch(data, 32, y));
  net.remove_min_bits(2);
  net.remove_min_bits(5);
  sc::BatchScorer scorer(net, data, 16);
  const std::int64_t lo = sc::detail::minimum_bit_operations(net);
  for (const std::int64_t budget : {sc::uniform_bit_operations(net, 3, 3), (lo + sc::uniform_bit_operations(net, 3, 3)) / 2}) {
    const sc::SearchResult r = sc::greedy_search(net, scorer, budget);
    EXPECT_LE(r.bit_operations, budget);
    EXPECT_NO_THROW(net.check_policy(r.policy));
    EXPECT_GE(r.policy[2].weight_bits, 3);
    EXPECT_GT(r.evaluations, 0);
    EXPECT_LT(r.evaluations, 200);
  }
  EXPECT_THROW(sc::greedy_search(net, scorer, lo - 1), mixq::error);
  EXPECT_THROW(sc::exact_search(net, sc::measure_sensitivities(net, scorer), lo - 1), mixq::error);
  std::mt19937_64 rng(1);
  for (int i = 0; i < 5; ++i) {
    const sc::Policy p = sc::random_feasible_policy(net, sc::uniform_bit_operations(net, 3, 3), rng);
    EXPECT_LE(net.bit_operations(p), sc::uniform_bit_operations(net, 3, 3));
    EXPECT_NO_THROW(net.check_policy(p));
  }
}

TEST(OneshotSearch, ExactSearchIsTheOptimumOfItsCostTable) {
  sc::SupernetOptions so = tiny_options();
  so.weight_bits = {2, 4};
  so.activation_bits = {2, 4};
  sc::Supernet net("resnet", so, 6);
  const auto data = synthetic(32, 5);
  std::vector<std::int32_t> y;
  net.initialize_step_sizes(batch(data, 32, y));
  sc::BatchScorer scorer(net, data, 32);
  const sc::Sensitivities s = sc::measure_sensitivities(net, scorer);
  ASSERT_EQ(s.options.size(), 4u);
  const std::int64_t budget = sc::uniform_bit_operations(net, 3, 3);
  const sc::SearchResult r = sc::exact_search(net, s, budget);
  // Brute force over 4^8 policies of the cost table.
  std::vector<std::vector<bool>> allowed;
  const auto cost = sc::exact_costs(net, s, allowed);
  double best = 1e300;
  const std::size_t L = net.size();
  for (std::size_t l = 0; l < L; ++l)  // the table is the sensitivities up to a per-layer constant and the tie-break
    for (std::size_t o = 0; o < 4; ++o)
      EXPECT_NEAR(cost[l][o] - cost[l][0],
                  s.loss[l][o] - s.loss[l][0] +
                      1e-6 * (s.options[0].weight_bits * s.options[0].activation_bits -
                              s.options[o].weight_bits * s.options[o].activation_bits) / 16.0,
                  1e-9);
  for (std::size_t code = 0; code < (std::size_t{1} << (2 * L)); ++code) {
    sc::Policy p(L);
    double c = 0;
    for (std::size_t l = 0; l < L; ++l) {
      const std::size_t o = (code >> (2 * l)) & 3u;
      p[l] = s.options[o];
      c += cost[l][o];
    }
    if (net.bit_operations(p) <= budget) best = std::min(best, c);
  }
  EXPECT_NEAR(r.objective, best, 1e-9 * std::max(1.0, best));
  EXPECT_LE(r.bit_operations, budget);
  const sc::SearchResult lq = sc::limpq_supernet_search(net, budget);
  EXPECT_LE(lq.bit_operations, budget);
  EXPECT_NO_THROW(net.check_policy(lq.policy));
}

TEST(OneshotTraining, SameSeedSameResultAndReportFields) {
  const auto data = synthetic(64, 6);
  auto run = [&](std::uint64_t seed) {
    sc::SupernetOptions so = tiny_options();
    so.weight_bits = so.activation_bits = {2, 3, 4};
    sc::Supernet net("resnet", so, 7);
    sc::OneShotOptions o;
    o.epochs = 2;
    o.batch_size = 32;
    o.seed = seed;
    o.qe_loss = true;
    o.distribution_loss = true;
    sc::OneShotTrainer tr(net, o, sc::OneShotTrainer::total_steps(o, data.size()));
    const auto epochs = tr.train(data);
    tr.swap_ema();
    sc::BatchScorer scorer(net, data, 16);
    const sc::SearchResult g = sc::greedy_search(net, scorer, sc::uniform_bit_operations(net, 3, 3));
    const double acc = sc::evaluate_policy(net, g.policy, data, data, 2, 32, 1);
    Eigen::VectorXf w = net.layer(3).master_weight().value;
    sc::OneShotRunReport rep;
    rep.seed = seed;
    rep.epochs = epochs;
    rep.scheduler_events = tr.scheduler().log();
    rep.memory = net.memory();
    rep.searches.push_back({"W3A3", g, acc, -1.0});
    rep.uniform.push_back({"W3A3", acc, -1.0});
    return std::make_tuple(w, g.policy, acc, sc::to_json(rep, net));
  };
  const auto a = run(9), b = run(9);
  EXPECT_EQ(std::get<0>(a), std::get<0>(b));
  EXPECT_EQ(sc::Supernet::to_string(std::get<1>(a)), sc::Supernet::to_string(std::get<1>(b)));
  EXPECT_EQ(std::get<2>(a), std::get<2>(b));
  const nlohmann::json& j = std::get<3>(a);
  for (const std::string& f : sc::oneshot_run_fields()) EXPECT_TRUE(j.contains(f)) << f;
  ASSERT_FALSE(j["scheduler_events"].empty());
  for (const char* f : {"epoch", "ratio", "metric", "frozen"}) EXPECT_TRUE(j["scheduler_events"][0].contains(f)) << f;
}

TEST(OneshotErrors, BadInputNamesTheValueBeforeAnyChange) {
  sc::SupernetOptions so = tiny_options();
  so.weight_bits = {};
  EXPECT_THROW(sc::Supernet("resnet", so), mixq::error);
  sc::Supernet net("resnet", tiny_options(), 8);
  const sc::Policy before = net.policy();
  sc::Policy p = net.max_policy();
  p[3] = {7, 6};
  try {
    net.set_policy(p);
    FAIL();
  } catch (const mixq::error& e) {
    EXPECT_NE(std::string(e.what()).find("w_bits=7"), std::string::npos) << e.what();
  }
  EXPECT_EQ(sc::Supernet::to_string(net.policy()), sc::Supernet::to_string(before));
  EXPECT_EQ(net.layer(3).w_bits(), 6);
  sc::OneShotOptions o;
  o.random_subnets = -1;
  EXPECT_THROW(sc::OneShotTrainer(net, o, 10), mixq::error);
  // A float checkpoint of another architecture.
  nn::ModelOptions mo;
  auto mlp = nn::make_mlp(mo);
  EXPECT_THROW(net.load_float(*mlp), mixq::error);
  EXPECT_THROW(sc::frontier_budgets(10, 5, 20), mixq::error);
}

}  // namespace oneshot_test
