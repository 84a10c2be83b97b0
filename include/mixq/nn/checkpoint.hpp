#pragma once
/// @file
/// Checkpoints of nn modules as `.safetensors` files (F32 tensors named by dotted parameter path, with their
/// logical shapes): every parameter and buffer, including BN running statistics and LSQ step sizes.
/// Reading and writing go through mixq/io/safetensors.hpp. Checkpoints written before the format label was
/// dropped (labelled mixq.quantized-safetensors.v1 with float tensors only) still load.

#include <map>
#include <string>
#include <vector>

#include "mixq/io/safetensors.hpp"
#include "mixq/nn/module.hpp"

namespace mixq::nn {

namespace detail {

/// The float tensors of a module, by dotted name.
inline std::map<std::string, io::FloatTensor> checkpoint_tensors(Module& root) {
  std::map<std::string, io::FloatTensor> out;
  for (auto& np : named_parameters(root)) {
    io::FloatTensor t;
    for (Index d : np.parameter->shape) t.shape.push_back(static_cast<std::int64_t>(d));
    t.values.assign(np.parameter->value.data(), np.parameter->value.data() + np.parameter->value.size());
    if (!out.emplace(np.name, std::move(t)).second)
      mixq::detail::fail("save_checkpoint: two parameters are named '", np.name, "'");
  }
  return out;
}

}  // namespace detail

/// Writes every parameter and buffer of `root` to `path` (plain safetensors, F32), atomically: the float master
/// weights and the step sizes of every candidate bit-width, for resuming training. `metadata` is stored in the
/// file's `__metadata__`, with "mixq.kind" = "checkpoint". A checkpoint is not a quantized model (no packed codes,
/// no "mixq.format" label; io::read_quantized_model refuses it): nn/export.hpp writes those.
inline void save_checkpoint(Module& root, const std::string& path,
                            const std::map<std::string, std::string>& metadata = {}) {
  std::map<std::string, std::string> meta = metadata;
  meta["mixq.kind"] = "checkpoint";
  io::write_safetensors(path, detail::checkpoint_tensors(root), meta);
}

/// Reads `path` into the parameters of `root`, bit-exact. With `strict`, every parameter of the model must be
/// in the file and every tensor of the file in the model; otherwise parameters absent from the file keep their
/// values and extra tensors are ignored. A shape mismatch always throws mixq::error naming the tensor. Returns
/// the number of parameters loaded.
inline std::size_t load_checkpoint(Module& root, const std::string& path, bool strict = true) {
  const std::map<std::string, io::FloatTensor> file = io::read_safetensors(path);
  // Validate everything before writing any parameter.
  auto params = named_parameters(root);
  std::size_t found = 0;
  for (auto& np : params) {
    auto it = file.find(np.name);
    if (it == file.end()) {
      if (strict) mixq::detail::fail("load_checkpoint '", path, "': tensor '", np.name, "' is missing");
      continue;
    }
    std::vector<std::int64_t> want;
    for (Index d : np.parameter->shape) want.push_back(static_cast<std::int64_t>(d));
    if (it->second.shape != want || static_cast<Index>(it->second.values.size()) != np.parameter->value.size()) {
      std::string s;
      for (auto d : it->second.shape) s += std::to_string(d) + ",";
      mixq::detail::fail("load_checkpoint '", path, "': tensor '", np.name, "' has shape [", s, "], expected ",
                         np.parameter->value.size(), " elements");
    }
    ++found;
  }
  if (strict && found != file.size()) {
    for (auto& [name, t] : file) {
      bool used = false;
      for (auto& np : params) used = used || np.name == name;
      if (!used) mixq::detail::fail("load_checkpoint '", path, "': tensor '", name, "' matches no parameter");
    }
  }
  for (auto& np : params) {
    auto it = file.find(np.name);
    if (it == file.end()) continue;
    np.parameter->value = Eigen::Map<const Eigen::VectorXf>(it->second.values.data(), np.parameter->value.size());
  }
  return found;
}

}  // namespace mixq::nn
