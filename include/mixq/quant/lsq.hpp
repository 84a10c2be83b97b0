#pragma once
/// @file
/// Step-size initialisers for learned step-size quantization (LSQ, Esser et al., ICLR 2020): LSQ's
/// 2 * mean|x| / sqrt(qmax), the 3-sigma rule max(|mu - 3 sigma|, |mu + 3 sigma|) / 2^(b-1) used by LIMPQ
/// (Tang et al., ECCV 2022) and one-shot weight coupling (Tang et al., CVPR 2024), and "from any observer".
/// Each returns one step size per quantization group of the spec (per tensor, channel or group), computed over
/// the finite values (NaN and Inf are skipped; a group without a finite value throws mixq::error). A zero
/// statistic (an all-zero group) gives step size 1, and every step size is clamped to [FLT_MIN, FLT_MAX], as
/// params_from_range() does.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/quant/layout.hpp"
#include "mixq/quant/observers.hpp"
#include "mixq/quant/spec.hpp"

namespace mixq {

namespace detail {

/// Per group: count, sum and sum of squares of the finite values, and sum of their absolute values.
struct Moments {
  double n = 0.0, sum = 0.0, sum_sq = 0.0, sum_abs = 0.0;
};

/// v, or 0 when v is NaN or +-Inf (a bit mask, not a branch).
inline float masked_finite(float v) {
  std::uint32_t vb;
  std::memcpy(&vb, &v, 4);
  vb &= 0u - static_cast<std::uint32_t>((vb & 0x7f800000u) != 0x7f800000u);
  std::memcpy(&v, &vb, 4);
  return v;
}

/// Adds the finite values of p[0..n) to g: float accumulators in eight lanes per block of 1024 elements
/// (non-finite values masked to 0 with a bit mask, so the loop vectorises), blocks summed in double.
inline void accumulate_moments(const float* p, std::int64_t n, Moments& g) {
  constexpr std::int64_t block = 1024;
  for (std::int64_t b = 0; b < n; b += block) {
    const std::int64_t m = std::min(block, n - b);
    float cnt[8] = {}, sum[8] = {}, sq[8] = {}, ab[8] = {};
    std::int64_t i = 0;
    for (; i + 8 <= m; i += 8)
      for (int j = 0; j < 8; ++j) {
        const float w = masked_finite(p[b + i + j]);
        cnt[j] += is_finite_value(p[b + i + j]) ? 1.0f : 0.0f;
        sum[j] += w;
        sq[j] += w * w;
        ab[j] += std::fabs(w);
      }
    for (; i < m; ++i) {
      const float w = masked_finite(p[b + i]);
      cnt[0] += is_finite_value(p[b + i]) ? 1.0f : 0.0f;
      sum[0] += w;
      sq[0] += w * w;
      ab[0] += std::fabs(w);
    }
    for (int j = 0; j < 8; ++j) g.n += cnt[j], g.sum += sum[j], g.sum_sq += sq[j], g.sum_abs += ab[j];
  }
}

inline std::vector<Moments> group_moments(const float* x, const Shape& shape, const QuantSpec& spec, const char* fn) {
  const ChannelLayout l = channel_layout(spec, shape);
  if (l.numel() == 0) fail(fn, ": cannot initialise from an empty tensor");
  if (x == nullptr) fail(fn, ": x must not be null");
  std::vector<Moments> m(static_cast<std::size_t>(l.channels));
  for (std::int64_t c = 0; c < l.channels; ++c) {
    Moments& g = m[static_cast<std::size_t>(c)];
    for_each_segment(x, l, c, [&](const float* p, std::int64_t n) { accumulate_moments(p, n, g); });
    if (g.n == 0.0) {
      if (l.channels == 1) fail(fn, ": no finite value (all NaN or Inf)");
      fail(fn, ": quantization group ", c, " has no finite value (all NaN or Inf)");
    }
  }
  return m;
}

inline float step_or_one(double s) { return s > 0.0 ? sanitize_scale(s) : 1.0f; }

}  // namespace detail

/// LSQ's initial step size per group: s = 2 * mean|x| / sqrt(qmax) (Esser et al., 2020, section 2.1).
/// qmax is spec.qmax() (1 if qmax < 1, for 1-bit signed specs).
inline std::vector<float> lsq_init_step_sizes(const float* x, const Shape& shape, const QuantSpec& spec) {
  const std::vector<detail::Moments> m = detail::group_moments(x, shape, spec, "lsq_init_step_sizes");
  const double qmax = std::max<double>(spec.qmax(), 1.0);
  std::vector<float> out;
  for (const detail::Moments& g : m) out.push_back(detail::step_or_one(2.0 * (g.sum_abs / g.n) / std::sqrt(qmax)));
  return out;
}

/// The 3-sigma initial step size per group used by LIMPQ and one-shot weight coupling:
/// s = max(|mu - 3 sigma|, |mu + 3 sigma|) / 2^(b-1), with mu and sigma the mean and (population) standard
/// deviation of the group.
inline std::vector<float> three_sigma_step_sizes(const float* x, const Shape& shape, const QuantSpec& spec) {
  const std::vector<detail::Moments> m = detail::group_moments(x, shape, spec, "three_sigma_step_sizes");
  const double denom = std::ldexp(1.0, spec.bit_width - 1);
  std::vector<float> out;
  for (const detail::Moments& g : m) {
    const double mu = g.sum / g.n;
    const double sigma = std::sqrt(std::max(g.sum_sq / g.n - mu * mu, 0.0));
    out.push_back(detail::step_or_one(std::max(std::fabs(mu - 3.0 * sigma), std::fabs(mu + 3.0 * sigma)) / denom));
  }
  return out;
}

/// Step sizes from any observer that has observed data: the scale of each of its groups' parameters.
template <class Observer>
inline std::vector<float> step_sizes_from_observer(const Observer& observer) {
  std::vector<float> out;
  for (const QuantParams& p : observer.params()) out.push_back(p.scale);
  return out;
}

/// Observes x with a fresh Observer built for spec (extra constructor arguments forwarded) and returns its
/// step sizes: "from any observer" in one call.
template <class Observer, class... Args>
inline std::vector<float> step_sizes_from_observer(const float* x, const Shape& shape, const QuantSpec& spec,
                                                   Args&&... args) {
  Observer observer(spec, std::forward<Args>(args)...);
  observer.observe(x, shape);
  return step_sizes_from_observer(observer);
}

}  // namespace mixq
