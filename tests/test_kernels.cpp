// Tests of the kernels layer: every kernel on every available ISA (instances named by ISA) against the
// scalar reference, lane for lane and tail for tail; torch golden values; LSQ sums against a
// double-precision reference; bad input; dispatch.
#include <mixq/kernels.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

namespace mk = mixq::kernels;
namespace md = mixq::kernels::detail;

std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Widest vector (AVX-512: 16 floats); lengths 0..3 * kWidth + 1 and offsets 0..kWidth cover every ISA.
constexpr std::ptrdiff_t kWidth = 16;

struct QuantParams {
  float scale;
  std::int32_t zero_point, qmin, qmax;
};

std::string describe(const QuantParams& q) {
  return "scale=" + std::to_string(q.scale) + " zero_point=" + std::to_string(q.zero_point) + " [" +
         std::to_string(q.qmin) + ", " + std::to_string(q.qmax) + "]";
}

// Parameter sets: int8, uint8, 4-bit, 2-bit, int16, a +-2^24 range, 1-bit; scales 1e-30 .. 1e30 (powers of
// two among them, so that (k + 0.5) * scale is an exact tie).
std::vector<QuantParams> param_sets() {
  const std::int32_t ranges[][3] = {{0, -128, 127},   {128, 0, 255},          {-3, -8, 7},   {1, 0, 3},
                                    {0, -32768, 32767}, {100, -(1 << 24), 1 << 24}, {0, 0, 1}};
  const float scales[] = {1e-30f, 0.125f, 0.0372f, 1.0f, 3.7f, 1e5f, 1e30f};
  std::vector<QuantParams> out;
  for (const auto& r : ranges)
    for (float s : scales) out.push_back({s, r[0], r[1], r[2]});
  return out;
}

// Random values mixed with every special case of the contract: ties at half steps, values at and just
// past the clamp edges, denormals, +-0, NaN (quiet, signalling, negative, with payload), +-Inf, huge
// values, arbitrary bit patterns.
std::vector<float> make_data(std::ptrdiff_t n, const QuantParams& q, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_int_distribution<std::uint32_t> any;
  const float lo = static_cast<float>(std::int64_t(q.qmin) - q.zero_point);
  const float hi = static_cast<float>(std::int64_t(q.qmax) - q.zero_point);
  const float span = hi - lo;
  std::vector<float> x(static_cast<std::size_t>(n));
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    const std::uint32_t r = any(rng);
    float v = 0.0f;
    switch (r % 14) {
      case 0: v = gauss(rng) * q.scale * span * 0.3f; break;
      case 1: v = (std::floor(lo + (r >> 8) % 64 - 4.0f) + 0.5f) * q.scale; break;  // ties
      case 2: v = (std::floor(hi - (r >> 8) % 64 + 4.0f) + 0.5f) * q.scale; break;
      case 3: v = (lo + ((r >> 4) % 3 - 1.0f) * 0.5f) * q.scale; break;  // lower clamp edge
      case 4: v = (hi + ((r >> 4) % 3 - 1.0f) * 0.5f) * q.scale; break;  // upper clamp edge
      case 5: v = std::nextafter((hi + 0.5f) * q.scale, (r & 16) ? INFINITY : 0.0f); break;
      case 6: v = from_bits((r & 0x807fffffu) | 1u); break;  // denormal
      case 7: v = (r & 16) ? -0.0f : 0.0f; break;
      case 8: {
        const std::uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7fa00001u, 0xffc12345u};
        v = from_bits(nans[(r >> 5) % 4]);
        break;
      }
      case 9: v = (r & 16) ? INFINITY : -INFINITY; break;
      case 10: v = (r & 16) ? std::numeric_limits<float>::max() : -1e38f; break;
      case 11: v = from_bits(any(rng)); break;
      case 12: v = ((r & 16) ? 1.0f : -1.0f) * (0.5f + ((r >> 5) % 3 - 1.0f) * 1e-7f) * q.scale; break;
      default: v = gauss(rng) * q.scale * span * 4.0f; break;
    }
    x[static_cast<std::size_t>(i)] = v;
  }
  return x;
}

std::vector<float> gradients(std::ptrdiff_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<float> g(static_cast<std::size_t>(n));
  for (auto& v : g) v = gauss(rng);
  if (n > 3) g[3] = -0.0f;
  return g;
}

::testing::AssertionResult same_bits(const float* a, const float* b, std::ptrdiff_t n) {
  for (std::ptrdiff_t i = 0; i < n; ++i)
    if (bits_of(a[i]) != bits_of(b[i]))
      return ::testing::AssertionFailure() << "first difference at " << i << " of " << n << ": " << a[i] << " (0x"
                                           << std::hex << bits_of(a[i]) << ") vs " << std::dec << b[i] << " (0x"
                                           << std::hex << bits_of(b[i]) << ")";
  return ::testing::AssertionSuccess();
}

template <class T>
::testing::AssertionResult same_values(const T* a, const T* b, std::ptrdiff_t n) {
  for (std::ptrdiff_t i = 0; i < n; ++i)
    if (a[i] != b[i])
      return ::testing::AssertionFailure() << "first difference at " << i << " of " << n << ": " << +a[i] << " vs "
                                           << +b[i];
  return ::testing::AssertionSuccess();
}

// Golden values from torch 1.13 on this machine (benchmarks/torch_kernels.py --golden prints them).
// x: 24 Gaussian values, 24 exact ties (k + 0.5) / 16, then small values, +-0 and denormals.
constexpr std::uint32_t kGoldenX[56] = {0x3b213d19, 0x3f18f52d, 0xbf0c5bcc, 0xbfe3fdd4, 0xbf68ca9c, 0xbffddc8c, 0x3df65923, 0x402b8c2c, 0xbf7c027e, 0xbf9ed771, 0x3f7acc94, 0x3f36b9e5, 0x3e57e36d, 0xbfee3327, 0xbd6fa185, 0x3fb1ff64, 0xc02c0f39, 0xbf6a4c9d, 0xc0735b44, 0xc0250f93, 0xc06bbdf9, 0xbef0bbbb, 0xc0223bb0, 0x3f0ae329, 0xbf380000, 0xbf280000, 0xbf180000, 0xbf080000, 0xbef00000, 0xbed00000, 0xbeb00000, 0xbe900000, 0xbe600000, 0xbe200000, 0xbdc00000, 0xbd000000, 0x3d000000, 0x3dc00000, 0x3e200000, 0x3e600000, 0x3e900000, 0x3eb00000, 0x3ed00000, 0x3ef00000, 0x3f080000, 0x3f180000, 0x3f280000, 0x3f380000, 0xbc23d70a, 0x3c23d70a, 0x80000000, 0x00000000, 0x000116c2, 0x800116c2, 0x3d4ccccd, 0xbd4ccccd};
struct GoldenCase {
  float scale;
  std::int32_t zero_point, qmin, qmax;
  std::uint32_t y[56];
};
const GoldenCase kGoldenPerTensor[] = {
    {0.1f, 3, -128, 127, {0x00000000, 0x3f19999a, 0xbf000000, 0xbfe66667, 0xbf666667, 0xc0000000, 0x3dcccccd, 0x402ccccd, 0xbf800000, 0xbf99999a, 0x3f800000, 0x3f333333, 0x3e4ccccd, 0xbff33333, 0xbdcccccd, 0x3fb33333, 0xc02ccccd, 0xbf666667, 0xc0733333, 0xc0266667, 0xc06ccccd, 0xbf000000, 0xc0200000, 0x3f000000, 0xbf333333, 0xbf333333, 0xbf19999a, 0xbf000000, 0xbf000000, 0xbecccccd, 0xbe99999a, 0xbe99999a, 0xbe4ccccd, 0xbe4ccccd, 0xbdcccccd, 0x00000000, 0x00000000, 0x3dcccccd, 0x3e4ccccd, 0x3e4ccccd, 0x3e99999a, 0x3e99999a, 0x3ecccccd, 0x3f000000, 0x3f000000, 0x3f19999a, 0x3f333333, 0x3f333333, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000}},
    {0.0625f, 0, -8, 7, {0x00000000, 0x3ee00000, 0xbf000000, 0xbf000000, 0xbf000000, 0xbf000000, 0x3e000000, 0x3ee00000, 0xbf000000, 0xbf000000, 0x3ee00000, 0x3ee00000, 0x3e400000, 0xbf000000, 0xbd800000, 0x3ee00000, 0xbf000000, 0xbf000000, 0xbf000000, 0xbf000000, 0xbf000000, 0xbf000000, 0xbf000000, 0x3ee00000, 0xbf000000, 0xbf000000, 0xbf000000, 0xbf000000, 0xbf000000, 0xbec00000, 0xbec00000, 0xbe800000, 0xbe800000, 0xbe000000, 0xbe000000, 0x00000000, 0x00000000, 0x3e000000, 0x3e000000, 0x3e800000, 0x3e800000, 0x3ec00000, 0x3ec00000, 0x3ee00000, 0x3ee00000, 0x3ee00000, 0x3ee00000, 0x3ee00000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x3d800000, 0xbd800000}},
    {0.37f, 128, 0, 255, {0x00000000, 0x3f3d70a4, 0xbebd70a4, 0xbfeccccd, 0xbf3d70a4, 0xbfeccccd, 0x00000000, 0x4025c290, 0xbf8e147b, 0xbf8e147b, 0x3f8e147b, 0x3f3d70a4, 0x3ebd70a4, 0xbfeccccd, 0x00000000, 0x3fbd70a4, 0xc025c290, 0xbf3d70a4, 0xc06ccccd, 0xc025c290, 0xc06ccccd, 0xbebd70a4, 0xc025c290, 0x3ebd70a4, 0xbf3d70a4, 0xbf3d70a4, 0xbf3d70a4, 0xbebd70a4, 0xbebd70a4, 0xbebd70a4, 0xbebd70a4, 0xbebd70a4, 0xbebd70a4, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x3ebd70a4, 0x3ebd70a4, 0x3ebd70a4, 0x3ebd70a4, 0x3ebd70a4, 0x3ebd70a4, 0x3f3d70a4, 0x3f3d70a4, 0x3f3d70a4, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000}},
    {1e-3f, -2, -4, 3, {0x3b03126f, 0x3ba3d70b, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0x3ba3d70b, 0x3ba3d70b, 0xbb03126f, 0xbb03126f, 0x3ba3d70b, 0x3ba3d70b, 0x3ba3d70b, 0xbb03126f, 0xbb03126f, 0x3ba3d70b, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0x3ba3d70b, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0xbb03126f, 0x3ba3d70b, 0x3ba3d70b, 0x3ba3d70b, 0x3ba3d70b, 0x3ba3d70b, 0x3ba3d70b, 0x3ba3d70b, 0x3ba3d70b, 0x3ba3d70b, 0x3ba3d70b, 0x3ba3d70b, 0x3ba3d70b, 0xbb03126f, 0x3ba3d70b, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x3ba3d70b, 0xbb03126f}},
};
// Per channel: x [2][4][7], axis 1, scales below, zero points {0, -3, 5, 1}, [qmin, qmax] = [-16, 15].
constexpr std::uint32_t kGoldenChannelX[56] = {0x3ef0c509, 0xbf0f901f, 0xc0f19be3, 0xbfcedbab, 0xbe14feb2, 0x3eae0ae8, 0xc092e49e, 0xbfb7750f, 0xc03be02b, 0xc01b4bf8, 0x404bb14a, 0xc01b0bf2, 0xbdc7d038, 0x4029cd88, 0xbfe01a42, 0xbeab92fe, 0x3ea9ac45, 0x3e43f007, 0xc06b35f2, 0x3e69e71d, 0x40827272, 0xc09486a1, 0x40250061, 0x3eb753ea, 0xbff6531b, 0x40c00a3d, 0x40125a97, 0xc0664373, 0x3e64e9f2, 0x3fdd72e5, 0xbf10fc13, 0x40031e68, 0xbe4c5759, 0x40001c8d, 0x408a1922, 0xc001ba27, 0x3f1c02ad, 0xbfb1e8fd, 0x3ec37bfa, 0xc063f0fc, 0xbfde73aa, 0xbf16adb3, 0x402c900b, 0x405be1f4, 0xc07e1e0a, 0xc0189243, 0x3ff86932, 0xc0bf45b5, 0xbfb1db73, 0xbe956ec7, 0x407158cd, 0x40045d95, 0xbf7b4cc7, 0xbf8d887c, 0xbf40266b, 0x40924242};
constexpr std::uint32_t kGoldenChannelScales[4] = {0x3d4ccccd, 0x3e4ccccd, 0x3c54fdf4, 0x3fc00000};
constexpr std::uint32_t kGoldenChannelY[56] = {0x3ee66667, 0xbf0ccccd, 0xbf4ccccd, 0xbf4ccccd, 0xbe19999a, 0x3eb33333, 0xbf4ccccd, 0xbfb33333, 0xc0266667, 0xc019999a, 0x404ccccd, 0xc019999a, 0x00000000, 0x40266667, 0xbe8bc6a8, 0xbe8bc6a8, 0x3e051eb8, 0x3e051eb8, 0xbe8bc6a8, 0x3e051eb8, 0x3e051eb8, 0xc0900000, 0x40400000, 0x00000000, 0xbfc00000, 0x40c00000, 0x40400000, 0xc0400000, 0x3e4ccccd, 0x3f400000, 0xbf0ccccd, 0x3f400000, 0xbe4ccccd, 0x3f400000, 0x3f400000, 0xc0000000, 0x3f19999a, 0xbfb33333, 0x3ecccccd, 0xc0266667, 0xbfe66667, 0xbf19999a, 0x3e051eb8, 0x3e051eb8, 0xbe8bc6a8, 0xbe8bc6a8, 0x3e051eb8, 0xbe8bc6a8, 0xbe8bc6a8, 0x00000000, 0x40900000, 0x3fc00000, 0xbfc00000, 0xbfc00000, 0xbfc00000, 0x40900000};
// torch._fake_quantize_learnable_per_tensor_affine(x[0:24], 0.1, 3.0, qmin, qmax, 1.0).backward(dy):
// [-128, 127]: dscale -0.04135620594024658, dzero_point 0.0; [-8, 7]: dscale 62.772735595703125, dzero_point 0.19593584537506104.
constexpr std::uint32_t kGoldenDy[24] = {0xbedb2616, 0xbe9b7bff, 0x3eb4868e, 0xbdf7567f, 0xbe4a04e0, 0xbf8e99c1, 0xbc3cc48a, 0xbee31d14, 0x3f9543ad, 0x3f2730cf, 0xbcc5c8d4, 0x3f2b1b05, 0xbeae0362, 0x3f86ac14, 0xbbb0eecc, 0x3f15588c, 0xbfa53bfd, 0x3eb1800c, 0xbfd81713, 0xc00242d4, 0xbe9be465, 0xbf6661a8, 0x3e27fd75, 0x400faa18};

class Kernels : public ::testing::TestWithParam<mk::Isa> {
 protected:
  void SetUp() override { mk::force_isa(GetParam()); }
  void TearDown() override { mk::force_isa(mk::available_isas().back()); }
};

TEST_P(Kernels, ForcedIsaIsTheOneThatRuns) {
  EXPECT_EQ(mk::active_isa(), GetParam());
  md::last_isa_used() = GetParam() == mk::Isa::scalar ? mk::Isa::neon : mk::Isa::scalar;
  float x[3] = {1.0f, 2.0f, 3.0f}, y[3];
  mk::fake_quant(x, y, 3, 0.5f, 0, -8, 7);
  EXPECT_EQ(md::last_isa_used(), GetParam()) << "ran " << mk::isa_name(md::last_isa_used());
}

TEST_P(Kernels, FakeQuantMatchesScalarEveryLengthAndOffset) {
  std::uint32_t seed = 1;
  for (const QuantParams& q : param_sets()) {
    SCOPED_TRACE(describe(q));
    const md::Params p = md::params(q.scale, q.zero_point, q.qmin, q.qmax);
    const std::vector<float> x = make_data(4 * 64 + 2 * kWidth + 1, q, seed++);
    std::vector<float> y(x.size()), ref(x.size());
    // Every length 0..3W+1 and the unrolled loops' lengths up to 3 * 64 + 1, offsets cycling 0..W.
    for (std::ptrdiff_t n = 0; n <= 3 * 64 + 1; ++n) {
      const std::ptrdiff_t ox = n % (kWidth + 1), oy = (n * 7) % (kWidth + 1);
      std::fill(y.begin(), y.end(), -7.0f);
      mk::fake_quant(x.data() + ox, y.data() + oy, n, q.scale, q.zero_point, q.qmin, q.qmax);
      md::scalar::fake_quant(x.data() + ox, ref.data(), n, p);
      ASSERT_TRUE(same_bits(y.data() + oy, ref.data(), n)) << "n=" << n;
      for (std::ptrdiff_t i = 0; i < oy; ++i) ASSERT_EQ(y[static_cast<std::size_t>(i)], -7.0f) << "wrote before y";
      ASSERT_EQ(y[static_cast<std::size_t>(oy + n)], -7.0f) << "wrote past y[n-1], n=" << n;
    }
  }
}

TEST_P(Kernels, FakeQuantEveryAlignmentPairAndInPlace) {
  const QuantParams q{0.0372f, 3, -128, 127};
  const md::Params p = md::params(q.scale, q.zero_point, q.qmin, q.qmax);
  const std::ptrdiff_t n = 3 * kWidth + 1;
  const std::vector<float> x = make_data(n + kWidth, q, 99);
  std::vector<float> y(static_cast<std::size_t>(n + kWidth)), ref(static_cast<std::size_t>(n));
  for (std::ptrdiff_t ox = 0; ox <= kWidth; ++ox) {
    md::scalar::fake_quant(x.data() + ox, ref.data(), n, p);
    for (std::ptrdiff_t oy = 0; oy <= kWidth; ++oy) {
      mk::fake_quant(x.data() + ox, y.data() + oy, n, q.scale, q.zero_point, q.qmin, q.qmax);
      ASSERT_TRUE(same_bits(y.data() + oy, ref.data(), n)) << "ox=" << ox << " oy=" << oy;
    }
    std::vector<float> inplace(x.begin() + ox, x.begin() + ox + n);
    mk::fake_quant(inplace.data(), inplace.data(), n, q.scale, q.zero_point, q.qmin, q.qmax);
    ASSERT_TRUE(same_bits(inplace.data(), ref.data(), n)) << "in place, ox=" << ox;
  }
}

TEST_P(Kernels, FakeQuantMatchesTorchGolden) {
  float x[56], y[56];
  for (int i = 0; i < 56; ++i) x[i] = from_bits(kGoldenX[i]);
  for (const GoldenCase& g : kGoldenPerTensor) {
    mk::fake_quant(x, y, 56, g.scale, g.zero_point, g.qmin, g.qmax);
    for (int i = 0; i < 56; ++i)
      EXPECT_EQ(bits_of(y[i]), g.y[i]) << "scale " << g.scale << " i=" << i << " x=" << x[i] << " y=" << y[i]
                                       << " torch=" << from_bits(g.y[i]);
  }
}

TEST_P(Kernels, PerChannelMatchesTorchGolden) {
  float x[56], y[56], scales[4];
  const std::int32_t zero_points[4] = {0, -3, 5, 1};
  for (int i = 0; i < 56; ++i) x[i] = from_bits(kGoldenChannelX[i]);
  for (int i = 0; i < 4; ++i) scales[i] = from_bits(kGoldenChannelScales[i]);
  mk::fake_quant_per_channel(x, y, 2, 4, 7, scales, zero_points, -16, 15);
  for (int i = 0; i < 56; ++i) EXPECT_EQ(bits_of(y[i]), kGoldenChannelY[i]) << "i=" << i;
}

TEST_P(Kernels, NonFiniteAndHugeInputs) {
  const float x[] = {NAN, INFINITY, -INFINITY, 3e38f, -3e38f, -0.0f, 0.0f, -0.2f};
  float y[8], dx[8];
  const float dy[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  mk::fake_quant(x, y, 8, 0.5f, 0, -8, 7);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 3.5f);
  EXPECT_EQ(y[2], -4.0f);
  EXPECT_EQ(y[3], 3.5f);
  EXPECT_EQ(y[4], -4.0f);
  for (int i = 5; i < 8; ++i) EXPECT_EQ(bits_of(y[i]), 0u) << "a zero output is +0, i=" << i;
  mk::fake_quant_backward(x, dy, dx, 8, 0.5f, 0, -8, 7);
  const float expect_dx[8] = {0, 0, 0, 0, 0, 1, 1, 1};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(bits_of(dx[i]), bits_of(expect_dx[i])) << "i=" << i;
}

TEST_P(Kernels, BackwardMatchesScalar) {
  std::uint32_t seed = 7;
  for (const QuantParams& q : param_sets()) {
    SCOPED_TRACE(describe(q));
    const md::Params p = md::params(q.scale, q.zero_point, q.qmin, q.qmax);
    const std::ptrdiff_t len = 2 * 64 + kWidth + 1;
    const std::vector<float> x = make_data(len, q, seed++);
    std::vector<float> dy = make_data(len, q, seed++);  // special values in dy too: masks keep their bits
    std::vector<float> dx(static_cast<std::size_t>(len) + 1), ref(static_cast<std::size_t>(len));
    for (std::ptrdiff_t n = 0; n <= len - kWidth; ++n) {
      const std::ptrdiff_t o = n % (kWidth + 1);
      dx[static_cast<std::size_t>(n)] = -7.0f;
      mk::fake_quant_backward(x.data() + o, dy.data(), dx.data(), n, q.scale, q.zero_point, q.qmin, q.qmax);
      md::scalar::fake_quant_backward(x.data() + o, dy.data(), ref.data(), n, p);
      ASSERT_TRUE(same_bits(dx.data(), ref.data(), n)) << "n=" << n;
      ASSERT_EQ(dx[static_cast<std::size_t>(n)], -7.0f) << "wrote past dx[n-1]";
    }
    std::vector<float> inplace(dy.begin(), dy.begin() + 40);
    mk::fake_quant_backward(x.data(), inplace.data(), inplace.data(), 40, q.scale, q.zero_point, q.qmin, q.qmax);
    md::scalar::fake_quant_backward(x.data(), dy.data(), ref.data(), 40, p);
    ASSERT_TRUE(same_bits(inplace.data(), ref.data(), 40)) << "in place";
  }
}

// Double-precision reference of the LSQ sums: the same rounding decisions, terms and sums in double.
struct LsqReference {
  double d_scale = 0, d_zero_point = 0, abs_sum = 0, abs_dy = 0;
};

LsqReference lsq_reference(const float* x, const float* dy, std::ptrdiff_t n, const QuantParams& q) {
  const md::Params p = md::params(q.scale, q.zero_point, q.qmin, q.qmax);
  LsqReference r;
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    const float t = x[i] * p.inv;
    const double rounded = std::nearbyint(t);
    double term = 0;
    if (rounded >= p.lo && rounded <= p.hi)
      term = rounded - double(x[i]) * double(p.inv);
    else if (rounded < p.lo)
      term = p.lo, r.d_zero_point -= double(q.scale) * dy[i];
    else if (rounded > p.hi)
      term = p.hi, r.d_zero_point -= double(q.scale) * dy[i];
    r.d_scale += double(dy[i]) * term;
    r.abs_sum += std::fabs(double(dy[i]) * term);
    r.abs_dy += std::fabs(double(dy[i]));
  }
  return r;
}

double lsq_bound(std::ptrdiff_t n, double abs_sum) {
  return (std::ldexp(double(md::kLsqBlock + 1), -24) + std::ldexp(double(n + 1), -53)) * abs_sum;
}

TEST_P(Kernels, LsqMatchesScalarAndDoubleReference) {
  std::uint32_t seed = 11;
  for (const QuantParams& q : param_sets()) {
    SCOPED_TRACE(describe(q));
    const md::Params p = md::params(q.scale, q.zero_point, q.qmin, q.qmax);
    const std::ptrdiff_t len = 2 * 64 + kWidth + 1;
    const std::vector<float> x = make_data(len, q, seed++);
    const std::vector<float> dy = gradients(len, seed++);
    std::vector<float> dx(static_cast<std::size_t>(len) + 1), ref(static_cast<std::size_t>(len));
    for (std::ptrdiff_t n = 0; n <= len - kWidth; n += (n < 3 * kWidth + 2 ? 1 : 13)) {
      const std::ptrdiff_t o = n % (kWidth + 1);
      double dzp = 0, ref_scale = 0, ref_outside = 0;
      const double ds = mk::lsq_backward(x.data() + o, dy.data(), dx.data(), n, q.scale, q.zero_point, q.qmin,
                                         q.qmax, &dzp);
      md::scalar::lsq_backward(x.data() + o, dy.data(), ref.data(), n, p, &ref_scale, &ref_outside);
      ASSERT_TRUE(same_bits(dx.data(), ref.data(), n)) << "n=" << n;
      const LsqReference r = lsq_reference(x.data() + o, dy.data(), n, q);
      // Contract (docs/NUMERICS.md): |error| <= (block + 1) * 2^-24 * sum |dy * term| + n * 2^-53 * sum |..|
      // (SIMD: float partial sums over kLsqBlock fma steps per lane, flushed to double; scalar: double).
      const double bound = lsq_bound(n, r.abs_sum);
      EXPECT_NEAR(ds, ref_scale, bound) << "n=" << n;
      EXPECT_NEAR(dzp, -double(q.scale) * ref_outside, double(q.scale) * lsq_bound(n, r.abs_dy)) << "n=" << n;
      // Against double precision: plus the one float rounding of each inside term (<= 2^-25 * |dy|).
      EXPECT_NEAR(ds, r.d_scale, bound + std::ldexp(r.abs_dy, -24)) << "n=" << n;
      EXPECT_NEAR(dzp, r.d_zero_point, double(q.scale) * lsq_bound(n, r.abs_dy) + 1e-300) << "n=" << n;
    }
    double unused = 0;
    const double null_zero_point = mk::lsq_backward(x.data(), dy.data(), dx.data(), 20, q.scale, q.zero_point,
                                                    q.qmin, q.qmax, nullptr);
    EXPECT_NEAR(null_zero_point,
                mk::lsq_backward(x.data(), dy.data(), dx.data(), 20, q.scale, q.zero_point, q.qmin, q.qmax, &unused),
                0.0);
  }
}

// From detail::stream_bytes() on, the x86 kernels write with non-temporal stores after an aligning head
// (lowered here so that small sizes take that path; elsewhere the hook is inert).
TEST_P(Kernels, StreamingStorePathsMatchScalar) {
  const QuantParams q{0.05f, -2, -8, 7};
  const md::Params p = md::params(q.scale, q.zero_point, q.qmin, q.qmax);
  const std::ptrdiff_t saved = md::stream_bytes();
  md::stream_bytes() = 1024;
  const std::vector<float> x = make_data(700, q, 5);
  const std::vector<float> dy = gradients(700, 6);
  std::vector<float> y(700), ref(700);
  for (std::ptrdiff_t n : {255, 256, 257, 300, 511, 600}) {
    for (std::ptrdiff_t o = 0; o <= kWidth; ++o) {
      std::fill(y.begin(), y.end(), -7.0f);
      mk::fake_quant(x.data() + 1, y.data() + o, n, q.scale, q.zero_point, q.qmin, q.qmax);
      md::scalar::fake_quant(x.data() + 1, ref.data(), n, p);
      ASSERT_TRUE(same_bits(y.data() + o, ref.data(), n)) << "n=" << n << " offset " << o;
      ASSERT_EQ(y[static_cast<std::size_t>(o + n)], -7.0f);
      if (o > 0) {
        ASSERT_EQ(y[static_cast<std::size_t>(o - 1)], -7.0f);
      }
      mk::fake_quant_backward(x.data() + 1, dy.data(), y.data() + o, n, q.scale, q.zero_point, q.qmin, q.qmax);
      md::scalar::fake_quant_backward(x.data() + 1, dy.data(), ref.data(), n, p);
      ASSERT_TRUE(same_bits(y.data() + o, ref.data(), n)) << "backward n=" << n << " offset " << o;
      double dz = 0, ref_scale = 0, ref_out = 0;
      const double ds =
          mk::lsq_backward(x.data() + 1, dy.data(), y.data() + o, n, q.scale, q.zero_point, q.qmin, q.qmax, &dz);
      md::scalar::lsq_backward(x.data() + 1, dy.data(), ref.data(), n, p, &ref_scale, &ref_out);
      ASSERT_TRUE(same_bits(y.data() + o, ref.data(), n)) << "lsq n=" << n << " offset " << o;
      const LsqReference r = lsq_reference(x.data() + 1, dy.data(), n, q);
      EXPECT_NEAR(ds, ref_scale, lsq_bound(n, r.abs_sum));
      EXPECT_NEAR(dz, -double(q.scale) * ref_out, double(q.scale) * lsq_bound(n, r.abs_dy));
    }
  }
  // Per channel: the decision is on the whole tensor, rows of 37 stream after their own aligning heads.
  const float scales[3] = {0.05f, 0.02f, 0.1f};
  const std::int32_t zero_points[3] = {0, 1, -1};
  std::vector<double> ds(3), dz(3), ref_ds(3, 0.0), ref_out(3, 0.0);
  mk::fake_quant_per_channel(x.data(), y.data() + 3, 2, 3, 37, scales, zero_points, -8, 7);
  md::scalar::fake_quant_channels(x.data(), ref.data(), 2, 3, 37, scales, zero_points, -8, 7);
  ASSERT_TRUE(same_bits(y.data() + 3, ref.data(), 222));
  mk::fake_quant_backward_per_channel(x.data(), dy.data(), y.data() + 3, 2, 3, 37, scales, zero_points, -8, 7);
  md::scalar::fake_quant_backward_channels(x.data(), dy.data(), ref.data(), 2, 3, 37, scales, zero_points, -8, 7);
  ASSERT_TRUE(same_bits(y.data() + 3, ref.data(), 222));
  mk::lsq_backward_per_channel(x.data(), dy.data(), y.data() + 3, 2, 3, 37, scales, zero_points, -8, 7, ds.data(),
                               dz.data());
  md::scalar::lsq_backward_channels(x.data(), dy.data(), ref.data(), 2, 3, 37, scales, zero_points, -8, 7,
                                    ref_ds.data(), ref_out.data());
  ASSERT_TRUE(same_bits(y.data() + 3, ref.data(), 222));
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(ds[static_cast<std::size_t>(c)], ref_ds[static_cast<std::size_t>(c)], 1e-4);
  // Quantize: codes stream after a head aligning them to 32 bytes.
  std::vector<std::int8_t> codes(700), ref_codes(700);
  std::vector<std::int16_t> codes16(700), ref_codes16(700);
  for (std::ptrdiff_t o = 0; o <= 2 * kWidth; ++o) {
    mk::quantize(x.data() + 1, codes.data() + o, 600, q.scale, q.zero_point, q.qmin, q.qmax);
    md::scalar::quantize(x.data() + 1, ref_codes.data(), 600, p);
    ASSERT_TRUE(same_values(codes.data() + o, ref_codes.data(), 600)) << "int8 offset " << o;
    mk::quantize(x.data() + 1, codes16.data() + o, 600, q.scale, q.zero_point, q.qmin, q.qmax);
    md::scalar::quantize(x.data() + 1, ref_codes16.data(), 600, p);
    ASSERT_TRUE(same_values(codes16.data() + o, ref_codes16.data(), 600)) << "int16 offset " << o;
  }
  md::stream_bytes() = saved;
}

TEST_P(Kernels, LsqMatchesTorchGolden) {
  float x[24], dy[24], dx[24];
  for (int i = 0; i < 24; ++i) x[i] = from_bits(kGoldenX[i]), dy[i] = from_bits(kGoldenDy[i]);
  double dzp = 1;
  double ds = mk::lsq_backward(x, dy, dx, 24, 0.1f, 3, -128, 127, &dzp);
  EXPECT_NEAR(ds, -0.04135620594024658, 2e-5);  // torch sums in float
  EXPECT_EQ(dzp, 0.0);
  ds = mk::lsq_backward(x, dy, dx, 24, 0.1f, 3, -8, 7, &dzp);
  EXPECT_NEAR(ds, 62.772735595703125, 2e-5);
  EXPECT_NEAR(dzp, 0.19593584537506104, 1e-6);
}

TEST_P(Kernels, PerChannelAndPerGroupMatchScalar) {
  const std::ptrdiff_t shapes[][3] = {{1, 3, 0},   {1, 1, 1},  {2, 3, 5},   {3, 4, 17}, {2, 5, 33},
                                      {1, 7, 49},  {2, 2, 100}, {0, 3, 4},   {2, 19, 7}, {1, 16, 32}};
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> exponent(-3.0f, 1.0f);
  std::uniform_int_distribution<std::int32_t> zp(-10, 10);
  const QuantParams q{1.0f, 0, -128, 127};
  for (const auto& s : shapes) {
    const std::ptrdiff_t outer = s[0], channels = s[1], inner = s[2], n = outer * channels * inner;
    SCOPED_TRACE("shape " + std::to_string(outer) + "x" + std::to_string(channels) + "x" + std::to_string(inner));
    std::vector<float> scales(static_cast<std::size_t>(channels));
    std::vector<std::int32_t> zero_points(static_cast<std::size_t>(channels));
    for (auto& v : scales) v = std::pow(10.0f, exponent(rng));
    for (auto& v : zero_points) v = zp(rng);
    const std::vector<float> x = make_data(n + 1, {0.05f, 0, -128, 127}, 17);
    const std::vector<float> dy = gradients(n + 1, 18);
    std::vector<float> y(static_cast<std::size_t>(n) + 1), ref(static_cast<std::size_t>(n) + 1);
    for (const std::int32_t* zps : std::vector<const std::int32_t*>{nullptr, zero_points.data()}) {
      mk::fake_quant_per_channel(x.data() + 1, y.data(), outer, channels, inner, scales.data(), zps, q.qmin, q.qmax);
      md::scalar::fake_quant_channels(x.data() + 1, ref.data(), outer, channels, inner, scales.data(), zps, q.qmin,
                                      q.qmax);
      ASSERT_TRUE(same_bits(y.data(), ref.data(), n));
      mk::fake_quant_backward_per_channel(x.data() + 1, dy.data(), y.data(), outer, channels, inner, scales.data(),
                                          zps, q.qmin, q.qmax);
      md::scalar::fake_quant_backward_channels(x.data() + 1, dy.data(), ref.data(), outer, channels, inner,
                                               scales.data(), zps, q.qmin, q.qmax);
      ASSERT_TRUE(same_bits(y.data(), ref.data(), n));
      std::vector<double> ds(static_cast<std::size_t>(channels), 9.0), dz(ds), ref_ds(ds.size(), 0.0),
          ref_out(ds.size(), 0.0);
      mk::lsq_backward_per_channel(x.data() + 1, dy.data(), y.data(), outer, channels, inner, scales.data(), zps,
                                   q.qmin, q.qmax, ds.data(), dz.data());
      md::scalar::lsq_backward_channels(x.data() + 1, dy.data(), ref.data(), outer, channels, inner, scales.data(),
                                        zps, q.qmin, q.qmax, ref_ds.data(), ref_out.data());
      ASSERT_TRUE(same_bits(y.data(), ref.data(), n));
      for (std::ptrdiff_t c = 0; c < channels; ++c) {
        const std::size_t k = static_cast<std::size_t>(c);
        QuantParams qc{scales[k], zps ? zps[k] : 0, q.qmin, q.qmax};
        LsqReference r;
        for (std::ptrdiff_t o = 0; o < outer; ++o) {
          const std::ptrdiff_t off = 1 + (o * channels + c) * inner;
          const LsqReference part = lsq_reference(x.data() + off, dy.data() + off - 1, inner, qc);
          r.abs_sum += part.abs_sum;
          r.abs_dy += part.abs_dy;
        }
        EXPECT_NEAR(ds[k], ref_ds[k], lsq_bound(n, r.abs_sum)) << "channel " << c;
        EXPECT_NEAR(dz[k], -double(scales[k]) * ref_out[k], double(scales[k]) * lsq_bound(n, r.abs_dy))
            << "channel " << c;
      }
    }
  }
  // The full int32 code range (lo and hi computed in 64-bit integers), 8-channel blocks and a tail.
  {
    const std::ptrdiff_t channels = 11, inner = 9, n = channels * inner;
    std::uniform_int_distribution<std::int32_t> any_zp(std::numeric_limits<std::int32_t>::min(),
                                                       std::numeric_limits<std::int32_t>::max());
    std::vector<float> scales(static_cast<std::size_t>(channels));
    std::vector<std::int32_t> zero_points(static_cast<std::size_t>(channels));
    for (auto& v : scales) v = std::pow(10.0f, 6.0f * exponent(rng));
    for (auto& v : zero_points) v = any_zp(rng);
    const std::int32_t qmin = std::numeric_limits<std::int32_t>::min(), qmax = std::numeric_limits<std::int32_t>::max();
    const std::vector<float> x = make_data(n, {1e6f, 0, qmin, qmax}, 21);
    const std::vector<float> dy = gradients(n, 22);
    std::vector<float> y(static_cast<std::size_t>(n)), ref(y.size());
    mk::fake_quant_per_channel(x.data(), y.data(), 1, channels, inner, scales.data(), zero_points.data(), qmin, qmax);
    md::scalar::fake_quant_channels(x.data(), ref.data(), 1, channels, inner, scales.data(), zero_points.data(), qmin,
                                    qmax);
    ASSERT_TRUE(same_bits(y.data(), ref.data(), n)) << "full int32 range";
    mk::fake_quant_backward_per_channel(x.data(), dy.data(), y.data(), 1, channels, inner, scales.data(),
                                        zero_points.data(), qmin, qmax);
    md::scalar::fake_quant_backward_channels(x.data(), dy.data(), ref.data(), 1, channels, inner, scales.data(),
                                             zero_points.data(), qmin, qmax);
    ASSERT_TRUE(same_bits(y.data(), ref.data(), n)) << "full int32 range, backward";
  }
  // Per group = per channel with outer = 1, channels = rows * groups, inner = group_size.
  std::uniform_int_distribution<std::int32_t> small_zp(-8, 7);
  for (const std::ptrdiff_t group_size : {1, 5, 32, 48, 128}) {
    const std::ptrdiff_t rows = 3, cols = group_size * 4, groups = rows * 4, n = rows * cols;
    std::vector<float> scales(static_cast<std::size_t>(groups));
    std::vector<std::int32_t> zero_points(static_cast<std::size_t>(groups));
    for (auto& v : scales) v = std::pow(10.0f, exponent(rng));
    for (auto& v : zero_points) v = small_zp(rng);
    const std::vector<float> x = make_data(n, {0.05f, 0, -8, 7}, 19);
    const std::vector<float> dy = gradients(n, 20);
    std::vector<float> y(static_cast<std::size_t>(n)), ref(static_cast<std::size_t>(n));
    mk::fake_quant_per_group(x.data(), y.data(), rows, cols, group_size, scales.data(), zero_points.data(), -8, 7);
    md::scalar::fake_quant_channels(x.data(), ref.data(), 1, groups, group_size, scales.data(), zero_points.data(),
                                    -8, 7);
    ASSERT_TRUE(same_bits(y.data(), ref.data(), n)) << "group_size " << group_size;
    mk::fake_quant_backward_per_group(x.data(), dy.data(), y.data(), rows, cols, group_size, scales.data(),
                                      zero_points.data(), -8, 7);
    md::scalar::fake_quant_backward_channels(x.data(), dy.data(), ref.data(), 1, groups, group_size, scales.data(),
                                             zero_points.data(), -8, 7);
    ASSERT_TRUE(same_bits(y.data(), ref.data(), n)) << "group_size " << group_size;
    std::vector<double> ds(static_cast<std::size_t>(groups)), dz(ds), ref_ds(ds.size(), 0.0), ref_out(ds.size(), 0.0);
    mk::lsq_backward_per_group(x.data(), dy.data(), y.data(), rows, cols, group_size, scales.data(),
                               zero_points.data(), -8, 7, ds.data(), dz.data());
    md::scalar::lsq_backward_channels(x.data(), dy.data(), ref.data(), 1, groups, group_size, scales.data(),
                                      zero_points.data(), -8, 7, ref_ds.data(), ref_out.data());
    ASSERT_TRUE(same_bits(y.data(), ref.data(), n));
    for (std::size_t g = 0; g < ds.size(); ++g) {
      const std::ptrdiff_t off = std::ptrdiff_t(g) * group_size;
      const LsqReference r =
          lsq_reference(x.data() + off, dy.data() + off, group_size, {scales[g], zero_points[g], -8, 7});
      EXPECT_NEAR(ds[g], ref_ds[g], lsq_bound(group_size, r.abs_sum)) << "group " << g;
      EXPECT_NEAR(dz[g], -double(scales[g]) * ref_out[g], double(scales[g]) * lsq_bound(group_size, r.abs_dy))
          << "group " << g;
    }
    // Each group equals a per-tensor call with its parameters.
    for (std::ptrdiff_t g = 0; g < groups; ++g) {
      const std::size_t k = static_cast<std::size_t>(g);
      mk::fake_quant(x.data() + g * group_size, ref.data(), group_size, scales[k], zero_points[k], -8, 7);
      mk::fake_quant_per_group(x.data(), y.data(), rows, cols, group_size, scales.data(), zero_points.data(), -8, 7);
      ASSERT_TRUE(same_bits(y.data() + g * group_size, ref.data(), group_size)) << "group " << g;
    }
  }
}

template <class Code>
void check_quantize(std::int32_t zero_point, std::int32_t qmin, std::int32_t qmax) {
  const QuantParams q{0.0372f, zero_point, qmin, qmax};
  const md::Params p = md::params(q.scale, q.zero_point, q.qmin, q.qmax);
  const std::ptrdiff_t len = 2 * 64 + kWidth + 1;
  const std::vector<float> x = make_data(len + kWidth, q, 23);
  std::vector<Code> codes(static_cast<std::size_t>(len + kWidth) + 1), ref(codes.size());
  std::vector<float> y(static_cast<std::size_t>(len + kWidth)), ref_y(y.size()), fq(y.size());
  for (std::ptrdiff_t n = 0; n <= len; ++n) {
    const std::ptrdiff_t ox = n % (kWidth + 1), oq = (n * 5) % (kWidth + 1);
    codes[static_cast<std::size_t>(oq + n)] = Code(77);
    mk::quantize(x.data() + ox, codes.data() + oq, n, q.scale, q.zero_point, q.qmin, q.qmax);
    md::scalar::quantize(x.data() + ox, ref.data(), n, p);
    ASSERT_TRUE(same_values(codes.data() + oq, ref.data(), n)) << "quantize n=" << n;
    ASSERT_EQ(codes[static_cast<std::size_t>(oq + n)], Code(77)) << "wrote past q[n-1]";
    mk::dequantize(codes.data() + oq, y.data() + ox, n, q.scale, q.zero_point);
    md::scalar::dequantize(ref.data(), ref_y.data(), n, q.scale, q.zero_point);
    ASSERT_TRUE(same_bits(y.data() + ox, ref_y.data(), n)) << "dequantize n=" << n;
  }
  // dequantize(quantize(x)) == fake_quant(x) bit for bit for every non-NaN x; NaN quantizes to zero_point.
  mk::quantize(x.data(), codes.data(), len, q.scale, q.zero_point, q.qmin, q.qmax);
  mk::dequantize(codes.data(), y.data(), len, q.scale, q.zero_point);
  mk::fake_quant(x.data(), fq.data(), len, q.scale, q.zero_point, q.qmin, q.qmax);
  for (std::ptrdiff_t i = 0; i < len; ++i) {
    const std::size_t k = static_cast<std::size_t>(i);
    if (std::isnan(x[k]))
      EXPECT_EQ(codes[k], Code(zero_point));
    else
      EXPECT_EQ(bits_of(y[k]), bits_of(fq[k])) << "i=" << i << " x=" << x[k];
  }
}

TEST_P(Kernels, QuantizeDequantizeMatchScalar) {
  check_quantize<std::int8_t>(-3, -128, 127);
  check_quantize<std::int8_t>(0, -8, 7);
  check_quantize<std::uint8_t>(128, 0, 255);
  check_quantize<std::uint8_t>(1, 0, 3);
  check_quantize<std::int16_t>(5, -32768, 32767);
  check_quantize<std::int16_t>(-100, -2048, 2047);
  // zero_point 0 takes the dequantize path without the integer subtraction.
  check_quantize<std::int8_t>(0, -128, 127);
  check_quantize<std::uint8_t>(0, 0, 255);
  check_quantize<std::int16_t>(0, -32768, 32767);
}

TEST_P(Kernels, MinMaxMatchesScalarAndIgnoresNaN) {
  const QuantParams q{0.1f, 0, -128, 127};
  const std::ptrdiff_t len = 2 * 64 + kWidth + 1;
  std::vector<float> x = make_data(len + kWidth, q, 31);
  for (std::ptrdiff_t n = 0; n <= len; ++n) {
    const std::ptrdiff_t o = n % (kWidth + 1);
    const mk::MinMax m = mk::minmax(x.data() + o, n);
    float mn, mx;
    md::scalar::minmax(x.data() + o, n, &mn, &mx);
    ASSERT_EQ(bits_of(m.min), bits_of(mn)) << "n=" << n;
    ASSERT_EQ(bits_of(m.max), bits_of(mx)) << "n=" << n;
    ASSERT_FALSE(std::isnan(m.min) || std::isnan(m.max));
  }
  const float mixed[] = {NAN, -0.0f, 3.0f, NAN, -2.5f, 0.0f, 7.0f, NAN, -0.0f};
  mk::MinMax m = mk::minmax(mixed, 9);
  EXPECT_EQ(m.min, -2.5f);
  EXPECT_EQ(m.max, 7.0f);
  const float zeros[] = {0.0f, -0.0f, -0.0f, 0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, 0.0f, -0.0f, -0.0f,
                         -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, 0.0f, -0.0f};
  m = mk::minmax(zeros, 19);
  EXPECT_EQ(bits_of(m.min), 0u) << "a zero result is +0";
  EXPECT_EQ(bits_of(m.max), 0u);
  std::vector<float> nans(40, NAN);
  m = mk::minmax(nans.data(), 40);
  EXPECT_EQ(m.min, INFINITY);
  EXPECT_EQ(m.max, -INFINITY);
  m = mk::minmax(nullptr, 0);
  EXPECT_EQ(m.min, INFINITY);
  EXPECT_EQ(m.max, -INFINITY);
}

// Long streams: the 64-code steps of the 3- and 4-bit packers (and every other width) many times over, with
// every tail length of the last step and unaligned codes and output.
TEST_P(Kernels, PackUnpackBitsLongStreamsMatchScalar) {
  std::mt19937 rng(43);
  std::vector<std::uint8_t> codes(4096 + 3 * 64 + 8);
  for (auto& c : codes) c = static_cast<std::uint8_t>(rng());
  for (int bits = 1; bits <= 8; ++bits)
    for (std::ptrdiff_t n = 4096 - 1; n <= 4096 + 2 * 64 + 1; n += 3) {
      const std::ptrdiff_t o = n % 5, oo = n % 7;
      const std::ptrdiff_t size = mk::packed_size(n, bits);
      std::vector<std::uint8_t> packed(static_cast<std::size_t>(size + oo) + 40, 0xA5), ref(packed);
      mk::pack_bits(codes.data() + o, n, bits, packed.data() + oo);
      md::scalar::pack_bits(codes.data() + o, n, bits, ref.data() + oo);
      ASSERT_TRUE(same_values(packed.data(), ref.data(), size + oo + 40)) << "bits=" << bits << " n=" << n;
      std::vector<std::uint8_t> back(static_cast<std::size_t>(n) + 1, 0x5A), ref_back(back);
      mk::unpack_bits(packed.data() + oo, n, bits, back.data());
      md::scalar::unpack_bits(ref.data() + oo, n, bits, ref_back.data(), false);
      ASSERT_TRUE(same_values(back.data(), ref_back.data(), n + 1)) << "bits=" << bits << " n=" << n;
    }
}

TEST_P(Kernels, PackUnpackBitsMatchScalarAndRoundTrip) {
  std::mt19937 rng(41);
  std::vector<std::uint8_t> codes(3 * 64 + kWidth + 2);
  for (auto& c : codes) c = static_cast<std::uint8_t>(rng());
  for (int bits = 1; bits <= 8; ++bits) {
    SCOPED_TRACE("bits=" + std::to_string(bits));
    for (std::ptrdiff_t n = 0; n <= 3 * 64 + 1; ++n) {
      const std::ptrdiff_t o = n % (kWidth + 1);
      const std::ptrdiff_t size = mk::packed_size(n, bits);
      ASSERT_EQ(size, (n * bits + 7) / 8);
      std::vector<std::uint8_t> packed(static_cast<std::size_t>(size) + 8, 0xA5), ref(packed);
      mk::pack_bits(codes.data() + o, n, bits, packed.data());
      md::scalar::pack_bits(codes.data() + o, n, bits, ref.data());
      ASSERT_TRUE(same_values(packed.data(), ref.data(), size + 8)) << "n=" << n;
      for (int k = 0; k < 8; ++k) ASSERT_EQ(packed[static_cast<std::size_t>(size + k)], 0xA5) << "wrote past the end";
      std::vector<std::uint8_t> back(static_cast<std::size_t>(n) + 1, 0x5A);
      mk::unpack_bits(packed.data(), n, bits, back.data());
      for (std::ptrdiff_t i = 0; i < n; ++i)
        ASSERT_EQ(back[static_cast<std::size_t>(i)], codes[static_cast<std::size_t>(o + i)] & ((1u << bits) - 1))
            << "n=" << n << " i=" << i;
      ASSERT_EQ(back[static_cast<std::size_t>(n)], 0x5A) << "wrote past codes[n-1]";
      std::vector<std::int8_t> sback(static_cast<std::size_t>(n));
      mk::unpack_bits(packed.data(), n, bits, sback.data());
      for (std::ptrdiff_t i = 0; i < n; ++i) {
        const int u = codes[static_cast<std::size_t>(o + i)] & ((1 << bits) - 1);
        const int expect = u >= (1 << (bits - 1)) ? u - (1 << bits) : u;
        ASSERT_EQ(sback[static_cast<std::size_t>(i)], expect) << "signed, n=" << n << " i=" << i;
      }
    }
  }
  // Known layout: 3-bit codes 1..5 pack little-endian into ceil(15 / 8) = 2 bytes.
  const std::uint8_t five[] = {1, 2, 3, 4, 5};
  std::uint8_t out[2];
  mk::pack_bits(five, 5, 3, out);
  EXPECT_EQ(out[0], 0xD1);  // 001 | 010 << 3 | (011 & 3) << 6
  EXPECT_EQ(out[1], 0x58);  // 011 >> 2 | 100 << 1 | 101 << 4
  const std::int8_t negative[] = {-1, -4, 3};
  mk::pack_bits(negative, 3, 3, out);
  std::int8_t signed_back[3];
  mk::unpack_bits(out, 3, 3, signed_back);
  EXPECT_EQ(signed_back[0], -1);
  EXPECT_EQ(signed_back[1], -4);
  EXPECT_EQ(signed_back[2], 3);
}

INSTANTIATE_TEST_SUITE_P(Isa, Kernels, ::testing::ValuesIn(mk::available_isas()),
                         [](const ::testing::TestParamInfo<mk::Isa>& info) { return mk::isa_name(info.param); });

// ---- Bad input: mixq::error naming the argument and its value, thrown before any output is written.

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const mixq::error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(KernelErrors, FakeQuantArguments) {
  float x[4] = {1, 2, 3, 4}, y[4] = {9, 9, 9, 9};
  EXPECT_EQ(error_of([&] { mk::fake_quant(x, y, 4, -1.0f, 0, -8, 7); }),
            "fake_quant: scale must be finite and > 0, got -1");
  EXPECT_EQ(error_of([&] { mk::fake_quant(x, y, 4, 0.0f, 0, -8, 7); }),
            "fake_quant: scale must be finite and > 0, got 0");
  EXPECT_EQ(error_of([&] { mk::fake_quant(x, y, 4, NAN, 0, -8, 7); }),
            "fake_quant: scale must be finite and > 0, got nan");
  EXPECT_EQ(error_of([&] { mk::fake_quant(x, y, 4, INFINITY, 0, -8, 7); }),
            "fake_quant: scale must be finite and > 0, got inf");
  EXPECT_NE(error_of([&] { mk::fake_quant(x, y, 4, 1e-40f, 0, -8, 7); }).find("finite reciprocal"),
            std::string::npos);
  // The reciprocal check is a comparison with kMinScale: it must agree with isfinite(1.0f / scale) around
  // the threshold and at the ends of the subnormal range.
  for (std::uint32_t bits : {0x00000001u, 0x001FFFFFu, 0x00200000u, 0x00200001u, 0x00200002u, 0x00200007u,
                             0x00200008u, 0x00200009u, 0x007FFFFFu, 0x00800000u}) {
    float s;
    std::memcpy(&s, &bits, sizeof s);
    volatile float inv = 1.0f / s;
    float out[4];
    const bool throws = error_of([&] { mk::fake_quant(x, out, 4, s, 0, -8, 7); }) != "(no error)";
    EXPECT_EQ(throws, !std::isfinite(inv)) << "scale bits " << std::hex << bits;
  }
  EXPECT_EQ(error_of([&] { mk::fake_quant(x, y, 4, 1.0f, 0, 7, 7); }),
            "fake_quant: qmin must be < qmax, got qmin = 7, qmax = 7");
  EXPECT_EQ(error_of([&] { mk::fake_quant(x, y, 4, 1.0f, 9, -8, 7); }),
            "fake_quant: zero_point must lie in [qmin, qmax] = [-8, 7], got 9");
  EXPECT_EQ(error_of([&] { mk::fake_quant(x, y, -2, 1.0f, 0, -8, 7); }), "fake_quant: n must be >= 0, got -2");
  EXPECT_EQ(error_of([&] { mk::fake_quant(nullptr, y, 4, 1.0f, 0, -8, 7); }),
            "fake_quant: x must not be null when n = 4");
  EXPECT_EQ(error_of([&] { mk::fake_quant_backward(x, x, y, 4, 1.0f, 0, 8, 7); }),
            "fake_quant_backward: qmin must be < qmax, got qmin = 8, qmax = 7");
  EXPECT_EQ(error_of([&] { mk::lsq_backward(x, x, y, 4, -0.5f, 0, -8, 7, nullptr); }),
            "lsq_backward: scale must be finite and > 0, got -0.5");
  for (float v : y) EXPECT_EQ(v, 9.0f) << "output written before the error";
  EXPECT_NO_THROW(mk::fake_quant(nullptr, nullptr, 0, 1.0f, 0, -8, 7));
}

TEST(KernelErrors, PerChannelAndPerGroupArguments) {
  float x[12] = {}, y[12] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
  const float scales[4] = {0.1f, 0.2f, -3.0f, 0.4f};
  const std::int32_t zps[4] = {0, 1, 2, 100};
  EXPECT_EQ(error_of([&] { mk::fake_quant_per_channel(x, y, 1, 4, 3, scales, nullptr, -8, 7); }),
            "fake_quant_per_channel: scales[2] must be finite and > 0, got -3");
  const float good[4] = {0.1f, 0.2f, 0.3f, 0.4f};
  EXPECT_EQ(error_of([&] { mk::fake_quant_per_channel(x, y, 1, 4, 3, good, zps, -8, 7); }),
            "fake_quant_per_channel: zero_points[3] must lie in [qmin, qmax] = [-8, 7], got 100");
  EXPECT_EQ(error_of([&] { mk::fake_quant_per_channel(x, y, 1, 0, 3, good, zps, -8, 7); }),
            "fake_quant_per_channel: channels must be > 0, got 0");
  EXPECT_EQ(error_of([&] { mk::fake_quant_per_channel(x, y, -1, 4, 3, good, zps, -8, 7); }),
            "fake_quant_per_channel: outer must be >= 0, got -1");
  EXPECT_EQ(error_of([&] { mk::fake_quant_per_channel(x, y, 1, 4, -3, good, zps, -8, 7); }),
            "fake_quant_per_channel: inner must be >= 0, got -3");
  EXPECT_EQ(error_of([&] { mk::fake_quant_per_channel(x, y, 1, 4, 3, good, nullptr, 1, 7); }),
            "fake_quant_per_channel: zero_point must lie in [qmin, qmax] = [1, 7], got 0");
  EXPECT_EQ(error_of([&] { mk::fake_quant_per_group(x, y, 2, 6, 4, good, nullptr, -8, 7); }),
            "fake_quant_per_group: group_size must divide cols, got group_size = 4, cols = 6");
  EXPECT_EQ(error_of([&] { mk::fake_quant_per_group(x, y, 2, 6, 0, good, nullptr, -8, 7); }),
            "fake_quant_per_group: group_size must be > 0, got 0");
  EXPECT_EQ(error_of([&] { mk::fake_quant_backward_per_group(x, x, y, 2, 6, 3, scales, nullptr, -8, 7); }),
            "fake_quant_backward_per_group: scales[2] must be finite and > 0, got -3");
  double ds[4];
  EXPECT_EQ(error_of([&] { mk::lsq_backward_per_channel(x, x, y, 1, 4, 3, good, zps, -8, 7, ds, nullptr); }),
            "lsq_backward_per_channel: zero_points[3] must lie in [qmin, qmax] = [-8, 7], got 100");
  EXPECT_EQ(error_of([&] { mk::lsq_backward_per_channel(x, x, y, 1, 4, 3, good, nullptr, -8, 7, nullptr, nullptr); }),
            "lsq_backward_per_channel: d_scales must not be null when n = 4");
  EXPECT_EQ(error_of([&] { mk::lsq_backward_per_group(x, x, y, 2, 6, 5, good, nullptr, -8, 7, ds, nullptr); }),
            "lsq_backward_per_group: group_size must divide cols, got group_size = 5, cols = 6");
  EXPECT_EQ(error_of([&] { mk::fake_quant_per_channel(x, y, PTRDIFF_MAX / 2, 4, 3, good, nullptr, -8, 7); })
                .find("overflows"),
            std::string("fake_quant_per_channel: size ").size() + std::to_string(PTRDIFF_MAX / 2).size() + 9);
  for (float v : y) EXPECT_EQ(v, 9.0f) << "output written before the error";
}

TEST(KernelErrors, DeploymentArguments) {
  float x[4] = {1, 2, 3, 4};
  std::int8_t q8[4] = {9, 9, 9, 9};
  std::uint8_t u8[4] = {9, 9, 9, 9};
  EXPECT_EQ(error_of([&] { mk::quantize(x, q8, 4, 0.1f, 0, -200, 127); }),
            "quantize: [qmin, qmax] must fit int8 [-128, 127], got [-200, 127]");
  EXPECT_EQ(error_of([&] { mk::quantize(x, u8, 4, 0.1f, 0, -1, 255); }),
            "quantize: [qmin, qmax] must fit uint8 [0, 255], got [-1, 255]");
  EXPECT_EQ(error_of([&] { mk::quantize(x, u8, 4, 0.1f, 300, 0, 255); }),
            "quantize: zero_point must lie in [qmin, qmax] = [0, 255], got 300");
  EXPECT_EQ(error_of([&] { mk::dequantize(q8, x, 4, -0.1f, 0); }),
            "dequantize: scale must be finite and > 0, got -0.100000001");
  EXPECT_EQ(error_of([&] { mk::pack_bits(u8, 4, 9, u8); }), "pack_bits: bits must be in 1..8, got 9");
  EXPECT_EQ(error_of([&] { mk::pack_bits(u8, 4, 0, u8); }), "pack_bits: bits must be in 1..8, got 0");
  EXPECT_EQ(error_of([&] { mk::unpack_bits(u8, -1, 3, u8); }), "unpack_bits: n must be >= 0, got -1");
  EXPECT_EQ(error_of([&] { mk::packed_size(5, 10); }), "packed_size: bits must be in 1..8, got 10");
  EXPECT_EQ(error_of([&] { mk::minmax(x, -4); }), "minmax: n must be >= 0, got -4");
  for (auto v : q8) EXPECT_EQ(v, 9);
  for (auto v : u8) EXPECT_EQ(v, 9);
  EXPECT_EQ(x[0], 1.0f);
}

// ---- Dispatch.

TEST(KernelDispatch, AvailableIsasStartWithScalarAndNameThemselves) {
  const std::vector<mk::Isa> isas = mk::available_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), mk::Isa::scalar);
  for (mk::Isa isa : isas) EXPECT_EQ(mk::isa_from_name(mk::isa_name(isa)), isa);
  EXPECT_STREQ(mk::isa_name(mk::Isa::avx512), "avx512");
  EXPECT_THROW(mk::isa_from_name("sse9"), mixq::error);
#if defined(__aarch64__)
  EXPECT_EQ(isas.back(), mk::Isa::neon);
#endif
}

TEST(KernelDispatch, ForceUnavailableIsaThrows) {
  for (mk::Isa isa : {mk::Isa::scalar, mk::Isa::avx2, mk::Isa::avx512, mk::Isa::neon}) {
    const std::vector<mk::Isa> isas = mk::available_isas();
    const bool available = std::find(isas.begin(), isas.end(), isa) != isas.end();
    if (available) {
      EXPECT_NO_THROW(mk::force_isa(isa));
      EXPECT_EQ(mk::active_isa(), isa);
    } else {
      const std::string message = error_of([&] { mk::force_isa(isa); });
      EXPECT_EQ(message.rfind(std::string("force_isa: ISA '") + mk::isa_name(isa) + "' is not available", 0), 0u)
          << message;
    }
  }
  mk::force_isa(mk::available_isas().back());
}

TEST(KernelDispatch, EnvironmentVariableIsReadAndChecked) {
  const char* saved = std::getenv("MIXQ_FORCE_ISA");
  const std::string saved_value = saved ? saved : "";
  ::setenv("MIXQ_FORCE_ISA", "scalar", 1);
  EXPECT_EQ(md::initial_table()->isa, mk::Isa::scalar);
  ::setenv("MIXQ_FORCE_ISA", "", 1);
  EXPECT_EQ(md::initial_table()->isa, mk::available_isas().back());
  ::setenv("MIXQ_FORCE_ISA", "avx1024", 1);
  EXPECT_EQ(error_of([] { md::initial_table(); }),
            "MIXQ_FORCE_ISA: must be one of scalar, avx2, avx512, neon, got 'avx1024'");
  for (mk::Isa isa : {mk::Isa::avx2, mk::Isa::avx512, mk::Isa::neon}) {
    if (md::cpu_supports(isa)) continue;
    ::setenv("MIXQ_FORCE_ISA", mk::isa_name(isa), 1);
    EXPECT_NE(error_of([] { md::initial_table(); }).find("is not available on this CPU"), std::string::npos);
  }
  if (saved)
    ::setenv("MIXQ_FORCE_ISA", saved_value.c_str(), 1);
  else
    ::unsetenv("MIXQ_FORCE_ISA");
}

}  // namespace
