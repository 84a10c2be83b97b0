// Chin et al. (2020) pieces: binary weights (quant/binary.hpp, the signed 1-bit LsqQuantizer, binary
// QuantizedTensor and safetensors), width-multiplied model builders against search::widen, align_width.
#include <mixq/mixq.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace mk = mixq::kernels;
namespace ms = mixq::search;
namespace nn = mixq::nn;
namespace sc = mixq::schedule;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mixq::error& e) {
    return e.what();
  }
  return "";
}

std::vector<float> random_weights(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 0.1f);
  std::vector<float> w(n);
  for (float& v : w) v = d(rng);
  return w;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Binary quantizer

TEST(BinaryQuantizer, ForwardBackwardExact) {
  const float x[] = {0.3f, -0.05f, 0.f, -2.f, 0.1f, -0.1f, 0.25f, NAN};
  const float alpha[] = {0.2f, 0.1f};
  float y[8];
  mixq::binary_forward(x, y, 1, 2, 4, alpha);
  const float want[] = {0.2f, -0.2f, 0.2f, -0.2f, 0.1f, -0.1f, 0.1f};
  for (int i = 0; i < 7; ++i) EXPECT_EQ(y[i], want[i]) << i;
  EXPECT_TRUE(std::isnan(y[7]));
  const float dy[] = {1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f};
  float dx[8];
  double da[2];
  mixq::binary_backward(x, dy, dx, 1, 2, 4, alpha, da);
  // straight-through where |x| <= alpha: 0.3 > 0.2 and |-2| > 0.2 are clipped, 0.25 > 0.1 too, NaN gives 0
  const float want_dx[] = {0.f, 2.f, 3.f, 0.f, 5.f, 6.f, 0.f, 0.f};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(dx[i], want_dx[i]) << i;
  EXPECT_EQ(da[0], 1.0 - 2.0 + 3.0 - 4.0);
  EXPECT_EQ(da[1], 5.0 - 6.0 + 7.0);
  // mean |x| per channel, [outer][channels][inner] = [2][2][2]
  const float z[] = {1.f, -3.f, 0.5f, 0.5f, -1.f, 1.f, 0.f, 0.f};
  const std::vector<float> a = mixq::binary_mean_abs_alpha(z, 2, 2, 2);
  EXPECT_FLOAT_EQ(a[0], 1.5f);   // (1 + 3 + 1 + 1) / 4
  EXPECT_FLOAT_EQ(a[1], 0.25f);  // (0.5 + 0.5 + 0 + 0) / 4
  const float zeros[] = {0.f, 0.f};
  EXPECT_EQ(mixq::binary_mean_abs_alpha(zeros, 1, 1, 2)[0], 1.f);
  const float bad_alpha[] = {0.f};
  EXPECT_NE(error_of([&] { mixq::binary_forward(x, y, 1, 1, 4, bad_alpha); }).find("alpha of channel 0"),
            std::string::npos);
}

// The signed 1-bit LsqQuantizer is binary: forward alpha * sign(w), alpha initialised to mean|w| per channel,
// the STE input gradient, and alpha's gradient (LSQ-scaled) against central finite differences of a
// non-linear loss L = sum_i r_i * y_i^2.
TEST(BinaryQuantizer, LsqQuantizerGradientsMatchFiniteDifferences) {
  const nn::Index channels = 3, inner = 17;
  const std::vector<float> w = random_weights(static_cast<std::size_t>(channels * inner), 5);
  nn::LsqQuantizer q("weight", true, channels, {1, 2, 4});
  EXPECT_TRUE(q.is_binary(1));
  EXPECT_FALSE(q.is_binary(2));
  std::vector<float> y(w.size()), dx(w.size()), dy(w.size()), r = random_weights(w.size(), 9);
  q.forward(1, w.data(), y.data(), 1, inner);
  const std::vector<float> alpha0 = mixq::binary_mean_abs_alpha(w.data(), 1, channels, inner);
  Eigen::VectorXf alpha = q.step_size(1).value;
  for (nn::Index c = 0; c < channels; ++c) {
    EXPECT_EQ(alpha[c], alpha0[static_cast<std::size_t>(c)]);
    for (nn::Index k = 0; k < inner; ++k) {
      const std::size_t i = static_cast<std::size_t>(c * inner + k);
      EXPECT_EQ(y[i], w[i] >= 0.f ? alpha[c] : -alpha[c]);
    }
  }
  auto loss = [&](const Eigen::VectorXf& a) {
    q.step_size(1).value = a;
    std::vector<float> yy(w.size());
    q.forward(1, w.data(), yy.data(), 1, inner);
    double l = 0;
    for (std::size_t i = 0; i < w.size(); ++i) l += static_cast<double>(r[i]) * yy[i] * yy[i];
    return l;
  };
  for (std::size_t i = 0; i < w.size(); ++i) dy[i] = 2.f * r[i] * y[i];
  q.step_size(1).grad.setZero();
  q.backward(1, w.data(), dy.data(), dx.data(), 1, inner, inner);
  const double g = 1.0 / std::sqrt(static_cast<double>(inner) * 1.0);  // LSQ scale with qmax = 1
  for (nn::Index c = 0; c < channels; ++c) {
    const double h = 1e-3 * alpha[c];
    Eigen::VectorXf ap = alpha, am = alpha;
    ap[c] += static_cast<float>(h);
    am[c] -= static_cast<float>(h);
    const double fd = (loss(ap) - loss(am)) / (static_cast<double>(ap[c]) - static_cast<double>(am[c]));
    EXPECT_NEAR(q.step_size(1).grad[c], fd * g, 1e-4 * std::abs(fd * g) + 1e-7) << "channel " << c;
    for (nn::Index k = 0; k < inner; ++k) {
      const std::size_t i = static_cast<std::size_t>(c * inner + k);
      EXPECT_EQ(dx[i], std::fabs(w[i]) <= alpha[c] ? dy[i] : 0.f);
    }
  }
  q.step_size(1).value = alpha;
  // Unsigned 1-bit stays the uniform grid {0, step}: not binary.
  nn::LsqQuantizer u("input", false, 1, {1});
  EXPECT_FALSE(u.is_binary(1));
}

// A QuantLinear at 1 bit trains its weights and alpha: its effective weight takes two values per channel and
// a few SGD steps lower the loss of a linearly separable problem.
TEST(BinaryQuantizer, QuantLinearAtOneBitLearns) {
  nn::QuantOptions qo;
  qo.candidate_bits = {1, 2, 4, 8};
  nn::QuantLinear lin(8, 2, true, 3, qo);
  lin.set_bits(1, nn::float_bits);
  nn::Tensor x(64, 8, 1, 1), grad;
  std::vector<std::int32_t> labels(64);
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.f, 1.f);
  for (nn::Index n = 0; n < 64; ++n) {
    labels[static_cast<std::size_t>(n)] = static_cast<std::int32_t>(n % 2);
    for (nn::Index f = 0; f < 8; ++f) x.ptr()[n * 8 + f] = d(rng) + (n % 2 ? 1.f : -1.f) * (f < 4 ? 1.f : -1.f);
  }
  nn::Sgd opt(nn::trainable_parameters(lin), 0.05f, 0.9f, true, 0.f);
  float first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    nn::zero_grad(lin);
    const float l = nn::cross_entropy(lin.forward(x), labels, grad);
    if (step == 0) first = l;
    last = l;
    lin.backward(grad);
    opt.step();
  }
  EXPECT_LT(last, 0.8f * first);
  const Eigen::VectorXf alpha = lin.weight_quantizer().step_size(1).value;
  const Eigen::VectorXf& w = lin.master_weight().value;
  Eigen::VectorXf wq(w.size());
  lin.weight_quantizer().forward(1, w.data(), wq.data(), 1, 8);
  for (Eigen::Index i = 0; i < w.size(); ++i) EXPECT_EQ(std::fabs(wq[i]), alpha[i / 8]) << i;
  EXPECT_GT(alpha.minCoeff(), 0.f);
}

// ---------------------------------------------------------------------------------------------------------------
// Binary codes in QuantizedTensor and safetensors, on every ISA

TEST(BinaryCodes, PackRoundTripOnEveryIsa) {
  for (const mk::Isa isa : mk::available_isas()) {
    mk::force_isa(isa);
    SCOPED_TRACE(mk::isa_name(isa));
    for (std::int64_t inner : {1, 7, 8, 9, 63, 64, 65, 200}) {
      const std::int64_t channels = 3, n = channels * inner;
      std::vector<float> w = random_weights(static_cast<std::size_t>(n), static_cast<std::uint32_t>(inner));
      w[0] = 0.f;  // sign(0) = +1
      const std::vector<float> alpha = mixq::binary_mean_abs_alpha(w.data(), 1, channels, inner);
      const mixq::QuantizedTensor t = mixq::quantize_binary(w.data(), {channels, inner}, 0, alpha);
      ASSERT_EQ(t.packed_codes().size(), static_cast<std::size_t>((n + 7) / 8));
      EXPECT_TRUE(t.spec().binary);
      EXPECT_EQ(t.bit_width(), 1);
      // bit i of the stream is 1 exactly when w[i] >= 0; padding bits are 0
      for (std::int64_t i = 0; i < (n + 7) / 8 * 8; ++i) {
        const int bit = (t.packed_codes()[static_cast<std::size_t>(i / 8)] >> (i % 8)) & 1;
        ASSERT_EQ(bit, i < n && w[static_cast<std::size_t>(i)] >= 0.f ? 1 : 0) << "inner=" << inner << " i=" << i;
      }
      const std::vector<std::int32_t> codes = t.codes();
      const std::vector<float> back = t.dequantize();
      for (std::int64_t i = 0; i < n; ++i) {
        const std::size_t k = static_cast<std::size_t>(i);
        const int want = w[k] >= 0.f ? 1 : -1;
        ASSERT_EQ(codes[k], want);
        ASSERT_EQ(t.code(i), want);
        ASSERT_EQ(back[k], static_cast<float>(want) * alpha[static_cast<std::size_t>(i / inner)]);
      }
      const mixq::QuantizedTensor again =
          mixq::QuantizedTensor::from_packed(t.shape(), t.spec(), t.scales(), t.zero_points(), t.packed_codes());
      EXPECT_EQ(again, t);
    }
  }
  mk::force_isa(mk::available_isas().back());
}

TEST(BinaryCodes, SafetensorsRoundTripAndErrors) {
  const std::vector<float> w = random_weights(4 * 9, 3);
  const std::vector<float> alpha = mixq::binary_mean_abs_alpha(w.data(), 1, 4, 9);
  mixq::io::QuantizedModel m;
  m.quantized.emplace("conv.weight", mixq::quantize_binary(w.data(), {4, 1, 3, 3}, 0, alpha));
  const mixq::QuantizedTensor w4 = mixq::QuantizedTensor::from_codes(
      {2, 2}, mixq::QuantSpec::per_tensor(4), {0.5f}, {0}, std::vector<std::int32_t>{-8, 7, 0, 3}.data());
  m.quantized.emplace("fc.weight", w4);
  const std::string path = ::testing::TempDir() + "mixq_binary.safetensors";
  mixq::io::write_quantized_model(path, m);
  const mixq::io::QuantizedModel r = mixq::io::read_quantized_model(path);
  EXPECT_EQ(r.quantized.at("conv.weight"), m.quantized.at("conv.weight"));
  EXPECT_TRUE(r.quantized.at("conv.weight").spec().binary);
  EXPECT_EQ(r.quantized.at("conv.weight").packed_codes().size(), 5u);  // 36 weights in 36 bits
  EXPECT_EQ(r.quantized.at("fc.weight"), w4);
  EXPECT_FALSE(r.quantized.at("fc.weight").spec().binary);
  std::remove(path.c_str());
  // a 0 code, an inconsistent binary spec, NaN weights and the uniform quantizer are rejected
  const std::int32_t zero[] = {1, 0};
  EXPECT_NE(error_of([&] {
              mixq::QuantizedTensor::from_codes({2}, mixq::QuantSpec::binary_per_channel(0), {1.f, 1.f}, {0, 0}, zero);
            }).find("code 0 at index 1"),
            std::string::npos);
  mixq::QuantSpec bad = mixq::QuantSpec::binary_per_channel(0);
  bad.bit_width = 2;
  EXPECT_NE(error_of([&] { bad.validate(); }).find("binary needs bit_width 1"), std::string::npos);
  const float nan_w[] = {NAN};
  EXPECT_NE(error_of([&] { mixq::quantize_binary(nan_w, {1, 1}, 0, {1.f}); }).find("NaN"), std::string::npos);
  EXPECT_THROW(mixq::Quantizer<mixq::Granularity::per_channel>(mixq::QuantSpec::binary_per_channel(0)), mixq::error);
}

// ---------------------------------------------------------------------------------------------------------------
// Width-multiplied models: built tables equal widened tables; align_width finds the largest multiplier

namespace {

ms::LayerTable built_table(const std::string& name, double m, nn::Index divisor) {
  nn::ModelOptions o;
  o.width_multiplier = m;
  o.channel_divisor = divisor;
  auto model = nn::make_model(name, o);
  return sc::search_layer_table(*model, 1, 28, 28);
}

void expect_same_table(const ms::LayerTable& a, const ms::LayerTable& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].kind, b[i].kind) << a[i].name;
    EXPECT_EQ(a[i].in_channels, b[i].in_channels) << a[i].name;
    EXPECT_EQ(a[i].out_channels, b[i].out_channels) << a[i].name;
    EXPECT_EQ(a[i].groups, b[i].groups) << a[i].name;
    EXPECT_EQ(a[i].kernel, b[i].kernel) << a[i].name;
    EXPECT_EQ(a[i].fixed_bits, b[i].fixed_bits) << a[i].name;
    EXPECT_EQ(ms::weight_count(a[i]), ms::weight_count(b[i])) << a[i].name;
  }
}

}  // namespace

TEST(WidthModels, BuiltTablesEqualWidenedTables) {
  for (const std::string name : {"resnet", "mobilenet"}) {
    const ms::LayerTable base = built_table(name, 1.0, 1);
    for (const nn::Index divisor : {1, 8})
      for (const double m : {0.18, 0.37, 0.5, 0.71, 1.0, 1.41, 2.0, 2.83}) {
        SCOPED_TRACE(name + " m=" + std::to_string(m) + " divisor=" + std::to_string(divisor));
        const ms::LayerTable built = built_table(name, m, divisor);
        const ms::LayerTable widened = ms::widen(base, m, divisor);
        expect_same_table(built, widened);
        for (int b = 1; b <= 8; ++b) EXPECT_EQ(ms::size_at_bits(built, b), ms::size_at_bits(widened, b));
      }
  }
  // The brief's sizes at m = 1 (weights of conv and FC, stem and FC at 8 bits): ResNet W4 38.02 KiB,
  // MobileNet 30,912 searchable weights of which 4,032 depthwise plus 1,424 fixed.
  const ms::LayerTable r = built_table("resnet", 1.0, 1), mb = built_table("mobilenet", 1.0, 1);
  EXPECT_EQ(ms::size_at_bits(r, 4), 76288 * 4 + 784 * 8);
  std::int64_t searchable = 0, depthwise = 0, fixed = 0;
  for (const ms::Layer& l : mb) {
    (l.fixed_bits ? fixed : searchable) += ms::weight_count(l);
    if (l.kind == ms::LayerKind::depthwise_conv) depthwise += ms::weight_count(l);
  }
  EXPECT_EQ(searchable, 30912);
  EXPECT_EQ(depthwise, 4032);
  EXPECT_EQ(fixed, 1424);
}

TEST(WidthModels, AlignWidthFindsTheLargestMultiplierThatFits) {
  for (const std::string name : {"resnet", "mobilenet"}) {
    const ms::LayerTable base = built_table(name, 1.0, 1);
    for (const int target_bits : {1, 2, 4, 8})
      for (const int b : {1, 2, 3, 4, 8}) {
        SCOPED_TRACE(name + " target W" + std::to_string(target_bits) + " b=" + std::to_string(b));
        const std::int64_t target = ms::size_at_bits(base, target_bits);
        const ms::WidthAlignment a = ms::align_width(base, b, target, 1);
        EXPECT_LE(a.size_bits, target);
        EXPECT_GT(a.next_size_bits, target);
        EXPECT_EQ(a.next_multiplier, std::nextafter(a.multiplier, 1e300));
        EXPECT_GT(ms::size_at_bits(ms::widen(base, a.next_multiplier, 1), b), target);  // the next step up does not fit
        if (b == target_bits) {
          EXPECT_EQ(a.size_bits, target);
          EXPECT_GE(a.multiplier, 1.0);
        }
        // the model built at the found multiplier has exactly that size
        EXPECT_EQ(ms::size_at_bits(built_table(name, a.multiplier, 1), b), a.size_bits);
      }
  }
  const ms::LayerTable base = built_table("resnet", 1.0, 1);
  const std::int64_t t4 = ms::size_at_bits(base, 4);
  EXPECT_NE(error_of([&] { ms::align_width(base, 0, t4, 1); }).find("weight_bits must be in 1..8, got 0"), std::string::npos);
  EXPECT_NE(error_of([&] { ms::align_width(base, 9, t4, 1); }).find("got 9"), std::string::npos);
  EXPECT_NE(error_of([&] { ms::align_width(base, 4, t4, 0); }).find("divisor must be positive, got 0"), std::string::npos);
  EXPECT_NE(error_of([&] { ms::align_width(base, 4, 100, 1); }).find("smallest reachable size"), std::string::npos);
  EXPECT_NE(error_of([&] { ms::scale_channels(16, -1.0, 1); }).find("multiplier=-1"), std::string::npos);
  EXPECT_THROW(ms::scale_channels(16, NAN, 1), mixq::error);
  nn::ModelOptions o;
  o.width_multiplier = 0.0;
  EXPECT_NE(error_of([&] { nn::make_resnet(o); }).find("width_multiplier must be positive and finite, got 0"),
            std::string::npos);
  o.width_multiplier = 1.0;
  o.channel_divisor = 0;
  EXPECT_NE(error_of([&] { nn::make_mobilenet(o); }).find("channel_divisor must be >= 1, got 0"), std::string::npos);
}
