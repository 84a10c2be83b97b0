#pragma once
// The search problems of bench_search and search_instructions (the same instances in both): LIMPQ ResNet-50 (real
// and quirk indicators), ResNet-18 and MobileNetV2 with synthetic monotone indicators, the LLM-scale generator,
// and the 100 BitOps budgets of the Pareto sweep.
#include <mixq/search.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mixq_bench {

namespace ms = mixq::search;

inline ms::Problem limpq(const char* file) {
  const ms::LayerTable t = ms::resnet50();
  const ms::LimpqIndicators ind = ms::read_limpq_indicators(std::string(MIXQ_SHARED_DATA_DIR) + "/" + file);
  return ms::limpq_problem(t, ind, ms::limpq_budgets(t, ind, 3, 4, 12.2));
}

inline ms::Problem synthetic(bool mobile) {
  const ms::LayerTable t = mobile ? ms::mobilenet_v2() : ms::resnet18();
  const ms::LimpqIndicators ind = ms::synthetic_limpq_indicators(t, 1);
  return ms::limpq_problem(t, ind, ms::limpq_budgets(t, ind, mobile ? 4 : 3, 4, mobile ? 6.0 : 10.0));
}

// Llama-2-70B-shaped: hidden 8192, grouped KV 1024, MLP 28672. Row 0: size in bits (weights + one fp16 scale per
// group); row 1: a dequantization-cost model (units per weight by bit-width, +1 for group 64). Costs: a
// log-uniform per-layer sensitivity times 4^-bits, x1.2 for group 128.
inline ms::Problem llm_instance(std::uint64_t seed = 12345) {
  const std::int64_t shapes[7][2] = {{8192, 8192}, {8192, 1024}, {8192, 1024}, {8192, 8192},
                                     {8192, 28672}, {8192, 28672}, {28672, 8192}};
  const char* names[7] = {"q", "k", "v", "o", "gate", "up", "down"};
  const int bits[6] = {2, 3, 4, 5, 6, 8};
  const int unpack[9] = {0, 0, 3, 5, 2, 6, 5, 0, 1};
  std::uint64_t state = seed;
  auto uniform = [&]() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(state >> 11) * (1.0 / 9007199254740992.0);
  };
  ms::Problem p;
  std::int64_t size_lo = 0, size_hi = 0, dq_lo = 0, dq_hi = 0;
  for (int b = 0; b < 80; ++b)
    for (int l = 0; l < 7; ++l) {
      const std::int64_t n = shapes[l][0] * shapes[l][1];
      const double s = std::exp(std::log(1e-3) + uniform() * std::log(1e3)) * (l == 6 ? 2.0 : 1.0);
      std::vector<ms::Option> opts;
      std::int64_t smin = INT64_MAX, smax = 0, dmin = INT64_MAX, dmax = 0;
      for (int bi : bits)
        for (int g : {64, 128}) {
          ms::Option o;
          o.label = "b" + std::to_string(bi) + "g" + std::to_string(g);
          o.cost = s * std::ldexp(1.0, -2 * bi) * (g == 128 ? 1.2 : 1.0) * (1.0 + 0.05 * uniform());
          o.use = {n * bi + n / g * 16, n / 1024 * (unpack[bi] + (g == 64 ? 1 : 0))};
          smin = std::min(smin, o.use[0]);
          smax = std::max(smax, o.use[0]);
          dmin = std::min(dmin, o.use[1]);
          dmax = std::max(dmax, o.use[1]);
          opts.push_back(o);
        }
      size_lo += smin;
      size_hi += smax;
      dq_lo += dmin;
      dq_hi += dmax;
      p.add_class("layers." + std::to_string(b) + "." + names[l], std::move(opts));
    }
  p.budgets = {size_lo + (size_hi - size_lo) * 3 / 10, dq_lo + (dq_hi - dq_lo) * 4 / 10};
  p.resource_names = {"size", "dequant"};
  return p;
}

// 100 BitOps budgets from the W2A2 to the W6A6 level of LIMPQ ResNet-50 (p from limpq(); size fixed at 12.2x).
inline std::vector<std::int64_t> sweep_bitops(const ms::Problem& p) {
  std::int64_t macs = 0;
  std::int64_t fixed = 0;  // BitOps of the 8-bit first and last layers (one-option classes)
  for (const auto& c : p.classes)  // w2a2 option: MACs * 4
    if (c.options.size() > 1) macs += c.options.back().use[0] / 4;
    else fixed += c.options[0].use[0];
  std::vector<std::int64_t> values;
  for (int i = 0; i < 100; ++i) values.push_back(fixed + macs * 4 + (macs * 32) * i / 99);
  return values;
}

}  // namespace mixq_bench
