// LIMPQ pipeline on a tiny ResNet and a few hundred Fashion-MNIST images: joint indicator training,
// indicator extraction and file round trip, search under BitOps budgets, the Hessian and random baselines,
// and the report JSON of examples/limpq_fashion_mnist.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>

#include "mixq/mixq.hpp"
#include "mixq/schedule.hpp"

namespace nn = mixq::nn;
namespace sc = mixq::schedule;
namespace search = mixq::search;

namespace {

constexpr nn::Index kImages = 64;
constexpr int kSide = 14;  // images subsampled 2x2 to 14x14: a quarter of the compute (qemu, ASan)

/// A small training set: the first images of the Fashion-MNIST test split (smaller file to read); nullptr when
/// the data set is not installed.
const mixq::io::ImageSet* images() {
  static std::unique_ptr<mixq::io::ImageSet> set = [] {
    try {
      const auto s = mixq::io::read_fashion_mnist_split(mixq::io::fashion_mnist_directory(), "t10k");
      const mixq::io::ImageSet h = sc::head(s, kImages);
      auto out = std::make_unique<mixq::io::ImageSet>();
      out->rows = out->cols = kSide;
      out->labels = h.labels;
      out->images.resize(h.images.rows(), kSide * kSide);
      for (Eigen::Index i = 0; i < h.images.rows(); ++i)
        for (int r = 0; r < kSide; ++r)
          for (int c = 0; c < kSide; ++c) out->images(i, r * kSide + c) = h.images(i, (2 * r) * h.cols + 2 * c);
      return out;
    } catch (const mixq::error&) {
      return std::unique_ptr<mixq::io::ImageSet>();
    }
  }();
  return set.get();
}

nn::ModelOptions tiny(bool switchable, bool per_channel) {
  nn::ModelOptions o;
  o.seed = 3;
  o.width_multiplier = 0.25f;  // channels 4 / 8 / 16
  o.switchable_bn = switchable;
  o.quant.per_channel_weights = per_channel;
  return o;
}

/// Float model, trained indicator model and its indicators, shared by the tests (trained once).
struct Pipeline {
  std::unique_ptr<nn::Sequential> float_model, ind_model;
  search::LayerTable table;
  search::LimpqIndicators ind0, ind;  // before and after training
  std::size_t copied = 0;
};

const Pipeline& pipeline() {
  static std::unique_ptr<Pipeline> p = [] {
    auto q = std::make_unique<Pipeline>();
    const auto& data = *images();
    q->float_model = nn::make_resnet(tiny(false, true));
    sc::TrainOptions to;
    to.epochs = 1;
    to.batch_size = 32;
    to.lr = 0.05f;
    sc::train_supervised(*q->float_model, data, to);
    q->ind_model = nn::make_resnet(tiny(true, false));
    q->copied = sc::copy_matching_parameters(*q->float_model, *q->ind_model);
    nn::Tensor x0;
    std::vector<std::int32_t> y0;
    nn::make_batch(data.images.data(), data.labels.data(), nn::epoch_order(32), 0, 32, 1, kSide, kSide,
                   mixq::io::fashion_mnist_mean, mixq::io::fashion_mnist_std, x0, y0);
    sc::initialize_step_sizes(*q->ind_model, x0, {2, 3, 4, 5, 6});
    q->ind0 = sc::extract_indicators(*q->ind_model, 1, kSide, kSide);
    sc::IndicatorTrainingOptions io;
    io.batch_size = 32;
    io.epochs = 1;
    sc::train_indicators(*q->ind_model, data, io);
    q->table = sc::search_layer_table(*q->float_model, 1, kSide, kSide);
    q->ind = sc::extract_indicators(*q->ind_model, 1, kSide, kSide);
    return q;
  }();
  return *p;
}

#define REQUIRE_DATA() \
  if (!images()) GTEST_SKIP() << "Fashion-MNIST not installed (/usr/share/datasets/fashion-mnist)"

}  // namespace

TEST(LimpqTable, MatchesTheNetworkAndTheCostModel) {
  auto m = nn::make_resnet(tiny(false, true));
  const search::LayerTable t = sc::search_layer_table(*m, 1, 28, 28);
  ASSERT_EQ(t.size(), 10u);  // stem, 8 searchable convs, fc
  EXPECT_EQ(t.front().fixed_bits, 8);
  EXPECT_EQ(t.back().fixed_bits, 8);
  EXPECT_EQ(sc::searchable_layers(t).size(), 8u);
  EXPECT_EQ(t.back().kind, search::LayerKind::linear);
  auto layers = nn::quant_layers(*m);
  for (std::size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(t[i].name, layers[i].name);
    EXPECT_EQ(search::weight_count(t[i]), layers[i].layer->master_weight().value.size());
  }
  // stage2 conv1: 4 -> 8 channels, 3x3, stride 2 on 28x28: 288 weights, 14x14 outputs.
  EXPECT_EQ(search::macs(t[3]), 8 * 4 * 9 * 14 * 14);
}

TEST(LimpqIndicators, CopyFromFloatFillsEveryBnBank) {
  auto f = nn::make_resnet(tiny(false, true));
  auto s = nn::make_resnet(tiny(true, false));
  for (auto& np : nn::named_parameters(*f)) np.parameter->value.setConstant(0.5f);
  const std::size_t copied = sc::copy_matching_parameters(*f, *s);
  EXPECT_GT(copied, 0u);
  for (auto& np : nn::named_parameters(*s)) {
    if (np.name.find("step_size") != std::string::npos) continue;  // per-tensor vs per-channel: not copied
    EXPECT_TRUE((np.parameter->value.array() == 0.5f).all()) << np.name;
  }
}

TEST(LimpqIndicators, FinitePositiveMostlyMonotone) {
  REQUIRE_DATA();
  const Pipeline& p = pipeline();
  ASSERT_EQ(p.ind.params.size(), 8u);
  EXPECT_EQ(p.ind.bit_widths, (std::vector<int>{6, 5, 4, 3, 2}));
  for (std::size_t l = 0; l < p.ind.params.size(); ++l) {
    for (double s : p.ind.weight_step[l]) EXPECT_TRUE(std::isfinite(s) && s > 0) << l;
    for (double s : p.ind.activation_step[l]) EXPECT_TRUE(std::isfinite(s) && s > 0) << l;
  }
  EXPECT_GE(sc::indicator_monotone_fraction(p.ind), 0.8);
  // LSQ's initial rule 2 mean|x| / sqrt(qmax) is monotone up to the inputs differing between bit-widths.
  EXPECT_GE(sc::indicator_monotone_fraction(p.ind0), 0.9);
  const double moved = sc::indicator_relative_change(p.ind0, p.ind);
  EXPECT_TRUE(std::isfinite(moved) && moved > 0.0) << moved;
  // The BN bank of every bit-width exists and the stem BN follows its fixed 8-bit conv.
  auto& bank = dynamic_cast<nn::SwitchableBatchNorm2d&>(nn::find_module(*p.ind_model, "stage1.main.bn1"));
  for (int b = 2; b <= 6; ++b) EXPECT_TRUE(bank.has_key(nn::bits_key(b, b))) << b;
  EXPECT_TRUE(dynamic_cast<nn::SwitchableBatchNorm2d&>(nn::find_module(*p.ind_model, "stem.bn")).has_key("w8a8"));
}

TEST(LimpqIndicators, FileRoundTripIsExact) {
  REQUIRE_DATA();
  const Pipeline& p = pipeline();
  std::stringstream ss;
  sc::write_limpq_indicators(ss, p.ind);
  const search::LimpqIndicators back = search::read_limpq_indicators(ss);
  EXPECT_EQ(back.params, p.ind.params);
  EXPECT_EQ(back.macs, p.ind.macs);
  EXPECT_EQ(back.weight_step, p.ind.weight_step);
  EXPECT_EQ(back.activation_step, p.ind.activation_step);
  // 12 columns per line, as ../shared/data/limpq_r50_real.txt.
  std::stringstream again;
  sc::write_limpq_indicators(again, p.ind);
  std::string line;
  std::getline(again, line);
  std::istringstream cols(line);
  int n = 0;
  std::string tok;
  while (cols >> tok) ++n;
  EXPECT_EQ(n, 12);
}

TEST(LimpqSearch, PolicyMeetsItsBudgetAtEveryLevel) {
  REQUIRE_DATA();
  const Pipeline& p = pipeline();
  for (int b = 2; b <= 4; ++b) {
    const search::LimpqBudgets level = sc::level_budgets(p.table, b, b);
    for (bool with_size : {false, true}) {
      const search::LimpqBudgets budget{level.bit_operations, with_size ? level.size_bits : 0};
      const sc::PolicySearch s = sc::limpq_search(p.table, p.ind, budget, 2.0, 1);
      ASSERT_FALSE(s.bits.empty()) << s.status;
      EXPECT_LE(s.bit_operations, budget.bit_operations) << b;
      if (with_size) {
        EXPECT_LE(s.size_bits, level.size_bits) << b;
      }
      EXPECT_EQ(s.bits.size(), 8u);
      EXPECT_GT(s.search_microseconds, 0.0);
      const search::BitPolicy bp = sc::to_bit_policy(p.table, s.bits);
      EXPECT_EQ(search::total_bit_operations(p.table, bp), s.bit_operations);
      EXPECT_EQ(search::model_size_bits(p.table, bp), s.size_bits);
      // Candidates 2..6: the W2A2 BitOps leave no room but uniform W2A2.
      if (b == 2) {
        EXPECT_EQ(s.bits, sc::uniform_layer_bits(p.table, 2, 2));
      }
    }
  }
}

TEST(LimpqSearch, RandomAndHessianBaselinesMeetTheBudget) {
  REQUIRE_DATA();
  const Pipeline& p = pipeline();
  const auto& data = *images();
  nn::Tensor x;
  std::vector<std::int32_t> y;
  nn::make_batch(data.images.data(), data.labels.data(), nn::epoch_order(16), 0, 16, 1, kSide, kSide,
                 mixq::io::fashion_mnist_mean, mixq::io::fashion_mnist_std, x, y);
  sc::HessianOptions ho;
  ho.samples = 2;
  const Eigen::VectorXf w_before = nn::quant_layers(*p.float_model)[1].layer->master_weight().value;
  const std::vector<double> tr = sc::hutchinson_traces(*p.float_model, x, y, ho);
  ASSERT_EQ(tr.size(), 8u);
  for (double t : tr) EXPECT_TRUE(std::isfinite(t));
  EXPECT_TRUE((nn::quant_layers(*p.float_model)[1].layer->master_weight().value.array() == w_before.array()).all());
  std::vector<Eigen::VectorXf> weights;
  std::vector<nn::Index> channels;
  sc::searchable_weights(*p.float_model, p.table, weights, channels);
  const search::LimpqBudgets budget = sc::level_budgets(p.table, 3, 3);
  const sc::PolicySearch h = sc::hawq_search(p.table, tr, weights, channels, {2, 3, 4, 5, 6}, budget, 1);
  ASSERT_EQ(h.status, "optimal");
  EXPECT_LE(h.bit_operations, budget.bit_operations);
  for (auto& [name, b] : h.bits) EXPECT_EQ(b.first, b.second) << name;  // HAWQ-V3: one bit-width per layer
  const sc::PolicySearch r = sc::limpq_search(p.table, sc::random_indicators(p.ind, 7), budget, 2.0, 1);
  ASSERT_EQ(r.status, "optimal");
  EXPECT_LE(r.bit_operations, budget.bit_operations);
  // The quantization error falls with more bits.
  EXPECT_GT(sc::weight_quantization_error(weights[0], channels[0], 2),
            sc::weight_quantization_error(weights[0], channels[0], 4));
}

TEST(LimpqReport, JsonHasEveryField) {
  REQUIRE_DATA();
  const Pipeline& p = pipeline();
  const auto& data = *images();
  sc::LimpqReport r;
  r.mode = "quick";
  r.model = "resnet";
  r.seeds = {1};
  r.float_accuracy = {sc::evaluate_accuracy(*p.float_model, data, 32)};
  r.monotone_fraction = {sc::indicator_monotone_fraction(p.ind)};
  r.total_weights = search::total_weights(p.table);
  r.total_macs = search::total_macs(p.table);
  for (int b : {2, 3}) {
    sc::LevelReport L;
    L.level = "W" + std::to_string(b) + "A" + std::to_string(b);
    L.weight_bits = L.activation_bits = b;
    const auto budget = sc::level_budgets(p.table, b, b);
    L.budget_bit_operations = budget.bit_operations;
    for (const std::string& m : sc::report_methods()) {
      sc::MethodRun run;
      run.search = m == "uniform" ? sc::PolicySearch{} : sc::limpq_search(p.table, p.ind, budget, 2.0, 1);
      if (m == "uniform") run.search.bits = sc::uniform_layer_bits(p.table, b, b);
      // A short QAT fine-tune of one policy (the others reuse the float accuracy: the test is about fields).
      run.accuracy = r.float_accuracy[0];
      if (m == "limpq" && b == 3) {
        auto q = nn::make_resnet(tiny(false, true));
        sc::copy_matching_parameters(*p.float_model, *q);
        nn::set_uniform_bits(*q, 8, 8);
        nn::set_bits(*q, run.search.bits);
        sc::TrainOptions to;
        to.batch_size = 32;
        to.train_limit = 32;
        to.lr = 0.01f;
        to.schedule = sc::LrSchedule::cosine;
        sc::train_supervised(*q, data, to);
        run.accuracy = sc::evaluate_accuracy(*q, data, 32);
      }
      EXPECT_GE(run.accuracy, 0.0);
      EXPECT_LE(run.accuracy, 1.0);
      L.runs[m].push_back(run);
    }
    r.levels.push_back(L);
  }
  const nlohmann::json j = sc::limpq_report_json(r);
  EXPECT_TRUE(sc::missing_report_fields(j).empty());
  for (const auto& f : sc::missing_report_fields(j)) ADD_FAILURE() << "missing " << f;
  EXPECT_EQ(j["levels"].size(), 2u);
  EXPECT_EQ(j["levels"][1]["methods"]["limpq"]["policies"][0].size(), 8u);
  EXPECT_LE(j["levels"][1]["methods"]["limpq"]["bit_operations"].get<double>(),
            static_cast<double>(j["levels"][1]["budget_bit_operations"].get<std::int64_t>()));
  // A broken report is detected.
  nlohmann::json broken = j;
  broken["levels"][0]["methods"].erase("hessian");
  broken.erase("mode");
  EXPECT_EQ(sc::missing_report_fields(broken).size(), 2u);
  // Runs must match the seeds.
  r.seeds = {1, 2};
  EXPECT_THROW(sc::limpq_report_json(r), mixq::error);
}

TEST(BatchNormReestimation, RunningStatisticsAreThePlainAverageOfTheBatches) {
  REQUIRE_DATA();
  const auto& data = *images();
  nn::Sequential model;
  auto& bn = model.add("bn", std::make_unique<nn::BatchNorm2d>(1));
  bn.running_mean().value.setConstant(7.f);  // stale statistics, which must not survive
  bn.running_var().value.setConstant(9.f);
  bn.weight().value.setConstant(1.5f);
  model.set_training(false);
  const nn::Index batches = 3, batch = 16;
  EXPECT_EQ(sc::reestimate_batchnorm(model, data, batches, batch, 5), 1u);

  // Independently: the mean and unbiased variance of each batch's normalised pixels, averaged over batches.
  std::mt19937_64 rng(5);
  const auto order = nn::epoch_order(data.size(), &rng);
  double mean_sum = 0, var_sum = 0;
  nn::Tensor x;
  std::vector<std::int32_t> y;
  for (nn::Index k = 0; k < batches; ++k) {
    nn::make_batch(data.images.data(), data.labels.data(), order, k * batch, (k + 1) * batch, 1, kSide, kSide,
                   mixq::io::fashion_mnist_mean, mixq::io::fashion_mnist_std, x, y);
    const nn::Index m = batch * kSide * kSide;
    double s = 0, s2 = 0;
    for (nn::Index i = 0; i < m; ++i) s += x.ptr()[i];
    const double mu = s / static_cast<double>(m);
    for (nn::Index i = 0; i < m; ++i) s2 += (x.ptr()[i] - mu) * (x.ptr()[i] - mu);
    mean_sum += mu;
    var_sum += s2 / static_cast<double>(m - 1);
  }
  EXPECT_NEAR(bn.running_mean().value[0], mean_sum / batches, 1e-5 * std::abs(mean_sum / batches) + 1e-6);
  EXPECT_NEAR(bn.running_var().value[0], var_sum / batches, 1e-5 * var_sum / batches);
  EXPECT_FLOAT_EQ(bn.momentum(), 0.1f);  // restored
  EXPECT_FALSE(model.training());        // restored
  EXPECT_EQ(bn.weight().value[0], 1.5f);  // parameters untouched

  EXPECT_THROW(sc::reestimate_batchnorm(model, data, 0, batch), mixq::error);
  EXPECT_THROW(sc::reestimate_batchnorm(model, data, 5, batch), mixq::error);  // 80 > 64 images
  EXPECT_THROW(bn.set_momentum(-0.5f), mixq::error);
  EXPECT_THROW(bn.set_momentum(1.5f), mixq::error);
  EXPECT_THROW(nn::BatchNorm2d(4, 2.f), mixq::error);

  // Momentum 0 (frozen statistics) is valid and comes back unchanged after the re-estimation.
  nn::Sequential frozen;
  auto& fbn = frozen.add("bn", std::make_unique<nn::BatchNorm2d>(1, 0.f));
  sc::reestimate_batchnorm(frozen, data, 2, batch, 5);
  EXPECT_EQ(fbn.momentum(), 0.f);
  EXPECT_NE(fbn.running_mean().value[0], 0.f);
  EXPECT_THROW(bn.set_momentum(std::nanf("")), mixq::error);
}

TEST(LimpqBadInput, ClearErrors) {
  auto plain = nn::make_resnet(tiny(false, true));
  mixq::io::ImageSet one;
  one.rows = one.cols = 28;
  one.images.resize(4, 28 * 28);
  one.images.setZero();
  one.labels = {0, 1, 2, 3};
  EXPECT_THROW(sc::train_indicators(*plain, one, {}), mixq::error);  // no switchable BN
  auto sw = nn::make_resnet(tiny(true, false));
  sc::IndicatorTrainingOptions bad;
  bad.bit_widths = {1, 2};
  EXPECT_THROW(sc::train_indicators(*sw, one, bad), mixq::error);
  bad.bit_widths = {2};
  bad.clip_value = 0.f;
  EXPECT_THROW(sc::train_indicators(*sw, one, bad), mixq::error);
  EXPECT_THROW(sc::extract_indicators(*sw, 1, 28, 28), mixq::error);  // nothing trained yet
  search::LimpqIndicators ind;
  ind.params = {1};
  EXPECT_THROW(sc::write_limpq_indicators(std::cout, ind), mixq::error);
  EXPECT_THROW(sc::weight_quantization_error(Eigen::VectorXf::Ones(6), 4, 3), mixq::error);
  const search::LayerTable t = sc::search_layer_table(*plain, 1, 28, 28);
  EXPECT_THROW(sc::to_bit_policy(t, {}), mixq::error);
  EXPECT_THROW(sc::hawq_search(t, {1.0}, {}, {}, {2, 3}, sc::level_budgets(t, 3, 3)), mixq::error);
}
