#pragma once
/// @file
/// The supernet of one-shot weight coupling (Tang et al., CVPR 2024, "Retraining-free Model Quantization via
/// One-Shot Weight-Coupling Learning"; ../shared/methods/ONESHOT.md sections 2-3): one set of float weights
/// shared by every bit-width policy. Every searchable layer (a QuantConv2d / QuantLinear that is not fixed
/// precision) keeps one LSQ step size per candidate bit-width for its weight and for its input (per tensor by
/// default, as the paper), and the BatchNorm after it becomes a grid of BN copies keyed by that layer's own
/// (w_bits, a_bits) pair, every copy initialised from the float BN. The per-layer candidate sets of weights and
/// activations are kept separately ("split", the default) or as one shared set ("coupled", the released
/// ResNet-18 configuration: removing a bit-width removes it from both). Fixed layers: the stem conv at W8 with a
/// float input, the last FC at W8A8 (the brief's section 2).
///
/// A policy is one (w_bits, a_bits) per searchable layer, in forward order.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/nn/batchnorm.hpp"
#include "mixq/nn/hooks.hpp"
#include "mixq/nn/models.hpp"
#include "mixq/nn/module.hpp"
#include "mixq/schedule/limpq.hpp"
#include "mixq/search/cost_model.hpp"
#include "mixq/search/objectives.hpp"

namespace mixq::schedule {

/// Bit-widths of the searchable layers, in forward order.
using Policy = std::vector<search::BitPair>;

/// Options of a supernet.
struct SupernetOptions {
  std::vector<int> weight_bits{2, 3, 4, 5, 6};      ///< candidate weight bit-widths of every searchable layer
  std::vector<int> activation_bits{2, 3, 4, 5, 6};  ///< candidate input bit-widths of every searchable layer
  /// true: weight and activation candidates are separate sets and the scheduler shrinks only the weights'
  /// (the brief's "split" mode); false: one set for both (weight_bits must equal activation_bits).
  bool split_candidates = true;
  bool per_channel_weights = false;  ///< one weight step size per output channel instead of per tensor
  int fixed_bits = 8;                ///< weight bits of the stem conv and the FC, input bits of the FC
  Index in_channels = 1, height = 28, width = 28;  ///< input image shape (for the layer table)
};

/// The state a supernet adds to its float network, in bytes (floats of 4 bytes).
struct SupernetMemory {
  std::int64_t bn_grid_bytes = 0;     ///< BN copies beyond one per searchable layer (gamma, beta, mean, var)
  std::int64_t step_size_bytes = 0;   ///< every step size of the searchable layers (weights and inputs)
  std::int64_t bn_copies = 0;         ///< BN copies per searchable layer
  std::int64_t step_sizes = 0;        ///< step-size parameters per searchable layer (weights + inputs)
};

/// One-shot weight-coupling supernet over a model built by nn::make_model with switchable BN.
class Supernet {
 public:
  /// Builds model `model_name` ("resnet", "mobilenet", "mlp") as a supernet (weights from `seed`).
  Supernet(const std::string& model_name, const SupernetOptions& options, std::uint64_t seed = 1) : opt_(options) {
    check_candidates("weight_bits", opt_.weight_bits);
    check_candidates("activation_bits", opt_.activation_bits);
    if (!opt_.split_candidates && opt_.weight_bits != opt_.activation_bits)
      mixq::detail::fail("Supernet: coupled candidates need weight_bits == activation_bits");
    if (opt_.fixed_bits < 2 || opt_.fixed_bits > 16)
      mixq::detail::fail("Supernet: fixed_bits must be in [2, 16], got ", opt_.fixed_bits);
    nn::ModelOptions mo;
    mo.seed = seed;
    mo.in_channels = opt_.in_channels;
    mo.switchable_bn = true;
    mo.quant.per_channel_weights = opt_.per_channel_weights;
    mo.quant.fixed_bits = opt_.fixed_bits;
    std::vector<int> all = opt_.weight_bits;
    all.insert(all.end(), opt_.activation_bits.begin(), opt_.activation_bits.end());
    all.push_back(opt_.fixed_bits);
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    mo.quant.candidate_bits = all;
    model_ = nn::make_model(model_name, mo);
    model_name_ = model_name;
    // Pair every searchable layer with the BN bank that follows it (depth-first order: conv, then its BN).
    nn::QuantLayer* last = nullptr;
    std::string last_name;
    for (auto& nm : nn::named_modules(*model_)) {
      if (auto* q = dynamic_cast<nn::QuantLayer*>(nm.module)) {
        last = q;
        last_name = nm.name;
        if (q->fixed_precision()) fixed_.push_back(q);
        else layers_.push_back({nm.name, q, nullptr, {}, {}});
        q->weight_quantizer().set_step_init(nn::StepInit::three_sigma);
      }
      if (auto* bn = dynamic_cast<nn::SwitchableBatchNorm2d*>(nm.module))
        if (last && !last->fixed_precision() && !layers_.empty() && layers_.back().name == last_name)
          layers_.back().bn = bn;
    }
    if (layers_.empty()) mixq::detail::fail("Supernet: model '", model_name, "' has no searchable layer");
    for (auto& l : layers_)
      if (l.bn)
        for (int w : opt_.weight_bits)
          for (int a : opt_.activation_bits) l.bn->add_key(nn::bits_key(w, a));
    reset_candidates();
    table_ = search_layer_table(*model_, opt_.in_channels, opt_.height, opt_.width);
    set_policy(max_policy());
  }

  nn::Sequential& model() { return *model_; }
  const std::string& model_name() const { return model_name_; }
  const SupernetOptions& options() const { return opt_; }
  /// The issue-5 layer table of the whole network (fixed layers at fixed_bits).
  const search::LayerTable& table() const { return table_; }
  /// Number of searchable layers.
  std::size_t size() const { return layers_.size(); }
  const std::string& name(std::size_t l) const { return layers_.at(l).name; }
  nn::QuantLayer& layer(std::size_t l) { return *layers_.at(l).q; }
  /// The BN bank after searchable layer l (nullptr when none follows it).
  nn::SwitchableBatchNorm2d* batch_norm(std::size_t l) { return layers_.at(l).bn; }
  /// Current (scheduler-shrunk) candidates of layer l, ascending.
  const std::vector<int>& weight_candidates(std::size_t l) const { return layers_.at(l).w; }
  const std::vector<int>& activation_candidates(std::size_t l) const { return layers_.at(l).a; }

  /// Every layer back to its full candidate sets.
  void reset_candidates() {
    for (auto& l : layers_) {
      l.w = sorted(opt_.weight_bits);
      l.a = sorted(opt_.activation_bits);
    }
  }
  /// Removes the minimum weight bit-width of layer l (and the minimum activation bit-width in coupled mode),
  /// unless the set would become empty; returns whether something was removed.
  bool remove_min_bits(std::size_t l) {
    Layer& L = layers_.at(l);
    if (L.w.size() < 2) return false;
    L.w.erase(L.w.begin());
    if (!opt_.split_candidates && L.a.size() >= 2) L.a.erase(L.a.begin());
    return true;
  }

  /// Throws mixq::error naming the layer and value when `p` has the wrong length or a bit-width outside a
  /// layer's current candidates (frozen included).
  void check_policy(const Policy& p) const {
    if (p.size() != layers_.size())
      mixq::detail::fail("policy has ", p.size(), " entries, the supernet has ", layers_.size(), " searchable layers");
    for (std::size_t l = 0; l < p.size(); ++l) {
      const Layer& L = layers_[l];
      if (!contains(L.w, p[l].weight_bits))
        mixq::detail::fail("policy: layer '", L.name, "' w_bits=", p[l].weight_bits,
                           " is not a current candidate (", list(L.w), ")");
      if (!contains(L.a, p[l].activation_bits))
        mixq::detail::fail("policy: layer '", L.name, "' a_bits=", p[l].activation_bits,
                           " is not a current candidate (", list(L.a), ")");
    }
  }
  /// Sets every searchable layer and its BN copy to `p` (checked first), fixed layers to W8 (stem input float,
  /// FC input 8 bits). One set of BN buffers circulates in each grid (BatchNorm2d::swap_buffers).
  void set_policy(const Policy& p) {
    check_policy(p);
    for (std::size_t l = 0; l < p.size(); ++l) {
      Layer& L = layers_[l];
      L.q->set_bits(p[l].weight_bits, p[l].activation_bits);
      if (!L.bn) continue;
      nn::BatchNorm2d& prev = L.bn->active();
      L.bn->set_key(nn::bits_key(p[l].weight_bits, p[l].activation_bits));
      if (&L.bn->active() != &prev) L.bn->active().swap_buffers(prev);
    }
    for (std::size_t i = 0; i < fixed_.size(); ++i)
      fixed_[i]->set_bits(opt_.fixed_bits, i == 0 ? nn::float_bits : opt_.fixed_bits);
    policy_ = p;
  }
  const Policy& policy() const { return policy_; }

  /// Every layer at its current maximum weight and activation bits.
  Policy max_policy() const {
    Policy p;
    for (const Layer& L : layers_) p.push_back({L.w.back(), L.a.back()});
    return p;
  }
  /// Every layer at (w, a); throws mixq::error when not a candidate of every layer.
  Policy uniform_policy(int w, int a) const {
    Policy p(layers_.size(), search::BitPair{w, a});
    check_policy(p);
    return p;
  }
  /// Every layer draws its weight and activation bits independently and uniformly from its current candidates.
  Policy random_policy(std::mt19937_64& rng) const {
    Policy p;
    for (const Layer& L : layers_) {
      std::uniform_int_distribution<std::size_t> dw(0, L.w.size() - 1), da(0, L.a.size() - 1);
      const int w = L.w[dw(rng)];
      const int a = L.a[da(rng)];
      p.push_back({w, a});
    }
    return p;
  }

  /// The policy as issue 5's BitPolicy over the whole table (fixed layers at fixed_bits).
  search::BitPolicy bit_policy(const Policy& p) const {
    if (p.size() != layers_.size())
      mixq::detail::fail("policy has ", p.size(), " entries, the supernet has ", layers_.size(), " searchable layers");
    search::BitPolicy bp;
    std::size_t l = 0;
    for (const search::Layer& t : table_) {
      const bool fixed = t.fixed_bits != 0;
      bp.weight_bits.push_back(fixed ? t.fixed_bits : p[l].weight_bits);
      bp.activation_bits.push_back(fixed ? t.fixed_bits : p[l].activation_bits);
      if (!fixed) ++l;
    }
    return bp;
  }
  /// BitOps of the whole network per image (stem and FC counted at 8 x 8, the paper's code convention).
  std::int64_t bit_operations(const Policy& p) const { return search::total_bit_operations(table_, bit_policy(p)); }
  /// Weight bits of the whole network.
  std::int64_t size_bits(const Policy& p) const { return search::model_size_bits(table_, bit_policy(p)); }
  /// The policy keyed by layer name (nn::set_bits, LIMPQ's LayerBits).
  LayerBits layer_bits(const Policy& p) const {
    LayerBits b;
    for (std::size_t l = 0; l < p.size() && l < layers_.size(); ++l)
      b[layers_[l].name] = {p[l].weight_bits, p[l].activation_bits};
    return b;
  }
  /// Per-layer bits as text: "w/a w/a ...".
  static std::string to_string(const Policy& p) {
    std::string s;
    for (const search::BitPair& b : p) {
      if (!s.empty()) s += ' ';
      s += std::to_string(b.weight_bits) + "/" + std::to_string(b.activation_bits);
    }
    return s;
  }

  /// Copies a float network's weights and BN (every grid copy takes the float BN) into the supernet; throws
  /// mixq::error when `float_model` is another architecture (a searchable weight absent or of another size).
  void load_float(nn::Module& float_model) {
    auto src = nn::named_parameters(float_model);
    for (auto& L : layers_) {
      const std::string want = L.name + ".weight";
      bool ok = false;
      for (auto& np : src)
        ok = ok || (np.name == want && np.parameter->value.size() == L.q->master_weight().value.size());
      if (!ok) mixq::detail::fail("load_float: the float model has no weight '", want, "' of ",
                                  L.q->master_weight().value.size(), " elements (another architecture)");
    }
    copy_matching_parameters(float_model, *model_);
    for (auto& np : nn::named_parameters(*model_))  // step sizes are re-initialised from the float weights
      if (np.name.find("_step_size_") != std::string::npos) np.parameter->value.setZero();
  }

  /// Initialises every step size: weights with the 3-sigma rule (s_b = max|mu +- 3 sigma| / 2^(b-1)),
  /// inputs with LSQ's rule from evaluation-mode forwards of `x` at every activation bit-width (no BN
  /// statistics change). Leaves the max policy set.
  void initialize_step_sizes(const nn::Tensor& x) {
    const bool was = model_->training();
    model_->set_training(false);
    std::vector<int> a_bits = sorted(opt_.activation_bits);
    const int wmax = sorted(opt_.weight_bits).back();
    for (int a : a_bits) {
      set_policy_unchecked(wmax, a);
      model_->forward(x);
    }
    for (auto& L : layers_)
      for (int w : opt_.weight_bits) {
        nn::LsqQuantizer& q = L.q->weight_quantizer();
        const Eigen::VectorXf& wv = L.q->master_weight().value;
        if (!q.initialized(w)) q.initialize(w, wv.data(), 1, wv.size() / q.channels());
      }
    model_->set_training(was);
    set_policy(max_policy());
  }

  /// The supernet's extra state (the memory figure).
  SupernetMemory memory() const {
    SupernetMemory m;
    m.bn_copies = static_cast<std::int64_t>(opt_.weight_bits.size() * opt_.activation_bits.size());
    for (const Layer& L : layers_) {
      const std::int64_t ch = L.bn ? static_cast<std::int64_t>(L.bn->active().channels()) : 0;
      m.bn_grid_bytes += (m.bn_copies - 1) * 4 * ch * 4;
      m.step_size_bytes += static_cast<std::int64_t>(opt_.weight_bits.size()) * L.q->weight_quantizer().channels() * 4 +
                           static_cast<std::int64_t>(opt_.activation_bits.size()) * 4;
    }
    m.step_sizes = static_cast<std::int64_t>(opt_.weight_bits.size() + opt_.activation_bits.size());
    return m;
  }

 private:
  struct Layer {
    std::string name;
    nn::QuantLayer* q;
    nn::SwitchableBatchNorm2d* bn;
    std::vector<int> w, a;
  };
  static void check_candidates(const char* what, const std::vector<int>& b) {
    if (b.empty()) mixq::detail::fail("Supernet: ", what, " is empty");
    for (int v : b)
      if (v < 2 || v > 16) mixq::detail::fail("Supernet: ", what, " has ", v, " (need 2..16)");
  }
  static std::vector<int> sorted(std::vector<int> v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  }
  static bool contains(const std::vector<int>& v, int b) { return std::find(v.begin(), v.end(), b) != v.end(); }
  static std::string list(const std::vector<int>& v) {
    std::string s;
    for (int b : v) s += (s.empty() ? "" : ",") + std::to_string(b);
    return s;
  }
  // Uniform (w, a) on every layer without the frozen-candidate check (step-size initialisation).
  void set_policy_unchecked(int w, int a) {
    std::vector<Layer> saved = layers_;
    for (auto& L : layers_) {
      L.w = sorted(opt_.weight_bits);
      L.a = sorted(opt_.activation_bits);
    }
    set_policy(Policy(layers_.size(), search::BitPair{w, a}));
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      layers_[l].w = saved[l].w;
      layers_[l].a = saved[l].a;
    }
  }

  SupernetOptions opt_;
  std::string model_name_;
  std::unique_ptr<nn::Sequential> model_;
  std::vector<Layer> layers_;
  std::vector<nn::QuantLayer*> fixed_;
  search::LayerTable table_;
  Policy policy_;
};

}  // namespace mixq::schedule
