// Training substrate speed: convolution forward/backward at the small ResNet's shapes against a bare Eigen GEMM
// of the same size (the baseline: im2col and the rest are overhead), BatchNorm, and one full training step of
// the small ResNet and the MobileNetV2-style net (batch 128) in float and at W4A4 on each GEMM engine (Eigen and
// oneDNN in the same run, nn/gemm.hpp). items_per_second counts multiply-accumulates (conv, GEMM) or images
// (training steps). Threads: MIXQ_BENCH_THREADS (default 1). Convolutions run im2col into a padded, phase-split
// plane (see nn/conv.hpp); the baseline is the GEMM alone.
#include <mixq/mixq.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>

namespace nn = mixq::nn;
using nn::Index;

namespace {

int bench_threads() {
  const char* t = std::getenv("MIXQ_BENCH_THREADS");
  return t ? std::atoi(t) : 1;
}

nn::Tensor random_tensor(Index n, Index c, Index h, Index w) {
  nn::Tensor t(n, c, h, w);
  t.data.setRandom();
  return t;
}

// Args: in, out, stride, image size (3x3 convolutions, padding 1, batch 128).
void BM_ConvForward(benchmark::State& state) {
  nn::set_num_threads(bench_threads());
  const Index in = state.range(0), out = state.range(1), s = state.range(2), hw = state.range(3);
  nn::Conv2d conv(in, out, 3, s, 1);
  const nn::Tensor x = random_tensor(128, in, hw, hw);
  for (auto _ : state) benchmark::DoNotOptimize(conv.forward(x).ptr());
  const Index ohw = (hw - 1) / s + 1;
  state.SetItemsProcessed(state.iterations() * 128 * out * in * 9 * ohw * ohw);
}

void BM_ConvBackward(benchmark::State& state) {
  nn::set_num_threads(bench_threads());
  const Index in = state.range(0), out = state.range(1), s = state.range(2), hw = state.range(3);
  nn::Conv2d conv(in, out, 3, s, 1);
  const nn::Tensor x = random_tensor(128, in, hw, hw);
  const nn::Tensor dy = random_tensor(128, out, (hw - 1) / s + 1, (hw - 1) / s + 1);
  conv.forward(x);
  for (auto _ : state) benchmark::DoNotOptimize(conv.backward(dy).ptr());
  const Index ohw = (hw - 1) / s + 1;
  state.SetItemsProcessed(state.iterations() * 2 * 128 * out * in * 9 * ohw * ohw);  // dW and dX
}

// Baseline: the GEMMs of the forward convolution alone (per image, as the layer issues them).
void BM_EigenGemmBaseline(benchmark::State& state) {
  const Index in = state.range(0), out = state.range(1), s = state.range(2), hw = state.range(3);
  const Index ohw = (hw - 1) / s + 1, K = in * 9, P = ohw * ohw;
  const nn::MatrixRM W = nn::MatrixRM::Random(out, K), col = nn::MatrixRM::Random(K, P);
  nn::MatrixRM Y(out, P);
  for (auto _ : state) {
    for (int n = 0; n < 128; ++n) {
      Y.noalias() = W * col;
      benchmark::DoNotOptimize(Y.data());
    }
  }
  state.SetItemsProcessed(state.iterations() * 128 * out * K * P);
}

#define MIXQ_CONV_SHAPES ->Args({16, 16, 1, 28})->Args({16, 32, 2, 28})->Args({32, 32, 1, 14})->Args({64, 64, 1, 7})
BENCHMARK(BM_ConvForward) MIXQ_CONV_SHAPES->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ConvBackward) MIXQ_CONV_SHAPES->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EigenGemmBaseline) MIXQ_CONV_SHAPES->Unit(benchmark::kMillisecond);

void BM_BatchNormForwardBackward(benchmark::State& state) {
  nn::set_num_threads(bench_threads());
  nn::BatchNorm2d bn(16);
  const nn::Tensor x = random_tensor(128, 16, 28, 28), dy = random_tensor(128, 16, 28, 28);
  for (auto _ : state) {
    bn.forward(x);
    benchmark::DoNotOptimize(bn.backward(dy).ptr());
  }
  state.SetBytesProcessed(state.iterations() * x.size() * 4 * 5);  // read x, dy, xhat twice; write y, dx
}
BENCHMARK(BM_BatchNormForwardBackward)->Unit(benchmark::kMillisecond);

// One SGD step on a batch of 128. Args: network (0: the small ResNet, 1: the MobileNetV2-style net), bit-width
// (32 = float, else WbAb), GEMM engine (0: Eigen, 1: oneDNN; nn/gemm.hpp). CPU time of the process (all threads),
// so an engine's threads are counted; the wall time is reported too.
void BM_TrainStep(benchmark::State& state) {
  nn::set_num_threads(bench_threads());
  const auto engine = state.range(2) == 1 ? nn::GemmEngine::dnnl : nn::GemmEngine::eigen;
  if (engine == nn::GemmEngine::dnnl && !nn::gemm_dnnl_available) {
    state.SkipWithError("oneDNN is not compiled in");
    return;
  }
  const nn::GemmEngine before = nn::gemm_engine();
  nn::set_gemm_engine(engine);
  auto m = state.range(0) == 1 ? nn::make_mobilenet() : nn::make_resnet();
  const int bits = static_cast<int>(state.range(1));
  nn::set_uniform_bits(*m, bits, bits);
  const nn::Tensor x = random_tensor(128, 1, 28, 28);
  std::vector<std::int32_t> y(128);
  for (int i = 0; i < 128; ++i) y[static_cast<std::size_t>(i)] = i % 10;
  nn::Sgd opt(nn::trainable_parameters(*m), 0.01f);
  nn::Tensor g;
  auto step = [&] {
    nn::zero_grad(*m);
    nn::cross_entropy(m->forward(x), y, g);
    m->backward(g);
    opt.step();
  };
  step();  // warm-up: buffers are allocated and quantizers initialised on the first step
  for (auto _ : state) step();
  state.SetItemsProcessed(state.iterations() * 128);
  nn::set_gemm_engine(before);
}
BENCHMARK(BM_TrainStep)
    ->ArgNames({"net", "bits", "engine"})
    ->ArgsProduct({{0, 1}, {32, 4}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime();

}  // namespace

BENCHMARK_MAIN();
