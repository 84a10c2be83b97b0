#pragma once
/// @file
/// The Module interface of the nn layer and the Sequential container, with the hooks later stages build on:
/// output capture (forward hooks), gradient injection (backward hooks), running any sub-module forward and
/// backward on cached inputs, and visiting every module with its dotted path.

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mixq/nn/tensor.hpp"

namespace mixq::nn {

class Module;

/// A module with its dotted path from the root ("stage2.block.conv1").
struct NamedModule {
  std::string name;
  Module* module;
};

/// A parameter with its dotted path from the root ("stage2.block.conv1.weight").
struct NamedParameter {
  std::string name;
  Parameter* parameter;
};

/// A layer or a container. forward() caches what backward() needs; backward(dy) accumulates parameter
/// gradients (+=) and returns dL/dx. Both return references to buffers owned by the module, valid until its
/// next forward/backward. A module can run forward and backward on its own, on any input of the right shape:
/// this is how block reconstruction runs one block on cached inputs.
class Module {
 public:
  /// Called after forward with the module and its output (capture features, record shapes).
  using ForwardHook = std::function<void(Module&, const Tensor& output)>;
  /// Called before backward with the module and a mutable copy of dL/d(output) (add a feature loss gradient).
  using BackwardHook = std::function<void(Module&, Tensor& grad_output)>;

  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// Runs the module on x (shape (N, C, H, W)) and returns its output; calls the forward hook if any. Layers
  /// that need their input in backward (Conv2d, Linear, BatchNorm2d, ...) keep a pointer to x, not a copy:
  /// x must stay alive and unchanged until the matching backward.
  const Tensor& forward(const Tensor& x) {
    const Tensor& y = forward_impl(x);
    if (forward_hook_) forward_hook_(*this, y);
    return y;
  }
  /// Back-propagates dy (shape of the last output); accumulates parameter gradients; returns dL/dx
  /// (an empty tensor when input gradients are disabled by set_input_grad(false)).
  const Tensor& backward(const Tensor& dy) {
    if (backward_hook_) {
      hooked_grad_ = dy;
      backward_hook_(*this, hooked_grad_);
      return backward_impl(hooked_grad_);
    }
    return backward_impl(dy);
  }

  /// Training mode (batch statistics in BN, quantizer initialisation) or evaluation mode; recursive.
  void set_training(bool training) {
    training_ = training;
    std::vector<std::pair<std::string, Module*>> kids;
    children(kids);
    for (auto& [n, m] : kids) m->set_training(training);
  }
  bool training() const { return training_; }

  /// Whether backward must compute dL/dx (the first layer of a network does not need it).
  virtual void set_input_grad(bool needed) { input_grad_ = needed; }
  bool input_grad() const { return input_grad_; }

  void set_forward_hook(ForwardHook hook) { forward_hook_ = std::move(hook); }
  void set_backward_hook(BackwardHook hook) { backward_hook_ = std::move(hook); }
  void clear_hooks() {
    forward_hook_ = nullptr;
    backward_hook_ = nullptr;
  }

  /// The kind of layer ("Conv2d", "BatchNorm2d", "Sequential", ...).
  virtual std::string kind() const = 0;
  /// Direct children with their local names, in forward order.
  virtual void children(std::vector<std::pair<std::string, Module*>>& /*out*/) {}
  /// Parameters owned directly by this module (not its children).
  virtual void own_parameters(std::vector<Parameter*>& /*out*/) {}
  /// The output of the last forward (a reference to the module's buffer).
  virtual const Tensor& output() const = 0;

 protected:
  virtual const Tensor& forward_impl(const Tensor& x) = 0;
  virtual const Tensor& backward_impl(const Tensor& dy) = 0;

  bool training_ = true;
  bool input_grad_ = true;

 private:
  ForwardHook forward_hook_;
  BackwardHook backward_hook_;
  Tensor hooked_grad_;
};

/// Every module below `root` (root included, path ""), depth first in forward order.
inline std::vector<NamedModule> named_modules(Module& root, const std::string& prefix = "") {
  std::vector<NamedModule> out{{prefix, &root}};
  std::vector<std::pair<std::string, Module*>> kids;
  root.children(kids);
  for (auto& [n, m] : kids) {
    auto sub = named_modules(*m, prefix.empty() ? n : prefix + "." + n);
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

/// Every parameter and buffer below `root`, named by dotted path, in a fixed order.
inline std::vector<NamedParameter> named_parameters(Module& root) {
  std::vector<NamedParameter> out;
  for (auto& nm : named_modules(root)) {
    std::vector<Parameter*> ps;
    nm.module->own_parameters(ps);
    for (Parameter* p : ps) out.push_back({nm.name.empty() ? p->name : nm.name + "." + p->name, p});
  }
  return out;
}

/// The trainable parameters below `root`.
inline std::vector<Parameter*> trainable_parameters(Module& root) {
  std::vector<Parameter*> out;
  for (auto& np : named_parameters(root))
    if (np.parameter->trainable) out.push_back(np.parameter);
  return out;
}

/// Sets every gradient below `root` to zero.
inline void zero_grad(Module& root) {
  for (auto& np : named_parameters(root)) np.parameter->zero_grad();
}

/// Finds a module by dotted path; throws mixq::error naming the path when absent.
inline Module& find_module(Module& root, const std::string& path) {
  for (auto& nm : named_modules(root))
    if (nm.name == path) return *nm.module;
  mixq::detail::fail("find_module: no module named '", path, "'");
}

/// Modules run one after the other. Children are owned; each has a local name.
class Sequential : public Module {
 public:
  Sequential() = default;

  /// Appends a module named `name` (must be unique in this container) and returns a reference to it.
  template <class M>
  M& add(const std::string& name, std::unique_ptr<M> m) {
    for (auto& [n, p] : layers_)
      if (n == name) mixq::detail::fail("Sequential::add: duplicate name '", name, "'");
    M& ref = *m;
    layers_.emplace_back(name, std::move(m));
    update_input_grad();
    return ref;
  }
  template <class M, class... Args>
  M& emplace(const std::string& name, Args&&... args) {
    return add(name, std::make_unique<M>(std::forward<Args>(args)...));
  }

  Index size() const { return static_cast<Index>(layers_.size()); }
  Module& operator[](Index i) { return *layers_.at(static_cast<std::size_t>(i)).second; }
  const std::string& name_at(Index i) const { return layers_.at(static_cast<std::size_t>(i)).first; }

  /// Runs children [begin, end) on x: a block of the network on cached inputs.
  const Tensor& forward_range(Index begin, Index end, const Tensor& x) {
    check_range(begin, end);
    const Tensor* cur = &x;
    for (Index i = begin; i < end; ++i) cur = &(*this)[i].forward(*cur);
    return *cur;
  }
  /// Back-propagates dy through children [begin, end) (after forward_range on the same range).
  const Tensor& backward_range(Index begin, Index end, const Tensor& dy) {
    check_range(begin, end);
    const Tensor* cur = &dy;
    for (Index i = end - 1; i >= begin; --i) cur = &(*this)[i].backward(*cur);
    return *cur;
  }

  void set_input_grad(bool needed) override {
    input_grad_ = needed;
    update_input_grad();
  }
  std::string kind() const override { return "Sequential"; }
  void children(std::vector<std::pair<std::string, Module*>>& out) override {
    for (auto& [n, m] : layers_) out.emplace_back(n, m.get());
  }
  const Tensor& output() const override {
    if (layers_.empty()) return empty_;
    return layers_.back().second->output();
  }

 protected:
  const Tensor& forward_impl(const Tensor& x) override {
    if (layers_.empty()) return x;
    return forward_range(0, size(), x);
  }
  const Tensor& backward_impl(const Tensor& dy) override {
    if (layers_.empty()) return dy;
    return backward_range(0, size(), dy);
  }

 private:
  void check_range(Index begin, Index end) const {
    if (begin < 0 || end > size() || begin >= end)
      mixq::detail::fail("Sequential: range [", begin, ", ", end, ") invalid for ", size(), " children");
  }
  // Only the first child inherits the container's input-gradient flag; every later child needs dL/dx.
  void update_input_grad() {
    for (std::size_t i = 0; i < layers_.size(); ++i) layers_[i].second->set_input_grad(i == 0 ? input_grad_ : true);
  }
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> layers_;
  Tensor empty_;
};

}  // namespace mixq::nn
