// Exact mixed-precision search against COIN-OR CBC 2.10 (same binary, same problems). Each iteration is one
// complete solve to proven optimality from the Problem (our compile + solve; CBC model build + solve).
//   LIMPQ ResNet-50 (real / quirk indicators, 52 x 25 options, BitOps + size rows)
//   ResNet-18 and MobileNetV2 with synthetic monotone indicators
//   LLM-scale: 80 blocks x 7 linear layers x 12 options (bits {2,3,4,5,6,8} x group {64,128}), 2 rows; the same
//   generator with seeds 1-6 (BM_mixq_llm_560x12_seed) for the spread between instances
//   Pareto sweep of 100 BitOps budgets on LIMPQ ResNet-50
#include <benchmark/benchmark.h>
#include <mixq/mixq.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../tests/search_cbc_model.hpp"

namespace ms = mixq::search;

namespace {

ms::Problem limpq(const char* file) {
  const ms::LayerTable t = ms::resnet50();
  const ms::LimpqIndicators ind = ms::read_limpq_indicators(std::string(MIXQ_SHARED_DATA_DIR) + "/" + file);
  return ms::limpq_problem(t, ind, ms::limpq_budgets(t, ind, 3, 4, 12.2));
}

ms::Problem synthetic(bool mobile) {
  const ms::LayerTable t = mobile ? ms::mobilenet_v2() : ms::resnet18();
  const ms::LimpqIndicators ind = ms::synthetic_limpq_indicators(t, 1);
  return ms::limpq_problem(t, ind, ms::limpq_budgets(t, ind, mobile ? 4 : 3, 4, mobile ? 6.0 : 10.0));
}

// Llama-2-70B-shaped: hidden 8192, grouped KV 1024, MLP 28672. Row 0: size in bits (weights + one fp16 scale per
// group); row 1: a dequantization-cost model (units per weight by bit-width, +1 for group 64). Costs: a
// log-uniform per-layer sensitivity times 4^-bits, x1.2 for group 128.
ms::Problem llm_instance(std::uint64_t seed = 12345) {
  const std::int64_t shapes[7][2] = {{8192, 8192}, {8192, 1024}, {8192, 1024}, {8192, 8192},
                                     {8192, 28672}, {8192, 28672}, {28672, 8192}};
  const char* names[7] = {"q", "k", "v", "o", "gate", "up", "down"};
  const int bits[6] = {2, 3, 4, 5, 6, 8};
  const int unpack[9] = {0, 0, 3, 5, 2, 6, 5, 0, 1};
  std::uint64_t state = seed;
  auto uniform = [&]() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(state >> 11) * (1.0 / 9007199254740992.0);
  };
  ms::Problem p;
  std::int64_t size_lo = 0, size_hi = 0, dq_lo = 0, dq_hi = 0;
  for (int b = 0; b < 80; ++b)
    for (int l = 0; l < 7; ++l) {
      const std::int64_t n = shapes[l][0] * shapes[l][1];
      const double s = std::exp(std::log(1e-3) + uniform() * std::log(1e3)) * (l == 6 ? 2.0 : 1.0);
      std::vector<ms::Option> opts;
      std::int64_t smin = INT64_MAX, smax = 0, dmin = INT64_MAX, dmax = 0;
      for (int bi : bits)
        for (int g : {64, 128}) {
          ms::Option o;
          o.label = "b" + std::to_string(bi) + "g" + std::to_string(g);
          o.cost = s * std::ldexp(1.0, -2 * bi) * (g == 128 ? 1.2 : 1.0) * (1.0 + 0.05 * uniform());
          o.use = {n * bi + n / g * 16, n / 1024 * (unpack[bi] + (g == 64 ? 1 : 0))};
          smin = std::min(smin, o.use[0]);
          smax = std::max(smax, o.use[0]);
          dmin = std::min(dmin, o.use[1]);
          dmax = std::max(dmax, o.use[1]);
          opts.push_back(o);
        }
      size_lo += smin;
      size_hi += smax;
      dq_lo += dmin;
      dq_hi += dmax;
      p.add_class("layers." + std::to_string(b) + "." + names[l], std::move(opts));
    }
  p.budgets = {size_lo + (size_hi - size_lo) * 3 / 10, dq_lo + (dq_hi - dq_lo) * 4 / 10};
  p.resource_names = {"size", "dequant"};
  return p;
}

void report(benchmark::State& state, const ms::Solution& s) {
  state.SetItemsProcessed(state.iterations());
  state.counters["objective"] = s.objective;
  state.counters["optimal"] = s.status == ms::Status::optimal ? 1 : 0;
  state.counters["nodes"] = static_cast<double>(s.nodes);
}

void report_cbc(benchmark::State& state, const mixq_test::CbcResult& r) {
  state.SetItemsProcessed(state.iterations());
  state.counters["objective"] = r.objective;
  state.counters["optimal"] = r.optimal ? 1 : 0;
}

// One solver on one problem: `solve` maps the Problem to a result, `report` sets the counters from the last one.
template <class Make, class Solve, class Report>
void bench_solver(benchmark::State& state, Make make, Solve solve, Report report_result) {
  const ms::Problem p = make();
  decltype(solve(p)) r{};
  for (auto _ : state) {
    r = solve(p);
    benchmark::DoNotOptimize(r.objective);
  }
  report_result(state, r);
}

template <class Make>
void bench_mixq(benchmark::State& state, Make make) {
  bench_solver(state, make, [](const ms::Problem& p) { return ms::solve(p); }, report);
}

// CBC gets the problem with its one-option classes (a layer problem's 8-bit first and last layers) folded into the
// budgets, as mixq's solver folds them: the same instance as before they were in the problem (CBC's tolerances
// scale with the rows' magnitudes).
ms::Problem without_constant_classes(const ms::Problem& p) {
  if (!p.ties.empty()) return p;
  ms::Problem q(p.budgets, p.resource_names);
  for (const ms::ChoiceClass& c : p.classes) {
    if (c.options.size() == 1) {
      for (std::size_t k = 0; k < q.budgets.size(); ++k) q.budgets[k] -= c.options[0].use[k];
    } else {
      q.classes.push_back(c);
    }
  }
  return q;
}

template <class Make>
void bench_cbc(benchmark::State& state, Make make) {
  bench_solver(state, [&make] { return without_constant_classes(make()); },
               [](const ms::Problem& p) { return mixq_test::cbc_solve(p); }, report_cbc);
}

void BM_mixq_limpq_r50_real(benchmark::State& s) { bench_mixq(s, [] { return limpq("limpq_r50_real.txt"); }); }
void BM_cbc_limpq_r50_real(benchmark::State& s) { bench_cbc(s, [] { return limpq("limpq_r50_real.txt"); }); }
void BM_mixq_limpq_r50_quirk(benchmark::State& s) { bench_mixq(s, [] { return limpq("limpq_r50_real_quirk.txt"); }); }
void BM_cbc_limpq_r50_quirk(benchmark::State& s) { bench_cbc(s, [] { return limpq("limpq_r50_real_quirk.txt"); }); }
void BM_mixq_resnet18_synthetic(benchmark::State& s) { bench_mixq(s, [] { return synthetic(false); }); }
void BM_cbc_resnet18_synthetic(benchmark::State& s) { bench_cbc(s, [] { return synthetic(false); }); }
void BM_mixq_mobilenet_v2_synthetic(benchmark::State& s) { bench_mixq(s, [] { return synthetic(true); }); }
void BM_cbc_mobilenet_v2_synthetic(benchmark::State& s) { bench_cbc(s, [] { return synthetic(true); }); }
void BM_mixq_llm_560x12(benchmark::State& s) { bench_mixq(s, [] { return llm_instance(); }); }
void BM_cbc_llm_560x12(benchmark::State& s) { bench_cbc(s, [] { return llm_instance(); }); }
// The same generator with other seeds (argument): how much the LLM-scale solve time depends on the instance.
void BM_mixq_llm_560x12_seed(benchmark::State& s) {
  const auto seed = static_cast<std::uint64_t>(s.range(0));
  bench_mixq(s, [seed] { return llm_instance(seed); });
}

// 100 BitOps budgets from the W2A2 to the W6A6 level (size fixed at 12.2x), one call: items = sweeps.
void BM_mixq_pareto_100_bitops_r50(benchmark::State& state) {
  const ms::Problem p = limpq("limpq_r50_real.txt");
  std::int64_t macs = 0;
  std::int64_t fixed = 0;  // BitOps of the 8-bit first and last layers (one-option classes)
  for (const auto& c : p.classes)  // w2a2 option: MACs * 4
    if (c.options.size() > 1) macs += c.options.back().use[0] / 4;
    else fixed += c.options[0].use[0];
  std::vector<std::int64_t> values;
  for (int i = 0; i < 100; ++i) values.push_back(fixed + macs * 4 + (macs * 32) * i / 99);
  std::vector<ms::Solution> r;
  for (auto _ : state) {
    r = ms::pareto_sweep(p, 0, values);
    benchmark::DoNotOptimize(r.data());
  }
  state.SetItemsProcessed(state.iterations());
  int optimal = 0;
  for (const auto& s : r) optimal += s.status == ms::Status::optimal || s.status == ms::Status::infeasible;
  state.counters["proven"] = optimal;
}

// The same 100 budgets solved independently (no reuse), for the reuse ratio.
void BM_mixq_100_independent_bitops_r50(benchmark::State& state) {
  const ms::Problem p = limpq("limpq_r50_real.txt");
  std::int64_t macs = 0;
  std::int64_t fixed = 0;
  for (const auto& c : p.classes)
    if (c.options.size() > 1) macs += c.options.back().use[0] / 4;
    else fixed += c.options[0].use[0];
  for (auto _ : state) {
    for (int i = 0; i < 100; ++i) {
      ms::Problem q = p;
      q.budgets[0] = fixed + macs * 4 + (macs * 32) * i / 99;
      const ms::Solution s = ms::solve(q);
      benchmark::DoNotOptimize(s.objective);
    }
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(BM_mixq_limpq_r50_real)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_cbc_limpq_r50_real)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_mixq_limpq_r50_quirk)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_cbc_limpq_r50_quirk)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_mixq_resnet18_synthetic)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_cbc_resnet18_synthetic)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_mixq_mobilenet_v2_synthetic)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_cbc_mobilenet_v2_synthetic)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_mixq_llm_560x12)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_cbc_llm_560x12)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_mixq_llm_560x12_seed)->DenseRange(1, 6)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_mixq_pareto_100_bitops_r50)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_mixq_100_independent_bitops_r50)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
