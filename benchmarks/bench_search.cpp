// Exact mixed-precision search against COIN-OR CBC 2.10 (same binary, same problems). Each iteration is one
// complete solve to proven optimality from the Problem (our compile + solve; CBC model build + solve).
//   LIMPQ ResNet-50 (real / quirk indicators, 52 x 25 options, BitOps + size rows)
//   ResNet-18 and MobileNetV2 with synthetic monotone indicators
//   LLM-scale: 80 blocks x 7 linear layers x 12 options (bits {2,3,4,5,6,8} x group {64,128}), 2 rows; the same
//   generator with seeds 1-6 (BM_mixq_llm_560x12_seed) for the spread between instances
//   Pareto sweep of 100 BitOps budgets on LIMPQ ResNet-50
#include <benchmark/benchmark.h>
#include <mixq/search.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../tests/search_cbc_model.hpp"
#include "search_problems.hpp"

namespace ms = mixq::search;

namespace {

using mixq_bench::limpq;
using mixq_bench::llm_instance;
using mixq_bench::synthetic;

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
  const std::vector<std::int64_t> values = mixq_bench::sweep_bitops(p);
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
  const std::vector<std::int64_t> values = mixq_bench::sweep_bitops(p);
  for (auto _ : state) {
    for (int i = 0; i < 100; ++i) {
      ms::Problem q = p;
      q.budgets[0] = values[static_cast<std::size_t>(i)];
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
