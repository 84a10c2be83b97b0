#pragma once
/// @file
/// Export of a trained quantized network as a compressed model (io::QuantizedModel, docs/FORMAT.md): the step
/// from quantization-aware training to deployment. A checkpoint (nn/checkpoint.hpp) keeps the float master weights
/// and the step sizes of every candidate bit-width, to resume training; an export keeps what inference needs, at
/// the bit-widths the layers have now (nn::set_bits: a searched policy, or set_uniform_bits):
///
/// 1. fold BN: a BatchNorm2d (or the active BN of a SwitchableBatchNorm2d) directly after a QuantConv2d is folded
///    into it (evaluation statistics): a_o = gamma_o / sqrt(var_o + eps), W'_o = a_o W_o, b'_o = beta_o +
///    (b_o - mean_o) a_o (Jacob et al., CVPR 2018, section 3.2);
/// 2. quantize with the learned step sizes: the LSQ weight step size s_o of the layer's bit-width becomes the
///    scale |a_o| s_o of channel o of the folded weight, codes = clamp(round(W'_o / (|a_o| s_o))) = the codes the
///    trained network used (sign-flipped where a_o < 0; where that flips qmin = -2^(b-1) it clamps to qmax, one
///    step off: the only difference). Signed, symmetric, per output channel (per tensor when the layer's
///    quantizer is per tensor and no BN is folded);
/// 3. pack: io::QuantizedTensor holds the codes bit-packed at the layer's bit-width.
///
/// Tensors of the export, for a quantized layer L: "L.weight" (quantized), "L.bias" (float, the folded bias, when
/// there is a BN or a bias), "L.input_step_size" (float [1], the activation step size when a_bits < 32). Layers at
/// w_bits = 32 keep a float (folded) "L.weight". Every other parameter and buffer of the model (BNs not folded,
/// ...) is kept as float under its dotted name; folded BNs, master weights and the step sizes of other
/// bit-widths are left out. Metadata "export.layers": a JSON array, per quantized layer {"name", "w_bits",
/// "a_bits", "input_signed", "folded_batchnorm" (its path or null)}.

#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mixq/error.hpp"
#include "mixq/io/safetensors.hpp"
#include "mixq/kernels/quantize.hpp"
#include "mixq/nn/batchnorm.hpp"
#include "mixq/nn/hooks.hpp"
#include "mixq/nn/layers.hpp"
#include "mixq/nn/module.hpp"
#include "mixq/nn/quant_layers.hpp"

namespace mixq::nn {

/// Options of export_quantized_model.
struct ExportOptions {
  bool fold_batchnorm = true;  ///< fold a BN directly after a quantized convolution into its weight and bias
};

namespace detail {

/// The BN directly after module index i of `mods` (depth-first order), or nullptr; `path` gets its name.
inline BatchNorm2d* following_batchnorm(const std::vector<NamedModule>& mods, std::size_t i, std::string& path,
                                        Module*& owner) {
  if (i + 1 >= mods.size()) return nullptr;
  path = mods[i + 1].name;
  owner = mods[i + 1].module;
  if (auto* bn = dynamic_cast<BatchNorm2d*>(mods[i + 1].module)) return bn;
  if (auto* sbn = dynamic_cast<SwitchableBatchNorm2d*>(mods[i + 1].module)) return &sbn->active();
  return nullptr;
}

}  // namespace detail

/// The compressed model of `root` at its layers' current bit-widths (see the file comment). Every quantized layer
/// whose weight is quantized must have its step size of that bit-width initialised (trained, or set by a forward);
/// otherwise mixq::error names the layer. Parameters are not changed.
inline io::QuantizedModel export_quantized_model(Module& root, const ExportOptions& options = {}) {
  io::QuantizedModel out;
  const std::vector<NamedModule> mods = named_modules(root);
  std::set<const Parameter*> dropped;
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t i = 0; i < mods.size(); ++i) {
    auto* q = dynamic_cast<QuantLayer*>(mods[i].module);
    if (q == nullptr) continue;
    const std::string& name = mods[i].name;
    std::vector<Parameter*> own;
    q->weight_quantizer().parameters(own);
    q->input_quantizer().parameters(own);
    Parameter& w = q->master_weight();
    own.push_back(&w);
    Parameter* bias = nullptr;
    if (auto* conv = dynamic_cast<Conv2d*>(mods[i].module)) bias = conv->bias();
    else if (auto* lin = dynamic_cast<Linear*>(mods[i].module)) bias = lin->bias();
    if (bias) own.push_back(bias);
    dropped.insert(own.begin(), own.end());

    const Index oc = w.shape.empty() ? 1 : w.shape[0];
    const Index per = w.value.size() / std::max<Index>(oc, 1);
    // BN folding: per-channel factor a and folded bias.
    std::string bn_path;
    Module* bn_owner = nullptr;
    BatchNorm2d* bn = nullptr;
    if (options.fold_batchnorm && dynamic_cast<Conv2d*>(mods[i].module))
      bn = detail::following_batchnorm(mods, i, bn_path, bn_owner);
    Eigen::VectorXf a = Eigen::VectorXf::Ones(oc), b = Eigen::VectorXf::Zero(oc);
    if (bias) b = bias->value;
    if (bn) {
      if (bn->channels() != oc)
        mixq::detail::fail("export_quantized_model: BN '", bn_path, "' has ", bn->channels(), " channels, layer '",
                           name, "' has ", oc, " outputs");
      for (Index o = 0; o < oc; ++o) {
        a[o] = bn->weight().value[o] / std::sqrt(bn->running_var().value[o] + bn->eps());
        b[o] = bn->bias().value[o] + (b[o] - bn->running_mean().value[o]) * a[o];
      }
      for (auto& np : named_parameters(*bn_owner)) dropped.insert(np.parameter);
    }
    mixq::Shape shape;
    for (Index d : w.shape) shape.push_back(static_cast<std::int64_t>(d));
    const int wb = q->w_bits(), ab = q->a_bits();
    if (wb == float_bits) {
      io::FloatTensor t;
      t.shape = shape;
      t.values.resize(static_cast<std::size_t>(w.value.size()));
      for (Index o = 0; o < oc; ++o)
        for (Index k = 0; k < per; ++k) t.values[static_cast<std::size_t>(o * per + k)] = w.value[o * per + k] * a[o];
      out.floats.emplace(name + ".weight", std::move(t));
    } else {
      LsqQuantizer& wq = q->weight_quantizer();
      if (!wq.initialized(wb))
        mixq::detail::fail("export_quantized_model: layer '", name, "': its ", wb,
                           "-bit weight step size is not initialised (train or run a forward at that bit-width first)");
      const Parameter& s = wq.step_size(wb);
      const std::int32_t qmin = wq.qmin(wb), qmax = wq.qmax(wb);
      const bool per_channel = wq.channels() > 1 || bn != nullptr;
      const Index groups = per_channel ? oc : 1;
      std::vector<float> scales(static_cast<std::size_t>(groups));
      std::vector<std::int32_t> codes(static_cast<std::size_t>(w.value.size()));
      std::vector<std::int16_t> c16(static_cast<std::size_t>(per));
      std::vector<float> row(static_cast<std::size_t>(per));
      for (Index o = 0; o < oc; ++o) {
        const float step = std::max(s.value[wq.channels() > 1 ? o : 0], 1e-8f);  // as LsqQuantizer::forward
        const float sign = a[o] < 0 ? -1.f : 1.f;
        for (Index k = 0; k < per; ++k) row[static_cast<std::size_t>(k)] = sign * w.value[o * per + k];
        // The training's codes: the same kernel and step size as the fake quantization of the forward pass.
        kernels::quantize(row.data(), c16.data(), per, step, 0, qmin, qmax);
        for (Index k = 0; k < per; ++k) codes[static_cast<std::size_t>(o * per + k)] = c16[static_cast<std::size_t>(k)];
        if (per_channel) scales[static_cast<std::size_t>(o)] = step * std::fabs(a[o]);
        else scales[0] = step;
      }
      for (Index o = 0; o < oc; ++o)
        if (!(scales[static_cast<std::size_t>(per_channel ? o : 0)] > 0.f))
          mixq::detail::fail("export_quantized_model: layer '", name, "': channel ", o,
                             " has a zero scale (its BN scale gamma is 0); fold it away before export");
      QuantSpec spec;
      spec.bit_width = wb;
      spec.is_signed = true;
      spec.symmetric = true;
      spec.granularity = per_channel ? Granularity::per_channel : Granularity::per_tensor;
      spec.axis = 0;
      out.quantized.emplace(name + ".weight",
                            QuantizedTensor::from_codes(shape, spec, std::move(scales),
                                                        std::vector<std::int32_t>(static_cast<std::size_t>(groups), 0),
                                                        codes.data()));
    }
    if (bias || bn) {
      io::FloatTensor t;
      t.shape = {static_cast<std::int64_t>(oc)};
      t.values.assign(b.data(), b.data() + oc);
      out.floats.emplace(name + ".bias", std::move(t));
    }
    if (ab != float_bits) {
      LsqQuantizer& iq = q->input_quantizer();
      if (!iq.initialized(ab))
        mixq::detail::fail("export_quantized_model: layer '", name, "': its ", ab,
                           "-bit input step size is not initialised (train or run a forward at that bit-width first)");
      io::FloatTensor t;
      t.shape = {1};
      t.values = {std::max(iq.step_size(ab).value[0], 1e-8f)};
      out.floats.emplace(name + ".input_step_size", std::move(t));
    }
    layers.push_back({{"name", name}, {"w_bits", wb}, {"a_bits", ab}, {"input_signed", q->input_quantizer().is_signed()},
                      {"folded_batchnorm", bn ? nlohmann::json(bn_path) : nlohmann::json(nullptr)}});
  }
  for (auto& np : named_parameters(root)) {
    if (dropped.count(np.parameter)) continue;
    io::FloatTensor t;
    for (Index d : np.parameter->shape) t.shape.push_back(static_cast<std::int64_t>(d));
    t.values.assign(np.parameter->value.data(), np.parameter->value.data() + np.parameter->value.size());
    if (out.floats.count(np.name) || out.quantized.count(np.name))
      mixq::detail::fail("export_quantized_model: two tensors are named '", np.name, "'");
    out.floats.emplace(np.name, std::move(t));
  }
  out.metadata["export.layers"] = layers.dump();
  return out;
}

/// Writes export_quantized_model(root, options) to `path` (io::write_quantized_model: atomic, docs/FORMAT.md),
/// with `metadata` added (keys must not start with "mixq.").
inline void save_quantized_model(Module& root, const std::string& path,
                                 const std::map<std::string, std::string>& metadata = {},
                                 const ExportOptions& options = {}) {
  io::QuantizedModel m = export_quantized_model(root, options);
  for (const auto& [k, v] : metadata) m.metadata[k] = v;
  io::write_quantized_model(path, m);
}

}  // namespace mixq::nn
