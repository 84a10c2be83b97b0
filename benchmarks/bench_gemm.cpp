// The convolution and linear GEMMs of the nn layers, at the real shapes of the two Fashion-MNIST networks (the
// small ResNet and the MobileNetV2-style net, batch 128), on every GEMM engine compiled into this binary (issue
// 23: which engine the nn substrate should use). Each benchmark issues the calls the layer issues for one batch:
//   fwd    Y[OC x P] = W[OC x K] Col[K x P], once per image;
//   bwd_w  dW[OC x K] += dY[OC x P] Col[K x P]^T, once per image (the first of the batch with beta = 0);
//   bwd_x  dX[C x P] = Wflip[C x O k k] dCol[O k k x P] for stride-1 'same' convolutions, else
//          dCol[K x P] = W^T dY (col2im not counted), once per image;
// and for the linear layers one call per batch. One thread (each engine's single-threaded library, or told to use
// one thread; the CPU time is the process's, so an engine starting threads pays for them). Counters: GFLOPs
// (2 M N K per call, per CPU second; benchmarks/gemm_report.py reads it against the peak/fma_* benchmarks of the
// same run: independent FMA chains, the machine's FP32 FMA peak for one thread), max_rel_err (the largest
// |C - C_eigen| / max |C_eigen| against Eigen generic on the same inputs; a benchmark above 1e-4 fails).
//
// Engines: eigen_generic (Eigen without -march: SSE2, what a user's build without flags gets), eigen_native
// (-march=native), openblas (serial, run-time CPU dispatch), blis (serial), dnnl (oneDNN 2.6 sgemm).
//   bench_gemm --benchmark_filter=resnet --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <mixq/nn.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <immintrin.h>

#include "gemm_engines/engines.hpp"

namespace nn = mixq::nn;
using nn::Index;

namespace mixq_bench {

std::vector<GemmEngine> gemm_engines() {
  std::vector<GemmEngine> e{{"eigen_generic", mixq_bench_gemm_eigen_generic}};
#ifdef MIXQ_BENCH_HAVE_EIGEN_NATIVE
  e.push_back({"eigen_native", mixq_bench_gemm_eigen_native});
#endif
#ifdef MIXQ_BENCH_HAVE_OPENBLAS
  e.push_back({"openblas", mixq_bench_gemm_openblas});
#endif
#ifdef MIXQ_BENCH_HAVE_BLIS
  e.push_back({"blis", mixq_bench_gemm_blis});
#endif
#ifdef MIXQ_BENCH_HAVE_DNNL
  e.push_back({"dnnl", mixq_bench_gemm_dnnl});
#endif
  return e;
}

}  // namespace mixq_bench

namespace {

/// One GEMM call shape: C[M x N] = op(A) op(B), repeated `calls` times per batch.
struct Call {
  bool ta = false, tb = false;
  long M = 0, N = 0, K = 0;
  int calls = 1;
  bool accumulate = false;  // beta = 1 after the first call
};

struct Shape {
  std::string name;  // net/layer/pass
  Call call;
};

std::vector<Shape> network_shapes(const std::string& net) {
  nn::ModelOptions mo;
  auto model = nn::make_model(net, mo);
  nn::layer_table(*model, 1, 28, 28);  // sets every convolution's geometry
  std::vector<Shape> out;
  std::map<std::tuple<bool, bool, long, long, long>, bool> seen;
  auto add = [&](const std::string& name, Call c) {
    const auto key = std::make_tuple(c.ta, c.tb, c.M, c.N, c.K);
    if (seen.count(key)) return;  // the same GEMM as an earlier layer's
    seen[key] = true;
    out.push_back({net + "/" + name, c});
  };
  for (auto& l : nn::quant_layers(*model)) {
    if (auto* conv = dynamic_cast<nn::Conv2d*>(l.layer)) {
      const auto& g = conv->geometry();
      if (g.depthwise() || g.groups != 1) continue;  // the direct depthwise path is not a GEMM
      const long OC = g.out_channels, K = g.cols_per_group(), P = g.pixels(), C = g.in_channels;
      const long kk = g.kernel * g.kernel;
      add(l.name + "/fwd", {false, false, OC, P, K, 128, false});
      add(l.name + "/bwd_w", {false, true, OC, K, P, 128, true});
      const bool transposed = g.stride == 1 && !g.pointwise() && 2 * g.padding == g.kernel - 1;
      if (transposed) add(l.name + "/bwd_x", {false, false, C, P, OC * kk, 128, false});
      else add(l.name + "/bwd_x", {true, false, K, P, OC, 128, false});
    } else if (auto* lin = dynamic_cast<nn::Linear*>(l.layer)) {
      const long F = lin->in_features(), O = lin->out_features();
      add(l.name + "/fwd", {false, true, 128, O, F, 1, false});
      add(l.name + "/bwd_w", {true, false, O, F, 128, 1, false});
      add(l.name + "/bwd_x", {false, false, 128, F, O, 1, false});
    }
  }
  return out;
}

std::vector<float> random_vector(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void run_call(const mixq_bench::GemmEngine& e, const Call& c, const std::vector<float>& A, const std::vector<float>& B,
              std::vector<float>& C, int images) {
  const long lda = c.ta ? c.M : c.K, ldb = c.tb ? c.K : c.N;
  for (int i = 0; i < images; ++i) {
    float* out = c.accumulate ? C.data() : C.data() + static_cast<std::size_t>(i % 4) * c.M * c.N;
    e.fn(c.ta, c.tb, c.M, c.N, c.K, A.data(), lda, B.data(), ldb, c.accumulate && i > 0 ? 1.f : 0.f, out, c.N);
  }
}

void BM_gemm(benchmark::State& state, mixq_bench::GemmEngine engine, Call c) {
  const auto A = random_vector(static_cast<std::size_t>(c.M * c.K), 1);
  const auto B = random_vector(static_cast<std::size_t>(c.K * c.N), 2);
  std::vector<float> C(static_cast<std::size_t>(4 * c.M * c.N)), R(C.size());
  // correctness against Eigen generic, one call
  run_call(mixq_bench::gemm_engines()[0], c, A, B, R, 1);
  run_call(engine, c, A, B, C, 1);
  double max_ref = 0, max_diff = 0;
  for (long i = 0; i < c.M * c.N; ++i) {
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(R[static_cast<std::size_t>(i)])));
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(C[static_cast<std::size_t>(i)] - R[static_cast<std::size_t>(i)])));
  }
  const double rel = max_ref > 0 ? max_diff / max_ref : max_diff;
  if (!(rel < 1e-4)) {
    state.SkipWithError(("result differs from Eigen's: max relative error " + std::to_string(rel)).c_str());
    return;
  }
  for (auto _ : state) {
    run_call(engine, c, A, B, C, c.calls);
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * static_cast<double>(c.M) * static_cast<double>(c.N) * static_cast<double>(c.K) * c.calls;
  state.counters["GFLOPs"] = benchmark::Counter(flops * 1e-9 * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
  state.counters["max_rel_err"] = rel;
  state.counters["M"] = static_cast<double>(c.M);
  state.counters["N"] = static_cast<double>(c.N);
  state.counters["K"] = static_cast<double>(c.K);
}

/// The machine's FP32 FMA peak for one thread: independent chains of vector FMAs (AVX2: 12 chains of 8 lanes;
/// AVX-512: 16 chains of 16 lanes), 2 flops per lane and FMA. The baseline every engine's GFLOPs is read against.
__attribute__((target("avx2,fma"))) float fma_loop_avx2(long iters, float seed) {
  __m256 acc[12];  // 12 chains + 2 constants fit the 16 ymm registers
  for (int j = 0; j < 12; ++j) acc[j] = _mm256_set1_ps(seed + static_cast<float>(j));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  __m256 s = acc[0];
  for (int j = 1; j < 12; ++j) s = _mm256_add_ps(s, acc[j]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

__attribute__((target("avx512f"))) float fma_loop_avx512(long iters, float seed) {
  __m512 acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_set1_ps(seed + static_cast<float>(j));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long i = 0; i < iters; ++i)
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  __m512 s = acc[0];
  for (int j = 1; j < 16; ++j) s = _mm512_add_ps(s, acc[j]);
  float out[16];
  _mm512_storeu_ps(out, s);
  return out[0];
}

void BM_fma_peak(benchmark::State& state) {
  const bool avx512 = state.range(0) == 512;
  if (avx512 ? !__builtin_cpu_supports("avx512f") : !__builtin_cpu_supports("fma")) {
    state.SkipWithError("this CPU lacks the ISA");
    return;
  }
  constexpr long iters = 1 << 16;
  float sink = 0.f;
  for (auto _ : state) {
    sink += avx512 ? fma_loop_avx512(iters, sink) : fma_loop_avx2(iters, sink);
    benchmark::DoNotOptimize(sink);
  }
  const double flops = static_cast<double>(iters) * (avx512 ? 16 * 16 : 12 * 8) * 2;
  state.counters["GFLOPs"] = benchmark::Counter(flops * 1e-9 * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0)
      std::printf("bench_gemm [Google Benchmark options]: the nn layers' GEMMs on every engine\n"
                  "compiled in (see the file's first comment).\n\n");
    args.push_back(argv[i]);
  }
  int n = static_cast<int>(args.size());
  benchmark::RegisterBenchmark("peak/fma_avx2", BM_fma_peak)->Arg(256)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("peak/fma_avx512", BM_fma_peak)->Arg(512)->Unit(benchmark::kMicrosecond);
  for (const std::string net : {"resnet", "mobilenet"})
    for (const Shape& s : network_shapes(net))
      for (const auto& e : mixq_bench::gemm_engines())
        benchmark::RegisterBenchmark((s.name + "/" + e.name).c_str(), BM_gemm, e, s.call)
            ->Unit(benchmark::kMicrosecond)
            ->MeasureProcessCPUTime();  // an engine that starts threads of its own pays for them
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
