#pragma once
/// @file
/// The pieces of Chin et al.'s equal-size comparison (2020, "One weight bitwidth to rule them all") on the nn
/// substrate: weight-only policies (activations at one fixed precision for every arm), the same float + LSQ
/// QAT recipe for every arm, and mixed precision under a model-size budget with the exact solver and a
/// weight-only cost (LIMPQ's learned weight step sizes S_w(b), or HAWQ-V3's Tr(H)/n * ||W - Q_b(W)||^2).
/// Sizes are the built model's own layer table (schedule::search_layer_table), which equals
/// search::widen of the table at multiplier 1 (nn/models.hpp uses widen's rounding).

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/io/fashion_mnist.hpp"
#include "mixq/nn/hooks.hpp"
#include "mixq/nn/models.hpp"
#include "mixq/schedule/limpq.hpp"
#include "mixq/schedule/training.hpp"
#include "mixq/search/cost_model.hpp"
#include "mixq/search/objectives.hpp"
#include "mixq/search/solver.hpp"
#include "mixq/search/width.hpp"

namespace mixq::schedule {

/// Per-layer weight bits for every quantized layer of a table: searchable layers at `weight_bits`, depthwise
/// ones at `depthwise_bits` instead when it is non-zero (the ablation that pins them), fixed-precision layers
/// at their fixed_bits; every layer's input at `activation_bits` (32: float). The form nn::set_bits takes.
inline LayerBits weight_only_bits(const search::LayerTable& table, int weight_bits, int activation_bits = 32,
                                  int depthwise_bits = 0) {
  LayerBits b;
  for (const search::Layer& l : table) {
    int w = weight_bits;
    if (l.fixed_bits) w = l.fixed_bits;
    else if (depthwise_bits && l.kind == search::LayerKind::depthwise_conv) w = depthwise_bits;
    b[l.name] = {w, activation_bits};
  }
  return b;
}

/// A table whose depthwise layers are fixed at `bits` (the size arithmetic of the depthwise-pinned ablation).
inline search::LayerTable pin_depthwise(search::LayerTable table, int bits) {
  for (search::Layer& l : table)
    if (l.kind == search::LayerKind::depthwise_conv) l.fixed_bits = bits;
  return table;
}

/// Size in bits of per-layer bits on a table (fixed layers at the bits given in `bits`, else their fixed_bits).
inline std::int64_t policy_size_bits(const search::LayerTable& table, const LayerBits& bits) {
  std::int64_t s = 0;
  for (const search::Layer& l : table) {
    auto it = bits.find(l.name);
    const int w = it != bits.end() ? it->second.first : l.fixed_bits;
    if (w <= 0) mixq::detail::fail("policy_size_bits: no bit-width for layer '", l.name, "'");
    s += search::weight_count(l) * w;
  }
  return s;
}

/// Weight-only mixed precision under a size budget: each searchable layer picks one weight bit-width of
/// `bit_widths` (activations at `activation_bits` for all), minimising sum_l cost[l][i] subject to the whole
/// network's size (fixed layers included) <= size_budget_bits, solved exactly (issue 5's solver). cost[l][i]
/// belongs to bit_widths[i]. The result's bits hold every layer (fixed ones at their fixed_bits).
inline PolicySearch weight_only_search(const search::LayerTable& table, const std::vector<std::vector<double>>& cost,
                                       const std::vector<int>& bit_widths, std::int64_t size_budget_bits,
                                       int activation_bits = 32) {
  if (bit_widths.empty()) mixq::detail::fail("weight_only_search: bit_widths is empty");
  if (size_budget_bits <= 0)
    mixq::detail::fail("weight_only_search: size_budget_bits must be positive, got ", size_budget_bits);
  std::vector<search::BitPair> options;
  for (int b : bit_widths) options.push_back({b, activation_bits});
  const auto t0 = std::chrono::steady_clock::now();
  PolicySearch ps;
  std::int64_t fixed = 0, cheapest = 0;
  for (const search::Layer& l : table) {
    if (l.fixed_bits) fixed += search::weight_count(l) * l.fixed_bits;
    else cheapest += search::weight_count(l) * *std::min_element(bit_widths.begin(), bit_widths.end());
  }
  if (fixed + cheapest > size_budget_bits) {  // the solver would say so too; this names the number
    ps.status = "infeasible";
    return ps;
  }
  const search::Problem problem =
      search::layer_problem(table, cost, options, {search::Resource::size_bits}, {size_budget_bits});
  const search::Solution sol = search::solve(problem);
  ps.status = search::to_string(sol.status);
  ps.search_microseconds = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  if (sol.status != search::Status::optimal && sol.status != search::Status::feasible) return ps;
  ps.objective = sol.objective;
  // One class per table layer, in table order (fixed layers are one-option classes).
  for (std::size_t i = 0; i < table.size(); ++i) {
    const search::Layer& l = table[i];
    ps.bits[l.name] = {l.fixed_bits ? l.fixed_bits
                                    : options[static_cast<std::size_t>(sol.choice[i])].weight_bits,
                       activation_bits};
  }
  ps.size_bits = policy_size_bits(table, ps.bits);
  return ps;
}

/// LIMPQ's weight costs cost[l][i] = S_w(bit_widths[i]) of the learned indicators (activations fixed, so
/// S_a drops out of LIMPQ's objective). Throws if a bit-width has no indicator.
inline std::vector<std::vector<double>> limpq_weight_costs(const search::LimpqIndicators& ind,
                                                           const std::vector<int>& bit_widths) {
  std::vector<std::vector<double>> cost(ind.weight_step.size());
  for (std::size_t l = 0; l < cost.size(); ++l)
    for (int b : bit_widths) {
      std::size_t k = 0;
      while (k < ind.bit_widths.size() && ind.bit_widths[k] != b) ++k;
      if (k == ind.bit_widths.size()) mixq::detail::fail("limpq_weight_costs: no indicator for ", b, " bits");
      cost[l].push_back(ind.weight_step[l][k]);
    }
  return cost;
}

/// HAWQ-V3's weight costs cost[l][i] = max(Tr(H_l), 0) / n_l * ||W_l - Q_b(W_l)||^2 (schedule::hutchinson_traces,
/// schedule::weight_quantization_error; bit_widths >= 2).
inline std::vector<std::vector<double>> hessian_weight_costs(const std::vector<double>& traces,
                                                             const std::vector<Eigen::VectorXf>& weights,
                                                             const std::vector<Index>& channels,
                                                             const std::vector<int>& bit_widths) {
  if (traces.size() != weights.size() || channels.size() != weights.size())
    mixq::detail::fail("hessian_weight_costs: ", traces.size(), " traces, ", weights.size(), " weights, ",
                       channels.size(), " channel counts");
  std::vector<std::vector<double>> cost(traces.size());
  for (std::size_t l = 0; l < cost.size(); ++l)
    for (int b : bit_widths)
      cost[l].push_back(std::max(0.0, traces[l]) / static_cast<double>(weights[l].size()) *
                        weight_quantization_error(weights[l], channels[l], b));
  return cost;
}

/// The recipe every arm gets (Chin et al.: one recipe and step count for every bit-width).
struct ArmRecipe {
  Index float_images = 0;  ///< float pretraining at the arm's width: this many images (whole epochs beyond the set)
  Index qat_images = 0;    ///< LSQ QAT from the float weights: this many images
  Index batch_size = 128;
  float float_lr = 0.1f;        ///< one-cycle peak
  float qat_lr = 0.01f;         ///< cosine from here
  Index bn_batches = 32;        ///< BN re-estimation batches of batch_size after QAT (0: off)
  Index test_images = 0;        ///< 0: the whole test set (evaluated in batches of batch_size: every layer keeps
                                ///< its output, so a wide MobileNet at batch 500 needs gigabytes)
};

namespace detail {
/// Epochs and images per epoch for `images` training images on a set of `set_size`: whole epochs while the
/// count exceeds the set, each a random subset of images / epochs.
inline void image_schedule(Index images, Index set_size, TrainOptions& to) {
  if (images < 2) mixq::detail::fail("ArmRecipe: image counts must be >= 2, got ", images);
  const Index epochs = (images + set_size - 1) / set_size;
  to.epochs = static_cast<int>(epochs);
  to.train_limit = images / epochs;
}
}  // namespace detail

/// Float pretraining of a freshly built model (one-cycle SGD over recipe.float_images); returns its test accuracy.
inline double pretrain_float(nn::Module& model, const io::FashionMnist& data, const ArmRecipe& recipe,
                             std::uint64_t seed) {
  nn::set_uniform_bits(model, nn::float_bits, nn::float_bits);
  TrainOptions to;
  detail::image_schedule(recipe.float_images, data.train.size(), to);
  to.batch_size = recipe.batch_size;
  to.lr = recipe.float_lr;
  to.schedule = LrSchedule::one_cycle;
  to.seed = seed;
  train_supervised(model, data.train, to);
  return evaluate_accuracy(model, data.test, recipe.test_images, recipe.batch_size);
}

/// LSQ QAT of `model` (already float-pretrained) at per-layer `bits` (cosine SGD over recipe.qat_images),
/// BN re-estimation, test accuracy. The model keeps the bits.
inline double quantize_and_train(nn::Module& model, const io::FashionMnist& data, const LayerBits& bits,
                                 const ArmRecipe& recipe, std::uint64_t seed) {
  nn::set_bits(model, bits);
  TrainOptions to;
  detail::image_schedule(recipe.qat_images, data.train.size(), to);
  to.batch_size = recipe.batch_size;
  to.lr = recipe.qat_lr;
  to.schedule = LrSchedule::cosine;
  to.seed = seed + 7919;
  train_supervised(model, data.train, to);
  if (recipe.bn_batches > 0) reestimate_batchnorm(model, data.train, recipe.bn_batches, recipe.batch_size, seed);
  return evaluate_accuracy(model, data.test, recipe.test_images, recipe.batch_size);
}

}  // namespace mixq::schedule
