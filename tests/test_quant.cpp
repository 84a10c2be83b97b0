// QuantSpec, params_from_range, channel layouts, bit packing, QuantizedTensor and Quantizer<G>: exact round trips
// (quantize, pack, unpack, dequantize == fake_quant bit for bit), per-channel == per-tensor channel by channel,
// on every ISA the machine has.
#include <mixq/quant.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test_support.hpp"

using mixq::Granularity;
using mixq::QuantSpec;
using mixq::Shape;

namespace {

std::vector<float> gaussian_data(std::size_t n, std::uint32_t seed, float sigma = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> x(n);
  for (float& v : x) v = normal(gen);
  return x;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

using mixq_test::expect_error;

/// Every spec variant the round-trip tests run: bit-widths 1..16, signed or not, symmetric or affine, narrow.
std::vector<QuantSpec> spec_variants() {
  std::vector<QuantSpec> out;
  for (int bits : {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16})
    for (bool is_signed : {true, false})
      for (bool symmetric : {true, false})
        for (bool narrow : {false, true}) {
          QuantSpec s = QuantSpec::per_tensor(bits, is_signed, symmetric);
          s.narrow_range = narrow;
          if (narrow && (bits < 2 || (symmetric && !is_signed))) continue;
          out.push_back(s);
        }
  return out;
}

}  // namespace

TEST(QuantSpec, GridFollowsBitWidthSignAndRange) {
  EXPECT_EQ(QuantSpec::per_tensor(8).qmin(), -128);
  EXPECT_EQ(QuantSpec::per_tensor(8).qmax(), 127);
  EXPECT_EQ(QuantSpec::per_tensor(8, false).qmin(), 0);
  EXPECT_EQ(QuantSpec::per_tensor(8, false).qmax(), 255);
  QuantSpec s = QuantSpec::per_tensor(4);
  s.narrow_range = true;
  EXPECT_EQ(s.qmin(), -7);
  EXPECT_EQ(s.qmax(), 7);
  s = QuantSpec::per_tensor(4, false, false);
  s.narrow_range = true;
  EXPECT_EQ(s.qmin(), 1);
  EXPECT_EQ(s.qmax(), 15);
  EXPECT_EQ(QuantSpec::per_tensor(1).qmin(), -1);
  EXPECT_EQ(QuantSpec::per_tensor(1).qmax(), 0);
  EXPECT_EQ(QuantSpec::per_tensor(16).qmin(), -32768);
  EXPECT_EQ(QuantSpec::per_tensor(16, false).qmax(), 65535);
}

TEST(QuantSpec, InvalidSpecsThrow) {
  expect_error([] { QuantSpec::per_tensor(0).validate(); }, "bit_width must be in [1, 16], got 0");
  expect_error([] { QuantSpec::per_tensor(17).validate(); }, "got 17");
  expect_error([] {
    QuantSpec s = QuantSpec::per_tensor(1);
    s.narrow_range = true;
    s.validate();
  }, "narrow_range");
  expect_error([] {
    QuantSpec s = QuantSpec::per_tensor(4, false, true);
    s.narrow_range = true;
    s.validate();
  }, "cannot represent 0");
  expect_error([] { QuantSpec::per_group(4, 0).validate(); }, "group_size >= 1, got 0");
  expect_error([] { mixq::PerChannelQuantizer q(QuantSpec::per_tensor(4)); }, "granularity is per_tensor");
  expect_error([] { mixq::PerTensorQuantizer q(QuantSpec::per_tensor(20)); }, "got 20");
}

TEST(ParamsFromRange, SymmetricAffineAndPowerOfTwo) {
  mixq::QuantParams p = mixq::params_from_range(QuantSpec::per_tensor(8), -1.0, 2.0);
  EXPECT_FLOAT_EQ(p.scale, 2.0f / 127.0f);
  EXPECT_EQ(p.zero_point, 0);
  p = mixq::params_from_range(QuantSpec::per_tensor(8, false, false), -1.0, 3.0);
  EXPECT_FLOAT_EQ(p.scale, 4.0f / 255.0f);
  EXPECT_EQ(p.zero_point, 64);  // 0 - round(-1 / (4/255)) = round(63.75)
  p = mixq::params_from_range(QuantSpec::per_tensor(8, true, false), 0.5, 3.0);  // widened to [0, 3]
  EXPECT_FLOAT_EQ(p.scale, 3.0f / 255.0f);
  EXPECT_EQ(p.zero_point, -128);
  QuantSpec pow2 = QuantSpec::per_tensor(4);
  pow2.scale_restriction = mixq::ScaleRestriction::power_of_two;
  p = mixq::params_from_range(pow2, -1.0, 1.0);  // free scale 1/7 -> 0.25
  EXPECT_EQ(p.scale, 0.25f);
  p = mixq::params_from_range(pow2, -1.75, 1.75);  // free scale 0.25 exactly
  EXPECT_EQ(p.scale, 0.25f);
  p = mixq::params_from_range(QuantSpec::per_tensor(1), -3.0, 3.0);  // 1-bit signed: scale = amax / -qmin
  EXPECT_EQ(p.scale, 3.0f);
  expect_error([] { mixq::params_from_range(QuantSpec::per_tensor(8), 1.0, -1.0); }, "lo <= hi");
  expect_error([] { mixq::params_from_range(QuantSpec::per_tensor(8), 0.0, INFINITY); }, "finite");
}

TEST(ParamsFromRange, AllEqualAndExtremeRangesGiveUsableScales) {
  for (const QuantSpec& s : spec_variants()) {
    for (double v : {0.0, 5.0, -5.0, 1e-40, -1e-44, 3e38, -3.4e38}) {
      const mixq::QuantParams p = mixq::params_from_range(s, v, v);
      EXPECT_TRUE(std::isfinite(p.scale) && p.scale >= mixq::min_scale) << v;
      EXPECT_TRUE(std::isfinite(1.0f / p.scale)) << v;
      EXPECT_GE(p.zero_point, s.qmin());
      EXPECT_LE(p.zero_point, s.qmax());
    }
    const mixq::QuantParams zero = mixq::params_from_range(s, 0.0, 0.0);
    EXPECT_EQ(zero.scale, 1.0f);  // the documented all-zero rule
    const mixq::QuantParams huge = mixq::params_from_range(s, -3.4e38, 3.4e38);
    EXPECT_TRUE(std::isfinite(huge.scale));
  }
}

TEST(ChannelLayout, PerTensorChannelAndGroup) {
  mixq::ChannelLayout l = mixq::channel_layout(QuantSpec::per_channel(8, 1), {2, 3, 4, 5});
  EXPECT_EQ(l.outer, 2);
  EXPECT_EQ(l.channels, 3);
  EXPECT_EQ(l.inner, 20);
  l = mixq::channel_layout(QuantSpec::per_channel(8, -1), {2, 3, 4, 5});
  EXPECT_EQ(l.outer, 24);
  EXPECT_EQ(l.channels, 5);
  EXPECT_EQ(l.inner, 1);
  l = mixq::channel_layout(QuantSpec::per_group(8, 4), {3, 8});
  EXPECT_EQ(l.channels, 6);
  EXPECT_EQ(l.inner, 4);
  l = mixq::channel_layout(QuantSpec::per_tensor(8), {});
  EXPECT_EQ(l.numel(), 1);
  expect_error([] { mixq::channel_layout(QuantSpec::per_channel(8, 4), {2, 3, 4, 5}); }, "axis 4 is out of range");
  expect_error([] { mixq::channel_layout(QuantSpec::per_channel(8, -5), {2, 3, 4, 5}); }, "axis -5");
  expect_error([] { mixq::channel_layout(QuantSpec::per_channel(8, 0), {}); }, "rank 0");
  expect_error([] { mixq::channel_layout(QuantSpec::per_group(8, 3), {2, 8}); }, "does not divide");
  expect_error([] { mixq::channel_layout(QuantSpec::per_tensor(8), {2, -1}); }, "negative");
}

TEST(Packing, RoundTripsEveryBitWidthAndMatchesTheKernelLayout) {
  std::mt19937 gen(3);
  for (int bits = 1; bits <= 16; ++bits)
    for (bool is_signed : {true, false})
      for (std::int64_t n : {0, 1, 7, 8, 9, 61, 1000}) {
        const QuantSpec s = QuantSpec::per_tensor(bits, is_signed, false);
        std::uniform_int_distribution<std::int32_t> code(s.qmin(), s.qmax());
        std::vector<std::int32_t> q(static_cast<std::size_t>(n));
        for (auto& c : q) c = code(gen);
        std::vector<std::uint8_t> packed(mixq::detail::packed_size(n, bits) + 1, 0xAB);
        mixq::detail::pack_codes(q.data(), n, bits, packed.data());
        EXPECT_EQ(packed.back(), 0xAB);  // writes exactly packed_size bytes
        std::vector<std::int32_t> back(static_cast<std::size_t>(n));
        mixq::detail::unpack_codes(packed.data(), n, bits, is_signed, back.data());
        EXPECT_EQ(back, q) << bits << " bits, n = " << n;
        if (bits <= 8 && n > 0) {
          std::vector<std::uint8_t> q8(q.begin(), q.end()), kpacked(packed.size() - 1);
          mixq::kernels::pack_bits(q8.data(), static_cast<std::ptrdiff_t>(n), bits, kpacked.data());
          EXPECT_TRUE(std::equal(kpacked.begin(), kpacked.end(), packed.begin())) << bits << " bits";
        }
      }
}

TEST(QuantizedTensor, ThreeBitMillionElementsTake375000Bytes) {
  const std::int64_t n = 1'000'000;
  std::vector<std::int32_t> q(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) q[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % 8) - 4;
  const mixq::QuantizedTensor t =
      mixq::QuantizedTensor::from_codes({1000, 1000}, QuantSpec::per_tensor(3), {0.5f}, {0}, q.data());
  EXPECT_EQ(t.packed_codes().size(), 375'000u);
  EXPECT_EQ(t.storage_bytes(), 375'000u + 8u);
  EXPECT_EQ(t.code(0), -4);
  EXPECT_EQ(t.code(999'999), 3);
  EXPECT_EQ(t.code(12345), 12345 % 8 - 4);
  expect_error([&] { (void)t.code(n); }, "index 1000000");
}

TEST(QuantizedTensor, RejectsInvalidParts) {
  const std::vector<std::int32_t> q{0, 1, 2, 3};
  const QuantSpec s = QuantSpec::per_channel(4, 0);
  expect_error([&] { mixq::QuantizedTensor::from_codes({2, 2}, s, {1.0f}, {0}, q.data()); }, "needs 2");
  expect_error([&] { mixq::QuantizedTensor::from_codes({2, 2}, s, {1.0f, 0.0f}, {0, 0}, q.data()); }, "scale 1");
  expect_error([&] { mixq::QuantizedTensor::from_codes({2, 2}, s, {1.0f, NAN}, {0, 0}, q.data()); }, "scale 1");
  expect_error([&] { mixq::QuantizedTensor::from_codes({2, 2}, s, {1.0f, 1.0f}, {0, 3}, q.data()); }, "symmetric");
  const std::vector<std::int32_t> big{0, 1, 2, 8};
  expect_error([&] { mixq::QuantizedTensor::from_codes({2, 2}, s, {1.0f, 1.0f}, {0, 0}, big.data()); }, "code 8");
  expect_error([&] { mixq::QuantizedTensor::from_packed({2, 2}, s, {1.0f, 1.0f}, {0, 0}, {0, 0, 0}); }, "need 2");
  expect_error([&] { mixq::QuantizedTensor::from_packed({3}, s, {1.0f, 1.0f, 1.0f}, {0, 0, 0}, {0, 0xF0}); },
               "padding");
}

// ---------------------------------------------------------------------------------------------------------
// Quantizer, on every ISA.

class QuantizerOnIsa : public ::testing::TestWithParam<mixq::kernels::Isa> {
 protected:
  void SetUp() override {
    previous_ = mixq::kernels::active_isa();
    mixq::kernels::force_isa(GetParam());
  }
  void TearDown() override { mixq::kernels::force_isa(previous_); }
  mixq::kernels::Isa previous_ = mixq::kernels::Isa::scalar;
};

TEST_P(QuantizerOnIsa, TheForcedIsaRuns) {
  mixq::PerTensorQuantizer q(QuantSpec::per_tensor(4));
  const std::vector<float> x = gaussian_data(100, 1);
  std::vector<float> y(x.size());
  q.calibrate(x.data(), {100});
  q.forward(x.data(), y.data(), {100});
  EXPECT_EQ(mixq::kernels::detail::last_isa_used(), GetParam());
}

TEST_P(QuantizerOnIsa, QuantizePackUnpackDequantizeEqualsFakeQuantBitForBit) {
  const Shape shape{3, 5, 7, 3};  // 315 elements: not a multiple of any vector width
  std::vector<float> x = gaussian_data(315, 11, 2.0f);
  x[3] = 1e30f;  // far outside every clipping range
  x[4] = -1e30f;
  x[5] = 0.0f;
  x[6] = -0.0f;
  for (QuantSpec s : spec_variants()) {
    for (Granularity g : {Granularity::per_tensor, Granularity::per_channel, Granularity::per_group}) {
      s.granularity = g;
      s.axis = 1;
      s.group_size = 3;
      std::vector<float> y(x.size());
      mixq::QuantizedTensor t;
      const std::vector<float> calib(x.begin() + 7, x.end());  // calibrate without the outliers
      auto run = [&](auto& q) {
        q.calibrate(x.data(), shape);
        if (g == Granularity::per_tensor) q.template calibrate<mixq::MinMaxObserver>(calib.data(), Shape{308});
        q.forward(x.data(), y.data(), shape);
        t = q.quantize(x.data(), shape);
      };
      if (g == Granularity::per_tensor) {
        mixq::PerTensorQuantizer q(s);
        run(q);
      } else if (g == Granularity::per_channel) {
        mixq::PerChannelQuantizer q(s);
        run(q);
      } else {
        mixq::PerGroupQuantizer q(s);
        run(q);
      }
      const std::string what = std::to_string(s.bit_width) + " bits " + (s.is_signed ? "signed " : "unsigned ") +
                               (s.symmetric ? "symmetric " : "affine ") + (s.narrow_range ? "narrow " : "") +
                               mixq::to_string(g);
      EXPECT_EQ(t.packed_codes().size(), mixq::detail::packed_size(315, s.bit_width)) << what;
      EXPECT_TRUE(bit_equal(t.dequantize(), y)) << what;
      for (std::int32_t c : t.codes()) {
        ASSERT_GE(c, s.qmin()) << what;
        ASSERT_LE(c, s.qmax()) << what;
      }
      const mixq::QuantizedTensor again = mixq::QuantizedTensor::from_codes(t.shape(), t.spec(), t.scales(),
                                                                            t.zero_points(), t.codes().data());
      EXPECT_TRUE(again == t) << what;
    }
  }
}

TEST_P(QuantizerOnIsa, PerChannelEqualsPerTensorChannelByChannel) {
  // NCHW activations, channel axis 1
  const std::int64_t N = 2, C = 3, HW = 10;
  const std::vector<float> x = gaussian_data(static_cast<std::size_t>(N * C * HW), 5);
  const std::vector<float> dy = gaussian_data(x.size(), 6);
  for (int bits : {2, 4, 8, 12}) {
    QuantSpec s = QuantSpec::per_channel(bits, 1, true, false);
    mixq::PerChannelQuantizer pc(s);
    pc.calibrate(x.data(), {N, C, 2, 5});
    std::vector<float> y(x.size()), dx(x.size());
    pc.forward(x.data(), y.data(), {N, C, 2, 5});
    pc.backward(x.data(), dy.data(), dx.data(), {N, C, 2, 5});
    std::vector<float> dx_lsq(x.size());
    const std::vector<double> ds = pc.lsq_backward(x.data(), dy.data(), dx_lsq.data(), {N, C, 2, 5});
    const std::vector<std::int32_t> codes = pc.quantize(x.data(), {N, C, 2, 5}).codes();
    for (std::int64_t c = 0; c < C; ++c) {
      std::vector<float> xc, dyc;
      for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t i = 0; i < HW; ++i) {
          xc.push_back(x[static_cast<std::size_t>((n * C + c) * HW + i)]);
          dyc.push_back(dy[static_cast<std::size_t>((n * C + c) * HW + i)]);
        }
      QuantSpec ts = s;
      ts.granularity = Granularity::per_tensor;
      mixq::PerTensorQuantizer pt(ts);
      pt.calibrate(xc.data(), {static_cast<std::int64_t>(xc.size())});
      EXPECT_EQ(pt.scales()[0], pc.scales()[static_cast<std::size_t>(c)]);
      EXPECT_EQ(pt.zero_points()[0], pc.zero_points()[static_cast<std::size_t>(c)]);
      std::vector<float> yc(xc.size()), dxc(xc.size()), dxc_lsq(xc.size());
      const Shape sc{static_cast<std::int64_t>(xc.size())};
      pt.forward(xc.data(), yc.data(), sc);
      pt.backward(xc.data(), dyc.data(), dxc.data(), sc);
      const double dsc = pt.lsq_backward(xc.data(), dyc.data(), dxc_lsq.data(), sc)[0];
      EXPECT_NEAR(dsc, ds[static_cast<std::size_t>(c)], 1e-5 * (1.0 + std::fabs(dsc)));  // kernels sum in float lanes
      const std::vector<std::int32_t> codes_c = pt.quantize(xc.data(), sc).codes();
      std::size_t k = 0;
      for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t i = 0; i < HW; ++i, ++k) {
          const auto j = static_cast<std::size_t>((n * C + c) * HW + i);
          ASSERT_EQ(std::memcmp(&y[j], &yc[k], 4), 0) << bits << " bits, channel " << c;
          ASSERT_EQ(std::memcmp(&dx[j], &dxc[k], 4), 0);
          ASSERT_EQ(std::memcmp(&dx_lsq[j], &dxc_lsq[k], 4), 0);
          ASSERT_EQ(codes[j], codes_c[k]);
        }
    }
  }
}

TEST_P(QuantizerOnIsa, PerGroupEqualsPerTensorGroupByGroup) {
  const std::vector<float> x = gaussian_data(4 * 24, 9);
  mixq::PerGroupQuantizer pg(QuantSpec::per_group(3, 8, false, false));
  pg.calibrate(x.data(), {4, 24});
  ASSERT_EQ(pg.scales().size(), 12u);
  std::vector<float> y(x.size());
  pg.forward(x.data(), y.data(), {4, 24});
  for (std::size_t g = 0; g < 12; ++g) {
    mixq::PerTensorQuantizer pt(QuantSpec::per_tensor(3, false, false));
    pt.calibrate(x.data() + 8 * g, {8});
    std::vector<float> yg(8);
    pt.forward(x.data() + 8 * g, yg.data(), {8});
    EXPECT_EQ(std::memcmp(yg.data(), y.data() + 8 * g, 32), 0) << g;
  }
}

TEST_P(QuantizerOnIsa, StraightThroughEstimatorMasksClippedValues) {
  mixq::PerTensorQuantizer q(QuantSpec::per_tensor(4));
  q.set_params({0.5f}, {0});  // grid [-4, 3.5]
  const std::vector<float> x{-5.0f, -4.0f, -4.3f, 0.1f, 3.5f, 3.74f, 3.76f, NAN};
  const std::vector<float> dy(x.size(), 2.0f);
  std::vector<float> dx(x.size());
  q.backward(x.data(), dy.data(), dx.data(), {8});
  EXPECT_EQ(dx, (std::vector<float>{0.0f, 2.0f, 0.0f, 2.0f, 2.0f, 2.0f, 0.0f, 0.0f}));
}

TEST_P(QuantizerOnIsa, EigenRefAndTensorMapInterfaces) {
  mixq::RowMajorArrayXXf w = mixq::RowMajorArrayXXf::Random(6, 10);
  mixq::PerChannelQuantizer q(QuantSpec::per_channel(4, 0));
  q.calibrate(w);
  const mixq::RowMajorArrayXXf y = q.forward(w);
  std::vector<float> y2(60);
  q.forward(w.data(), y2.data(), {6, 10});
  EXPECT_EQ(std::memcmp(y.data(), y2.data(), 240), 0);
  // a strided block (rows are not contiguous) and a column-major array
  const mixq::RowMajorArrayXXf yb = q.forward(w.block(0, 0, 6, 5));
  for (int r = 0; r < 6; ++r)
    for (int c = 0; c < 5; ++c) EXPECT_EQ(yb(r, c), y(r, c));
  const Eigen::ArrayXXf wc = w;
  EXPECT_TRUE((q.forward(wc) == y).all());
  const mixq::RowMajorArrayXXf dx = q.backward(w, mixq::RowMajorArrayXXf::Ones(6, 10));
  EXPECT_TRUE((dx == 1.0f).all());  // min/max calibration clips nothing
  expect_error([&] { (void)q.backward(w, mixq::RowMajorArrayXXf::Ones(6, 9)); }, "6 x 9");

  Eigen::Tensor<float, 4, Eigen::RowMajor> a(2, 3, 4, 4);
  a.setRandom();
  Eigen::TensorMap<Eigen::Tensor<const float, 4, Eigen::RowMajor>> am(a.data(), a.dimensions());
  mixq::PerChannelQuantizer qa(QuantSpec::per_channel(8, 1, false, false));
  qa.calibrate(am);
  const Eigen::Tensor<float, 4, Eigen::RowMajor> ya = qa.forward(am);
  const mixq::QuantizedTensor t = qa.quantize(am);
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4, 4}));
  const Eigen::Tensor<float, 4, Eigen::RowMajor> da = mixq::PerChannelQuantizer::dequantize_tensor<4>(t);
  EXPECT_EQ(std::memcmp(ya.data(), da.data(), 96 * 4), 0);
  EXPECT_THROW(mixq::PerChannelQuantizer::dequantize_tensor<2>(t), mixq::error);
  const mixq::RowMajorArrayXXf d2 = mixq::PerChannelQuantizer::dequantize_array(t);
  EXPECT_EQ(d2.rows(), 2);
  EXPECT_EQ(d2.cols(), 48);
  Eigen::Tensor<float, 4, Eigen::RowMajor> out(2, 3, 4, 4);
  qa.forward(am, Eigen::TensorMap<Eigen::Tensor<float, 4, Eigen::RowMajor>>(out.data(), out.dimensions()));
  EXPECT_EQ(std::memcmp(ya.data(), out.data(), 96 * 4), 0);
  const Eigen::Tensor<float, 4, Eigen::RowMajor> dxa = qa.backward(am, am);
  EXPECT_EQ(dxa(1, 2, 3, 3), a(1, 2, 3, 3));
}

// Eigen in, Eigen out: every tensor entry point takes what the library returns (an Eigen::Tensor<float, N,
// RowMajor> such as SafetensorsFile::read_tensor's or forward's, a const or non-const TensorMap), as the
// observers do, with the same bits as the pointer interface.
TEST_P(QuantizerOnIsa, TakesEveryRowMajorTensorKind) {
  Eigen::Tensor<float, 4, Eigen::RowMajor> a(3, 2, 3, 3);
  a.setRandom();
  const std::vector<float> x(a.data(), a.data() + a.size());
  Eigen::TensorMap<Eigen::Tensor<float, 4, Eigen::RowMajor>> mutable_map(a.data(), a.dimensions());
  Eigen::TensorMap<Eigen::Tensor<const float, 4, Eigen::RowMajor>> const_map(a.data(), a.dimensions());
  mixq::PerChannelQuantizer ref(QuantSpec::per_channel(3, 0));
  ref.calibrate(x.data(), {3, 2, 3, 3});
  std::vector<float> y(x.size());
  ref.forward(x.data(), y.data(), {3, 2, 3, 3});
  auto check = [&](const auto& t) {
    mixq::PerChannelQuantizer q(QuantSpec::per_channel(3, 0));
    q.calibrate(t);  // the tensor itself
    EXPECT_EQ(q.scales(), ref.scales());
    mixq::PerChannelQuantizer q2(QuantSpec::per_channel(3, 0));
    q2.calibrate<mixq::MseObserver>(t, 2.0f);  // an explicit observer with its arguments
    EXPECT_EQ(q2.scales().size(), 3u);
    const Eigen::Tensor<float, 4, Eigen::RowMajor> f = q.forward(t);
    EXPECT_EQ(std::memcmp(f.data(), y.data(), y.size() * 4), 0);
    const mixq::QuantizedTensor qt = q.quantize(t);
    EXPECT_EQ(qt.dequantize(), y);
    const Eigen::Tensor<float, 4, Eigen::RowMajor> dx = q.backward(t, f);  // forward's output as dy
    EXPECT_EQ(dx(0, 0, 0, 0), f(0, 0, 0, 0));
    mixq::MinMaxObserver obs(QuantSpec::per_channel(3, 0));
    obs.observe(t);
    EXPECT_EQ(obs.num_batches(), 1);
  };
  check(a);
  check(mutable_map);
  check(const_map);
  Eigen::Tensor<float, 4, Eigen::RowMajor> out(3, 2, 3, 3);
  Eigen::TensorMap<Eigen::Tensor<float, 4, Eigen::RowMajor>> out_map(out.data(), out.dimensions());
  ref.forward(mutable_map, out_map);
  EXPECT_EQ(std::memcmp(out.data(), y.data(), y.size() * 4), 0);
  out.setZero();
  ref.forward(a, out);  // into an Eigen::Tensor
  EXPECT_EQ(std::memcmp(out.data(), y.data(), y.size() * 4), 0);
  Eigen::Tensor<float, 4, Eigen::RowMajor> in_place = a;
  ref.forward(in_place, in_place);
  EXPECT_EQ(std::memcmp(in_place.data(), y.data(), y.size() * 4), 0);
}

TEST_P(QuantizerOnIsa, MisuseThrows) {
  mixq::PerChannelQuantizer q(QuantSpec::per_channel(4, 0));
  std::vector<float> x(12, 1.0f), y(12);
  expect_error([&] { q.forward(x.data(), y.data(), {3, 4}); }, "not calibrated");
  q.calibrate(x.data(), {3, 4});
  expect_error([&] { q.forward(x.data(), y.data(), {4, 3}); }, "4 quantization groups");
  expect_error([&] { q.set_params({1.0f, 0.0f, 1.0f}, {0, 0, 0}); }, "scale 1");
  expect_error([&] { q.set_params({1.0f, 1e-40f, 1.0f}, {0, 0, 0}); }, "scale 1");
  expect_error([&] { q.set_params({1.0f, 1.0f, 1.0f}, {0, 1, 0}); }, "symmetric");
  expect_error([&] { q.set_params({1.0f}, {0, 0}); }, "1 scales but 2 zero points");
  expect_error([&] { q.set_bit_width(0); }, "got 0");
  mixq::MinMaxObserver other(QuantSpec::per_channel(5, 0));
  other.observe(x.data(), {3, 4});
  expect_error([&] { q.calibrate(other); }, "differs");
  // empty tensors: observers refuse them, forward is a no-op
  mixq::PerTensorQuantizer pt(QuantSpec::per_tensor(4));
  expect_error([&] { pt.calibrate(x.data(), {0, 4}); }, "empty tensor");
  pt.set_params({1.0f}, {0});
  EXPECT_NO_THROW(pt.forward(x.data(), y.data(), {0}));
  EXPECT_EQ(pt.quantize(x.data(), {0}).numel(), 0);
  // bit-width at run time
  pt.set_bit_width(2);
  EXPECT_EQ(pt.qmax(), 1);
  pt.forward(x.data(), y.data(), {12});
  EXPECT_EQ(y[0], 1.0f);
}

TEST_P(QuantizerOnIsa, AllEqualTensorsGetFiniteScales) {
  for (float v : {0.0f, 3.0f, -2.5f, 1e-42f}) {
    const std::vector<float> x(64, v);
    for (const QuantSpec& s : spec_variants()) {
      mixq::PerTensorQuantizer q(s);
      q.calibrate(x.data(), {64});
      EXPECT_TRUE(std::isfinite(q.scales()[0]) && q.scales()[0] > 0.0f);
      std::vector<float> y(64);
      q.forward(x.data(), y.data(), {64});
      for (float t : y) ASSERT_TRUE(std::isfinite(t));
      if (v == 0.0f) {
        EXPECT_EQ(y[0], 0.0f);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, QuantizerOnIsa, ::testing::ValuesIn(mixq::kernels::available_isas()),
                         [](const ::testing::TestParamInfo<mixq::kernels::Isa>& info) {
                           return std::string(mixq::kernels::isa_name(info.param));
                         });
