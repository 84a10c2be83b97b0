#pragma once
/// @file
/// LIMPQ (Tang et al., ECCV 2022, "Mixed-Precision Neural Network Quantization via Learned Layer-wise
/// Importance") on the nn substrate, end to end:
/// 1. joint indicator training: one network, one LSQ step size per candidate bit-width and layer, one BN per
///    bit-width; each mini-batch trains every uniform bit-width and one random per-layer policy;
/// 2. indicator extraction (S_w(b), S_a(b) per searchable layer) and the indicator file format of LIMPQ
///    (params, MACs, S_w(6..2), S_a(6..2), as ../shared/data/limpq_r50_real.txt);
/// 3. the search: issue 5's LIMPQ objective (alpha = 2, "wired points" forbidden) and exact solver under the
///    BitOps budget of a uniform level (W2A2, W3A3, W4A4), optionally a size budget;
/// 4. baselines under the same solver: HAWQ-V3 style Hessian traces (Hutchinson estimator, finite-difference
///    Hessian-vector products) and random importance indicators.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iomanip>
#include <limits>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/io/fashion_mnist.hpp"
#include "mixq/nn/batchnorm.hpp"
#include "mixq/nn/data.hpp"
#include "mixq/nn/hooks.hpp"
#include "mixq/nn/loss.hpp"
#include "mixq/nn/module.hpp"
#include "mixq/nn/optim.hpp"
#include "mixq/nn/quant_layers.hpp"
#include "mixq/schedule/training.hpp"
#include "mixq/search/cost_model.hpp"
#include "mixq/search/objectives.hpp"
#include "mixq/search/policy.hpp"
#include "mixq/search/problem.hpp"
#include "mixq/search/solver.hpp"

namespace mixq::schedule {

/// Per-layer bit-widths: quantized-layer name -> (w_bits, a_bits), the form nn::set_bits takes.
using LayerBits = std::map<std::string, std::pair<int, int>>;

// ---------------------------------------------------------------------------------------------------------
// Layer tables

/// The search layer table (issue 5's cost model) of an nn network for inputs of (channels, height, width):
/// every QuantConv2d / QuantLinear in forward order; fixed-precision layers get their fixed bit-width.
inline search::LayerTable search_layer_table(nn::Module& model, Index channels, Index height, Index width) {
  search::LayerTable t;
  for (const nn::LayerInfo& li : nn::layer_table(model, channels, height, width)) {
    const nn::LayerShape& s = li.shape;
    search::Layer l;
    if (s.kind == "linear") {
      l = search::linear_layer(li.name, s.in_channels, s.out_channels, s.has_bias);
    } else if (s.groups > 1 && s.groups == s.in_channels && s.in_channels == s.out_channels) {
      l = search::depthwise_conv_layer(li.name, s.in_channels, s.kernel, s.stride, s.padding, s.in_h, s.in_w, false);
    } else {
      l = search::conv_layer(li.name, s.in_channels, s.out_channels, s.kernel, s.stride, s.padding, s.in_h, s.in_w,
                             false, s.has_bias, s.groups);
    }
    if (li.fixed_precision) {
      l.fixed_bits = 8;
      for (auto& q : nn::quant_layers(model))
        if (q.name == li.name) l.fixed_bits = q.layer->quant_options().fixed_bits;
    }
    t.push_back(std::move(l));
  }
  return t;
}

/// The searchable (not fixed-precision) layers of a table, in order.
inline std::vector<std::size_t> searchable_layers(const search::LayerTable& table) {
  std::vector<std::size_t> s;
  for (std::size_t i = 0; i < table.size(); ++i)
    if (table[i].fixed_bits == 0) s.push_back(i);
  return s;
}

/// A policy in issue 5's form (every layer of the table, fixed layers at their bits) from per-layer bits;
/// searchable layers absent from `bits` throw mixq::error naming the layer.
inline search::BitPolicy to_bit_policy(const search::LayerTable& table, const LayerBits& bits) {
  search::BitPolicy p;
  for (const search::Layer& l : table) {
    if (l.fixed_bits) {
      p.weight_bits.push_back(l.fixed_bits);
      p.activation_bits.push_back(l.fixed_bits);
      continue;
    }
    auto it = bits.find(l.name);
    if (it == bits.end()) mixq::detail::fail("to_bit_policy: no bit-widths for searchable layer '", l.name, "'");
    p.weight_bits.push_back(it->second.first);
    p.activation_bits.push_back(it->second.second);
  }
  return p;
}

/// Uniform per-layer bits (w_bits, a_bits) for every searchable layer of a table.
inline LayerBits uniform_layer_bits(const search::LayerTable& table, int w_bits, int a_bits) {
  LayerBits b;
  for (std::size_t i : searchable_layers(table)) b[table[i].name] = {w_bits, a_bits};
  return b;
}

// ---------------------------------------------------------------------------------------------------------
// Joint indicator training

/// Copies the values of `source`'s parameters into `target`'s, matched by dotted name, where a parameter of a
/// SwitchableBatchNorm2d bank "<path>.<key>.<name>" in `target` takes "<path>.<name>" of a plain BatchNorm2d
/// in `source` (or "<path>.<key>.<name>" when `source` has banks too). Parameters whose size differs (a
/// per-channel step size into a per-tensor one) or that are absent from `source` keep their values.
/// Returns the number of parameters copied.
inline std::size_t copy_matching_parameters(nn::Module& source, nn::Module& target) {
  std::map<std::string, nn::Parameter*> src;
  for (auto& np : nn::named_parameters(source)) src.emplace(np.name, np.parameter);
  std::vector<std::string> bank_prefixes;  // "<path>.<key>." -> "<path>."
  std::vector<std::string> bank_paths;
  for (auto& nm : nn::named_modules(target))
    if (auto* bank = dynamic_cast<nn::SwitchableBatchNorm2d*>(nm.module))
      for (const std::string& key : bank->keys()) {
        bank_prefixes.push_back((nm.name.empty() ? "" : nm.name + ".") + key + ".");
        bank_paths.push_back(nm.name.empty() ? "" : nm.name + ".");
      }
  std::size_t copied = 0;
  for (auto& np : nn::named_parameters(target)) {
    std::vector<std::string> names{np.name};
    for (std::size_t i = 0; i < bank_prefixes.size(); ++i)
      if (np.name.compare(0, bank_prefixes[i].size(), bank_prefixes[i]) == 0)
        names.push_back(bank_paths[i] + np.name.substr(bank_prefixes[i].size()));
    for (const std::string& n : names) {
      auto it = src.find(n);
      if (it == src.end() || it->second->value.size() != np.parameter->value.size()) continue;
      np.parameter->value = it->second->value;
      ++copied;
      break;
    }
  }
  return copied;
}

/// Options of LIMPQ's joint indicator training (SGD, Nesterov momentum 0.9, cosine learning rate).
struct IndicatorTrainingOptions {
  std::vector<int> bit_widths{2, 3, 4, 5, 6};  ///< candidate bit-widths (weights and activations alike)
  int epochs = 1;
  Index batch_size = 128;
  Index train_limit = 0;          ///< images per epoch (a random subset each epoch); 0: all
  float lr = 0.01f;
  float weight_decay = 5e-4f;     ///< on weights only (not step sizes, not BN)
  float label_smoothing = 0.1f;
  float clip_value = 1.f;         ///< gradient clipping by value
  bool random_policy = true;      ///< one random per-layer policy per mini-batch after the uniform ones
  std::uint64_t seed = 1;
  /// Called after every epoch with (epoch, mean loss per forward pass).
  std::function<void(int, double)> on_epoch;
};

/// Draws a random policy: every searchable layer gets one bit-width b of `bit_widths` for weights and
/// activations (fixed-precision layers keep their fixed bits). Returns the per-layer bits.
inline LayerBits random_layer_bits(nn::Module& model, const std::vector<int>& bit_widths, std::mt19937_64& rng) {
  if (bit_widths.empty()) mixq::detail::fail("random_layer_bits: bit_widths is empty");
  std::uniform_int_distribution<std::size_t> pick(0, bit_widths.size() - 1);
  LayerBits bits;
  for (auto& l : nn::quant_layers(model)) {
    if (l.layer->fixed_precision()) {
      const int fb = l.layer->quant_options().fixed_bits;
      bits[l.name] = {fb, fb};
    } else {
      const int b = bit_widths[pick(rng)];
      bits[l.name] = {b, b};
    }
  }
  return bits;
}

/// Prepares a network built with switchable BatchNorm (nn::ModelOptions::switchable_bn) for joint training:
/// adds, for every BN bank, the key of each uniform bit-width of its preceding quantized layer
/// (nn::bits_key, copied from the active BN). Call before building an optimiser.
inline void add_bit_width_bn_keys(nn::Module& model, const std::vector<int>& bit_widths) {
  for (int b : bit_widths) {
    nn::set_uniform_bits(model, b, b);
    nn::sync_bn_keys(model, true);
  }
}

/// Initialises the LSQ step sizes of every candidate bit-width from one batch `x` (LSQ's rule, as the first
/// training forward would), in evaluation mode so no BN statistics change; adds the BN keys of every bit-width
/// (add_bit_width_bn_keys). Lets a caller record the step sizes before training (how far training moves the
/// indicators from their data-only initial values). Bit-widths are left at the last one.
inline void initialize_step_sizes(nn::Module& model, const nn::Tensor& x, const std::vector<int>& bit_widths) {
  add_bit_width_bn_keys(model, bit_widths);
  const bool was_training = model.training();
  model.set_training(false);
  for (int b : bit_widths) {
    nn::set_uniform_bits(model, b, b);
    nn::sync_bn_keys(model);
    model.forward(x);
  }
  model.set_training(was_training);
}

/// LIMPQ's joint indicator training of `model` (a network with switchable BN, typically initialised from a
/// float checkpoint with copy_matching_parameters). Each mini-batch: for every b in bit_widths, every
/// searchable layer at WbAb with the BN of b, forward, cross-entropy with label smoothing, backward
/// (gradients accumulate); then one random policy (each layer draws b, the same for weights and
/// activations; each BN follows its layer); clip gradients by value; one optimiser step. Fixed-precision layers
/// stay at their fixed bits. Returns the mean loss per forward pass of the last epoch.
inline double train_indicators(nn::Module& model, const io::ImageSet& train, const IndicatorTrainingOptions& options) {
  if (options.bit_widths.empty()) mixq::detail::fail("train_indicators: bit_widths is empty");
  for (int b : options.bit_widths)
    if (b < 2 || b > 16) mixq::detail::fail("train_indicators: bit-width must be in [2, 16], got ", b);
  if (options.epochs < 1 || options.batch_size < 2 || options.train_limit < 0 || !(options.lr > 0.f) ||
      !(options.clip_value > 0.f))
    mixq::detail::fail("train_indicators: epochs=", options.epochs, ", batch_size=", options.batch_size,
                       ", train_limit=", options.train_limit, ", lr=", options.lr, ", clip_value=",
                       options.clip_value, " (need >= 1, >= 2, >= 0, > 0, > 0)");
  detail::check_image_set(train, "train_indicators");
  bool any_bank = false;
  for (auto& nm : nn::named_modules(model)) any_bank = any_bank || dynamic_cast<nn::SwitchableBatchNorm2d*>(nm.module);
  if (!any_bank)
    mixq::detail::fail("train_indicators: the model has no SwitchableBatchNorm2d (build it with switchable_bn)");
  add_bit_width_bn_keys(model, options.bit_widths);
  const auto params = nn::trainable_parameters(model);
  nn::Sgd opt(params, options.lr, 0.9f, true, options.weight_decay);
  const Index n = detail::epoch_images(train, options.train_limit);
  const Index total = std::max<Index>(2, (n + options.batch_size - 1) / options.batch_size * options.epochs);
  std::mt19937_64 rng(options.seed);
  nn::Tensor x, grad;
  std::vector<std::int32_t> y;
  Index step = 0;
  double last = 0;
  model.set_training(true);
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    auto order = nn::epoch_order(train.size(), &rng);
    order.resize(static_cast<std::size_t>(n));
    double loss_sum = 0;
    Index passes = 0;
    for (Index b = 0; b + 2 <= n; b += options.batch_size) {
      const Index e = std::min<Index>(n, b + options.batch_size);
      nn::make_batch(train.images.data(), train.labels.data(), order, b, e, 1, train.rows, train.cols,
                     io::fashion_mnist_mean, io::fashion_mnist_std, x, y);
      opt.set_lr(nn::cosine_lr(step, total, options.lr));
      nn::zero_grad(model);
      auto pass = [&]() {
        nn::sync_bn_keys(model);
        const nn::Tensor& logits = model.forward(x);
        loss_sum += nn::cross_entropy(logits, y, grad, options.label_smoothing);
        ++passes;
        model.backward(grad);
      };
      for (int bits : options.bit_widths) {
        nn::set_uniform_bits(model, bits, bits);
        pass();
      }
      if (options.random_policy) {
        nn::set_bits(model, random_layer_bits(model, options.bit_widths, rng));
        pass();
      }
      nn::clip_grad_value(params, options.clip_value);
      opt.step();
      ++step;
    }
    last = passes > 0 ? loss_sum / static_cast<double>(passes) : 0.0;
    if (options.on_epoch) options.on_epoch(epoch, last);
  }
  return last;
}

/// The learned importance indicators of the searchable layers of `model` (inputs of (channels, height,
/// width)) in LIMPQ's layout: params, exact MACs, S_w(b) and S_a(b) for `bit_widths` (descending, as LIMPQ's
/// files: 6 5 4 3 2). A per-channel weight step size is averaged over channels. Throws mixq::error naming a
/// layer whose step size of some b was never initialised (the bit-width was not trained).
inline search::LimpqIndicators extract_indicators(nn::Module& model, Index channels, Index height, Index width,
                                                  std::vector<int> bit_widths = {6, 5, 4, 3, 2}) {
  if (bit_widths.empty()) mixq::detail::fail("extract_indicators: bit_widths is empty");
  std::sort(bit_widths.rbegin(), bit_widths.rend());
  const search::LayerTable table = search_layer_table(model, channels, height, width);
  auto layers = nn::quant_layers(model);
  search::LimpqIndicators ind;
  ind.bit_widths = bit_widths;
  for (std::size_t i : searchable_layers(table)) {
    nn::QuantLayer* q = nullptr;
    for (auto& l : layers)
      if (l.name == table[i].name) q = l.layer;
    if (!q) mixq::detail::fail("extract_indicators: layer '", table[i].name, "' not found");
    ind.params.push_back(search::weight_count(table[i]));
    ind.macs.push_back(search::macs(table[i]));
    std::vector<double> sw, sa;
    for (int b : bit_widths) {
      const Eigen::VectorXf& w = q->weight_quantizer().step_size(b).value;
      const Eigen::VectorXf& a = q->input_quantizer().step_size(b).value;
      if (!(w.minCoeff() > 0.f) || !(a.minCoeff() > 0.f))
        mixq::detail::fail("extract_indicators: layer '", table[i].name, "' has no trained step size for ", b,
                           " bits");
      sw.push_back(static_cast<double>(w.cast<double>().mean()));
      sa.push_back(static_cast<double>(a.cast<double>().mean()));
    }
    ind.weight_step.push_back(std::move(sw));
    ind.activation_step.push_back(std::move(sa));
  }
  return ind;
}

/// Writes indicators in LIMPQ's column format (one line per layer: params MACs S_w(...) S_a(...), bit-widths
/// in ind.bit_widths order), with enough digits that search::read_limpq_indicators reads them back exactly.
inline void write_limpq_indicators(std::ostream& out, const search::LimpqIndicators& ind) {
  const std::size_t L = ind.params.size(), n = ind.bit_widths.size();
  if (ind.macs.size() != L || ind.weight_step.size() != L || ind.activation_step.size() != L)
    mixq::detail::fail("write_limpq_indicators: ", L, " params but ", ind.macs.size(), " MACs, ",
                       ind.weight_step.size(), " weight and ", ind.activation_step.size(), " activation rows");
  std::ostringstream os;
  os.precision(std::numeric_limits<double>::max_digits10);
  for (std::size_t l = 0; l < L; ++l) {
    if (ind.weight_step[l].size() != n || ind.activation_step[l].size() != n)
      mixq::detail::fail("write_limpq_indicators: row ", l, " needs ", n, " weight and activation step sizes");
    os << ind.params[l] << ' ' << ind.macs[l];
    for (double s : ind.weight_step[l]) os << ' ' << s;
    for (double s : ind.activation_step[l]) os << ' ' << s;
    os << '\n';
  }
  out << os.str();
}

/// Writes indicators to a file (see the stream overload); throws mixq::error naming the path on failure.
inline void write_limpq_indicators(const std::string& path, const search::LimpqIndicators& ind) {
  std::ofstream f(path);
  if (!f) mixq::detail::fail("write_limpq_indicators: cannot open '", path, "' for writing");
  write_limpq_indicators(f, ind);
  if (!f) mixq::detail::fail("write_limpq_indicators: write to '", path, "' failed");
}

/// Share of (layer, adjacent bit-width pair) steps where the indicator does not decrease with more bits
/// (S(b) >= S(b+1)), over weights and activations: 1 means fully monotone.
inline double indicator_monotone_fraction(const search::LimpqIndicators& ind) {
  std::size_t ok = 0, total = 0;
  for (const auto* rows : {&ind.weight_step, &ind.activation_step})
    for (const auto& r : *rows)
      for (std::size_t i = 1; i < r.size(); ++i) {  // descending bits: r[i] is the lower bit-width
        ++total;
        if (r[i] >= r[i - 1]) ++ok;
      }
  return total ? static_cast<double>(ok) / static_cast<double>(total) : 1.0;
}

/// Mean relative change |S_after / S_before - 1| over every indicator of two indicator sets of the same shape.
inline double indicator_relative_change(const search::LimpqIndicators& before, const search::LimpqIndicators& after) {
  if (before.weight_step.size() != after.weight_step.size() ||
      before.activation_step.size() != after.activation_step.size())
    mixq::detail::fail("indicator_relative_change: ", before.weight_step.size(), " and ", after.weight_step.size(),
                       " layers");
  double sum = 0;
  std::size_t n = 0;
  for (int k = 0; k < 2; ++k) {
    const auto& a = k ? before.activation_step : before.weight_step;
    const auto& b = k ? after.activation_step : after.weight_step;
    for (std::size_t l = 0; l < a.size(); ++l) {
      if (a[l].size() != b[l].size()) mixq::detail::fail("indicator_relative_change: row ", l, " sizes differ");
      for (std::size_t i = 0; i < a[l].size(); ++i) {
        sum += std::abs(b[l][i] / a[l][i] - 1.0);
        ++n;
      }
    }
  }
  return n ? sum / static_cast<double>(n) : 0.0;
}

// ---------------------------------------------------------------------------------------------------------
// Search

/// Outcome of one policy search.
struct PolicySearch {
  std::string status;              ///< the solver's status ("optimal", "infeasible", ...)
  bool relaxed = false;            ///< the wired-point rule made the budget infeasible and was dropped
  double objective = 0;
  LayerBits bits;                  ///< searchable layers -> (w_bits, a_bits)
  std::int64_t bit_operations = 0; ///< whole network (fixed layers included), per image
  std::int64_t size_bits = 0;      ///< whole network weights
  double search_microseconds = 0;  ///< median wall time of building the problem and solving it
};

/// Budgets of a uniform level on a table: BitOps of every searchable layer at (w_bits, a_bits) plus the fixed
/// layers at their bits; size likewise (weights * w_bits).
inline search::LimpqBudgets level_budgets(const search::LayerTable& table, int w_bits, int a_bits) {
  const search::BitPolicy u = search::uniform_policy(table, w_bits, a_bits);
  return {search::total_bit_operations(table, u), search::model_size_bits(table, u)};
}

namespace detail {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

/// Solves `build()` `repeats` times; fills the policy from the last solution and the median time.
inline PolicySearch timed_search(const search::LayerTable& table, const std::function<search::Problem()>& build,
                                 int repeats) {
  if (repeats < 1) mixq::detail::fail("search: repeats must be >= 1, got ", repeats);
  std::vector<double> times;
  search::Solution sol;
  search::Problem problem;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    problem = build();
    sol = search::solve(problem);
    times.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  PolicySearch ps;
  ps.status = search::to_string(sol.status);
  ps.search_microseconds = median(times);
  if (sol.status != search::Status::optimal && sol.status != search::Status::feasible) return ps;
  ps.objective = sol.objective;
  const search::BitPolicy p = search::policy_from_solution(table, problem, sol);
  for (std::size_t i : searchable_layers(table)) ps.bits[table[i].name] = {p.weight_bits[i], p.activation_bits[i]};
  ps.bit_operations = search::total_bit_operations(table, p);
  ps.size_bits = search::model_size_bits(table, p);
  return ps;
}

}  // namespace detail

/// LIMPQ's search on a layer table: issue 5's LIMPQ problem (cost S_a(b_a) + alpha * S_w(b_w), wired points
/// forbidden, options every (w, a) pair of ind.bit_widths) under `budgets` (whole network; a size budget of 0
/// means unconstrained). If the wired points make the budget infeasible (for example every 2-bit option of a
/// layer is forbidden at the W2A2 level), the search is repeated with every option allowed (relaxed = true).
/// Timing: median of `repeats` runs of problem construction and exact solve.
inline PolicySearch limpq_search(const search::LayerTable& table, const search::LimpqIndicators& ind,
                                 search::LimpqBudgets budgets, double alpha = 2.0, int repeats = 11) {
  if (budgets.size_bits <= 0) budgets.size_bits = 32 * search::total_weights(table);
  PolicySearch ps = detail::timed_search(
      table, [&] { return search::limpq_problem(table, ind, budgets, alpha, false); }, repeats);
  if (ps.status != "infeasible") return ps;
  // Relaxation: same costs, no forbidden options.
  const std::size_t n = ind.bit_widths.size();
  std::vector<std::vector<double>> cost(ind.params.size(), std::vector<double>(n * n));
  std::vector<std::vector<bool>> allowed(ind.params.size(), std::vector<bool>(n * n));
  for (std::size_t l = 0; l < ind.params.size(); ++l)
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        const double sa = ind.activation_step[l][j], sw = ind.weight_step[l][i];
        allowed[l][i * n + j] = sa < search::limpq_forbidden_marker && sw < search::limpq_forbidden_marker;
        cost[l][i * n + j] = allowed[l][i * n + j] ? sa + alpha * sw : 0.0;
      }
  PolicySearch relaxed = detail::timed_search(
      table,
      [&] {
        return search::layer_problem(table, cost, search::bit_pairs(ind.bit_widths, ind.bit_widths),
                                     {search::Resource::bit_operations, search::Resource::size_bits},
                                     {budgets.bit_operations, budgets.size_bits}, &allowed);
      },
      repeats);
  relaxed.relaxed = true;
  return relaxed;
}

/// Random importance indicators of the same shape as `like`: per layer, r_w and r_a uniform in [0.1, 1) and
/// S(b) = r * 2^-b (monotone in b, as learned step sizes are). Searched with limpq_search, they give a random
/// policy that spends the budget the way LIMPQ does: the ablation of the learned ranking.
inline search::LimpqIndicators random_indicators(const search::LimpqIndicators& like, std::uint64_t seed) {
  search::LimpqIndicators r = like;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.1, 1.0);
  for (std::size_t l = 0; l < r.params.size(); ++l) {
    const double rw = u(rng), ra = u(rng);
    for (std::size_t i = 0; i < r.bit_widths.size(); ++i) {
      r.weight_step[l][i] = rw * std::ldexp(1.0, -r.bit_widths[i]);
      r.activation_step[l][i] = ra * std::ldexp(1.0, -r.bit_widths[i]);
    }
  }
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// HAWQ-style baseline

/// Options of the Hutchinson estimator of per-layer Hessian traces.
struct HessianOptions {
  int samples = 16;        ///< Rademacher vectors
  float epsilon = 1e-3f;   ///< finite-difference step (absolute, on every weight)
  std::uint64_t seed = 1;
};

/// Hutchinson estimates of the trace of the loss Hessian with respect to the weights of every searchable
/// layer of `model` (float precision, evaluation-mode BN, cross-entropy on (x, labels)):
/// Tr(H_l) ~ mean over Rademacher v of v_l . (H v)_l with the finite-difference Hessian-vector product
/// Hv ~ (g(w + eps v) - g(w - eps v)) / (2 eps) (v spans every searchable layer: cross terms vanish in
/// expectation). Weights and bit-widths are restored. One value per searchable layer, in table order.
inline std::vector<double> hutchinson_traces(nn::Module& model, const nn::Tensor& x,
                                             const std::vector<std::int32_t>& labels,
                                             const HessianOptions& options = {}) {
  if (options.samples < 1 || !(options.epsilon > 0.f))
    mixq::detail::fail("hutchinson_traces: samples=", options.samples, " epsilon=", options.epsilon,
                       " (need >= 1 and > 0)");
  auto all = nn::quant_layers(model);
  std::vector<std::pair<int, int>> saved;
  std::vector<nn::QuantLayer*> layers;
  for (auto& l : all) {
    saved.emplace_back(l.layer->w_bits(), l.layer->a_bits());
    l.layer->set_bits(nn::float_bits, nn::float_bits);
    if (!l.layer->fixed_precision()) layers.push_back(l.layer);
  }
  const bool was_training = model.training();
  model.set_training(false);
  std::mt19937_64 rng(options.seed);
  std::bernoulli_distribution coin(0.5);
  std::vector<double> trace(layers.size(), 0.0);
  std::vector<Eigen::VectorXf> w0, v, gp;
  for (nn::QuantLayer* q : layers) w0.push_back(q->master_weight().value);
  nn::Tensor grad;
  auto gradients = [&](std::vector<Eigen::VectorXf>& out) {
    nn::zero_grad(model);
    const nn::Tensor& logits = model.forward(x);
    nn::cross_entropy(logits, labels, grad);
    model.backward(grad);
    out.clear();
    for (nn::QuantLayer* q : layers) out.push_back(q->master_weight().grad);
  };
  const float eps = options.epsilon;
  for (int s = 0; s < options.samples; ++s) {
    v.clear();
    for (std::size_t l = 0; l < layers.size(); ++l) {
      Eigen::VectorXf r(w0[l].size());
      for (Eigen::Index i = 0; i < r.size(); ++i) r[i] = coin(rng) ? 1.f : -1.f;
      v.push_back(std::move(r));
    }
    std::vector<Eigen::VectorXf> gm;
    for (std::size_t l = 0; l < layers.size(); ++l) layers[l]->master_weight().value = w0[l] + eps * v[l];
    gradients(gp);
    for (std::size_t l = 0; l < layers.size(); ++l) layers[l]->master_weight().value = w0[l] - eps * v[l];
    gradients(gm);
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const double hv = (v[l].cast<double>().dot((gp[l] - gm[l]).cast<double>())) / (2.0 * static_cast<double>(eps));
      trace[l] += hv / static_cast<double>(options.samples);
    }
  }
  for (std::size_t l = 0; l < layers.size(); ++l) layers[l]->master_weight().value = w0[l];
  nn::zero_grad(model);
  for (std::size_t i = 0; i < all.size(); ++i) all[i].layer->set_bits(saved[i].first, saved[i].second);
  model.set_training(was_training);
  return trace;
}

/// ||W - Q_b(W)||^2 of a weight tensor with `channels` output channels under symmetric per-channel min-max
/// quantization at `bits` (scale = max|W_c| / (2^(b-1) - 1), round to nearest, clamp to the signed range):
/// the weight perturbation of HAWQ-V3's objective.
inline double weight_quantization_error(const Eigen::VectorXf& weight, Index channels, int bits) {
  if (channels < 1 || weight.size() % channels != 0 || bits < 2 || bits > 16)
    mixq::detail::fail("weight_quantization_error: channels=", channels, " does not divide ", weight.size(),
                       " weights, or bits=", bits, " outside [2, 16]");
  const Index per = weight.size() / channels;
  const double qmax = std::ldexp(1.0, bits - 1) - 1.0, qmin = -std::ldexp(1.0, bits - 1);
  double err = 0;
  for (Index c = 0; c < channels; ++c) {
    const auto w = weight.segment(c * per, per).cast<double>();
    const double m = w.cwiseAbs().maxCoeff();
    if (!(m > 0)) continue;
    const double s = m / qmax;
    for (Index i = 0; i < per; ++i) {
      const double q = std::min(qmax, std::max(qmin, std::nearbyint(w[i] / s))) * s;
      err += (w[i] - q) * (w[i] - q);
    }
  }
  return err;
}

/// HAWQ-V3 style search (Yao et al., ICML 2021) on a layer table: one bit-width per layer for weights and
/// activations (HAWQ-V3's setting; options (b, b) for b in bit_widths), cost = Tr(H_l) / n_l * ||W_l -
/// Q_b(W_l)||^2 (average Hessian trace times the weight perturbation; a negative trace estimate counts as 0),
/// solved exactly under `budgets`. `weights[l]` and `channels[l]`: the float weight of the l-th searchable layer
/// and its output channels.
inline PolicySearch hawq_search(const search::LayerTable& table, const std::vector<double>& traces,
                                const std::vector<Eigen::VectorXf>& weights, const std::vector<Index>& channels,
                                std::vector<int> bit_widths, search::LimpqBudgets budgets, int repeats = 11) {
  const auto idx = searchable_layers(table);
  if (traces.size() != idx.size() || weights.size() != idx.size() || channels.size() != idx.size())
    mixq::detail::fail("hawq_search: ", idx.size(), " searchable layers but ", traces.size(), " traces, ",
                       weights.size(), " weights and ", channels.size(), " channel counts");
  if (bit_widths.empty()) mixq::detail::fail("hawq_search: bit_widths is empty");
  std::sort(bit_widths.rbegin(), bit_widths.rend());
  if (budgets.size_bits <= 0) budgets.size_bits = 32 * search::total_weights(table);
  std::vector<search::BitPair> options;
  for (int b : bit_widths) options.push_back({b, b});
  std::vector<std::vector<double>> cost(idx.size(), std::vector<double>(options.size()));
  for (std::size_t l = 0; l < idx.size(); ++l) {
    if (weights[l].size() != search::weight_count(table[idx[l]]))
      mixq::detail::fail("hawq_search: weight ", l, " has ", weights[l].size(), " values, layer '", table[idx[l]].name,
                         "' has ", search::weight_count(table[idx[l]]));
    const double avg_trace = std::max(0.0, traces[l]) / static_cast<double>(weights[l].size());
    for (std::size_t o = 0; o < options.size(); ++o)
      cost[l][o] = avg_trace * weight_quantization_error(weights[l], channels[l], options[o].weight_bits);
  }
  return detail::timed_search(
      table,
      [&] {
        return search::layer_problem(table, cost, options,
                                     {search::Resource::bit_operations, search::Resource::size_bits},
                                     {budgets.bit_operations, budgets.size_bits});
      },
      repeats);
}

/// The float weights and output channels of the searchable layers of `model`, in table order (for hawq_search).
inline void searchable_weights(nn::Module& model, const search::LayerTable& table, std::vector<Eigen::VectorXf>& weights,
                               std::vector<Index>& channels) {
  weights.clear();
  channels.clear();
  auto layers = nn::quant_layers(model);
  for (std::size_t i : searchable_layers(table)) {
    bool found = false;
    for (auto& l : layers)
      if (l.name == table[i].name) {
        weights.push_back(l.layer->master_weight().value);
        channels.push_back(table[i].out_channels);
        found = true;
      }
    if (!found) mixq::detail::fail("searchable_weights: layer '", table[i].name, "' not in the model");
  }
}

}  // namespace mixq::schedule
