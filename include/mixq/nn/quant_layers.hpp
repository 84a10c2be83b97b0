#pragma once
/// @file
/// Quantized layers for quantization-aware training with LSQ (Esser et al., ICLR 2020): QuantConv2d and
/// QuantLinear fake-quantize their weight (signed, per-channel or per-tensor) and their input activation
/// (unsigned after ReLU, or signed) with learned step sizes. One step-size parameter is kept per candidate
/// bit-width, so one layer serves every bit-width (LIMPQ's importance indicators, one-shot weight coupling);
/// the active (w_bits, a_bits) is chosen at run time, 32 meaning float (no quantizer).

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "mixq/kernels.hpp"
#include "mixq/nn/layers.hpp"
#include "mixq/quant/binary.hpp"
#include "mixq/quant/lsq.hpp"
#include "mixq/quant/spec.hpp"

namespace mixq::nn {

/// Bit-width meaning "not quantized".
inline constexpr int float_bits = 32;

/// The shape facts of a quantized layer that a cost model needs (filled by the last forward).
struct LayerShape {
  std::string kind;           ///< "conv" or "linear"
  Index in_channels = 0;      ///< input channels (features for linear)
  Index out_channels = 0;     ///< output channels (features for linear)
  Index kernel = 1;           ///< square kernel size (1 for linear)
  Index stride = 1;
  Index padding = 0;
  Index groups = 1;
  Index in_h = 1, in_w = 1;   ///< input spatial size
  Index out_h = 1, out_w = 1; ///< output spatial size
  bool has_bias = false;
  /// Weight elements (bias excluded): out * in / groups * k * k.
  Index weight_params() const { return out_channels * (in_channels / groups) * kernel * kernel; }
  /// Multiply-accumulates per sample: weight_params * out_h * out_w.
  Index macs() const { return weight_params() * out_h * out_w; }
};

/// How an LSQ step size is initialised from the first tensor it sees (mixq/quant/lsq.hpp).
enum class StepInit {
  lsq,          ///< 2 * mean|x| / sqrt(qmax) (Esser et al., 2020)
  three_sigma,  ///< max(|mu - 3 sigma|, |mu + 3 sigma|) / 2^(b-1) (LIMPQ, one-shot weight coupling)
};

/// LSQ quantizer of one tensor with one step-size parameter per candidate bit-width. `channels` step sizes
/// per bit-width (1 = per tensor). A step size of 0 means "not initialised": the next forward initialises it
/// from the data (per channel for per-channel quantizers) with the rule set by set_step_init().
///
/// Signed 1-bit is binary (mixq/quant/binary.hpp): y = alpha * sign(x), alpha the 1-bit "step size", learned
/// with LSQ's gradient (sum dy * sign(x), scaled by 1 / sqrt(elements_per_step)) and initialised to mean|x|
/// (XNOR-Net's L2-optimal alpha, whatever set_step_init() says); the input gradient passes where |x| <= alpha.
/// Unsigned 1-bit stays the uniform grid {0, step}.
class LsqQuantizer {
 public:
  LsqQuantizer() = default;
  /// `name` prefixes the parameter names ("weight" gives "weight_step_size_4bit").
  LsqQuantizer(std::string name, bool is_signed, Index channels, std::vector<int> candidate_bits)
      : name_(std::move(name)), signed_(is_signed), channels_(channels), bits_(std::move(candidate_bits)) {
    std::sort(bits_.begin(), bits_.end());
    bits_.erase(std::unique(bits_.begin(), bits_.end()), bits_.end());
    for (int b : bits_) {
      if (b < 1 || b > 16) mixq::detail::fail("LsqQuantizer '", name_, "': candidate bit-width must be in [1, 16], got ", b);
      steps_.emplace(b, Parameter(name_ + "_step_size_" + std::to_string(b) + "bit", {channels}, true, false));
    }
  }
  const std::vector<int>& candidate_bits() const { return bits_; }
  bool has_bits(int bits) const { return steps_.count(bits) != 0; }
  bool is_signed() const { return signed_; }
  /// Whether `bits` is the binary grid {-alpha, +alpha} (signed 1-bit).
  bool is_binary(int bits) const { return signed_ && bits == 1; }
  void set_signed(bool s) { signed_ = s; }
  Index channels() const { return channels_; }
  std::int32_t qmin(int bits) const { return spec(bits).qmin(); }
  std::int32_t qmax(int bits) const { return spec(bits).qmax(); }
  /// The step-size parameter of `bits`; throws mixq::error if `bits` is not a candidate.
  Parameter& step_size(int bits) {
    auto it = steps_.find(bits);
    if (it == steps_.end()) mixq::detail::fail("LsqQuantizer '", name_, "': ", bits, " is not a candidate bit-width");
    return it->second;
  }
  /// Whether the step sizes of `bits` were set (fresh ones are all zero). A step size the optimiser drove to
  /// zero or below is clamped to 1e-8 by forward, not re-initialised; a NaN or infinite one is an error there.
  bool initialized(int bits) { return (step_size(bits).value.array() != 0.f).any(); }
  void parameters(std::vector<Parameter*>& out) {
    for (auto& [b, p] : steps_) out.push_back(&p);
  }

  /// Initialises the step sizes of `bits` from x ([outer][channels][inner] layout) with LSQ's rule.
  void initialize(int bits, const float* x, Index outer, Index inner) {
    Parameter& s = step_size(bits);
    if (is_binary(bits)) {
      const std::vector<float> a = binary_mean_abs_alpha(x, outer, channels_, inner);
      for (Index c = 0; c < channels_; ++c) s.value[c] = std::max(a[static_cast<std::size_t>(c)], 1e-8f);
      return;
    }
    QuantSpec q = spec(bits);
    const Shape shape{static_cast<std::int64_t>(outer), static_cast<std::int64_t>(channels_),
                      static_cast<std::int64_t>(inner)};
    if (channels_ > 1) {
      q.granularity = Granularity::per_channel;
      q.axis = 1;
    }
    const std::vector<float> init =
        init_ == StepInit::lsq ? lsq_init_step_sizes(x, shape, q) : three_sigma_step_sizes(x, shape, q);
    for (Index c = 0; c < channels_; ++c) s.value[c] = std::max(init[static_cast<std::size_t>(c)], 1e-8f);
  }
  /// The initialisation rule for step sizes not yet initialised (default StepInit::lsq).
  void set_step_init(StepInit init) { init_ = init; }

  /// y = fake_quant(x) at `bits` for the [outer][channels][inner] tensor x (initialising if needed).
  void forward(int bits, const float* x, float* y, Index outer, Index inner) {
    if (!initialized(bits)) initialize(bits, x, outer, inner);
    Parameter& s = step_size(bits);
    for (Index c = 0; c < channels_; ++c) {
      if (!std::isfinite(s.value[c]))
        mixq::detail::fail("LsqQuantizer '", name_, "': the ", bits, "-bit step size of channel ", c, " is ",
                           s.value[c], " (training diverged)");
      s.value[c] = std::max(s.value[c], 1e-8f);
    }
    if (is_binary(bits)) {
      binary_forward(x, y, outer, channels_, inner, s.value.data());
      return;
    }
    const std::int32_t lo = qmin(bits), hi = qmax(bits);
    if (channels_ == 1) {
      const Index n = outer * inner;
      parallel_for(outer, [&](Index b, Index e, int) {
        const Index per = n / std::max<Index>(1, outer);
        kernels::fake_quant(x + b * per, y + b * per, (e - b) * per, s.value[0], 0, lo, hi);
      });
    } else {
      kernels::fake_quant_per_channel(x, y, outer, channels_, inner, s.value.data(), nullptr, lo, hi);
    }
  }

  /// dx = straight-through gradient; accumulates g * dL/dstep into the step size of `bits`, with LSQ's
  /// gradient scale g = 1 / sqrt(elements_per_step * qmax) (elements_per_step: inner for per-channel,
  /// features of one sample for activations).
  void backward(int bits, const float* x, const float* dy, float* dx, Index outer, Index inner,
                Index elements_per_step) {
    Parameter& s = step_size(bits);
    const std::int32_t lo = qmin(bits), hi = qmax(bits);
    const double g = 1.0 / std::sqrt(static_cast<double>(elements_per_step) * static_cast<double>(hi));
    if (is_binary(bits)) {
      dscale_.resize(static_cast<std::size_t>(channels_));
      binary_backward(x, dy, dx, outer, channels_, inner, s.value.data(), dscale_.data());
      for (Index c = 0; c < channels_; ++c) s.grad[c] += static_cast<float>(dscale_[static_cast<std::size_t>(c)] * g);
      s.has_grad = true;
      return;
    }
    if (channels_ == 1) {
      // One partial sum per chunk, added in chunk order: the same bits for any thread count.
      part_.assign(static_cast<std::size_t>(std::min(outer, kParallelChunks)), 0.0);
      const Index per = inner * channels_;
      parallel_for_chunks(outer, kParallelChunks, [&](Index b, Index e, Index chunk, int) {
        part_[static_cast<std::size_t>(chunk)] =
            kernels::lsq_backward(x + b * per, dy + b * per, dx + b * per, (e - b) * per, s.value[0], 0, lo, hi, nullptr);
      });
      const std::vector<double>& part = part_;
      double d = 0;
      for (double p : part) d += p;
      s.grad[0] += static_cast<float>(d * g);
    } else {
      dscale_.resize(static_cast<std::size_t>(channels_));
      kernels::lsq_backward_per_channel(x, dy, dx, outer, channels_, inner, s.value.data(), nullptr, lo, hi,
                                        dscale_.data(), nullptr);
      for (Index c = 0; c < channels_; ++c) s.grad[c] += static_cast<float>(dscale_[static_cast<std::size_t>(c)] * g);
    }
    s.has_grad = true;
  }

 private:
  QuantSpec spec(int bits) const {
    QuantSpec q;
    q.bit_width = bits;
    q.is_signed = signed_;
    q.binary = is_binary(bits);  // qmin -1, qmax +1
    return q;
  }
  std::string name_;
  bool signed_ = true;
  Index channels_ = 1;
  std::vector<int> bits_;
  std::map<int, Parameter> steps_;
  std::vector<double> dscale_, part_;
  StepInit init_ = StepInit::lsq;
};

/// Options of a quantized layer.
struct QuantOptions {
  std::vector<int> candidate_bits{2, 3, 4, 5, 6, 8};  ///< bit-widths with their own step sizes
  bool per_channel_weights = true;                    ///< one weight step size per output channel
  bool signed_activations = false;                    ///< false: input codes [0, 2^b - 1] (after ReLU)
  bool fixed_precision = false;  ///< excluded from mixed-precision search (first conv, last FC)
  int fixed_bits = 8;            ///< bit-width of a fixed-precision layer whenever the network is quantized
};

/// The quantization side of QuantConv2d and QuantLinear, common to both: active bit-widths and quantizers.
class QuantLayer {
 public:
  virtual ~QuantLayer() = default;
  /// Sets the active weight and input bit-widths (each a candidate or 32 = float); throws mixq::error naming
  /// the value otherwise.
  void set_bits(int w_bits, int a_bits) {
    check_bits("w_bits", w_bits, weight_q_);
    check_bits("a_bits", a_bits, input_q_);
    w_bits_ = w_bits;
    a_bits_ = a_bits;
  }
  int w_bits() const { return w_bits_; }
  int a_bits() const { return a_bits_; }
  const QuantOptions& quant_options() const { return opt_; }
  bool fixed_precision() const { return opt_.fixed_precision; }
  LsqQuantizer& weight_quantizer() { return weight_q_; }
  LsqQuantizer& input_quantizer() { return input_q_; }
  /// The layer as a Module.
  virtual Module& module() = 0;
  /// The float (master) weight.
  virtual Parameter& master_weight() = 0;
  /// Shape facts of the last forward (spatial sizes are 0 before it).
  virtual LayerShape layer_shape() const = 0;

 protected:
  void init_quant(const QuantOptions& opt, Index out_channels) {
    opt_ = opt;
    weight_q_ = LsqQuantizer("weight", true, opt.per_channel_weights ? out_channels : 1, opt.candidate_bits);
    input_q_ = LsqQuantizer("input", opt.signed_activations, 1, opt.candidate_bits);
    if (opt.fixed_precision && !weight_q_.has_bits(opt.fixed_bits))
      mixq::detail::fail("QuantOptions: fixed_bits=", opt.fixed_bits, " is not a candidate bit-width");
  }
  static void check_bits(const char* what, int bits, LsqQuantizer& q) {
    if (bits != float_bits && !q.has_bits(bits))
      mixq::detail::fail("set_bits: ", what, "=", bits, " is neither 32 nor a candidate bit-width");
  }
  void quant_parameters(std::vector<Parameter*>& out) {
    weight_q_.parameters(out);
    input_q_.parameters(out);
  }

  // The quantized forward and backward of QuantConv2d and QuantLinear: the float layer's kernels run on the
  // fake-quantized operands, and the LSQ backward maps their gradients back to the float ones.
  // The input the forward kernel reads: x, or x fake-quantized into xq_ when a_bits < 32.
  const Tensor& forward_input(const Tensor& x) {
    if (a_bits_ == float_bits) return x;
    xq_.resize_like(x);
    input_q_.forward(a_bits_, x.ptr(), xq_.ptr(), x.n(), x.sample_size());
    return xq_;
  }
  // The weight the forward kernel reads: w, or w fake-quantized into wq_ when w_bits < 32.
  const float* forward_weight(const Parameter& w) {
    if (w_bits_ == float_bits) return w.value.data();
    wq_.resize(w.value.size());
    weight_q_.forward(w_bits_, w.value.data(), wq_.data(), 1, w.value.size() / weight_q_.channels());
    return wq_.data();
  }
  // The backward kernel's operands: its input and weight as in the forward; where its weight gradient goes (w.grad,
  // or dwq_ for the LSQ backward when w_bits < 32) and its input gradient (dxq_ when a_bits < 32, else dx when
  // the input's gradient is wanted, else nowhere).
  struct BackwardOperands {
    const Tensor* in;
    const float* w;
    float* dw;
    Tensor* dx;
  };
  BackwardOperands backward_operands(Parameter& w, const Tensor* input, bool input_grad, Tensor& dx) {
    const bool aq = a_bits_ != float_bits, wq = w_bits_ != float_bits;
    BackwardOperands o{aq ? &xq_ : input, wq ? wq_.data() : w.value.data(), w.grad.data(), nullptr};
    if (wq) {
      dwq_.setZero(w.value.size());
      o.dw = dwq_.data();
    }
    if (input_grad || aq) o.dx = aq ? &dxq_ : &dx;
    return o;
  }
  // After the backward kernel: the LSQ backward of the weight (added to w.grad) and of the input (into dx).
  void finish_backward(Parameter& w, Parameter* bias, const Tensor& input, Tensor& dx) {
    if (w_bits_ != float_bits) {
      const Index inner = w.value.size() / weight_q_.channels();
      dw_tmp_.resize(w.value.size());
      weight_q_.backward(w_bits_, w.value.data(), dwq_.data(), dw_tmp_.data(), 1, inner, inner);
      w.grad += dw_tmp_;
    }
    w.has_grad = true;
    if (bias) bias->has_grad = true;
    if (a_bits_ != float_bits) {
      dx.resize_like(input);
      input_q_.backward(a_bits_, input.ptr(), dxq_.ptr(), dx.ptr(), input.n(), input.sample_size(),
                        input.sample_size());
    }
  }

  QuantOptions opt_;
  LsqQuantizer weight_q_, input_q_;
  int w_bits_ = float_bits, a_bits_ = float_bits;
  Eigen::VectorXf wq_, dwq_, dw_tmp_;
  Tensor xq_, dxq_;
};

/// Conv2d with LSQ fake quantization of weight and input. At (32, 32) it runs exactly as Conv2d.
class QuantConv2d : public Conv2d, public QuantLayer {
 public:
  QuantConv2d(Index in_channels, Index out_channels, Index kernel, Index stride = 1, Index padding = 0,
              Index groups = 1, bool bias = false, std::uint64_t seed = 0, const QuantOptions& opt = {})
      : Conv2d(in_channels, out_channels, kernel, stride, padding, groups, bias, seed) {
    init_quant(opt, out_channels);
  }
  std::string kind() const override { return "QuantConv2d"; }
  void own_parameters(std::vector<Parameter*>& out) override {
    Conv2d::own_parameters(out);
    quant_parameters(out);
  }
  Module& module() override { return *this; }
  Parameter& master_weight() override { return weight_; }
  LayerShape layer_shape() const override {
    LayerShape s;
    s.kind = "conv";
    s.in_channels = g_.in_channels;
    s.out_channels = g_.out_channels;
    s.kernel = g_.kernel;
    s.stride = g_.stride;
    s.padding = g_.padding;
    s.groups = g_.groups;
    s.in_h = g_.in_h;
    s.in_w = g_.in_w;
    s.out_h = g_.out_h;
    s.out_w = g_.out_w;
    s.has_bias = has_bias_;
    return s;
  }
  /// The weight as used by the last forward (fake-quantized when w_bits < 32).
  Eigen::VectorXf effective_weight() {
    if (w_bits_ == float_bits) return weight_.value;
    Eigen::VectorXf w(weight_.value.size());
    weight_q_.forward(w_bits_, weight_.value.data(), w.data(), 1, weight_.value.size() / weight_q_.channels());
    return w;
  }

 protected:
  const Tensor& forward_impl(const Tensor& x) override {
    if (w_bits_ == float_bits && a_bits_ == float_bits) return Conv2d::forward_impl(x);
    set_geometry(x);
    input_ = &x;
    const Tensor& in = forward_input(x);
    const float* w = forward_weight(weight_);
    detail::conv2d_forward(g_, in, w, has_bias_ ? bias_.value.data() : nullptr, y_, scratch_);
    return y_;
  }
  const Tensor& backward_impl(const Tensor& dy) override {
    if (w_bits_ == float_bits && a_bits_ == float_bits) return Conv2d::backward_impl(dy);
    const BackwardOperands o = backward_operands(weight_, input_, input_grad_, dx_);
    detail::conv2d_backward(g_, *o.in, o.w, dy, o.dw, has_bias_ ? bias_.grad.data() : nullptr, o.dx, scratch_);
    finish_backward(weight_, has_bias_ ? &bias_ : nullptr, *input_, dx_);
    return dx_;
  }
};

/// Linear with LSQ fake quantization of weight and input. At (32, 32) it runs exactly as Linear.
class QuantLinear : public Linear, public QuantLayer {
 public:
  QuantLinear(Index in_features, Index out_features, bool bias = true, std::uint64_t seed = 0,
              const QuantOptions& opt = {})
      : Linear(in_features, out_features, bias, seed) {
    init_quant(opt, out_features);
  }
  std::string kind() const override { return "QuantLinear"; }
  void own_parameters(std::vector<Parameter*>& out) override {
    Linear::own_parameters(out);
    quant_parameters(out);
  }
  Module& module() override { return *this; }
  Parameter& master_weight() override { return weight_; }
  LayerShape layer_shape() const override {
    LayerShape s;
    s.kind = "linear";
    s.in_channels = in_;
    s.out_channels = out_;
    s.has_bias = has_bias_;
    return s;
  }

 protected:
  const Tensor& forward_impl(const Tensor& x) override {
    if (w_bits_ == float_bits && a_bits_ == float_bits) return Linear::forward_impl(x);
    check_input(x);
    input_ = &x;
    const Tensor& in = forward_input(x);
    const float* w = forward_weight(weight_);
    detail::linear_forward(in, w, has_bias_ ? bias_.value.data() : nullptr, out_, y_);
    return y_;
  }
  const Tensor& backward_impl(const Tensor& dy) override {
    if (w_bits_ == float_bits && a_bits_ == float_bits) return Linear::backward_impl(dy);
    const BackwardOperands o = backward_operands(weight_, input_, input_grad_, dx_);
    detail::linear_backward(*o.in, o.w, dy, out_, o.dw, has_bias_ ? bias_.grad.data() : nullptr, o.dx);
    finish_backward(weight_, has_bias_ ? &bias_ : nullptr, *input_, dx_);
    return dx_;
  }
};

}  // namespace mixq::nn
