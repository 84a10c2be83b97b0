#pragma once
/// @file
/// How a tensor of a given shape splits into quantization groups for a QuantSpec: the (outer, channels,
/// inner) view that per-tensor, per-channel and per-group quantization share.

#include <cstdint>

#include "mixq/quant/spec.hpp"

namespace mixq {

/// A row-major tensor seen as [outer, channels, inner]: channel c owns the elements
/// x[(o * channels + c) * inner + i] for every o < outer, i < inner. Per-tensor is [1, 1, numel]; per-channel
/// on axis a is [prod(shape[:a]), shape[a], prod(shape[a+1:])]; per-group is [1, numel / group_size,
/// group_size] (groups of group_size contiguous elements along the last axis, which group_size divides).
struct ChannelLayout {
  std::int64_t outer = 1;
  std::int64_t channels = 1;
  std::int64_t inner = 0;
  /// Elements per channel (or group).
  std::int64_t per_channel() const { return outer * inner; }
  /// All elements.
  std::int64_t numel() const { return outer * channels * inner; }
};

/// The layout of `shape` under `spec`; throws mixq::error for an invalid spec, a wrong axis or a last axis
/// that group_size does not divide.
inline ChannelLayout channel_layout(const QuantSpec& spec, const Shape& shape) {
  spec.validate();
  const std::int64_t n = detail::shape_numel(shape);
  ChannelLayout l;
  switch (spec.granularity) {
    case Granularity::per_tensor:
      l.inner = n;
      break;
    case Granularity::per_channel: {
      const int a = detail::resolve_axis(spec.axis, shape.size(), "QuantSpec: per_channel axis");
      for (int i = 0; i < a; ++i) l.outer *= shape[static_cast<std::size_t>(i)];
      l.channels = shape[static_cast<std::size_t>(a)];
      l.inner = 1;
      for (std::size_t i = static_cast<std::size_t>(a) + 1; i < shape.size(); ++i) l.inner *= shape[i];
      break;
    }
    case Granularity::per_group: {
      const std::int64_t last = shape.empty() ? 1 : shape.back();
      if (last % spec.group_size != 0)
        detail::fail("QuantSpec: group_size ", spec.group_size, " does not divide the last extent ", last);
      l.channels = n / spec.group_size;
      l.inner = spec.group_size;
      break;
    }
  }
  return l;
}

}  // namespace mixq
