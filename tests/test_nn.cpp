// Gradient checks of every nn layer and loss against central finite differences, plus the optimisers,
// schedules, containers and hooks.
#include <mixq/mixq.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <functional>
#include <random>

#include "nn_test_support.hpp"

namespace nn = mixq::nn;
using nn::Index;
using nn::Tensor;

namespace {

using mixq_test::random_tensor;

// L = sum(forward(x) * r): dL/dy = r.
double probe_loss(nn::Module& m, const Tensor& x, const Tensor& r) {
  const Tensor& y = m.forward(x);
  return static_cast<double>(y.data.cwiseProduct(r.data).sum());
}

// Compares analytic dL/dx and dL/dparams of `m` at x with central differences on up to `samples` entries each.
// `min_pass` < 1 accepts a share of mismatches: in blocks with BN and ReLU a step may cross a kink.
void check_gradients(nn::Module& m, Tensor x, double tol = 2e-2, float eps = 1e-2f, int samples = 40,
                     double min_pass = 1.0) {
  int checked = 0, failed = 0;
  auto expect_close = [&](double num, double ana, const std::string& what) {
    ++checked;
    const double r = std::fabs(num - ana) / std::max(1e-1, std::fabs(num) + std::fabs(ana));
    if (r < tol) return;
    ++failed;
    if (min_pass >= 1.0) ADD_FAILURE() << m.kind() << " " << what << " numeric " << num << " analytic " << ana;
  };
  const Tensor& y0 = m.forward(x);
  const Tensor r = random_tensor(y0.n(), y0.c(), y0.h(), y0.w(), 99);
  nn::zero_grad(m);
  m.forward(x);
  const Tensor dx = m.backward(r);
  // (L(v + eps) - L(v - eps)) / (2 eps) for the entry v of x or of a parameter; v is restored
  const auto central_difference = [&](float& v) {
    const float keep = v;
    v = keep + eps;
    const double lp = probe_loss(m, x, r);
    v = keep - eps;
    const double lm = probe_loss(m, x, r);
    v = keep;
    return (lp - lm) / (2.0 * eps);
  };
  std::mt19937_64 rng(7);
  {
    ASSERT_EQ(dx.size(), x.size());
    for (int s = 0; s < samples; ++s) {
      const Index i = static_cast<Index>(rng() % static_cast<std::uint64_t>(x.size()));
      expect_close(central_difference(x.data[i]), dx.data[i], "dx[" + std::to_string(i) + "]");
    }
  }
  for (auto& np : nn::named_parameters(m)) {
    nn::Parameter& p = *np.parameter;
    if (!p.trainable || !p.has_grad) continue;
    const Eigen::VectorXf grad = p.grad;
    for (int s = 0; s < samples; ++s) {
      const Index i = static_cast<Index>(rng() % static_cast<std::uint64_t>(p.value.size()));
      expect_close(central_difference(p.value[i]), grad[i], np.name + "[" + std::to_string(i) + "]");
    }
  }
  EXPECT_GE(checked - failed, min_pass * checked) << m.kind() << ": " << failed << " of " << checked << " mismatches";
}

}  // namespace

struct ConvCase {
  Index in, out, k, s, p, groups, h;
  bool bias;
};

class ConvGrad : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvGrad, MatchesFiniteDifferences) {
  const ConvCase c = GetParam();
  nn::Conv2d conv(c.in, c.out, c.k, c.s, c.p, c.groups, c.bias, 3);
  if (c.bias) conv.bias()->value.setRandom();
  check_gradients(conv, random_tensor(2, c.in, c.h, c.h + 1, 11));
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvGrad,
                         ::testing::Values(ConvCase{3, 4, 3, 1, 1, 1, 6, false}, ConvCase{3, 4, 3, 2, 1, 1, 7, true},
                                           ConvCase{4, 6, 1, 2, 0, 1, 6, false}, ConvCase{4, 6, 1, 1, 0, 1, 5, true},
                                           ConvCase{4, 6, 3, 1, 1, 2, 5, false}, ConvCase{4, 4, 3, 1, 1, 4, 6, false},
                                           ConvCase{4, 4, 3, 2, 1, 4, 7, true}, ConvCase{2, 3, 5, 1, 0, 1, 7, false},
                                           // phase-split planes at stride 3; odd widths past one 8-float chunk
                                           ConvCase{3, 4, 3, 3, 1, 1, 8, false}, ConvCase{2, 3, 3, 2, 1, 1, 11, false}));

TEST(ConvForward, MatchesDirectLoop) {
  for (Index groups : {1, 2}) {
    nn::Conv2d conv(4, 6, 3, 2, 1, groups, true, 5);
    conv.bias()->value.setRandom();
    const Tensor x = random_tensor(2, 4, 7, 6, 1);
    const Tensor& y = conv.forward(x);
    ASSERT_EQ(y.h(), 4);
    ASSERT_EQ(y.w(), 3);
    const Index cg = 4 / groups, og = 6 / groups;
    for (Index n = 0; n < 2; ++n)
      for (Index o = 0; o < 6; ++o)
        for (Index oy = 0; oy < 4; ++oy)
          for (Index ox = 0; ox < 3; ++ox) {
            double acc = conv.bias()->value[o];
            const Index g = o / og;
            for (Index ci = 0; ci < cg; ++ci)
              for (Index ky = 0; ky < 3; ++ky)
                for (Index kx = 0; kx < 3; ++kx) {
                  const Index iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx;
                  if (iy < 0 || iy >= 7 || ix < 0 || ix >= 6) continue;
                  acc += double(conv.weight().value[((o * cg + ci) * 3 + ky) * 3 + kx]) *
                         x.data[((n * 4 + g * cg + ci) * 7 + iy) * 6 + ix];
                }
            EXPECT_NEAR(y.data[((n * 6 + o) * 4 + oy) * 3 + ox], acc, 1e-4);
          }
  }
}

TEST(LinearGrad, MatchesFiniteDifferences) {
  nn::Linear fc(7, 5, true, 2);
  check_gradients(fc, random_tensor(3, 7, 1, 1, 4));
  nn::Linear fc2(12, 3, false, 2);  // (N, C, H, W) input taken as N x (C*H*W)
  check_gradients(fc2, random_tensor(2, 3, 2, 2, 5));
}

TEST(BatchNormGrad, TrainingModeMatchesFiniteDifferences) {
  nn::BatchNorm2d bn(3);
  bn.weight().value << 1.5f, -0.5f, 0.8f;
  bn.bias().value << 0.1f, 0.2f, -0.3f;
  check_gradients(bn, random_tensor(4, 3, 3, 2, 8), 3e-2, 1e-2f);
  nn::BatchNorm2d bn1(5);  // (N, C, 1, 1): BatchNorm1d
  check_gradients(bn1, random_tensor(6, 5, 1, 1, 9), 3e-2, 1e-2f);
}

TEST(BatchNormGrad, EvaluationModeMatchesFiniteDifferences) {
  nn::BatchNorm2d bn(3);
  bn.running_mean().value << 0.2f, -0.1f, 0.5f;
  bn.running_var().value << 1.5f, 0.7f, 2.0f;
  bn.weight().value << 1.5f, -0.5f, 0.8f;
  bn.set_training(false);
  check_gradients(bn, random_tensor(2, 3, 3, 3, 10));
}

TEST(BatchNorm, RunningStatisticsFollowPyTorch) {
  nn::BatchNorm2d bn(1, 0.1f);
  Tensor x(2, 1, 1, 2);
  x.data << 1, 2, 3, 4;
  bn.forward(x);
  EXPECT_NEAR(bn.running_mean().value[0], 0.1 * 2.5, 1e-6);
  EXPECT_NEAR(bn.running_var().value[0], 0.9 + 0.1 * (5.0 / 3.0), 1e-6);  // unbiased variance 5/3
}

TEST(SwitchableBatchNorm, KeysSelectIndependentStatistics) {
  nn::SwitchableBatchNorm2d bank(2, "w8a8");
  bank.add_key("w4a4");
  EXPECT_EQ(bank.keys().size(), 2u);
  bank.set_key("w4a4");
  Tensor x = random_tensor(4, 2, 2, 2, 3);
  bank.forward(x);
  EXPECT_NE(bank.at("w4a4").running_mean().value[0], 0.f);
  EXPECT_EQ(bank.at("w8a8").running_mean().value[0], 0.f);
  EXPECT_THROW(bank.set_key("w2a2"), mixq::error);
  EXPECT_EQ(nn::named_parameters(bank).size(), 8u);
  EXPECT_EQ(nn::named_parameters(bank)[0].name, "w4a4.weight");
  check_gradients(bank, random_tensor(4, 2, 2, 2, 5), 3e-2);
}

TEST(ActivationGrad, MatchFiniteDifferences) {
  nn::ReLU relu;
  check_gradients(relu, random_tensor(2, 3, 4, 4, 1, 0.05f));
  nn::ReLU6 relu6;
  Tensor x = random_tensor(2, 3, 4, 4, 2, 0.05f);
  x.data *= 4.f;
  for (Index i = 0; i < x.size(); ++i)
    if (std::fabs(x.data[i] - 6.f) < 0.05f) x.data[i] = 6.5f;
  check_gradients(relu6, x);
  EXPECT_EQ(relu6.forward(x).data.maxCoeff(), 6.f);
}

TEST(PoolGrad, MatchFiniteDifferences) {
  nn::MaxPool2d mp(2);
  check_gradients(mp, random_tensor(2, 2, 4, 6, 3), 2e-2, 1e-3f);
  nn::MaxPool2d mp3(3, 2);
  check_gradients(mp3, random_tensor(1, 2, 7, 5, 4), 2e-2, 1e-3f);
  nn::AvgPool2d ap(2);
  check_gradients(ap, random_tensor(2, 2, 4, 6, 5));
  nn::GlobalAvgPool2d gp;
  check_gradients(gp, random_tensor(2, 3, 3, 5, 6));
  nn::Flatten fl;
  check_gradients(fl, random_tensor(2, 3, 2, 2, 7));
  EXPECT_EQ(fl.forward(random_tensor(2, 3, 2, 2, 7)).c(), 12);
}

TEST(ResidualGrad, IdentityAndProjectionShortcuts) {
  nn::ModelOptions o;
  std::uint64_t seed = 1;
  auto id = nn::detail::basic_block(3, 3, 1, o, seed);
  // Small steps: a weight moves every output of its channel, and a large step crosses ReLU kinks.
  check_gradients(*id, random_tensor(4, 3, 5, 5, 1), 3e-2, 2e-3f, 40, 0.9);
  auto proj = nn::detail::basic_block(3, 4, 2, o, seed);
  check_gradients(*proj, random_tensor(4, 3, 6, 6, 2), 3e-2, 2e-3f, 40, 0.9);
  auto inv = nn::detail::inverted_residual(4, 4, 1, 2, true, o, seed);
  check_gradients(*inv, random_tensor(4, 4, 5, 5, 3), 3e-2, 2e-3f, 40, 0.9);
}

namespace {

// A loss's gradient against central differences (step 1e-2, tolerance 1e-3) at every entry of its input x;
// loss() evaluates it at the current x.
template <class Loss>
void expect_central_differences(Tensor& x, const Tensor& grad, Loss loss) {
  for (Index i = 0; i < x.size(); ++i) {
    const float keep = x.data[i];
    x.data[i] = keep + 1e-2f;
    const double lp = loss();
    x.data[i] = keep - 1e-2f;
    const double lm = loss();
    x.data[i] = keep;
    EXPECT_NEAR((lp - lm) / 2e-2, grad.data[i], 1e-3);
  }
}

}  // namespace

TEST(LossGrad, CrossEntropyWithLabelSmoothing) {
  for (float smoothing : {0.f, 0.1f}) {
    Tensor logits = random_tensor(4, 5, 1, 1, 1);
    const std::vector<std::int32_t> labels{0, 3, 4, 1};
    Tensor grad, tmp;
    const float loss = nn::cross_entropy(logits, labels, grad, smoothing);
    // Reference: -sum_k target_k * log softmax_k, mean over rows.
    double ref = 0;
    for (Index i = 0; i < 4; ++i) {
      double lse = 0;
      for (Index k = 0; k < 5; ++k) lse += std::exp(double(logits.data[i * 5 + k]));
      lse = std::log(lse);
      for (Index k = 0; k < 5; ++k) {
        const double t = (k == labels[std::size_t(i)] ? 1.0 - smoothing : 0.0) + smoothing / 5.0;
        ref -= t * (logits.data[i * 5 + k] - lse);
      }
    }
    EXPECT_NEAR(loss, ref / 4, 1e-5);
    expect_central_differences(logits, grad, [&] { return nn::cross_entropy(logits, labels, tmp, smoothing); });
  }
  Tensor logits = random_tensor(2, 3, 1, 1, 2), grad;
  EXPECT_THROW(nn::cross_entropy(logits, {0, 3}, grad), mixq::error);
}

TEST(LossGrad, KlDistillationAndFeatureMse) {
  Tensor s = random_tensor(3, 4, 1, 1, 1), t = random_tensor(3, 4, 1, 1, 2), grad, tmp;
  const float T = 2.f;
  nn::kl_distillation(s, t, grad, T);
  EXPECT_NEAR(nn::kl_distillation(t, t, tmp, T), 0.f, 1e-6);
  expect_central_differences(s, grad, [&] { return nn::kl_distillation(s, t, tmp, T); });
  Tensor a = random_tensor(2, 3, 2, 2, 3), b = random_tensor(2, 3, 2, 2, 4);
  const float mse = nn::feature_mse(a, b, grad);
  EXPECT_NEAR(mse, (a.data - b.data).squaredNorm() / 24.0, 1e-5);
  EXPECT_NEAR(grad.data[5], 2.0 * (a.data[5] - b.data[5]) / 24.0, 1e-6);
}

TEST(Optim, SgdNesterovMatchesPyTorchFormula) {
  nn::Parameter p("w", {2});
  p.value << 1.f, -2.f;
  nn::Sgd opt({&p}, 0.1f, 0.9f, true, 0.01f);
  double v0 = 0, v1 = 0, w0 = 1, w1 = -2;
  for (int step = 0; step < 3; ++step) {
    p.grad << 0.5f, 0.25f;
    p.has_grad = true;
    opt.step();
    const double g0 = 0.5 + 0.01 * w0, g1 = 0.25 + 0.01 * w1;
    v0 = 0.9 * v0 + g0;
    v1 = 0.9 * v1 + g1;
    w0 -= 0.1 * (g0 + 0.9 * v0);
    w1 -= 0.1 * (g1 + 0.9 * v1);
  }
  EXPECT_NEAR(p.value[0], w0, 1e-6);
  EXPECT_NEAR(p.value[1], w1, 1e-6);
  p.zero_grad();  // no gradient: not moved
  const float keep = p.value[0];
  opt.step();
  EXPECT_EQ(p.value[0], keep);
}

TEST(Optim, AdamFirstStepIsLrTimesSign) {
  nn::Parameter p("w", {3});
  p.value << 1.f, 2.f, 3.f;
  nn::Adam opt({&p}, 0.01f);
  p.grad << 0.5f, -3.f, 1e-3f;
  p.has_grad = true;
  opt.step();
  EXPECT_NEAR(p.value[0], 0.99f, 1e-5);
  EXPECT_NEAR(p.value[1], 2.01f, 1e-5);
  EXPECT_NEAR(p.value[2], 2.99f, 1e-4);
}

TEST(Optim, SchedulesEmaAndClipping) {
  // Values of torch.optim.lr_scheduler.OneCycleLR(max_lr=0.1, total_steps=100, cycle_momentum=False).
  EXPECT_NEAR(nn::one_cycle_lr(0, 100, 0.1f), 0.004, 1e-7);
  EXPECT_NEAR(nn::one_cycle_lr(29, 100, 0.1f), 0.1, 1e-7);
  EXPECT_NEAR(nn::one_cycle_lr(99, 100, 0.1f), 4e-7, 1e-9);
  EXPECT_NEAR(nn::one_cycle_lr(10, 100, 0.1f), 0.0295164, 1e-6);
  EXPECT_NEAR(nn::one_cycle_lr(64, 100, 0.1f), 0.0500002, 1e-6);
  EXPECT_NEAR(nn::cosine_lr(0, 100, 1.f, 10, 0.f, 0.f), 0.f, 1e-7);
  EXPECT_NEAR(nn::cosine_lr(5, 100, 1.f, 10, 0.f, 0.f), 0.5f, 1e-7);
  EXPECT_NEAR(nn::cosine_lr(10, 100, 1.f, 10), 1.f, 1e-7);
  EXPECT_NEAR(nn::cosine_lr(55, 100, 1.f, 10), 0.5f, 1e-6);
  EXPECT_NEAR(nn::cosine_lr(100, 100, 1.f, 10, 0.1f), 0.1f, 1e-6);

  nn::Parameter p("w", {2});
  p.value << 1.f, 1.f;
  nn::WeightEma ema({&p}, 0.5f);
  p.value << 3.f, 5.f;
  ema.update();
  EXPECT_FLOAT_EQ(ema.shadow(0)[0], 2.f);
  ema.swap();
  EXPECT_FLOAT_EQ(p.value[1], 3.f);
  ema.swap();
  EXPECT_FLOAT_EQ(p.value[1], 5.f);

  p.grad << 3.f, -0.5f;
  nn::clip_grad_value({&p}, 1.f);
  EXPECT_FLOAT_EQ(p.grad[0], 1.f);
  EXPECT_FLOAT_EQ(p.grad[1], -0.5f);
  EXPECT_THROW(nn::clip_grad_value({&p}, 0.f), mixq::error);
}

TEST(Sequential, RangesEqualFullPassAndHooksInjectGradients) {
  auto m = nn::make_resnet();
  Tensor x = random_tensor(2, 1, 28, 28, 1);
  const Tensor full = m->forward(x);
  // Block by block on cached inputs.
  Tensor cur = x;
  for (Index i = 0; i < m->size(); ++i) cur = Tensor(m->forward_range(i, i + 1, cur));
  EXPECT_EQ(cur.data, full.data);
  // Capture one block's output; a backward hook adding zero changes nothing, one adding g changes grads.
  nn::FeatureCapture cap(*m, {"stage2", "stage3.main.conv2"});
  m->forward(x);
  EXPECT_EQ(cap["stage2"].c(), 32);
  EXPECT_EQ(cap["stage3.main.conv2"].h(), 7);
  EXPECT_THROW(cap["stage1"], mixq::error);
  Tensor g = random_tensor(2, 10, 1, 1, 3);
  auto& stem_conv = dynamic_cast<nn::Conv2d&>(nn::find_module(*m, "stem.conv"));
  nn::zero_grad(*m);
  m->forward(x);
  m->backward(g);
  const Eigen::VectorXf plain = stem_conv.weight().grad;
  nn::Module& stage2 = nn::find_module(*m, "stage2");
  stage2.set_backward_hook([](nn::Module&, Tensor& dy) { dy.data *= 1.f; });
  nn::zero_grad(*m);
  m->forward(x);
  m->backward(g);
  EXPECT_EQ(stem_conv.weight().grad, plain);
  // Feature alignment: add d(mse(stage2, target))/d(stage2) on top of the classification gradient.
  const Tensor target = random_tensor(2, 32, 14, 14, 4);
  stage2.set_backward_hook([&](nn::Module& mod, Tensor& dy) {
    Tensor extra;
    nn::feature_mse(mod.output(), target, extra);
    dy.data += extra.data;
  });
  nn::zero_grad(*m);
  m->forward(x);
  m->backward(g);
  EXPECT_GT((stem_conv.weight().grad - plain).norm(), 0.f);
  stage2.clear_hooks();
  EXPECT_THROW(nn::find_module(*m, "stage9"), mixq::error);
  EXPECT_THROW(m->forward_range(2, 1, x), mixq::error);
}

TEST(Threads, SameBitsForAnyThreadCount) {
  auto run = [](int threads) {
    nn::set_num_threads(threads);
    auto m = nn::make_resnet();
    Tensor x = random_tensor(8, 1, 28, 28, 1);
    std::vector<std::int32_t> y{0, 1, 2, 3, 4, 5, 6, 7};
    nn::Sgd opt(nn::trainable_parameters(*m), 0.05f);
    Tensor g;
    for (int s = 0; s < 2; ++s) {
      nn::zero_grad(*m);
      nn::cross_entropy(m->forward(x), y, g);
      m->backward(g);
      opt.step();
    }
    Eigen::VectorXf out = m->forward(x).data;
    nn::set_num_threads(1);
    return out;
  };
  const Eigen::VectorXf a = run(2), b = run(2), c = run(1);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);  // chunk boundaries and reduction order do not depend on the thread count
  EXPECT_THROW(nn::set_num_threads(0), mixq::error);
}

TEST(Threads, ExceptionInAChunkReachesTheCallerAfterEveryChunk) {
  nn::set_num_threads(2);
  for (int rep = 0; rep < 20; ++rep) {  // the throwing chunk lands on either thread
    std::atomic<int> ran{0};
    try {
      nn::parallel_for_chunks(64, 16, [&](nn::Index, nn::Index, nn::Index chunk, int) {
        ++ran;
        if (chunk == rep % 16) mixq::detail::fail("chunk ", chunk, " failed");
      });
      ADD_FAILURE() << "no exception";
    } catch (const mixq::error& e) {
      EXPECT_NE(std::string(e.what()).find("chunk " + std::to_string(rep % 16) + " failed"), std::string::npos);
    }
    EXPECT_EQ(ran.load(), 16);  // every chunk ran before parallel_for_chunks returned
  }
  // The pool still works, and a loop started inside a chunk is refused with a clear error.
  std::atomic<int> sum{0};
  nn::parallel_for_chunks(100, 16, [&](nn::Index b, nn::Index e, nn::Index, int) { sum += static_cast<int>(e - b); });
  EXPECT_EQ(sum.load(), 100);
  EXPECT_THROW(nn::parallel_for_chunks(4, 4, [](nn::Index, nn::Index, nn::Index, int) {
                 nn::parallel_for_chunks(4, 4, [](nn::Index, nn::Index, nn::Index, int) {});
               }),
               mixq::error);
  nn::set_num_threads(1);
}

TEST(QuantLayers, NonFiniteStepSizeIsAClearError) {
  for (int threads : {1, 2}) {
    nn::set_num_threads(threads);
    nn::LsqQuantizer q("input", false, 1, {4});
    Tensor x = random_tensor(4, 1, 3, 3, 2);
    std::vector<float> y(x.data.size());
    q.forward(4, x.ptr(), y.data(), 4, 9);  // initialises the step size
    q.step_size(4).value[0] = std::nanf("");
    try {
      q.forward(4, x.ptr(), y.data(), 4, 9);
      ADD_FAILURE() << "no exception";
    } catch (const mixq::error& e) {
      EXPECT_NE(std::string(e.what()).find("4-bit step size of channel 0 is nan"), std::string::npos) << e.what();
    }
  }
  nn::set_num_threads(1);
}

TEST(Models, ShapesAndLayerNames) {
  auto mlp = nn::make_mlp();
  auto mob = nn::make_mobilenet();
  Tensor x = random_tensor(2, 1, 28, 28, 1);
  EXPECT_EQ(mlp->forward(x).c(), 10);
  EXPECT_EQ(mob->forward(x).c(), 10);
  EXPECT_EQ(nn::quant_layers(*mlp).size(), 3u);
  auto mq = nn::quant_layers(*mob);
  EXPECT_EQ(mq.front().name, "stem.conv");
  EXPECT_EQ(mq.back().name, "head.fc");
  EXPECT_EQ(mq[2].name, "block1.main.depthwise");
  EXPECT_EQ(mq[2].layer->layer_shape().groups, 64);
  EXPECT_THROW(nn::make_model("vgg"), mixq::error);
}
