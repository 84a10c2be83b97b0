// Quickstart: signal-to-quantization-noise ratio (SQNR) of a Gaussian weight tensor fake-quantized at 2..8
// bits with mixq's SIMD kernels, per tensor and per channel (256 output channels, max-abs scales).
#include <mixq/detail/cli_args.hpp>
#include <mixq/kernels.hpp>
#include <mixq/version.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace {

double sqnr_db(const std::vector<float>& x, const std::vector<float>& y) {
  double signal = 0, noise = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double e = double(x[i]) - double(y[i]);
    signal += double(x[i]) * x[i];
    noise += e * e;
  }
  return 10 * std::log10(signal / noise);
}

}  // namespace

int main(int argc, char** argv) {
  namespace mk = mixq::kernels;
  mixq::detail::cli::Parser parser("quickstart",
                                   "The active SIMD ISA and the signal-to-quantization-noise ratio (SQNR) of a Gaussian\n"
                                   "weight tensor [256][4096] fake-quantized at 2..8 bits, per tensor and per channel.");
  parser.notes("environment: MIXQ_FORCE_ISA=scalar|avx2|avx512 (any case) runs the kernels on that ISA.");
  if (auto code = parser.parse(argc, argv)) return *code;
  // Weights [256][4096] (1M values): Gaussian rows whose standard deviations spread over a factor of ~20, as
  // the output channels of a trained layer do.
  const std::ptrdiff_t channels = 256, inner = 4096, n = channels * inner;
  std::vector<float> x(static_cast<std::size_t>(n)), y(x.size());
  std::mt19937 rng(1);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_real_distribution<float> log_std(-2.0f, 1.0f);
  for (std::ptrdiff_t c = 0; c < channels; ++c) {
    const float std_dev = std::exp(log_std(rng));
    for (std::ptrdiff_t i = 0; i < inner; ++i) x[static_cast<std::size_t>(c * inner + i)] = std_dev * gauss(rng);
  }

  std::printf("mixq %s, kernels on %s\n", mixq::version_string, mk::isa_name(mk::active_isa()));
  std::printf("%4s  %18s  %19s\n", "bits", "per-tensor SQNR dB", "per-channel SQNR dB");
  std::vector<float> scales(static_cast<std::size_t>(channels));
  for (int bits = 2; bits <= 8; ++bits) {
    const std::int32_t qmax = (1 << (bits - 1)) - 1, qmin = -qmax - 1;  // signed, symmetric, zero point 0
    const mk::MinMax range = mk::minmax(x.data(), n);
    const float tensor_scale = std::max(-range.min, range.max) / static_cast<float>(qmax);
    mk::fake_quant(x.data(), y.data(), n, tensor_scale, 0, qmin, qmax);
    const double per_tensor = sqnr_db(x, y);
    for (std::ptrdiff_t c = 0; c < channels; ++c) {
      const mk::MinMax r = mk::minmax(x.data() + c * inner, inner);
      scales[static_cast<std::size_t>(c)] = std::max(-r.min, r.max) / static_cast<float>(qmax);
    }
    mk::fake_quant_per_channel(x.data(), y.data(), 1, channels, inner, scales.data(), nullptr, qmin, qmax);
    std::printf("%4d  %18.2f  %19.2f\n", bits, per_tensor, sqnr_db(x, y));
  }
}
