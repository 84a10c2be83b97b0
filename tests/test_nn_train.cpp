// Quantized layers (LSQ), checkpoints, the layer table against the search cost model, and short training runs
// on a Fashion-MNIST subset (skipped when the data set is not installed).
#include <mixq/mixq.hpp>
#include <mixq/nn/checkpoint.hpp>
#include <mixq/nn/export.hpp>
#include <mixq/search/cost_model.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "nn_test_support.hpp"

namespace nn = mixq::nn;
using nn::Index;
using nn::Tensor;

using mixq_test::random_tensor;

TEST(QuantConv, FloatBitsEqualConv2dAndBitsAreValidated) {
  nn::Conv2d conv(3, 4, 3, 1, 1, 1, false, 5);
  nn::QuantConv2d qconv(3, 4, 3, 1, 1, 1, false, 5);
  const Tensor x = random_tensor(2, 3, 6, 6, 1);
  EXPECT_EQ(conv.forward(x).data, qconv.forward(x).data);
  EXPECT_THROW(qconv.set_bits(7, 4), mixq::error);  // 7 is not a default candidate
  EXPECT_THROW(qconv.set_bits(4, 0), mixq::error);
  qconv.input_quantizer().set_signed(true);  // the random input has negative values
  qconv.set_bits(8, 8);
  const Tensor& y8 = qconv.forward(x);
  const Eigen::VectorXf yf = conv.forward(x).data;
  EXPECT_LT((y8.data - yf).cwiseAbs().maxCoeff(), 0.1f * yf.cwiseAbs().maxCoeff());  // LSQ init is coarse at 8 bits
  EXPECT_TRUE(qconv.weight_quantizer().initialized(8));
  EXPECT_FALSE(qconv.weight_quantizer().initialized(4));
  EXPECT_EQ(qconv.weight_quantizer().step_size(8).value.size(), 4);  // per channel
  EXPECT_EQ(qconv.input_quantizer().step_size(8).value.size(), 1);
}

TEST(QuantLinear, LsqGradientsFollowTheFormula) {
  // y = fq_w(W) fq_a(x): check dL/dx, dL/dW and the step-size gradients against a direct implementation of LSQ.
  nn::QuantOptions qo;
  qo.signed_activations = true;
  nn::QuantLinear fc(6, 3, false, 2, qo);
  fc.set_bits(4, 4);
  const Tensor x = random_tensor(5, 6, 1, 1, 3);
  const Tensor& y = fc.forward(x);
  const Tensor dy = random_tensor(5, 3, 1, 1, 4);
  nn::zero_grad(fc);
  fc.forward(x);
  const Tensor dx = fc.backward(dy);
  const float sa = fc.input_quantizer().step_size(4).value[0];
  const Eigen::VectorXf sw = fc.weight_quantizer().step_size(4).value;
  auto fq = [](float v, float s, int lo, int hi, double* ds, bool* inside) {
    const float q = std::nearbyint(v / s);
    *inside = q >= lo && q <= hi;
    const float c = std::min<float>(std::max<float>(q, lo), hi);
    *ds = *inside ? double(c) - double(v) / s : double(c);
    return c * s;
  };
  Eigen::MatrixXd W(3, 6), X(5, 6), dW = Eigen::MatrixXd::Zero(3, 6), dX = Eigen::MatrixXd::Zero(5, 6);
  Eigen::MatrixXd dsw_elem(3, 6), dsa_elem(5, 6), inw(3, 6), inx(5, 6);
  for (int o = 0; o < 3; ++o)
    for (int i = 0; i < 6; ++i) {
      bool in;
      W(o, i) = fq(fc.weight().value[o * 6 + i], sw[o], -8, 7, &dsw_elem(o, i), &in);
      inw(o, i) = in;
    }
  for (int n = 0; n < 5; ++n)
    for (int i = 0; i < 6; ++i) {
      bool in;
      X(n, i) = fq(x.data[n * 6 + i], sa, -8, 7, &dsa_elem(n, i), &in);
      inx(n, i) = in;
    }
  Eigen::MatrixXd DY(5, 3);
  for (int n = 0; n < 5; ++n)
    for (int o = 0; o < 3; ++o) DY(n, o) = dy.data[n * 3 + o];
  const Eigen::MatrixXd Y = X * W.transpose();
  for (int n = 0; n < 5; ++n)
    for (int o = 0; o < 3; ++o) EXPECT_NEAR(y.data[n * 3 + o], Y(n, o), 1e-4);
  const Eigen::MatrixXd dWq = DY.transpose() * X, dXq = DY * W;
  double dsa = 0;
  Eigen::VectorXd dsw = Eigen::VectorXd::Zero(3);
  for (int n = 0; n < 5; ++n)
    for (int i = 0; i < 6; ++i) {
      EXPECT_NEAR(dx.data[n * 6 + i], inx(n, i) * dXq(n, i), 1e-4);
      dsa += dXq(n, i) * dsa_elem(n, i);
    }
  for (int o = 0; o < 3; ++o)
    for (int i = 0; i < 6; ++i) {
      EXPECT_NEAR(fc.weight().grad[o * 6 + i], inw(o, i) * dWq(o, i), 1e-4);
      dsw[o] += dWq(o, i) * dsw_elem(o, i);
    }
  // LSQ gradient scales: 1/sqrt(features * qmax) for the input, 1/sqrt(weights per channel * qmax).
  EXPECT_NEAR(fc.input_quantizer().step_size(4).grad[0], dsa / std::sqrt(6.0 * 7), 1e-4);
  for (int o = 0; o < 3; ++o)
    EXPECT_NEAR(fc.weight_quantizer().step_size(4).grad[o], dsw[o] / std::sqrt(6.0 * 7), 1e-4);
  EXPECT_FALSE(fc.weight_quantizer().step_size(8).has_grad);  // only the active bit-width learns
}

TEST(Hooks, BitsPoliciesAndBnBanks) {
  nn::ModelOptions o;
  o.switchable_bn = true;
  auto m = nn::make_resnet(o);
  nn::set_uniform_bits(*m, 4, 4);
  auto layers = nn::quant_layers(*m);
  ASSERT_EQ(layers.size(), 10u);
  EXPECT_EQ(layers[0].layer->w_bits(), 8);  // stem conv fixed at 8 bits
  EXPECT_EQ(layers[1].layer->w_bits(), 4);
  EXPECT_EQ(layers[9].layer->a_bits(), 8);  // head.fc fixed
  nn::set_bits(*m, {{"stage2.main.conv1", {2, 3}}});
  EXPECT_EQ(layers[3].layer->w_bits(), 2);
  EXPECT_EQ(layers[3].layer->a_bits(), 3);
  EXPECT_THROW(nn::set_bits(*m, {{"stage9.conv", {2, 3}}}), mixq::error);
  EXPECT_THROW(nn::sync_bn_keys(*m), mixq::error);  // keys not in the banks yet
  nn::sync_bn_keys(*m, true);
  auto& bn = dynamic_cast<nn::SwitchableBatchNorm2d&>(nn::find_module(*m, "stage2.main.bn1"));
  EXPECT_EQ(bn.key(), "w2a3");
  auto& bn0 = dynamic_cast<nn::SwitchableBatchNorm2d&>(nn::find_module(*m, "stem.bn"));
  EXPECT_EQ(bn0.key(), "w8a8");
  nn::set_bn_key(*m, "config-17", true);
  EXPECT_EQ(bn.key(), "config-17");
  nn::set_uniform_bits(*m, 32, 32);
  EXPECT_EQ(layers[0].layer->w_bits(), 32);
  // BN folding reproduces conv + BN in evaluation mode.
  nn::Conv2d conv(2, 3, 3, 1, 1, 1, true, 1);
  conv.bias()->value.setRandom();
  nn::BatchNorm2d b(3);
  b.running_mean().value.setRandom();
  b.running_var().value = b.running_var().value.array() + 0.5f;
  b.weight().value.setRandom();
  b.set_training(false);
  const Tensor x = random_tensor(2, 2, 5, 5, 1);
  const Tensor ref = b.forward(conv.forward(x));
  const nn::FoldedConv f = nn::fold_batchnorm(conv, b);
  conv.weight().value = f.weight;
  conv.bias()->value = f.bias;
  EXPECT_LT((conv.forward(x).data - ref.data).cwiseAbs().maxCoeff(), 1e-4f);
}

TEST(LayerTable, ResNetAgreesWithTheSearchCostModel) {
  auto m = nn::make_resnet();
  const auto table = nn::layer_table(*m, 1, 28, 28);
  ASSERT_EQ(table.size(), 10u);
  EXPECT_EQ(table[0].name, "stem.conv");
  EXPECT_EQ(table[4].name, "stage2.main.conv2");
  EXPECT_EQ(table[4].shape.in_h, 14);
  EXPECT_EQ(table[7].shape.out_h, 7);
  EXPECT_TRUE(table[0].fixed_precision);
  EXPECT_TRUE(table[0].batch_norm);
  EXPECT_FALSE(table[9].batch_norm);
  // The same network written by hand for the cost model of mixq/search.
  namespace s = mixq::search;
  s::LayerTable ref{
      s::conv_layer("stem.conv", 1, 16, 3, 1, 1, 28, 28),
      s::conv_layer("stage1.main.conv1", 16, 16, 3, 1, 1, 28, 28),
      s::conv_layer("stage1.main.conv2", 16, 16, 3, 1, 1, 28, 28),
      s::conv_layer("stage2.main.conv1", 16, 32, 3, 2, 1, 28, 28),
      s::conv_layer("stage2.main.conv2", 32, 32, 3, 1, 1, 14, 14),
      s::conv_layer("stage2.shortcut.conv", 16, 32, 1, 2, 0, 28, 28),
      s::conv_layer("stage3.main.conv1", 32, 64, 3, 2, 1, 14, 14),
      s::conv_layer("stage3.main.conv2", 64, 64, 3, 1, 1, 7, 7),
      s::conv_layer("stage3.shortcut.conv", 32, 64, 1, 2, 0, 14, 14),
      s::linear_layer("head.fc", 64, 10),
  };
  std::int64_t params = 0, macs = 0;
  for (std::size_t i = 0; i < table.size(); ++i) {
    const auto& t = table[i];
    s::Layer l = t.shape.kind == "linear"
                     ? s::linear_layer(t.name, t.shape.in_channels, t.shape.out_channels, t.shape.has_bias)
                     : s::conv_layer(t.name, t.shape.in_channels, t.shape.out_channels, t.shape.kernel, t.shape.stride,
                                     t.shape.padding, t.shape.in_h, t.shape.in_w, t.batch_norm, t.shape.has_bias,
                                     t.shape.groups);
    EXPECT_EQ(l.name, ref[i].name);
    EXPECT_EQ(s::parameter_count(l), s::parameter_count(ref[i])) << t.name;
    EXPECT_EQ(s::macs(l), s::macs(ref[i])) << t.name;
    EXPECT_EQ(t.shape.macs(), s::macs(ref[i])) << t.name;
    EXPECT_EQ(t.shape.weight_params(), s::weight_count(ref[i])) << t.name;
    params += s::parameter_count(l);
    macs += s::macs(l);
  }
  // Every trainable float parameter of the model is a weight, a bias or a BN affine parameter.
  std::int64_t model_params = 0;
  for (auto& np : nn::named_parameters(*m))
    if (np.parameter->trainable && np.name.find("step_size") == std::string::npos) model_params += np.parameter->value.size();
  EXPECT_EQ(params, model_params);
  EXPECT_EQ(macs, s::total_macs(ref));
}

TEST(Checkpoint, RoundTripIsBitExact) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("mixq_ckpt_" + std::to_string(::getpid()) + ".safetensors")).string();
  auto a = nn::make_resnet();
  nn::set_uniform_bits(*a, 4, 4);
  Tensor x = random_tensor(4, 1, 28, 28, 1), g;
  nn::Sgd opt(nn::trainable_parameters(*a), 0.05f);
  nn::zero_grad(*a);
  nn::cross_entropy(a->forward(x), {0, 1, 2, 3}, g);
  a->backward(g);
  opt.step();
  nn::save_checkpoint(*a, path, {{"note", "test"}});
  nn::ModelOptions o;
  o.seed = 99;
  auto b = nn::make_resnet(o);
  nn::set_uniform_bits(*b, 4, 4);
  EXPECT_GT(nn::load_checkpoint(*b, path), 50u);
  auto pa = nn::named_parameters(*a), pb = nn::named_parameters(*b);
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) EXPECT_EQ(pa[i].parameter->value, pb[i].parameter->value) << pa[i].name;
  a->set_training(false);
  b->set_training(false);
  EXPECT_EQ(a->forward(x).data, b->forward(x).data);
  auto mlp = nn::make_mlp();
  EXPECT_THROW(nn::load_checkpoint(*mlp, path), mixq::error);
  EXPECT_EQ(nn::load_checkpoint(*mlp, path, false), 0u);
  std::remove(path.c_str());
}

// A checkpoint is float tensors for resuming training, not a quantized model: no "mixq.format" label, and
// read_quantized_model says what it is.
TEST(Checkpoint, IsNotLabelledAQuantizedModel) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("mixq_ckpt_label_" + std::to_string(::getpid()) + ".safetensors")).string();
  auto m = nn::make_mlp();
  nn::save_checkpoint(*m, path);
  const auto f = mixq::io::SafetensorsFile::load(path);
  EXPECT_EQ(f.metadata().count("mixq.format"), 0u);
  EXPECT_EQ(f.metadata().at("mixq.kind"), "checkpoint");
  try {
    mixq::io::read_quantized_model(path);
    ADD_FAILURE() << "a checkpoint was read as a quantized model";
  } catch (const mixq::error& e) {
    EXPECT_NE(std::string(e.what()).find("training checkpoint"), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

// Export: BN folded, weights quantized with the learned step sizes and packed at each layer's bit-width; the
// dequantized export equals the trained network's fake-quantized weight with BN folded (hooks' fold_batchnorm).
TEST(Export, FoldsBatchNormQuantizesWithLearnedStepsAndPacks) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("mixq_export_" + std::to_string(::getpid()) + ".safetensors")).string();
  auto model = nn::make_resnet();
  auto layers = nn::quant_layers(*model);
  EXPECT_TRUE(nn::export_quantized_model(*model).quantized.empty());  // a float network exports floats
  nn::set_uniform_bits(*model, 4, 4);
  // a mixed policy: the second searchable layer at 2 bits, the third at w3a4 (fixed layers stay at 8)
  nn::set_bits(*model, {{layers[1].name, {2, 4}}, {layers[2].name, {3, 4}}});
  EXPECT_THROW(nn::export_quantized_model(*model), mixq::error);  // step sizes not initialised yet
  Tensor x = random_tensor(8, 1, 28, 28, 3), g;
  nn::Sgd opt(nn::trainable_parameters(*model), 0.05f);
  for (int step = 0; step < 2; ++step) {  // initialises the step sizes and moves the BN statistics
    nn::zero_grad(*model);
    nn::cross_entropy(model->forward(x), {0, 1, 2, 3, 4, 5, 6, 7}, g);
    model->backward(g);
    opt.step();
  }
  model->set_training(false);
  const auto before = nn::named_parameters(*model);
  std::vector<Eigen::VectorXf> values;
  for (auto& np : before) values.push_back(np.parameter->value);
  nn::save_quantized_model(*model, path, {{"policy", "test"}});
  for (std::size_t i = 0; i < before.size(); ++i) EXPECT_EQ(before[i].parameter->value, values[i]);  // unchanged
  const mixq::io::QuantizedModel m = mixq::io::read_quantized_model(path);
  EXPECT_EQ(m.metadata.at("policy"), "test");
  ASSERT_EQ(m.quantized.size(), layers.size());
  EXPECT_EQ(m.quantized, nn::export_quantized_model(*model).quantized);
  const auto info = nlohmann::json::parse(m.metadata.at("export.layers"));
  ASSERT_EQ(info.size(), layers.size());
  auto mods = nn::named_modules(*model);
  std::size_t folded = 0;
  for (std::size_t li = 0; li < layers.size(); ++li) {
    const std::string& name = layers[li].name;
    const mixq::QuantizedTensor& q = m.quantized.at(name + ".weight");
    const int wb = layers[li].layer->w_bits();
    EXPECT_EQ(q.bit_width(), wb) << name;
    EXPECT_EQ(info[li]["w_bits"], wb);
    EXPECT_EQ(q.packed_codes().size(), static_cast<std::size_t>((q.numel() * wb + 7) / 8)) << name;
    EXPECT_EQ(m.floats.count(name + ".input_step_size"), 1u) << name;
    EXPECT_EQ(m.floats.count(name + ".weight_step_size_4bit"), 0u) << name;
    // the reference: fake-quantized weight of the forward pass, BN folded by hooks.hpp
    auto* conv = dynamic_cast<nn::QuantConv2d*>(layers[li].layer);
    Eigen::VectorXf ref;
    nn::BatchNorm2d* bn = nullptr;
    if (conv) {
      for (std::size_t i = 0; i + 1 < mods.size(); ++i)
        if (mods[i].module == conv) bn = dynamic_cast<nn::BatchNorm2d*>(mods[i + 1].module);
    }
    if (conv && bn) {
      ++folded;
      const Eigen::VectorXf eff = conv->effective_weight();
      const nn::FoldedConv f = nn::fold_batchnorm(*conv, *bn, &eff);
      ref = f.weight;
      const auto& bias = m.floats.at(name + ".bias").values;
      for (Index o = 0; o < f.bias.size(); ++o) EXPECT_FLOAT_EQ(bias[static_cast<std::size_t>(o)], f.bias[o]) << name;
      EXPECT_EQ(q.spec().granularity, mixq::Granularity::per_channel);
    } else {
      continue;  // the classifier: no BN, checked through its codes below
    }
    const std::vector<float> deq = q.dequantize();
    ASSERT_EQ(deq.size(), static_cast<std::size_t>(ref.size()));
    const float tol = 1e-6f * ref.cwiseAbs().maxCoeff();
    Index off = 0;
    for (Index i = 0; i < ref.size(); ++i) off += std::fabs(deq[static_cast<std::size_t>(i)] - ref[i]) > tol;
    EXPECT_EQ(off, 0) << name;  // every BN scale of this net is positive: no code sits at a flipped qmin
  }
  EXPECT_GE(folded, 3u);
  // the classifier (QuantLinear, no BN): codes are round(w / s) of its learned step size, bias kept
  auto* fc = layers.back().layer;
  const mixq::QuantizedTensor& qfc = m.quantized.at(layers.back().name + ".weight");
  const std::vector<std::int32_t> codes = qfc.codes();
  const auto& s8 = fc->weight_quantizer().step_size(8).value;
  const auto& w = fc->master_weight().value;
  const Index per = w.size() / s8.size();
  for (Index i = 0; i < w.size(); ++i) {
    const float s = s8.size() > 1 ? s8[i / per] : s8[0];
    const float c = std::nearbyint(std::clamp(w[i] / s, -128.f, 127.f));
    EXPECT_NEAR(codes[static_cast<std::size_t>(i)], c, 1.0f) << i;  // ties of w/s vs w*(1/s) at most
  }
  // the file is small: no master weights, no step sizes of other bit-widths
  EXPECT_EQ(m.floats.count(layers[0].name + ".weight"), 0u);
  std::remove(path.c_str());
}

class FashionSubset : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = mixq::io::fashion_mnist_directory();
    if (!std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz")) return;
    data_ = new mixq::io::FashionMnist(mixq::io::load_fashion_mnist(dir));
  }
  static void TearDownTestSuite() {
    delete data_;
    data_ = nullptr;
  }
  void SetUp() override {
    if (!data_) GTEST_SKIP() << "Fashion-MNIST not installed";
  }
  // One epoch over the first n training images; returns the mean loss.
  static double train_epoch(nn::Sequential& m, nn::Sgd& opt, Index n, std::mt19937_64& rng) {
    auto order = nn::epoch_order(n, &rng);
    Tensor x, g;
    std::vector<std::int32_t> y;
    double loss = 0;
    m.set_training(true);
    for (Index b = 0; b + 64 <= n; b += 64) {
      nn::make_batch(data_->train.images.data(), data_->train.labels.data(), order, b, b + 64, 1, 28, 28,
                     mixq::io::fashion_mnist_mean, mixq::io::fashion_mnist_std, x, y);
      nn::zero_grad(m);
      loss += nn::cross_entropy(m.forward(x), y, g);
      m.backward(g);
      opt.step();
    }
    return loss / static_cast<double>(n / 64);
  }
  static double accuracy(nn::Sequential& m, Index n) {
    m.set_training(false);
    auto order = nn::epoch_order(n);
    Tensor x;
    std::vector<std::int32_t> y;
    nn::make_batch(data_->test.images.data(), data_->test.labels.data(), order, 0, n, 1, 28, 28,
                   mixq::io::fashion_mnist_mean, mixq::io::fashion_mnist_std, x, y);
    const double acc = static_cast<double>(nn::count_correct(m.forward(x), y)) / static_cast<double>(n);
    m.set_training(true);
    return acc;
  }
  static mixq::io::FashionMnist* data_;
};
mixq::io::FashionMnist* FashionSubset::data_ = nullptr;

TEST_F(FashionSubset, LossFallsAndW8A8MatchesFloat) {
  auto m = nn::make_mlp();
  nn::Sgd opt(nn::trainable_parameters(*m), 0.05f);
  std::mt19937_64 rng(1);
  const double first = train_epoch(*m, opt, 2048, rng);
  double last = first;
  for (int e = 0; e < 2; ++e) last = train_epoch(*m, opt, 2048, rng);
  EXPECT_LT(last, 0.75 * first);
  const double float_acc = accuracy(*m, 1000);
  EXPECT_GT(float_acc, 0.7);
  // W8A8 with LSQ-initialised step sizes (first forward), then one QAT epoch: both match float.
  nn::set_uniform_bits(*m, 8, 8);
  const double q_init = accuracy(*m, 1000);
  EXPECT_NEAR(q_init, float_acc, 0.02) << "float " << float_acc << " W8A8 " << q_init;
  nn::Sgd qopt(nn::trainable_parameters(*m), 0.005f);
  train_epoch(*m, qopt, 1024, rng);
  const double q_acc = accuracy(*m, 1000);
  EXPECT_GT(q_acc, float_acc - 0.02) << "float " << float_acc << " W8A8 after QAT " << q_acc;
}

TEST_F(FashionSubset, ResNetQatStepsAreFiniteAndReproducible) {
  auto run = [&] {
    auto m = nn::make_resnet();
    nn::set_uniform_bits(*m, 2, 2);
    nn::Sgd opt(nn::trainable_parameters(*m), 0.05f);
    std::mt19937_64 rng(3);
    auto order = nn::epoch_order(64, &rng);
    Tensor x, g;
    std::vector<std::int32_t> y;
    double loss = 0;
    for (Index b = 0; b < 64; b += 32) {
      nn::make_batch(data_->train.images.data(), data_->train.labels.data(), order, b, b + 32, 1, 28, 28,
                     mixq::io::fashion_mnist_mean, mixq::io::fashion_mnist_std, x, y, &rng);
      nn::zero_grad(*m);
      loss = nn::cross_entropy(m->forward(x), y, g);
      m->backward(g);
      opt.step();
    }
    return loss;
  };
  const double a = run(), b = run();
  EXPECT_TRUE(std::isfinite(a));
  EXPECT_EQ(a, b);
}
