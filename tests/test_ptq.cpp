// The ptq layer (AdaRound, BRECQ block reconstruction, QDrop, MRECG's ModCap merging): gradients against finite
// differences, AdaRound's initialisation and hard rounding, the beta schedule, QDrop's keep rate, BN folding of the
// PTQ network, data-free ModCap on a hand-computed table, top-k merging with chaining, bad input, and block
// reconstruction beating round-to-nearest on a tiny network. Small nets and random data: seconds.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "mixq/nn.hpp"
#include "mixq/ptq.hpp"
#include "nn_test_support.hpp"

namespace nn = mixq::nn;
namespace ptq = mixq::ptq;

namespace ptq_test {

// A tiny ResNet (channels 4/8/16) with random BatchNorm statistics, so that folding is not the identity.
std::unique_ptr<nn::Sequential> tiny_resnet(std::uint64_t seed) {
  nn::ModelOptions mo;
  mo.seed = seed;
  mo.width_multiplier = 0.25;
  auto m = nn::make_resnet(mo);
  std::mt19937_64 rng(seed + 100);
  std::uniform_real_distribution<float> u(0.5f, 1.5f), v(-0.2f, 0.2f);
  for (auto& nm : nn::named_modules(*m))
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(nm.module))
      for (nn::Index c = 0; c < bn->channels(); ++c) {
        bn->weight().value[c] = u(rng);
        bn->bias().value[c] = v(rng);
        bn->running_mean().value[c] = v(rng);
        bn->running_var().value[c] = u(rng);
      }
  m->set_training(false);
  return m;
}

// Calibration "images": smooth random 8x8 pictures (non-negative pixels, as normalised images are bounded).
nn::Tensor images(nn::Index n, std::uint64_t seed) {
  nn::Tensor t = mixq_test::random_tensor(n, 1, 8, 8, seed);
  t.data = t.data.array().tanh();
  return t;
}

}  // namespace ptq_test

TEST(PtqAdaRound, RectifiedSigmoidGradientMatchesFiniteDifferences) {
  for (float v : {-3.f, -1.f, -0.2f, 0.f, 0.7f, 2.f}) {
    const float h = 1e-3f;
    const double fd = (ptq::rectified_sigmoid(v + h) - ptq::rectified_sigmoid(v - h)) / (2.0 * h);
    EXPECT_NEAR(ptq::rectified_sigmoid_grad(v), fd, 2e-3) << "v=" << v;
  }
  EXPECT_EQ(ptq::rectified_sigmoid(-10.f), 0.f);  // clamped: no gradient
  EXPECT_EQ(ptq::rectified_sigmoid_grad(-10.f), 0.f);
  EXPECT_EQ(ptq::rectified_sigmoid(10.f), 1.f);
  EXPECT_EQ(ptq::rectified_sigmoid_grad(10.f), 0.f);
}

TEST(PtqAdaRound, RegularizerGradientMatchesFiniteDifferences) {
  Eigen::VectorXf w(6);
  w << 0.13f, -0.41f, 0.27f, 0.05f, -0.33f, 0.49f;
  ptq::WeightQuantizer q;
  q.calibrate(w, 2, 3);
  q.init_adaround(w);
  const float beta = 7.f, lambda = 0.1f;
  q.v().zero_grad();
  q.regularizer(beta, lambda, true);
  const Eigen::VectorXf analytic = q.v().grad;
  for (nn::Index i = 0; i < w.size(); ++i) {
    const float v0 = q.v().value[i], h = 1e-3f;
    q.v().value[i] = v0 + h;
    const double up = q.regularizer(beta, lambda, false);
    q.v().value[i] = v0 - h;
    const double down = q.regularizer(beta, lambda, false);
    q.v().value[i] = v0;
    EXPECT_NEAR(analytic[i], (up - down) / (2.0 * h), 2e-3) << "weight " << i;
  }
  // the regulariser term itself at h = 0.5, 0 and 1
  EXPECT_FLOAT_EQ(ptq::rounding_regularizer(0.5f, 2.f), 1.f);
  EXPECT_FLOAT_EQ(ptq::rounding_regularizer(0.f, 2.f), 0.f);
  EXPECT_FLOAT_EQ(ptq::rounding_regularizer(1.f, 20.f), 0.f);
}

TEST(PtqAdaRound, InitialSoftWeightsEqualFloatWeightsAndHardFollowsSign) {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> d(0.f, 0.2f);
  Eigen::VectorXf w(4 * 27);
  for (nn::Index i = 0; i < w.size(); ++i) w[i] = d(rng);
  ptq::WeightQuantizer q;
  q.calibrate(w, 4, 2);
  q.init_adaround(w);
  Eigen::VectorXf soft, hard, nearest;
  q.effective_weight(w, soft);
  nn::Index inside = 0;
  for (nn::Index c = 0; c < 4; ++c) {
    const float s = q.scales()[c];
    const float z = static_cast<float>(q.zero_points()[static_cast<std::size_t>(c)]);
    for (nn::Index i = c * 27; i < (c + 1) * 27; ++i) {
      const float code = std::floor(w[i] / s) + z;
      if (code < 0.f || code + 1.f > static_cast<float>(q.qmax())) continue;  // clipped: not the float weight
      ++inside;
      EXPECT_NEAR(soft[i], w[i], 1e-5f * std::max(1.f, std::fabs(w[i]))) << i;
    }
  }
  EXPECT_GT(inside, 40);
  // hard rounding: floor(w/s) + 1[V >= 0], whatever V's magnitude
  for (nn::Index i = 0; i < w.size(); ++i) q.v().value[i] = (i % 3 == 0) ? -0.01f : 0.f;
  q.set_mode(ptq::Rounding::hard);
  q.effective_weight(w, hard);
  for (nn::Index c = 0; c < 4; ++c) {
    const float s = q.scales()[c];
    const float z = static_cast<float>(q.zero_points()[static_cast<std::size_t>(c)]);
    for (nn::Index i = c * 27; i < (c + 1) * 27; ++i) {
      const float code = std::clamp(std::floor(w[i] / s) + (i % 3 == 0 ? 0.f : 1.f) + z, 0.f,
                                    static_cast<float>(q.qmax()));
      EXPECT_FLOAT_EQ(hard[i], s * (code - z)) << i;
    }
  }
  // V0 itself: hard rounding of the initial V is round-to-nearest (ties aside)
  q.init_adaround(w);
  q.set_mode(ptq::Rounding::hard);
  q.effective_weight(w, hard);
  q.set_mode(ptq::Rounding::nearest);
  q.effective_weight(w, nearest);
  EXPECT_LT((hard - nearest).cwiseAbs().maxCoeff(), 1e-6f);
  EXPECT_EQ(q.flipped_share(w), 0.0);
}

TEST(PtqAdaRound, BetaScheduleAtGivenSteps) {
  const ptq::BetaSchedule b{1000, 0.2, 20.f, 2.f};
  EXPECT_FALSE(b.regularized(199));
  EXPECT_TRUE(b.regularized(200));
  EXPECT_FLOAT_EQ(b.beta(1), 20.f);
  EXPECT_FLOAT_EQ(b.beta(199), 20.f);
  EXPECT_FLOAT_EQ(b.beta(200), 20.f);
  EXPECT_FLOAT_EQ(b.beta(600), 11.f);  // halfway through the decay
  EXPECT_FLOAT_EQ(b.beta(800), 6.5f);
  EXPECT_FLOAT_EQ(b.beta(1000), 2.f);
  EXPECT_THROW((ptq::BetaSchedule{100, 1.0, 20.f, 2.f}.validate()), mixq::error);
}

TEST(PtqAdaRound, SoftConvolutionGradientMatchesFiniteDifferences) {
  nn::detail::ConvGeometry g;
  g.in_channels = 2;
  g.out_channels = 3;
  g.kernel = 3;
  g.padding = 1;
  const nn::Index nw = 3 * 2 * 9;
  nn::Tensor wt = mixq_test::random_tensor(1, nw, 1, 1, 5);
  ptq::PtqConv2d conv(g, wt.data * 0.3f, Eigen::VectorXf::Constant(3, 0.1f));
  conv.set_bits(3);
  conv.calibrate();
  conv.init_adaround();
  std::mt19937_64 rng(9);
  std::normal_distribution<float> d(0.f, 1.f);
  for (nn::Index i = 0; i < nw; ++i) conv.quantizer().v().value[i] = d(rng);  // away from the initial point
  const nn::Tensor x = mixq_test::random_tensor(2, 2, 5, 5, 6);
  const nn::Tensor r = mixq_test::random_tensor(2, 3, 5, 5, 7);
  auto loss = [&] {
    const nn::Tensor& y = conv.forward(x);
    return static_cast<double>(y.data.dot(r.data));
  };
  loss();
  conv.quantizer().v().zero_grad();
  conv.backward(r);
  const Eigen::VectorXf analytic = conv.quantizer().v().grad;
  for (nn::Index i = 0; i < nw; i += 5) {
    float& v = conv.quantizer().v().value[i];
    const float v0 = v, h = 1e-2f;
    v = v0 + h;
    const double up = loss();
    v = v0 - h;
    const double down = loss();
    v = v0;
    EXPECT_NEAR(analytic[i], (up - down) / (2.0 * h), 5e-3 * std::max(1.0, std::fabs(static_cast<double>(analytic[i])))) << i;
  }
}

TEST(PtqQDrop, KeepRateOnSeededRun) {
  ptq::DropMask a(42), b(42), c(43);
  const nn::Index n = 200000;
  std::vector<float> ma(n), mb(n), mc(n);
  a.fill(0.5f, n, ma.data());
  b.fill(0.5f, n, mb.data());
  c.fill(0.5f, n, mc.data());
  double kept = 0, same = 0;
  for (nn::Index i = 0; i < n; ++i) {
    kept += ma[static_cast<std::size_t>(i)];
    EXPECT_EQ(ma[static_cast<std::size_t>(i)], mb[static_cast<std::size_t>(i)]);
    same += ma[static_cast<std::size_t>(i)] == mc[static_cast<std::size_t>(i)] ? 1 : 0;
  }
  EXPECT_NEAR(kept / n, 0.5, 0.005);  // 4.5 standard deviations
  EXPECT_NEAR(same / n, 0.5, 0.005);  // another seed: independent draws
  a.fill(0.5f, n, mb.data());         // the next mask of the stream differs
  double agree = 0;
  for (nn::Index i = 0; i < n; ++i) agree += ma[static_cast<std::size_t>(i)] == mb[static_cast<std::size_t>(i)] ? 1 : 0;
  EXPECT_NEAR(agree / n, 0.5, 0.005);
  a.fill(0.2f, n, ma.data());
  kept = 0;
  for (float m : ma) kept += m;
  EXPECT_NEAR(kept / n, 0.2, 0.004);
  // the same masks with 2 threads
  nn::set_num_threads(2);
  ptq::DropMask t(42);
  t.fill(0.5f, n, mc.data());
  nn::set_num_threads(1);
  ptq::DropMask s(42);
  s.fill(0.5f, n, ma.data());
  EXPECT_EQ(ma, mc);
}

TEST(PtqQDrop, DroppedElementsAreFloatAndPassTheGradient) {
  ptq::ActQuantizer q(2);
  q.set_params(0.5f, 1);
  q.set_keep_probability(0.5f);
  q.set_learn_scale(true);
  q.masks().reseed(7);
  const nn::Tensor x = mixq_test::random_tensor(4, 3, 5, 5, 11);
  const nn::Tensor dy = mixq_test::random_tensor(4, 3, 5, 5, 12);
  const nn::Tensor y = q.forward(x);
  q.scale_parameter().zero_grad();
  const nn::Tensor dx = q.backward(dy);
  nn::Index dropped = 0;
  double ds = 0;
  for (nn::Index i = 0; i < x.size(); ++i) {
    float fq = 0.f;
    mixq::kernels::fake_quant(&x.data[i], &fq, 1, 0.5f, 1, 0, 3);
    if (y.data[i] == x.data[i] && fq != x.data[i]) {  // dropped: float value, gradient passes unchanged
      ++dropped;
      EXPECT_EQ(dx.data[i], dy.data[i]);
    } else {
      EXPECT_EQ(y.data[i], fq);
      double dxi = 0;
      float dxf = 0.f;
      ds += mixq::kernels::lsq_backward(&x.data[i], &dy.data[i], &dxf, 1, 0.5f, 1, 0, 3, nullptr);
      dxi = dxf;
      EXPECT_EQ(dx.data[i], static_cast<float>(dxi));
    }
  }
  EXPECT_GT(dropped, 100);
  EXPECT_LT(dropped, 200);
  EXPECT_NEAR(q.scale_parameter().grad[0], ds, 1e-3 * std::max(1.0, std::fabs(ds)));
}

TEST(PtqNetwork, FloatNetworkEqualsTheModelWithFoldedBatchNorm) {
  auto model = ptq_test::tiny_resnet(1);
  ptq::PtqNetwork net(*model, {4, 4, 8});
  net.set_float();
  const nn::Tensor x = ptq_test::images(6, 2);
  const nn::Tensor ref = model->forward(x);
  const nn::Tensor& y = net.forward(x);
  ASSERT_TRUE(y.same_shape(ref));
  EXPECT_LT((y.data - ref.data).cwiseAbs().maxCoeff(), 1e-4f * std::max(1.f, ref.data.cwiseAbs().maxCoeff()));
  // placement: image and FC input at 8 bits, inner and output quantizers at 4; first conv and FC weights at 8
  EXPECT_EQ(net.units(), 5);
  const auto acts = net.act_quantizers();
  ASSERT_EQ(acts.size(), 1u + 1u + 3u * 2u + 1u);  // image, stem out, (inner + out) x 3 blocks, FC input
  EXPECT_EQ(acts.front()->bits(), 8);
  EXPECT_EQ(acts.back()->bits(), 8);
  EXPECT_EQ(acts[1]->bits(), 4);
  const auto layers = net.unit_layers();
  EXPECT_EQ(layers.front().layers.front().weight_bits, 8);
  EXPECT_EQ(layers.back().layers.back().weight_bits, 8);
  EXPECT_EQ(layers[2].layers.size(), 3u);  // stage2: conv1, conv2, downsample
  EXPECT_EQ(layers[2].layers[0].stride, 2);
  EXPECT_EQ(layers[2].layers[1].weight_bits, 4);
}

TEST(PtqModCap, DataFreeCapacityOnAHandComputedTable) {
  std::vector<ptq::UnitLayers> units{
      {"stem", {{"conv", 144, 1, 1, 8}}},
      {"stage1", {{"conv", 2304, 1, 1, 4}, {"conv", 2304, 1, 1, 4}}},
      {"stage2", {{"conv", 4608, 2, 1, 4}, {"conv", 9216, 1, 1, 4}, {"conv", 512, 2, 1, 4}}},
      {"head", {{"linear", 640, 1, 1, 8}}}};
  const auto mc = ptq::data_free_capacity(units);
  ASSERT_EQ(mc.size(), 4u);
  EXPECT_DOUBLE_EQ(mc[0], 1152.0);
  EXPECT_DOUBLE_EQ(mc[1], 18432.0);
  EXPECT_DOUBLE_EQ(mc[2], 57344.0);
  EXPECT_DOUBLE_EQ(mc[3], 5120.0);
  const auto mc2 = ptq::data_free_capacity(units, {1.0, 0.5});  // stride-2 layers count half
  EXPECT_DOUBLE_EQ(mc2[2], 0.5 * 4608 * 4 + 9216 * 4 + 0.5 * 512 * 4);
  const auto d = ptq::capacity_differentials(mc);
  EXPECT_DOUBLE_EQ(d[0], 17280.0);
  EXPECT_DOUBLE_EQ(d[1], 38912.0);
  EXPECT_DOUBLE_EQ(d[2], 52224.0);
  const auto ds = ptq::capacity_differentials(mc, ptq::Differential::signed_drop);
  EXPECT_DOUBLE_EQ(ds[0], -17280.0);
  EXPECT_DOUBLE_EQ(ds[2], 52224.0);
  EXPECT_THROW(ptq::data_free_capacity(units, {1.0, 0.0}), mixq::error);
}

TEST(PtqModCap, TopKMergingChains) {
  const std::vector<double> mc{1.0, 5.0, 5.5, 1.0, 1.2, 9.0, 8.0, 8.1};
  // |D| = 4, 0.5, 4.5, 0.2, 7.8, 1, 0.1
  EXPECT_EQ(ptq::top_k_pairs(ptq::capacity_differentials(mc), 3), (std::vector<nn::Index>{0, 2, 4}));
  EXPECT_EQ(ptq::modcap_groups(mc, 3), (ptq::UnitGroups{{0, 1}, {2, 3}, {4, 5}, {6, 6}, {7, 7}}));
  // adjacent selections chain: pairs 0, 1, 2 -> units 0..3 in one group
  EXPECT_EQ(ptq::groups_from_pairs({0, 1, 2, 6}, 8), (ptq::UnitGroups{{0, 3}, {4, 4}, {5, 5}, {6, 7}}));
  EXPECT_EQ(ptq::modcap_groups(mc, 0), ptq::single_units(8));
  EXPECT_EQ(ptq::modcap_groups(mc, 7), (ptq::UnitGroups{{0, 7}}));
  // signed: the largest drops (5.5 -> 1, 9 -> 8, ...)
  EXPECT_EQ(ptq::top_k_pairs(ptq::capacity_differentials(mc, ptq::Differential::signed_drop), 2),
            (std::vector<nn::Index>{2, 5}));
  const auto r = ptq::random_pairs(8, 3, 5);
  EXPECT_EQ(r.size(), 3u);
  EXPECT_EQ(r, ptq::random_pairs(8, 3, 5));
  const std::vector<std::string> names{"a", "b", "c", "d"};
  EXPECT_EQ(ptq::parse_groups("a,b+c,d", names), (ptq::UnitGroups{{0, 0}, {1, 2}, {3, 3}}));
  EXPECT_EQ(ptq::format_groups({{0, 0}, {1, 2}, {3, 3}}, names), "a,b+c,d");
  const auto o = ptq::oscillation({1.0, 3.0, 2.0, 4.0, 4.0, 5.0});
  EXPECT_EQ(o.sign_changes, 2);
  EXPECT_DOUBLE_EQ(o.total_rise, 5.0);
  EXPECT_DOUBLE_EQ(o.total_drop, 1.0);
  EXPECT_DOUBLE_EQ(o.max_loss, 5.0);
}

TEST(PtqBadInput, ErrorsNameTheArgumentBeforeAnyChange) {
  const std::vector<double> mc{1, 2, 3};
  EXPECT_THROW(ptq::top_k_pairs(ptq::capacity_differentials(mc), 3), mixq::error);  // 2 pairs
  EXPECT_THROW(ptq::random_pairs(3, 3, 1), mixq::error);
  const std::vector<std::string> names{"a", "b", "c"};
  EXPECT_THROW(ptq::parse_groups("a,b", names), mixq::error);    // does not cover c
  EXPECT_THROW(ptq::parse_groups("a,b,b", names), mixq::error);  // b twice
  EXPECT_THROW(ptq::parse_groups("a+c,b", names), mixq::error);  // not adjacent
  EXPECT_THROW(ptq::parse_groups("a,b,x", names), mixq::error);  // unknown
  EXPECT_THROW(ptq::check_groups({{0, 0}, {2, 2}}, 3), mixq::error);
  auto model = ptq_test::tiny_resnet(2);
  EXPECT_THROW(ptq::PtqNetwork(*model, {1, 4, 8}), mixq::error);  // bits outside [2, 8]
  EXPECT_THROW(ptq::PtqNetwork(*model, {4, 9, 8}), mixq::error);
  auto mlp = nn::make_mlp();
  try {
    ptq::PtqNetwork bad(*mlp, {4, 4, 8});
    FAIL() << "an MLP has no blocks";
  } catch (const mixq::error& e) {
    EXPECT_NE(std::string(e.what()).find("flatten"), std::string::npos) << e.what();
  }
  ptq::PtqNetwork q(*model, {4, 4, 8}), fp(*model, {4, 4, 8});
  fp.set_float();
  const nn::Tensor x = ptq_test::images(16, 3);
  ptq::calibrate_rtn(q, x, 8);
  const nn::Tensor before = q.forward(x);
  ptq::ReconstructionOptions o;
  o.steps = 5;
  o.batch_size = 32;  // more than the 16 calibration images
  try {
    ptq::reconstruct(q, fp, x, ptq::single_units(q.units()), o);
    FAIL() << "calibration set smaller than a batch";
  } catch (const mixq::error& e) {
    EXPECT_NE(std::string(e.what()).find("batch_size 32"), std::string::npos) << e.what();
  }
  o.batch_size = 8;
  EXPECT_THROW(ptq::reconstruct(q, fp, x, {{0, 1}, {3, 4}}, o), mixq::error);
  EXPECT_EQ(q.forward(x).data, before.data);  // nothing changed
}

TEST(PtqReconstruction, BlockReconstructionLowersTheBlockErrorBelowRtn) {
  auto model = ptq_test::tiny_resnet(4);
  const nn::Tensor x = ptq_test::images(64, 5);
  ptq::PtqNetwork q(*model, {2, 4, 8}), fp(*model, {2, 4, 8});
  fp.set_float();
  ptq::calibrate_rtn(q, x, 32);
  const ptq::UnitErrors rtn = ptq::unit_errors(q, fp, x);
  ptq::ReconstructionOptions o;
  o.steps = 120;
  o.batch_size = 16;
  o.weight_lr = 3e-2f;  // few steps: a larger step (the example scales the rates by 20000 / T)
  o.scale_lr = 1e-3f;
  o.seed = 3;
  const ptq::ReconstructionReport rep = ptq::reconstruct(q, fp, x, ptq::single_units(q.units()), o);
  ASSERT_EQ(rep.units.size(), 5u);
  const ptq::UnitErrors after = ptq::unit_errors(q, fp, x);
  for (std::size_t u = 0; u < rep.units.size(); ++u) {
    EXPECT_LT(rep.units[u].final_loss, rep.units[u].rtn_loss) << rep.units[u].name;
    EXPECT_NEAR(after.loss[u], rep.units[u].final_loss, 1e-4 * std::max(1.0, after.loss[u])) << u;
  }
  EXPECT_LT(after.loss.back(), rtn.loss.back());  // the network output too
  for (ptq::WeightLayer* l : q.weight_layers()) EXPECT_EQ(l->quantizer().mode(), ptq::Rounding::hard);
  // a merged unit reconstructs too, and layer-wise AdaRound beats RTN on its layers
  ptq::PtqNetwork q2(*model, {2, 4, 8});
  ptq::calibrate_rtn(q2, x, 32);
  const auto rep2 = ptq::reconstruct(q2, fp, x, {{0, 0}, {1, 2}, {3, 4}}, o);
  ASSERT_EQ(rep2.units.size(), 3u);
  EXPECT_EQ(rep2.units[1].name, "stage1+stage2");
  EXPECT_LT(rep2.units[1].final_loss, rep2.units[1].rtn_loss);
  // BRECQ's Fisher weighting and QDrop run and beat RTN on every unit too
  ptq::PtqNetwork q4(*model, {2, 4, 8});
  ptq::calibrate_rtn(q4, x, 32);
  o.fisher = true;
  o.keep_probability = 0.5f;
  const auto rep4 = ptq::reconstruct(q4, fp, x, ptq::single_units(q4.units()), o);
  for (const auto& u : rep4.units) EXPECT_LT(u.final_loss, u.rtn_loss) << u.name;
  o.fisher = false;
  o.keep_probability = 1.f;
  ptq::PtqNetwork q3(*model, {2, 4, 8});
  ptq::calibrate_rtn(q3, x, 32);
  o.granularity = ptq::Granularity::layer;
  o.learn_act_scales = false;
  const auto rep3 = ptq::reconstruct(q3, fp, x, ptq::single_units(q3.units()), o);
  EXPECT_EQ(rep3.units.size(), q3.weight_layers().size());
  for (const auto& u : rep3.units) EXPECT_LE(u.final_loss, u.rtn_loss * 1.001) << u.name;
}
