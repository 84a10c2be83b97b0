// Quickstart: signal-to-quantization-noise ratio of a Gaussian tensor fake-quantized at 2..8 bits.
#include <mixq/mixq.hpp>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

int main() {
  const std::ptrdiff_t n = 1 << 20;
  std::vector<float> x(n);
  std::mt19937 rng(1);
  std::normal_distribution<float> gauss(0.f, 1.f);
  for (auto& v : x) v = gauss(rng);
  std::printf("mixq %s\n", mixq::version_string);
  std::printf("bits  SQNR per-tensor (dB)\n");
  for (int bits = 2; bits <= 8; ++bits) {
    const int qmax = (1 << (bits - 1)) - 1, qmin = -qmax - 1;
    float amax = 0;
    for (float v : x) amax = std::max(amax, std::fabs(v));
    const float scale = amax / static_cast<float>(qmax);
    double sig = 0, noise = 0;
    for (float v : x) {
      float q = std::nearbyint(v / scale);
      q = std::min(std::max(q, float(qmin)), float(qmax));
      const double e = double(v) - double(q * scale);
      sig += double(v) * v;
      noise += e * e;
    }
    std::printf("%4d  %8.2f\n", bits, 10 * std::log10(sig / noise));
  }
}
