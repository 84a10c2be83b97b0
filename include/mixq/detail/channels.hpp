#pragma once
/// @file
/// The channel-rounding rule of width multipliers, shared by the model builders (nn/models.hpp) and the
/// layer-table alignment (search/width.hpp) so that a built model and a widened table always agree.

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace mixq::detail {

/// channels * multiplier rounded to the nearest multiple of divisor (halves up), at least divisor:
/// max(divisor, floor(channels * multiplier / divisor + 0.5) * divisor), in double arithmetic. Unchecked:
/// callers validate channels >= 1, multiplier > 0 and finite, divisor >= 1.
inline std::int64_t round_channels(std::int64_t channels, double multiplier, std::int64_t divisor) {
  const double units = std::floor(static_cast<double>(channels) * multiplier / static_cast<double>(divisor) + 0.5);
  return std::max<std::int64_t>(divisor, static_cast<std::int64_t>(units) * divisor);
}

}  // namespace mixq::detail
