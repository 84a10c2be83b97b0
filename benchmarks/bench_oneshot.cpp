// One-shot weight coupling on the Fashion-MNIST ResNet supernet (schedule/supernet.hpp, oneshot.hpp,
// bit_width_scheduler.hpp, oneshot_search.hpp), synthetic 28x28 images (timing does not depend on the pixels).
//   BM_oneshot_step:   one training step (max subnet + k = 3 random subnets, KL, IDM, clip, SGD + Adam, EMA) and,
//                      in the same loop, its baseline: 1 + k plain forward/backward passes (set the policy, CE,
//                      backward) at the same batch. Counter ratio = step CPU time / baseline CPU time (goal <= 1.1).
//   BM_scheduler_event: one scheduler event (turbulence of 8 layers x 5 bit-widths, ranking, candidate update);
//                      goal < 1 ms; baseline in the same run: one multiply-compare-count pass per weight and
//                      bit-width (counter vs_baseline).
//   BM_evaluate_policy: retraining-free evaluation of one policy: BN re-estimation on 32 x 128 images plus
//                      the test accuracy on 10,000 images (the example's --full setting).
// Memory counters (bytes): the BN grid beyond one BN per layer, the step sizes, the EMA copy, the optimiser state.
#include <benchmark/benchmark.h>
#include <mixq/mixq.hpp>

#include <cmath>
#include <ctime>
#include <random>

namespace nn = mixq::nn;
namespace sc = mixq::schedule;

namespace {

mixq::io::ImageSet synthetic(nn::Index n) {
  mixq::io::ImageSet s;
  s.rows = s.cols = 28;
  s.images.resize(n, 28 * 28);
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int> px(0, 255), label(0, 9);
  for (nn::Index i = 0; i < n; ++i) {
    s.labels.push_back(static_cast<std::uint8_t>(label(rng)));
    for (int k = 0; k < 28 * 28; ++k) s.images(i, k) = static_cast<std::uint8_t>(px(rng));
  }
  return s;
}

double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

nn::Tensor batch(const mixq::io::ImageSet& s, nn::Index n, std::vector<std::int32_t>& y) {
  nn::Tensor x;
  nn::make_batch(s.images.data(), s.labels.data(), nn::epoch_order(s.size()), 0, n, 1, 28, 28,
                 mixq::io::fashion_mnist_mean, mixq::io::fashion_mnist_std, x, y);
  return x;
}

void BM_oneshot_step(benchmark::State& state) {
  const nn::Index bs = state.range(0);
  const auto data = synthetic(bs);
  std::vector<std::int32_t> y;
  const nn::Tensor x = batch(data, bs, y);
  sc::Supernet net("resnet", sc::SupernetOptions{}, 1);
  net.initialize_step_sizes(x);
  sc::OneShotOptions o;
  o.random_subnets = 3;
  sc::OneShotTrainer tr(net, o, 100000);
  std::mt19937_64 rng(3);
  nn::Tensor g;
  auto passes = [&] {  // the baseline: 1 + k plain passes
    for (int j = 0; j <= o.random_subnets; ++j) {
      net.set_policy(j == 0 ? net.max_policy() : net.random_policy(rng));
      nn::zero_grad(net.model());
      const nn::Tensor& z = net.model().forward(x);
      nn::cross_entropy(z, y, g);
      net.model().backward(g);
    }
  };
  tr.step(x, y);  // warm-up: buffers, EMA
  passes();
  double step_cpu = 0, base_cpu = 0;
  for (auto _ : state) {
    double t = cpu_seconds();
    tr.step(x, y);
    step_cpu += cpu_seconds() - t;
    state.PauseTiming();
    t = cpu_seconds();
    passes();
    base_cpu += cpu_seconds() - t;
    state.ResumeTiming();
  }
  state.counters["ratio"] = step_cpu / base_cpu;
  state.counters["step_cpu_ms"] = 1e3 * step_cpu / static_cast<double>(state.iterations());
  state.counters["passes_cpu_ms"] = 1e3 * base_cpu / static_cast<double>(state.iterations());
  const sc::SupernetMemory m = net.memory();
  std::int64_t all = 0, trainable = 0;
  for (auto& np : nn::named_parameters(net.model())) {
    all += np.parameter->value.size();
    if (np.parameter->trainable) trainable += np.parameter->value.size();
  }
  state.counters["bn_grid_bytes"] = static_cast<double>(m.bn_grid_bytes);
  state.counters["step_size_bytes"] = static_cast<double>(m.step_size_bytes);
  state.counters["ema_bytes"] = static_cast<double>(4 * all);
  state.counters["optimizer_bytes"] = static_cast<double>(4 * trainable);  // SGD velocity / Adam m (+v for steps)
  state.SetItemsProcessed(state.iterations() * bs);
  state.SetLabel("batch " + std::to_string(bs) + ", k=3; items = images per step");
}
BENCHMARK(BM_oneshot_step)->Arg(64)->Arg(128)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime()->Iterations(8);

void BM_scheduler_event(benchmark::State& state) {
  const auto data = synthetic(32);
  std::vector<std::int32_t> y;
  sc::Supernet net("resnet", sc::SupernetOptions{}, 1);
  net.initialize_step_sizes(batch(data, 32, y));
  sc::BitWidthScheduler s;
  int e = 7;
  double event_cpu = 0;
  for (auto _ : state) {
    const double t = cpu_seconds();
    const sc::SchedulerEvent& ev = s.apply(net, e, s.ratio(e));
    event_cpu += cpu_seconds() - t;
    benchmark::DoNotOptimize(ev.metric.data());
    e = e >= 107 ? 7 : e + 2;
  }
  // Baseline in the same run (the load moves CPU times several-fold here): one multiply, compare and count per
  // weight and bit-width, the least a pass over the weights at every candidate can cost.
  double base_cpu = 0, count = 0;
  const int reps = 20;
  for (int r = 0; r < reps; ++r) {
    const double t = cpu_seconds();
    for (std::size_t l = 0; l < net.size(); ++l)
      for (int b = 2; b <= 6; ++b) {
        const Eigen::VectorXf& w = net.layer(l).master_weight().value;
        const float inv = 1.f / (0.01f * static_cast<float>(b + r));
        for (nn::Index i = 0; i < w.size(); ++i) count += std::fabs(w[i] * inv) > 0.375f;
      }
    base_cpu += cpu_seconds() - t;
  }
  benchmark::DoNotOptimize(count);
  state.counters["event_cpu_us"] = 1e6 * event_cpu / static_cast<double>(state.iterations());
  state.counters["baseline_cpu_us"] = 1e6 * base_cpu / reps;
  state.counters["vs_baseline"] = (event_cpu / static_cast<double>(state.iterations())) / (base_cpu / reps);
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("8 layers x 5 weight bit-widths, 41,472 weights");
}
BENCHMARK(BM_scheduler_event)->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime()->UseRealTime();

void BM_evaluate_policy(benchmark::State& state) {
  const auto train = synthetic(4096);
  const auto test = synthetic(10000);
  std::vector<std::int32_t> y;
  sc::Supernet net("resnet", sc::SupernetOptions{}, 1);
  net.initialize_step_sizes(batch(train, 64, y));
  const sc::Policy p = net.uniform_policy(3, 3);
  double acc = 0;
  for (auto _ : state) {
    acc = sc::evaluate_policy(net, p, train, test, 32, 128, 1);
    benchmark::DoNotOptimize(acc);
  }
  state.SetItemsProcessed(state.iterations() * (32 * 128 + 10000));
  state.SetLabel("BN re-estimation 32 x 128 + test 10,000 images; items = images forwarded");
}
BENCHMARK(BM_evaluate_policy)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime()->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
