// Width alignment (Chin et al. 2020; search::align_width) and the size computation for one target, on the
// layer tables of the Fashion-MNIST ResNet and MobileNet as built by nn::make_model (schedule::search_layer_table)
// and on torchvision's MobileNetV2 (search::mobilenet_v2, 52 layers). One item = one alignment (or one size).
//   BM_align_width:            the exact search (bit-pattern bisection of the doubles, no table copies)
//   BM_align_width_by_widen:   baseline in the same binary: the same bisection with size_at_bits(widen(...)),
//                              which copies the table (names included) at every step
//   BM_size_of_widened_table:  widen + size_at_bits at one multiplier (what a caller checks per candidate)
#include <benchmark/benchmark.h>
#include <mixq/mixq.hpp>

#include <cstdint>
#include <cstring>
#include <string>

namespace ms = mixq::search;

namespace {

ms::LayerTable table_of(int which) {
  if (which == 2) return ms::mobilenet_v2();
  mixq::nn::ModelOptions o;
  auto model = mixq::nn::make_model(which == 0 ? "resnet" : "mobilenet", o);
  return mixq::schedule::search_layer_table(*model, 1, 28, 28);
}

const char* name_of(int which) { return which == 0 ? "fashion_resnet" : which == 1 ? "fashion_mobilenet" : "mobilenet_v2_224"; }

// The baseline: the same bisection over the ordered doubles, each size through widen (a table copy).
double align_by_widen(const ms::LayerTable& t, int bits, std::int64_t target, std::int64_t divisor) {
  auto size = [&](double m) { return ms::size_at_bits(ms::widen(t, m, divisor), bits); };
  double lo = ms::narrowest_multiplier, hi = 1.0;
  while (size(hi) <= target) lo = hi, hi *= 2.0;
  std::uint64_t a, b;
  std::memcpy(&a, &lo, 8);
  std::memcpy(&b, &hi, 8);
  while (b - a > 1) {
    const std::uint64_t mid = a + (b - a) / 2;
    double m;
    std::memcpy(&m, &mid, 8);
    if (size(m) <= target) a = mid;
    else b = mid;
  }
  double m;
  std::memcpy(&m, &a, 8);
  return m;
}

// Target: the width-1 network's size at 4 bits; align 2-bit weights to it (multiplier about 1.41).
void BM_align_width(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  const std::int64_t divisor = which == 2 ? 8 : 1;
  const ms::LayerTable t = table_of(which);
  const std::int64_t target = ms::size_at_bits(t, 4);
  double m = 0;
  for (auto _ : state) {
    m = ms::align_width(t, 2, target, divisor).multiplier;
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::string(name_of(which)) + " W2 at the W4 size, m=" + std::to_string(m));
}

void BM_align_width_by_widen(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  const std::int64_t divisor = which == 2 ? 8 : 1;
  const ms::LayerTable t = table_of(which);
  const std::int64_t target = ms::size_at_bits(t, 4);
  double m = 0;
  for (auto _ : state) {
    m = align_by_widen(t, 2, target, divisor);
    benchmark::DoNotOptimize(m);
  }
  if (m != ms::align_width(t, 2, target, divisor).multiplier) state.SkipWithError("baseline disagrees");
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(name_of(which));
}

void BM_size_of_widened_table(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  const ms::LayerTable t = table_of(which);
  for (auto _ : state) {
    const std::int64_t s = ms::size_at_bits(ms::widen(t, 1.41, which == 2 ? 8 : 1), 2);
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(name_of(which));
}

}  // namespace

BENCHMARK(BM_align_width)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_align_width_by_widen)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_size_of_widened_table)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
