#pragma once
/// @file
/// Post-training quantization by reconstruction (methods/PTQ.md §1-4): round-to-nearest (calibrate_rtn), and the
/// unit-by-unit reconstruction loop shared by AdaRound (layer units, fixed activation scales), BRECQ (block units,
/// activation scales learned jointly: the variant MRECG compares against, optional Fisher weighting) and QDrop
/// (keep probability 0.5 on the unit input and on every activation quantizer inside the unit), and by MRECG's
/// merged units (any group of adjacent base units reconstructed as one).
///
/// For each unit in order: the unit input of the quantized network (every earlier unit final) and the float
/// network's input and output are cached over the calibration set; then T Adam steps on mini-batches minimise
/// L_rec = sum over channels of (y_hat - y)^2, averaged over N, H, W (times lambda * the rounding regulariser after
/// the warm-up); then the weights are hard-rounded and QDrop is switched off.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "mixq/error.hpp"
#include "mixq/io/fashion_mnist.hpp"
#include "mixq/nn/data.hpp"
#include "mixq/nn/loss.hpp"
#include "mixq/nn/optim.hpp"
#include "mixq/ptq/network.hpp"

namespace mixq::ptq {

/// Groups of adjacent base units reconstructed together: inclusive ranges [first, last], in order, covering every
/// unit once. One group per unit is block-wise reconstruction.
using UnitGroups = std::vector<std::pair<Index, Index>>;

/// Throws mixq::error unless `groups` covers units 0..units-1 in order, each exactly once.
inline void check_groups(const UnitGroups& groups, Index units, const char* what = "groups") {
  Index next = 0;
  for (const auto& [a, b] : groups) {
    if (a != next || b < a || b >= units)
      mixq::detail::fail(what, ": group [", a, ", ", b, "] does not continue at unit ", next, " of ", units,
                         " (groups must cover every unit once, in order)");
    next = b + 1;
  }
  if (next != units) mixq::detail::fail(what, ": the groups cover units 0..", next - 1, " of ", units);
}

/// One group per unit (BRECQ's block-wise reconstruction).
inline UnitGroups single_units(Index units) {
  UnitGroups g;
  for (Index u = 0; u < units; ++u) g.emplace_back(u, u);
  return g;
}

namespace detail {

/// out = samples [b, e) of src.
inline void slice_samples(const nn::Tensor& src, Index b, Index e, nn::Tensor& out) {
  out.resize(e - b, src.c(), src.h(), src.w());
  const Index s = src.sample_size();
  out.data = src.data.segment(b * s, (e - b) * s);
}

/// out = samples idx[0..n) of src.
inline void gather_samples(const nn::Tensor& src, const std::vector<Index>& idx, nn::Tensor& out) {
  const auto n = static_cast<Index>(idx.size());
  out.resize(n, src.c(), src.h(), src.w());
  const Index s = src.sample_size();
  for (Index i = 0; i < n; ++i) out.data.segment(i * s, s) = src.data.segment(idx[static_cast<std::size_t>(i)] * s, s);
}

/// Writes batch `part` (samples [b, b + part.n())) into `all` of `total` samples (resized on the first batch).
inline void store_samples(const nn::Tensor& part, Index b, Index total, nn::Tensor& all) {
  if (b == 0) all.resize(total, part.c(), part.h(), part.w());
  all.data.segment(b * part.sample_size(), part.size()) = part.data;
}

/// Elements that L_rec averages over: N * H * W (N for features).
inline double rec_denominator(const nn::Tensor& y) { return static_cast<double>(y.n() * y.h() * y.w()); }

/// CPU seconds of the process.
inline double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

}  // namespace detail

/// The images of `set` at `indices`, normalised as in training, as one (N, 1, H, W) tensor.
inline nn::Tensor image_tensor(const io::ImageSet& set, const std::vector<Index>& indices) {
  if (indices.empty()) mixq::detail::fail("image_tensor: no indices");
  nn::Tensor x;
  std::vector<std::int32_t> y;
  nn::make_batch(set.images.data(), set.labels.data(), indices, 0, static_cast<Index>(indices.size()), 1, set.rows,
                 set.cols, io::fashion_mnist_mean, io::fashion_mnist_std, x, y);
  return x;
}

/// `count` distinct indices of a set of `set_size` images, drawn with `seed` (the fixed calibration set).
inline std::vector<Index> calibration_indices(Index set_size, Index count, std::uint64_t seed) {
  if (count < 1 || count > set_size)
    mixq::detail::fail("calibration_indices: count must be in [1, ", set_size, "], got ", count);
  std::mt19937_64 rng(seed);
  auto order = nn::epoch_order(set_size, &rng);
  order.resize(static_cast<std::size_t>(count));
  return order;
}

/// Runs units [first, last] of `net` over every sample of `in` in batches of `batch`; the outputs go to `out`.
inline void run_units(PtqNetwork& net, Index first, Index last, const nn::Tensor& in, nn::Tensor& out, Index batch = 128) {
  nn::Tensor part;
  for (Index b = 0; b < in.n(); b += batch) {
    const Index e = std::min(in.n(), b + batch);
    detail::slice_samples(in, b, e, part);
    detail::store_samples(net.root().forward_range(first, last + 1, part), b, in.n(), out);
  }
}

/// Round-to-nearest PTQ: every activation quantizer observes the float network's activations over `images` in
/// batches of `batch` (EMA of the per-batch MSE ranges), then every weight grid is calibrated (MSE p = 2.4 per
/// channel) and rounded to nearest. Leaves the network fully quantized.
inline void calibrate_rtn(PtqNetwork& net, const nn::Tensor& images, Index batch = 64) {
  if (batch < 1 || images.n() < 1)
    mixq::detail::fail("calibrate_rtn: need images and batch >= 1, got ", images.n(), " images, batch ", batch);
  for (WeightLayer* l : net.weight_layers()) l->set_rounding(Rounding::float_weights);
  for (ActQuantizer* q : net.act_quantizers()) {
    q->set_keep_probability(1.f);
    q->set_learn_scale(false);
    q->start_calibration();
  }
  nn::Tensor part;
  for (Index b = 0; b < images.n(); b += batch) {
    detail::slice_samples(images, b, std::min(images.n(), b + batch), part);
    net.forward(part);
  }
  for (ActQuantizer* q : net.act_quantizers()) q->finish_calibration();
  for (WeightLayer* l : net.weight_layers()) l->calibrate();
}

/// Per base unit: the reconstruction error of its output in the quantized network `q` (fed the quantized output of
/// every earlier unit) against the float network `fp`, as L_rec over the first `limit` of `images` (0: all; loss),
/// and the float output's own energy sum_C y^2 averaged the same way (energy).
struct UnitErrors {
  std::vector<double> loss, energy;
  /// loss / energy of unit u.
  double relative(Index u) const {
    const auto i = static_cast<std::size_t>(u);
    return energy[i] > 0 ? loss[i] / energy[i] : 0.0;
  }
};

inline UnitErrors unit_errors(PtqNetwork& q, PtqNetwork& fp, const nn::Tensor& images, Index limit = 0,
                              Index batch = 128) {
  if (q.units() != fp.units()) mixq::detail::fail("unit_errors: networks have ", q.units(), " and ", fp.units(), " units");
  if (limit < 0 || batch < 1) mixq::detail::fail("unit_errors: limit ", limit, " must be >= 0 and batch ", batch, " >= 1");
  const Index n = limit > 0 ? std::min(limit, images.n()) : images.n();
  UnitErrors r;
  r.loss.assign(static_cast<std::size_t>(q.units()), 0.0);
  r.energy.assign(static_cast<std::size_t>(q.units()), 0.0);
  std::vector<double> denom(static_cast<std::size_t>(q.units()), 0.0);
  nn::Tensor part, xq, xf;
  for (Index b = 0; b < n; b += batch) {
    detail::slice_samples(images, b, std::min(n, b + batch), part);
    xq = part;
    xf = part;
    for (Index u = 0; u < q.units(); ++u) {
      const nn::Tensor& yq = q.root().forward_range(u, u + 1, xq);
      const nn::Tensor& yf = fp.root().forward_range(u, u + 1, xf);
      const auto i = static_cast<std::size_t>(u);
      r.loss[i] += (yq.data - yf.data).squaredNorm();
      r.energy[i] += yf.data.squaredNorm();
      denom[i] += detail::rec_denominator(yf);
      xq = yq;
      xf = yf;
    }
  }
  for (std::size_t i = 0; i < denom.size(); ++i) {
    r.loss[i] /= denom[i];
    r.energy[i] /= denom[i];
  }
  return r;
}

/// Top-1 accuracy of the network on the first `limit` images of `set` (0: all).
inline double evaluate_accuracy(PtqNetwork& net, const io::ImageSet& set, Index limit = 0, Index batch = 128) {
  const Index n = limit > 0 ? std::min<Index>(limit, set.size()) : set.size();
  if (n < 1 || batch < 1) mixq::detail::fail("evaluate_accuracy: no images (limit ", limit, ") or batch ", batch);
  const auto order = nn::epoch_order(n);
  nn::Tensor x;
  std::vector<std::int32_t> y;
  Index correct = 0;
  for (Index b = 0; b < n; b += batch) {
    const Index e = std::min(n, b + batch);
    nn::make_batch(set.images.data(), set.labels.data(), order, b, e, 1, set.rows, set.cols, io::fashion_mnist_mean,
                   io::fashion_mnist_std, x, y);
    correct += nn::count_correct(net.forward(x), y);
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

/// Unit of reconstruction.
enum class Granularity {
  layer,  ///< AdaRound: one conv/linear with the ops up to the next weight layer of its chain
  block   ///< BRECQ: the groups given (base units, or MRECG's merged units)
};

/// What happened to one reconstruction unit.
struct UnitLog {
  std::string name;                 ///< "stage1", "stage1+stage2" (merged), "stage1.main.conv1" (layer)
  Index first_unit = 0, last_unit = 0;
  Index weights = 0;                ///< AdaRound variables optimised
  double rtn_loss = 0;              ///< L_rec before reconstruction (nearest rounding), first log_images images
  double final_loss = 0;            ///< L_rec after (hard rounding), first log_images images
  double train_loss = 0;            ///< mean L_rec of the last 10% of the steps (soft rounding, QDrop on)
  double round_loss = 0;            ///< lambda * regulariser at the last step (beta_end)
  double soft_share = 0;            ///< share of h(V) strictly inside (0, 1) at the end (0: converged to hard)
  double flipped_share = 0;         ///< share of weights rounded differently from nearest
  double seconds = 0, cpu_seconds = 0;
};

/// Options of reconstruct(); defaults are the official configs' (methods/PTQ.md §5.3) but for the step count.
struct ReconstructionOptions {
  Granularity granularity = Granularity::block;
  Index steps = 20000;              ///< Adam steps per unit (T)
  Index batch_size = 32;            ///< images per step, drawn without repeats within a step
  double warmup = 0.2;              ///< share of T before the rounding regulariser starts
  float beta_start = 20.f, beta_end = 2.f;
  float lambda = 0.01f;             ///< regulariser weight (0.01 ResNet, 0.1 MobileNetV2)
  float weight_lr = 1e-3f;          ///< Adam on V
  float scale_lr = 4e-5f;           ///< Adam on activation scales, cosine to 0 over T
  bool learn_act_scales = true;     ///< BRECQ as in MRECG, QDrop: true; AdaRound: false
  float keep_probability = 1.f;     ///< QDrop: 0.5 (the probability of keeping quantization)
  bool fisher = false;              ///< BRECQ's Fisher weighting (|dKL/dy| + 1)^2 of the squared error
  std::uint64_t seed = 1;           ///< mini-batch order and QDrop masks
  Index log_images = 256;           ///< calibration images of the logged rtn_loss and final_loss (0: all)
  /// Called after each unit with its log.
  std::function<void(const UnitLog&)> on_unit;

  void validate(Index calibration_images) const {
    if (log_images < 0) mixq::detail::fail("ReconstructionOptions: log_images must be >= 0, got ", log_images);
    if (steps < 1) mixq::detail::fail("ReconstructionOptions: steps must be >= 1, got ", steps);
    if (batch_size < 1) mixq::detail::fail("ReconstructionOptions: batch_size must be >= 1, got ", batch_size);
    if (calibration_images < batch_size)
      mixq::detail::fail("ReconstructionOptions: the calibration set (", calibration_images,
                         " images) is smaller than one batch (batch_size ", batch_size, ")");
    BetaSchedule{steps, warmup, beta_start, beta_end}.validate();
    if (!(lambda >= 0.f)) mixq::detail::fail("ReconstructionOptions: lambda must be >= 0, got ", lambda);
    if (!(weight_lr > 0.f) || !(scale_lr >= 0.f))
      mixq::detail::fail("ReconstructionOptions: weight_lr must be > 0 and scale_lr >= 0, got ", weight_lr, " and ",
                         scale_lr);
    check_keep_probability("ReconstructionOptions: keep_probability", keep_probability);
    if (granularity == Granularity::layer && (keep_probability < 1.f || fisher))
      mixq::detail::fail("ReconstructionOptions: layer granularity supports neither QDrop (keep_probability ",
                         keep_probability, ") nor Fisher weighting");
  }
};

struct ReconstructionReport {
  std::vector<UnitLog> units;
  double seconds = 0, cpu_seconds = 0;
  Index steps = 0;                  ///< Adam steps, all units
};

namespace detail {

/// One layer unit inside base unit u: children [begin, end) of a chain (the unit itself, or a branch of its
/// Residual child `residual`).
struct Segment {
  Index residual = -1;   ///< index of the Residual child in the unit, -1: the chain is the unit itself
  bool shortcut = false; ///< the Residual's shortcut branch (else its main branch)
  Index begin = 0, end = 0;
  std::string name;
};

inline nn::Sequential& segment_chain(nn::Sequential& unit, const Segment& s) {
  if (s.residual < 0) return unit;
  auto& r = static_cast<nn::Residual&>(unit[s.residual]);
  return s.shortcut ? *r.shortcut() : r.main();
}

/// The layer units of one base unit, in forward order.
inline std::vector<Segment> layer_segments(nn::Sequential& unit, const std::string& unit_name) {
  std::vector<Segment> out;
  auto scan = [&](nn::Sequential& chain, Index residual, bool shortcut, const std::string& prefix) {
    std::vector<Index> at;
    for (Index i = 0; i < chain.size(); ++i)
      if (dynamic_cast<WeightLayer*>(&chain[i])) at.push_back(i);
    for (std::size_t k = 0; k < at.size(); ++k) {
      Segment s;
      s.residual = residual;
      s.shortcut = shortcut;
      s.begin = at[k];
      s.end = k + 1 < at.size() ? at[k + 1] : chain.size();
      s.name = prefix + chain.name_at(at[k]);
      out.push_back(s);
    }
  };
  Index residual = -1;
  for (Index i = 0; i < unit.size(); ++i)
    if (dynamic_cast<nn::Residual*>(&unit[i])) residual = i;
  if (residual < 0) {
    scan(unit, -1, false, unit_name + ".");
  } else {
    auto& r = static_cast<nn::Residual&>(unit[residual]);
    scan(r.main(), residual, false, unit_name + ".main.");
    if (r.shortcut()) scan(*r.shortcut(), residual, true, unit_name + ".shortcut.");
  }
  return out;
}

/// The input of segment s for unit input x (its chain's children before begin).
inline const nn::Tensor& segment_input(nn::Sequential& unit, const Segment& s, const nn::Tensor& x) {
  const nn::Tensor* t = &x;
  if (s.residual > 0) t = &unit.forward_range(0, s.residual, *t);
  if (s.begin > 0) t = &segment_chain(unit, s).forward_range(0, s.begin, *t);
  return *t;
}

/// The float target of segment s (its chain up to end) for float unit input x.
inline const nn::Tensor& segment_target(nn::Sequential& unit, const Segment& s, const nn::Tensor& x) {
  const nn::Tensor* t = &x;
  if (s.residual > 0) t = &unit.forward_range(0, s.residual, *t);
  return segment_chain(unit, s).forward_range(0, s.end, *t);
}

/// What one optimisation run needs: forward and backward of the unit on a batch, its layers and quantizers.
struct Problem {
  std::function<const nn::Tensor&(const nn::Tensor&)> forward;
  std::function<void(const nn::Tensor&)> backward;
  std::vector<WeightLayer*> layers;
  std::vector<ActQuantizer*> quantizers;  ///< learned and dropped (empty for layer units)
  const nn::Tensor* input_q = nullptr;    ///< quantized inputs of every calibration image
  const nn::Tensor* input_fp = nullptr;   ///< float inputs (QDrop), may be null when keep == 1
  const nn::Tensor* target = nullptr;     ///< float outputs
  const nn::Tensor* weight = nullptr;     ///< Fisher weights |g| + 1 (same shape as target), or null
};

/// L_rec of the current state over the first `limit` calibration images (0: all; no QDrop), batches of 128.
inline double full_loss(Problem& p, Index limit) {
  double sum = 0, denom = 0;
  nn::Tensor x, y;
  const Index n = limit > 0 ? std::min(limit, p.input_q->n()) : p.input_q->n();
  for (Index b = 0; b < n; b += 128) {
    const Index e = std::min(n, b + 128);
    slice_samples(*p.input_q, b, e, x);
    const nn::Tensor& out = p.forward(x);
    slice_samples(*p.target, b, e, y);
    sum += (out.data - y.data).squaredNorm();
    denom += rec_denominator(y);
  }
  return sum / denom;
}

/// T Adam steps of AdaRound (and activation scales) on problem p; fills the log's training fields.
inline void optimise(Problem& p, const ReconstructionOptions& o, std::uint64_t seed, UnitLog& log) {
  for (WeightLayer* l : p.layers) l->init_adaround();
  std::vector<nn::Parameter*> vs, scales;
  for (WeightLayer* l : p.layers) vs.push_back(&l->quantizer().v());
  std::uint64_t stream = 0;
  for (ActQuantizer* q : p.quantizers) {
    q->set_learn_scale(o.learn_act_scales);
    q->set_keep_probability(o.keep_probability);
    q->masks().reseed(mix64(seed ^ mix64(++stream)));
    if (o.learn_act_scales) scales.push_back(&q->scale_parameter());
  }
  nn::Adam adam_v(vs, o.weight_lr);
  nn::Adam adam_s(scales, o.scale_lr);
  const BetaSchedule beta{o.steps, o.warmup, o.beta_start, o.beta_end};
  std::mt19937_64 rng(seed);
  DropMask input_masks(mix64(seed + 0x51ull));
  const Index n = p.input_q->n(), B = o.batch_size;
  std::vector<Index> pool = nn::epoch_order(n), idx(static_cast<std::size_t>(B));
  nn::Tensor xq, xf, xin, y, w, grad;
  std::vector<float> mask;
  const Index tail_from = o.steps - std::max<Index>(1, o.steps / 10);
  double tail_sum = 0;
  Index tail_n = 0;
  for (Index t = 1; t <= o.steps; ++t) {
    for (Index i = 0; i < B; ++i) {  // B distinct images: a partial Fisher-Yates shuffle of the pool
      std::uniform_int_distribution<Index> pick(i, n - 1);
      std::swap(pool[static_cast<std::size_t>(i)], pool[static_cast<std::size_t>(pick(rng))]);
      idx[static_cast<std::size_t>(i)] = pool[static_cast<std::size_t>(i)];
    }
    gather_samples(*p.input_q, idx, xq);
    const nn::Tensor* in = &xq;
    if (o.keep_probability < 1.f) {
      gather_samples(*p.input_fp, idx, xf);
      mask.resize(static_cast<std::size_t>(xq.size()));
      input_masks.fill(o.keep_probability, xq.size(), mask.data());
      mix_by_mask(xq, xf, mask.data(), xin);
      in = &xin;
    }
    gather_samples(*p.target, idx, y);
    for (nn::Parameter* v : vs) v->zero_grad();
    for (nn::Parameter* s : scales) s->zero_grad();
    const nn::Tensor& out = p.forward(*in);
    if (!out.same_shape(y)) mixq::detail::fail("reconstruct: unit output and target shapes differ");
    const double denom = rec_denominator(y);
    grad.resize_like(y);
    double loss;
    if (p.weight) {
      gather_samples(*p.weight, idx, w);
      const Eigen::ArrayXf d = out.data.array() - y.data.array(), w2 = w.data.array().square();
      loss = static_cast<double>((d.square() * w2).sum()) / denom;
      grad.data.array() = d * w2 * static_cast<float>(2.0 / denom);
    } else {
      grad.data.array() = (out.data.array() - y.data.array());
      loss = static_cast<double>(grad.data.squaredNorm()) / denom;
      grad.data *= static_cast<float>(2.0 / denom);
    }
    p.backward(grad);
    double reg = 0;
    if (beta.regularized(t) && o.lambda > 0.f)
      for (WeightLayer* l : p.layers) reg += l->quantizer().regularizer(beta.beta(t), o.lambda, true);
    adam_v.step();
    if (!scales.empty()) {
      adam_s.set_lr(nn::cosine_lr(t - 1, o.steps, o.scale_lr));
      adam_s.step();
    }
    if (t > tail_from) {
      tail_sum += loss;
      ++tail_n;
    }
    if (t == o.steps) log.round_loss = reg;
  }
  log.train_loss = tail_n > 0 ? tail_sum / static_cast<double>(tail_n) : 0.0;
  double soft = 0, flipped = 0;
  Index weights = 0;
  for (WeightLayer* l : p.layers) {
    const auto k = l->quantizer().v().value.size();
    soft += l->quantizer().soft_share() * static_cast<double>(k);
    flipped += l->quantizer().flipped_share(l->weight()) * static_cast<double>(k);
    weights += k;
    l->set_rounding(Rounding::hard);
  }
  for (ActQuantizer* q : p.quantizers) {
    q->set_learn_scale(false);
    q->set_keep_probability(1.f);
  }
  log.weights = weights;
  log.soft_share = weights > 0 ? soft / static_cast<double>(weights) : 0.0;
  log.flipped_share = weights > 0 ? flipped / static_cast<double>(weights) : 0.0;
}

/// BRECQ's Fisher weights of units [a, b]: |dKL(softmax(z_fp) || softmax(z_q)) / dy| + 1 for each calibration
/// image, y the units' output in the quantized network (nearest rounding) and z_q the float network's logits
/// from there on.
inline void fisher_weights(PtqNetwork& q, PtqNetwork& fp, Index a, Index b, const nn::Tensor& input_q,
                           const nn::Tensor& target, nn::Tensor& out) {
  nn::Tensor x, yf, zf;
  const Index n = input_q.n(), units = fp.units();
  for (Index s = 0; s < n; s += 32) {
    const Index e = std::min(n, s + 32);
    slice_samples(input_q, s, e, x);
    nn::Tensor yq = q.root().forward_range(a, b + 1, x);
    slice_samples(target, s, e, yf);
    zf = b + 1 < units ? fp.root().forward_range(b + 1, units, yf) : yf;
    const nn::Tensor& zq = b + 1 < units ? fp.root().forward_range(b + 1, units, yq) : yq;
    nn::MatrixRM pq, pf;
    nn::detail::log_softmax(zq, 1.f, pq);
    nn::detail::log_softmax(zf, 1.f, pf);
    nn::Tensor dz(zq.n(), zq.c(), zq.h(), zq.w());
    dz.matrix() = (pq.array().exp() - pf.array().exp()).matrix() / static_cast<float>(e - s);
    const nn::Tensor& g = b + 1 < units ? fp.root().backward_range(b + 1, units, dz) : dz;
    nn::Tensor gi = g;
    gi.data = gi.data.array().abs() + 1.f;
    store_samples(gi, s, n, out);
  }
}

}  // namespace detail

/// Reconstructs the quantized network `q` (calibrated: calibrate_rtn) unit by unit against the float network `fp`
/// (the same model, set_float) on the calibration `images`. Block granularity reconstructs each group of `groups`
/// (single_units(): BRECQ/QDrop; merged groups: MRECG); layer granularity ignores the groups and reconstructs each
/// weight layer with its following ops (AdaRound). Ends with hard-rounded weights and QDrop off. Options and
/// groups are checked before anything changes.
inline ReconstructionReport reconstruct(PtqNetwork& q, PtqNetwork& fp, const nn::Tensor& images,
                                        const UnitGroups& groups, const ReconstructionOptions& o) {
  o.validate(images.n());
  if (q.units() != fp.units()) mixq::detail::fail("reconstruct: networks have ", q.units(), " and ", fp.units(), " units");
  check_groups(groups, q.units(), "reconstruct: groups");
  for (WeightLayer* l : q.weight_layers())
    if (!l->quantizer().calibrated()) mixq::detail::fail("reconstruct: the quantized network is not calibrated (calibrate_rtn)");
  ReconstructionReport report;
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = detail::cpu_seconds();
  nn::Tensor xq = images, xf = images, target, next_q, weights;
  std::uint64_t seed_counter = 0;
  auto unit_seed = [&] { return detail::mix64(o.seed * 0x9e3779b97f4a7c15ull + (++seed_counter)); };
  auto finish_log = [&](UnitLog& log, std::chrono::steady_clock::time_point ts, double cs) {
    log.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    log.cpu_seconds = detail::cpu_seconds() - cs;
    report.steps += o.steps;
    if (o.on_unit) o.on_unit(log);
    report.units.push_back(log);
  };
  const UnitGroups order = o.granularity == Granularity::block ? groups : single_units(q.units());
  for (const auto& group : order) {
    const Index a = group.first, b = group.second;
    if (o.granularity == Granularity::block) {
      const auto ts = std::chrono::steady_clock::now();
      const double cs = detail::cpu_seconds();
      UnitLog log;
      log.first_unit = a;
      log.last_unit = b;
      for (Index u = a; u <= b; ++u) log.name += (u > a ? "+" : "") + q.unit_name(u);
      run_units(fp, a, b, xf, target);
      detail::Problem p;
      p.layers = q.weight_layers(a, b);
      p.quantizers = q.act_quantizers(a, b);
      p.input_q = &xq;
      p.input_fp = &xf;
      p.target = &target;
      q.unit(a).set_input_grad(false);
      p.forward = [&](const nn::Tensor& x) -> const nn::Tensor& { return q.root().forward_range(a, b + 1, x); };
      p.backward = [&](const nn::Tensor& dy) { q.root().backward_range(a, b + 1, dy); };
      log.rtn_loss = detail::full_loss(p, o.log_images);
      if (o.fisher) {
        detail::fisher_weights(q, fp, a, b, xq, target, weights);
        p.weight = &weights;
      }
      detail::optimise(p, o, unit_seed(), log);
      q.unit(a).set_input_grad(a > 0);
      log.final_loss = detail::full_loss(p, o.log_images);
      run_units(q, a, b, xq, next_q);
      std::swap(xq, next_q);
      std::swap(xf, target);
      finish_log(log, ts, cs);
      continue;
    }
    // layer units inside base unit a (== b)
    nn::Sequential& uq = q.unit(a);
    nn::Sequential& uf = fp.unit(a);
    for (const detail::Segment& s : detail::layer_segments(uq, q.unit_name(a))) {
      const auto ts = std::chrono::steady_clock::now();
      const double cs = detail::cpu_seconds();
      UnitLog log;
      log.name = s.name;
      log.first_unit = log.last_unit = a;
      nn::Tensor seg_in, seg_target, part;
      for (Index bb = 0; bb < images.n(); bb += 128) {
        const Index e = std::min(images.n(), bb + 128);
        detail::slice_samples(xq, bb, e, part);
        detail::store_samples(detail::segment_input(uq, s, part), bb, images.n(), seg_in);
        detail::slice_samples(xf, bb, e, part);
        detail::store_samples(detail::segment_target(uf, s, part), bb, images.n(), seg_target);
      }
      nn::Sequential& chain = detail::segment_chain(uq, s);
      detail::Problem p;
      p.layers = {dynamic_cast<WeightLayer*>(&chain[s.begin])};
      p.input_q = &seg_in;
      p.target = &seg_target;
      const bool had_input_grad = chain[s.begin].input_grad();
      chain[s.begin].set_input_grad(false);
      p.forward = [&](const nn::Tensor& x) -> const nn::Tensor& { return chain.forward_range(s.begin, s.end, x); };
      p.backward = [&](const nn::Tensor& dy) { chain.backward_range(s.begin, s.end, dy); };
      log.rtn_loss = detail::full_loss(p, o.log_images);
      detail::optimise(p, o, unit_seed(), log);
      chain[s.begin].set_input_grad(had_input_grad);
      log.final_loss = detail::full_loss(p, o.log_images);
      finish_log(log, ts, cs);
    }
    q.unit(a).set_input_grad(a > 0);
    run_units(q, a, a, xq, next_q);
    run_units(fp, a, a, xf, target);
    std::swap(xq, next_q);
    std::swap(xf, target);
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report.cpu_seconds = detail::cpu_seconds() - c0;
  return report;
}

}  // namespace mixq::ptq
