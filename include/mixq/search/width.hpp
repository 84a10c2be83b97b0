#pragma once
/// @file
/// Width-multiplier alignment (Chin et al., 2020, "One weight bitwidth to rule them all"): compare bit-widths
/// at equal model size by widening every layer's channels. Channels are c * multiplier rounded to the nearest
/// multiple of a divisor (at least one divisor); the network's input channels (first layer's in_channels) and
/// its class count (last layer's out_channels) are unchanged.
///
/// The rule is mixq::detail::round_channels, the one nn::ModelOptions{width_multiplier, channel_divisor} uses:
/// search::widen(table of a model built at 1, m, d) is the table of the model built at (m, d), layer for layer
/// (tests/test_bitwidth.cpp checks it). Mind the defaults: widen and align_width round to multiples of 8
/// (MobileNet's convention for torchvision-size networks), the builders to multiples of 1; pass the divisor.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "mixq/detail/channels.hpp"
#include "mixq/error.hpp"
#include "mixq/search/cost_model.hpp"

namespace mixq::search {

/// c * multiplier rounded to the nearest multiple of divisor (halves up), at least divisor.
inline std::int64_t scale_channels(std::int64_t channels, double multiplier, std::int64_t divisor = 8) {
  if (channels <= 0 || !(multiplier > 0) || !std::isfinite(multiplier) || divisor <= 0)
    mixq::detail::fail("scale_channels: channels, multiplier and divisor must be positive, got channels=", channels,
                       " multiplier=", multiplier, " divisor=", divisor);
  return mixq::detail::round_channels(channels, multiplier, divisor);
}

/// The table with every channel count scaled (see the file comment). Depthwise layers keep groups == channels.
inline LayerTable widen(const LayerTable& table, double multiplier, std::int64_t divisor = 8) {
  if (table.empty()) mixq::detail::fail("widen: empty layer table");
  LayerTable t = table;
  for (std::size_t i = 0; i < t.size(); ++i) {
    Layer& l = t[i];
    if (i != 0) l.in_channels = scale_channels(table[i].in_channels, multiplier, divisor);
    if (i + 1 != t.size()) l.out_channels = scale_channels(table[i].out_channels, multiplier, divisor);
    if (l.kind == LayerKind::depthwise_conv) {
      l.out_channels = l.in_channels;
      l.groups = l.in_channels;
    }
    weight_count(l);  // validates (groups must divide the new channel counts)
  }
  return t;
}

/// Model size in bits with every searchable layer at weight_bits and fixed layers at their fixed_bits.
inline std::int64_t size_at_bits(const LayerTable& table, int weight_bits) {
  if (weight_bits <= 0 || weight_bits > 32) mixq::detail::fail("size_at_bits: weight_bits must be in 1..32, got ", weight_bits);
  std::int64_t s = 0;
  for (const Layer& l : table) s += weight_count(l) * (l.fixed_bits ? l.fixed_bits : weight_bits);
  return s;
}

namespace detail {

/// size_at_bits(widen(table, multiplier, divisor), weight_bits) without building the table (no copies), for
/// tables without grouped non-depthwise convolutions (the caller falls back to widen for those).
inline std::int64_t widened_size_bits(const LayerTable& table, double multiplier, std::int64_t divisor,
                                      int weight_bits) {
  std::int64_t s = 0;
  const std::size_t n = table.size();
  for (std::size_t i = 0; i < n; ++i) {
    const Layer& l = table[i];
    const std::int64_t in = i != 0 ? mixq::detail::round_channels(l.in_channels, multiplier, divisor) : l.in_channels;
    const std::int64_t out =
        i + 1 != n ? mixq::detail::round_channels(l.out_channels, multiplier, divisor) : l.out_channels;
    std::int64_t w;
    if (l.kind == LayerKind::linear) w = in * out;
    else if (l.kind == LayerKind::depthwise_conv) w = in * l.kernel * l.kernel;
    else w = out * in * l.kernel * l.kernel;
    s += w * (l.fixed_bits ? l.fixed_bits : weight_bits);
  }
  return s;
}

inline std::uint64_t double_bits(double x) {
  std::uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
inline double bits_double(std::uint64_t u) {
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

}  // namespace detail

/// Result of align_width.
struct WidthAlignment {
  double multiplier = 1.0;       ///< the largest multiplier (a double) whose widened table fits the target
  LayerTable table;              ///< the widened table at `multiplier`
  std::int64_t size_bits = 0;    ///< its size at weight_bits (<= the target)
  double next_multiplier = 0.0;  ///< the next double up: the smallest multiplier whose table does not fit
  std::int64_t next_size_bits = 0;  ///< the size there (> the target)
};

/// The narrowest multiplier align_width considers: every widened channel is then `divisor`.
inline constexpr double narrowest_multiplier = 1e-12;

/// The largest width multiplier m whose widened table (widen(table, m, divisor)) at weight_bits (fixed layers
/// at their fixed_bits) has size <= target_size_bits, exactly: the size is a non-decreasing step function of m,
/// and the search bisects the ordered bit patterns of the doubles, so widen at `multiplier` fits and widen at
/// the next double up (next_multiplier) does not. Cost: about 64 size evaluations of the table, microseconds.
/// Throws mixq::error for weight_bits outside 1..8, a divisor <= 0, a target <= 0, a target below the
/// narrowest table's size (every channel = divisor; the message gives that smallest reachable size), or a
/// target not reached below multiplier 1e6.
inline WidthAlignment align_width(const LayerTable& table, int weight_bits, std::int64_t target_size_bits,
                                  std::int64_t divisor = 8) {
  if (table.empty()) mixq::detail::fail("align_width: empty layer table");
  if (weight_bits < 1 || weight_bits > 8) mixq::detail::fail("align_width: weight_bits must be in 1..8, got ", weight_bits);
  if (divisor <= 0) mixq::detail::fail("align_width: divisor must be positive, got ", divisor);
  if (target_size_bits <= 0) mixq::detail::fail("align_width: target_size_bits must be positive, got ", target_size_bits);
  bool fast = true;
  for (const Layer& l : table) {
    weight_count(l);  // validates every layer
    fast = fast && (l.groups == 1 || l.kind == LayerKind::depthwise_conv);
  }
  auto size = [&](double m) {
    return fast ? detail::widened_size_bits(table, m, divisor, weight_bits)
                : size_at_bits(widen(table, m, divisor), weight_bits);
  };
  double lo = narrowest_multiplier;
  const std::int64_t smallest = size(lo);
  if (smallest > target_size_bits)
    mixq::detail::fail("align_width: target_size_bits=", target_size_bits, " is below the smallest reachable size ",
                       smallest, " bits (every channel = divisor ", divisor, ") at weight_bits=", weight_bits);
  double hi = 1.0;
  while (size(hi) <= target_size_bits) {
    lo = hi;
    hi *= 2.0;
    if (hi > 1e6) mixq::detail::fail("align_width: no multiplier up to 1e6 reaches target_size_bits=", target_size_bits);
  }
  // Positive doubles are ordered as their bit patterns: bisect those until lo and hi are adjacent.
  std::uint64_t a = detail::double_bits(lo), b = detail::double_bits(hi);
  while (b - a > 1) {
    const std::uint64_t mid = a + (b - a) / 2;
    if (size(detail::bits_double(mid)) <= target_size_bits) a = mid;
    else b = mid;
  }
  WidthAlignment r;
  r.multiplier = detail::bits_double(a);
  r.table = widen(table, r.multiplier, divisor);
  r.size_bits = size_at_bits(r.table, weight_bits);
  r.next_multiplier = detail::bits_double(b);
  r.next_size_bits = size(r.next_multiplier);
  return r;
}

}  // namespace mixq::search
