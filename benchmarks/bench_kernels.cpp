// Kernel throughput per ISA and working-set size, with the limits and peers measured in the same binary:
// memcpy of the same bytes, a three-stream copy (two read, one written), a naive Eigen-expression
// fake-quant (TensorFlow's FakeQuantWithMinMaxArgs style) and a scalar std::nearbyint loop (PyTorch's CPU
// kernel style). bytes_per_second counts every stream read and written.
//
//   build/k-rel/benchmarks/bench_kernels --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Names: <kernel>/<isa>/<working set per stream>; baselines: <baseline>/<working set>. Times are CPU
// time (the machine is shared: wall time includes other processes' slices).
#include <mixq/kernels.hpp>

#include <Eigen/Core>
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

namespace mk = mixq::kernels;

constexpr std::size_t kKiB = 1024, kMiB = 1024 * 1024;
const std::size_t kWorkingSets[] = {16 * kKiB, 256 * kKiB, 4 * kMiB, 256 * kMiB};

std::string size_name(std::size_t bytes) {
  return bytes >= kMiB ? std::to_string(bytes / kMiB) + "MiB" : std::to_string(bytes / kKiB) + "KiB";
}

// 64-byte aligned buffer, filled once (page faults outside the timed loops).
struct Buffer {
  std::unique_ptr<unsigned char, void (*)(void*)> data{nullptr, std::free};
  explicit Buffer(std::size_t bytes) {
    data.reset(static_cast<unsigned char*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
    std::memset(data.get(), 0, bytes);
  }
  float* f() const { return reinterpret_cast<float*>(data.get()); }
  std::uint8_t* u8() const { return data.get(); }
  std::int8_t* s8() const { return reinterpret_cast<std::int8_t*>(data.get()); }
};

// Three float streams and a byte stream per working-set size, created on first use and kept.
struct Streams {
  std::size_t n;
  Buffer x, dy, y, codes;
  explicit Streams(std::size_t bytes) : n(bytes / 4), x(bytes), dy(bytes), y(bytes), codes(bytes + 64) {
    std::uint64_t s = 88172645463325252ull;
    for (std::size_t i = 0; i < n; ++i) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      // Roughly Gaussian in [-4, 4]: sum of four uniforms.
      float v = 0;
      for (int k = 0; k < 4; ++k) v += static_cast<float>((s >> (16 * k)) & 0xFFFF) / 65535.0f - 0.5f;
      x.f()[i] = 2.0f * v;
      dy.f()[i] = v;
    }
    for (std::size_t i = 0; i < bytes; ++i) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      codes.u8()[i] = static_cast<std::uint8_t>(s >> 56);
    }
  }
};

Streams& streams(std::size_t bytes) {
  static std::map<std::size_t, std::unique_ptr<Streams>> cache;
  auto& p = cache[bytes];
  if (!p) p = std::make_unique<Streams>(bytes);
  return *p;
}

constexpr float kScale = 4.0f / 127.0f;
constexpr std::int32_t kQmin = -128, kQmax = 127;

void set_bytes(benchmark::State& st, std::size_t bytes_per_iteration) {
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations()) * static_cast<std::int64_t>(bytes_per_iteration));
}

// ---- Kernels, per ISA.

using Kernel = std::function<void(Streams&)>;

struct KernelCase {
  const char* name;
  double bytes_per_element;  // every stream read and written
  Kernel run;
};

std::vector<KernelCase> kernel_cases() {
  return {
      {"fake_quant", 8,
       [](Streams& s) { mk::fake_quant(s.x.f(), s.y.f(), std::ptrdiff_t(s.n), kScale, 0, kQmin, kQmax); }},
      // The same with streaming (non-temporal) stores forced on or off: evidence for detail::stream_bytes().
      {"fake_quant_streaming_stores", 8,
       [](Streams& s) {
         const std::ptrdiff_t saved = mk::detail::stream_bytes();
         mk::detail::stream_bytes() = 0;
         mk::fake_quant(s.x.f(), s.y.f(), std::ptrdiff_t(s.n), kScale, 0, kQmin, kQmax);
         mk::detail::stream_bytes() = saved;
       }},
      {"fake_quant_regular_stores", 8,
       [](Streams& s) {
         const std::ptrdiff_t saved = mk::detail::stream_bytes();
         mk::detail::stream_bytes() = PTRDIFF_MAX;
         mk::fake_quant(s.x.f(), s.y.f(), std::ptrdiff_t(s.n), kScale, 0, kQmin, kQmax);
         mk::detail::stream_bytes() = saved;
       }},
      {"fake_quant_per_channel", 8,
       [](Streams& s) {
         // Weights [Cout][K] with K = 512: outer = 1, inner = K.
         static std::vector<float> scales(1 << 20, kScale);
         static std::vector<std::int32_t> zero_points(1 << 20, 0);
         mk::fake_quant_per_channel(s.x.f(), s.y.f(), 1, std::ptrdiff_t(s.n / 512), 512, scales.data(),
                                    zero_points.data(), kQmin, kQmax);
       }},
      {"fake_quant_per_group", 8,
       [](Streams& s) {
         // [rows][4096] with group_size 128.
         static std::vector<float> scales(1 << 20, kScale);
         mk::fake_quant_per_group(s.x.f(), s.y.f(), std::ptrdiff_t(s.n / 4096), 4096, 128, scales.data(), nullptr,
                                  kQmin, kQmax);
       }},
      {"fake_quant_backward", 12,
       [](Streams& s) {
         mk::fake_quant_backward(s.x.f(), s.dy.f(), s.y.f(), std::ptrdiff_t(s.n), kScale, 0, -8, 7);
       }},
      {"lsq_backward", 12,
       [](Streams& s) {
         double dz;
         benchmark::DoNotOptimize(
             mk::lsq_backward(s.x.f(), s.dy.f(), s.y.f(), std::ptrdiff_t(s.n), kScale, 0, -8, 7, &dz));
       }},
      {"quantize_int8", 5,
       [](Streams& s) { mk::quantize(s.x.f(), s.codes.s8(), std::ptrdiff_t(s.n), kScale, 0, kQmin, kQmax); }},
      {"dequantize_int8", 5,
       [](Streams& s) { mk::dequantize(s.codes.s8(), s.y.f(), std::ptrdiff_t(s.n), kScale, 0); }},
      // Bit packing: the working set is the byte-code stream, n = 4 * (floats per stream) codes.
      {"pack_bits_4", 1.5 * 4,
       [](Streams& s) { mk::pack_bits(s.codes.u8(), std::ptrdiff_t(4 * s.n), 4, s.y.u8()); }},
      {"pack_bits_3", 1.375 * 4,
       [](Streams& s) { mk::pack_bits(s.codes.u8(), std::ptrdiff_t(4 * s.n), 3, s.y.u8()); }},
      {"unpack_bits_3", 1.375 * 4,
       [](Streams& s) { mk::unpack_bits(s.y.u8(), std::ptrdiff_t(4 * s.n), 3, s.codes.u8()); }},
      {"minmax", 4,
       [](Streams& s) { benchmark::DoNotOptimize(mk::minmax(s.x.f(), std::ptrdiff_t(s.n))); }},
  };
}

// The working set is the size of the input stream (floats, or byte codes for pack/unpack). bytes_per_element
// is per float of the working set.
void run_kernel(benchmark::State& st, mk::Isa isa, KernelCase k, std::size_t bytes) {
  mk::force_isa(isa);
  Streams& s = streams(bytes);
  for (auto _ : st) {
    k.run(s);
    benchmark::ClobberMemory();
  }
  set_bytes(st, static_cast<std::size_t>(k.bytes_per_element * double(s.n)));
  st.counters["elements_per_second"] =
      benchmark::Counter(double(st.iterations()) * double(s.n), benchmark::Counter::kIsRate);
}

// ---- Baselines.

void bm_memcpy(benchmark::State& st, std::size_t bytes) {
  Streams& s = streams(bytes);
  for (auto _ : st) {
    std::memcpy(s.y.f(), s.x.f(), s.n * 4);
    benchmark::ClobberMemory();
  }
  set_bytes(st, 2 * s.n * 4);
}

#if defined(__x86_64__)
// Two streams read, one written (c = a + b), AVX2, non-temporal stores from the kernels' threshold on:
// the limit for fake_quant_backward and lsq_backward.
__attribute__((target("avx2"))) void copy3(const float* a, const float* b, float* c, std::size_t n) {
  std::size_t i = 0;
  const bool stream = std::ptrdiff_t(n * 4) >= mk::detail::stream_bytes();
  for (; i + 32 <= n; i += 32)
    for (std::size_t k = 0; k < 32; k += 8) {
      const __m256 v = _mm256_add_ps(_mm256_load_ps(a + i + k), _mm256_load_ps(b + i + k));
      if (stream)
        _mm256_stream_ps(c + i + k, v);
      else
        _mm256_store_ps(c + i + k, v);
    }
  _mm_sfence();
  for (; i < n; ++i) c[i] = a[i] + b[i];
}
#else
void copy3(const float* a, const float* b, float* c, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) c[i] = a[i] + b[i];
}
#endif

void bm_copy3(benchmark::State& st, std::size_t bytes) {
  Streams& s = streams(bytes);
  for (auto _ : st) {
    copy3(s.x.f(), s.dy.f(), s.y.f(), s.n);
    benchmark::ClobberMemory();
  }
  set_bytes(st, 3 * s.n * 4);
}

// TensorFlow's FakeQuantWithMinMaxArgs functor: clamp to the nudged range, shift, scale, floor(+0.5).
void bm_eigen_naive(benchmark::State& st, std::size_t bytes) {
  Streams& s = streams(bytes);
  Eigen::Map<const Eigen::ArrayXf> x(s.x.f(), Eigen::Index(s.n));
  Eigen::Map<Eigen::ArrayXf> y(s.y.f(), Eigen::Index(s.n));
  const float nudged_min = kQmin * kScale, nudged_max = kQmax * kScale, inv = 1.0f / kScale;
  for (auto _ : st) {
    y = (((x.cwiseMin(nudged_max).cwiseMax(nudged_min) - nudged_min) * inv + 0.5f).floor()) * kScale + nudged_min;
    benchmark::ClobberMemory();
  }
  set_bytes(st, 2 * s.n * 4);
}

// PyTorch 1.13's CPU fake_quantize_tensor_cachemask kernel, per element, scalar std::nearbyint.
void bm_scalar_nearbyint(benchmark::State& st, std::size_t bytes) {
  Streams& s = streams(bytes);
  const float* x = s.x.f();
  float* y = s.y.f();
  const std::int64_t zero_point = 0, qmin = kQmin, qmax = kQmax;
  for (auto _ : st) {
    const float inv = 1.0f / kScale;
    for (std::size_t i = 0; i < s.n; ++i) {
      const auto q = static_cast<std::int64_t>(zero_point + std::nearbyint(x[i] * inv));
      y[i] = static_cast<float>(std::min(std::max(q, qmin), qmax) - zero_point) * kScale;
    }
    benchmark::ClobberMemory();
  }
  set_bytes(st, 2 * s.n * 4);
}

void register_all() {
  for (std::size_t bytes : kWorkingSets) {
    const std::string ws = size_name(bytes);
    benchmark::RegisterBenchmark(("memcpy/" + ws).c_str(), bm_memcpy, bytes);
    benchmark::RegisterBenchmark(("copy3/" + ws).c_str(), bm_copy3, bytes);
    benchmark::RegisterBenchmark(("eigen_naive_fake_quant/" + ws).c_str(), bm_eigen_naive, bytes);
    benchmark::RegisterBenchmark(("scalar_nearbyint_fake_quant/" + ws).c_str(), bm_scalar_nearbyint, bytes);
    for (const KernelCase& k : kernel_cases())
      for (mk::Isa isa : mk::available_isas())
        benchmark::RegisterBenchmark((std::string(k.name) + "/" + mk::isa_name(isa) + "/" + ws).c_str(), run_kernel,
                                     isa, k, bytes);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("mixq_active_isa", mk::isa_name(mk::active_isa()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
