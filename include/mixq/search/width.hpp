#pragma once
/// @file
/// Width-multiplier alignment (Chin et al., 2020, "One weight bitwidth to rule them all"): compare bit-widths
/// at equal model size by widening every layer's channels. Channels are c * multiplier rounded to the nearest
/// multiple of a divisor (at least one divisor); the network's input channels (first layer's in_channels) and
/// its class count (last layer's out_channels) are unchanged.

#include <cmath>
#include <cstdint>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/search/cost_model.hpp"

namespace mixq::search {

/// c * multiplier rounded to the nearest multiple of divisor (halves up), at least divisor.
inline std::int64_t scale_channels(std::int64_t channels, double multiplier, std::int64_t divisor = 8) {
  if (channels <= 0 || !(multiplier > 0) || !std::isfinite(multiplier) || divisor <= 0)
    mixq::detail::fail("scale_channels: channels, multiplier and divisor must be positive, got channels=", channels,
                       " multiplier=", multiplier, " divisor=", divisor);
  const double units = std::floor(static_cast<double>(channels) * multiplier / static_cast<double>(divisor) + 0.5);
  return std::max<std::int64_t>(divisor, static_cast<std::int64_t>(units) * divisor);
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

/// Result of align_width.
struct WidthAlignment {
  double multiplier = 1.0;   ///< the largest multiplier whose widened table fits (to 1e-9 relative)
  LayerTable table;          ///< the widened table
  std::int64_t size_bits = 0;  ///< its size at weight_bits
};

/// The largest width multiplier whose widened table, at weight_bits (fixed layers at their fixed_bits), has a
/// size <= target_size_bits. Throws if even the narrowest table (every channel = divisor) does not fit.
inline WidthAlignment align_width(const LayerTable& table, int weight_bits, std::int64_t target_size_bits,
                                  std::int64_t divisor = 8) {
  if (target_size_bits <= 0) mixq::detail::fail("align_width: target_size_bits must be positive, got ", target_size_bits);
  auto size = [&](double m) { return size_at_bits(widen(table, m, divisor), weight_bits); };
  double lo = 1e-9;
  if (size(lo) > target_size_bits)
    mixq::detail::fail("align_width: target_size_bits=", target_size_bits, " is below the narrowest table's size ",
                       size(lo), " at ", weight_bits, " bits");
  double hi = 1.0;
  while (size(hi) <= target_size_bits) {
    lo = hi;
    hi *= 2.0;
    if (hi > 1e6) mixq::detail::fail("align_width: no multiplier up to 1e6 reaches target_size_bits=", target_size_bits);
  }
  for (int it = 0; it < 100 && hi - lo > 1e-9 * hi; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (size(mid) <= target_size_bits) lo = mid;
    else hi = mid;
  }
  WidthAlignment r;
  r.multiplier = lo;
  r.table = widen(table, lo, divisor);
  r.size_bits = size_at_bits(r.table, weight_bits);
  return r;
}

}  // namespace mixq::search
