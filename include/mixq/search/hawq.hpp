#pragma once
/// @file
/// HAWQ-V3 style objective (Yao et al., ICML 2021; Dong et al., HAWQ-V2): the cost of quantizing layer l to b
/// bits is Tr(H_l) / n_l * ||W_l - Q_b(W_l)||^2, the average Hessian trace times the squared weight
/// perturbation. Q_b: symmetric per-output-channel fake quantization, scale_c = max|W_c| / (2^(b-1) - 1),
/// integer range [-2^(b-1), 2^(b-1) - 1], through mixq::kernels::fake_quant_per_channel.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/kernels.hpp"
#include "mixq/search/cost_model.hpp"
#include "mixq/search/objectives.hpp"

namespace mixq::search {

/// ||W - Q_b(W)||^2 of a weight tensor laid out [out_channels][rest] (row-major), symmetric per channel.
inline double weight_perturbation(const float* weights, std::int64_t count, std::int64_t out_channels, int bits) {
  if (bits < 2 || bits > 16) mixq::detail::fail("weight_perturbation: bits must be in 2..16, got ", bits);
  if (out_channels <= 0 || count <= 0 || count % out_channels != 0)
    mixq::detail::fail("weight_perturbation: count=", count, " must be a positive multiple of out_channels=", out_channels);
  if (weights == nullptr) mixq::detail::fail("weight_perturbation: weights is null");
  const std::int64_t inner = count / out_channels;
  const std::int32_t qmax = (std::int32_t{1} << (bits - 1)) - 1, qmin = -(std::int32_t{1} << (bits - 1));
  std::vector<float> scales(static_cast<std::size_t>(out_channels));
  for (std::int64_t c = 0; c < out_channels; ++c) {
    float m = 0.0f;
    for (std::int64_t i = 0; i < inner; ++i) {
      const float v = weights[c * inner + i];
      if (!std::isfinite(v)) mixq::detail::fail("weight_perturbation: non-finite weight ", v, " at index ", c * inner + i);
      m = std::max(m, std::fabs(v));
    }
    scales[static_cast<std::size_t>(c)] = m > 0.0f ? m / static_cast<float>(qmax) : 1.0f;
  }
  std::vector<float> q(static_cast<std::size_t>(count));
  kernels::fake_quant_per_channel(weights, q.data(), 1, out_channels, inner, scales.data(), nullptr, qmin, qmax);
  double e = 0.0;
  for (std::int64_t i = 0; i < count; ++i) {
    const double d = static_cast<double>(weights[i]) - static_cast<double>(q[static_cast<std::size_t>(i)]);
    e += d * d;
  }
  return e;
}

/// HAWQ-V3 cost table for layer_problem: cost[l][o] = trace[l] / n_l * ||W_l - Q_{w_o}(W_l)||^2 for the l-th
/// searchable layer (table order) and options[o] (activation bits do not change the cost).
/// traces[l]: Tr(H_l) (a negative estimate counts as 0); weights[l]: the layer's float weights, weight_count
/// values laid out [out_channels][...].
inline std::vector<std::vector<double>> hawq_costs(const LayerTable& table, const std::vector<double>& traces,
                                                   const std::vector<std::vector<float>>& weights,
                                                   const std::vector<BitPair>& options) {
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < table.size(); ++i)
    if (table[i].fixed_bits == 0) idx.push_back(i);
  if (traces.size() != idx.size() || weights.size() != idx.size())
    mixq::detail::fail("hawq_costs: ", idx.size(), " searchable layers but ", traces.size(), " traces and ",
                       weights.size(), " weight tensors");
  std::vector<std::vector<double>> cost(idx.size(), std::vector<double>(options.size()));
  for (std::size_t l = 0; l < idx.size(); ++l) {
    const Layer& layer = table[idx[l]];
    const std::int64_t n = weight_count(layer);
    if (static_cast<std::int64_t>(weights[l].size()) != n)
      mixq::detail::fail("hawq_costs: weights ", l, " has ", weights[l].size(), " values, layer '", layer.name,
                         "' has ", n);
    if (!std::isfinite(traces[l])) mixq::detail::fail("hawq_costs: trace ", l, " is not finite: ", traces[l]);
    const double avg_trace = std::max(0.0, traces[l]) / static_cast<double>(n);
    for (std::size_t o = 0; o < options.size(); ++o)
      cost[l][o] = avg_trace * weight_perturbation(weights[l].data(), n, layer.out_channels, options[o].weight_bits);
  }
  return cost;
}

}  // namespace mixq::search
