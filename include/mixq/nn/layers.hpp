#pragma once
/// @file
/// Float layers with hand-written forward and backward: Conv2d (nn/conv.hpp, included here), Linear, ReLU, ReLU6,
/// MaxPool2d, AvgPool2d, GlobalAvgPool2d, Flatten, and Residual (a main branch plus an optional shortcut, summed,
/// then an optional activation).

#include "mixq/detail/eigen.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "mixq/nn/conv.hpp"
#include "mixq/nn/module.hpp"

namespace mixq::nn {

/// Activation applied after a residual sum.
enum class Activation { none, relu, relu6 };

namespace detail {

/// Y = X W^T + b (X: N x in, W: out x in), rows of X in parallel.
inline void linear_forward(const Tensor& x, const float* w, const float* bias, Index out_features, Tensor& y) {
  const Index N = x.n(), F = x.sample_size();
  y.resize(N, out_features);
  parallel_for(N, [&](Index b, Index e, int) {
    gemm(false, true, e - b, out_features, F, x.ptr() + b * F, F, w, F, false, y.ptr() + b * out_features, out_features);
    MapRM Y(y.ptr() + b * out_features, e - b, out_features);
    if (bias) Y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias, out_features);
  });
}

/// dw += dY^T X, dbias += column sums of dY, dx = dY W.
inline void linear_backward(const Tensor& x, const float* w, const Tensor& dy, Index out_features, float* dw,
                            float* dbias, Tensor* dx) {
  const Index N = x.n(), F = x.sample_size();
  ConstMapRM dY(dy.ptr(), N, out_features);
  parallel_for(out_features, [&](Index b, Index e, int) {
    gemm(true, false, e - b, F, N, dy.ptr() + b, out_features, x.ptr(), F, true, dw + b * F, F);
    if (dbias)
      for (Index o = b; o < e; ++o) dbias[o] += dY.col(o).sum();
  });
  if (dx) {
    dx->resize_like(x);
    parallel_for(N, [&](Index b, Index e, int) {
      gemm(false, false, e - b, F, out_features, dy.ptr() + b * out_features, out_features, w, F, false, dx->ptr() + b * F, F);
    });
  }
}

}  // namespace detail

/// Fully connected layer y = x W^T + b on (N, F, 1, 1) or any (N, C, H, W) input taken as N x (C*H*W).
class Linear : public Module {
 public:
  Linear(Index in_features, Index out_features, bool bias = true, std::uint64_t seed = 0)
      : in_(in_features), out_(out_features) {
    if (in_features <= 0 || out_features <= 0)
      mixq::detail::fail("Linear: invalid shape in=", in_features, " out=", out_features);
    weight_ = Parameter("weight", {out_features, in_features}, true, true);
    std::mt19937_64 rng(seed);
    // PyTorch's default: uniform(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
    const float bound = 1.f / std::sqrt(static_cast<float>(in_features));
    std::uniform_real_distribution<float> u(-bound, bound);
    for (Index i = 0; i < weight_.value.size(); ++i) weight_.value[i] = u(rng);
    has_bias_ = bias;
    if (bias) {
      bias_ = Parameter("bias", {out_features}, true, false);
      for (Index i = 0; i < out_features; ++i) bias_.value[i] = u(rng);
    }
  }
  std::string kind() const override { return "Linear"; }
  void own_parameters(std::vector<Parameter*>& out) override {
    out.push_back(&weight_);
    if (has_bias_) out.push_back(&bias_);
  }
  const Tensor& output() const override { return y_; }
  Parameter& weight() { return weight_; }
  Parameter* bias() { return has_bias_ ? &bias_ : nullptr; }
  Index in_features() const { return in_; }
  Index out_features() const { return out_; }

 protected:
  void check_input(const Tensor& x) const {
    if (x.sample_size() != in_)
      mixq::detail::fail("Linear: input has ", x.sample_size(), " features, expected ", in_);
  }
  const Tensor& forward_impl(const Tensor& x) override {
    check_input(x);
    input_ = &x;
    detail::linear_forward(x, weight_.value.data(), has_bias_ ? bias_.value.data() : nullptr, out_, y_);
    return y_;
  }
  const Tensor& backward_impl(const Tensor& dy) override {
    detail::linear_backward(*input_, weight_.value.data(), dy, out_, weight_.grad.data(),
                            has_bias_ ? bias_.grad.data() : nullptr, input_grad_ ? &dx_ : nullptr);
    weight_.has_grad = true;
    if (has_bias_) bias_.has_grad = true;
    return dx_;
  }

  Index in_, out_;
  Parameter weight_, bias_;
  bool has_bias_ = false;
  const Tensor* input_ = nullptr;
  Tensor y_, dx_;
};

namespace detail {
/// y = clamp(x, 0, upper) elementwise (upper = +inf for ReLU); parallel over samples.
inline void clamp_forward(const Tensor& x, Tensor& y, float upper) {
  y.resize_like(x);
  const Index S = x.sample_size();
  parallel_for(x.n(), [&](Index b, Index e, int) {
    auto xa = Eigen::Map<const Eigen::ArrayXf>(x.ptr() + b * S, (e - b) * S);
    auto ya = Eigen::Map<Eigen::ArrayXf>(y.ptr() + b * S, (e - b) * S);
    if (std::isinf(upper))
      ya = xa.max(0.f);
    else
      ya = xa.max(0.f).min(upper);
  });
}
/// dx = dy where 0 < y < upper (y is the clamp output), else 0.
inline void clamp_backward(const Tensor& y, const Tensor& dy, Tensor& dx, float upper) {
  dx.resize_like(y);
  const Index S = y.sample_size();
  parallel_for(y.n(), [&](Index b, Index e, int) {
    auto ya = Eigen::Map<const Eigen::ArrayXf>(y.ptr() + b * S, (e - b) * S);
    auto dya = Eigen::Map<const Eigen::ArrayXf>(dy.ptr() + b * S, (e - b) * S);
    auto dxa = Eigen::Map<Eigen::ArrayXf>(dx.ptr() + b * S, (e - b) * S);
    if (std::isinf(upper))
      dxa = (ya > 0.f).select(dya, 0.f);
    else
      dxa = (ya > 0.f && ya < upper).select(dya, 0.f);
  });
}
}  // namespace detail

/// max(x, 0).
class ReLU : public Module {
 public:
  std::string kind() const override { return "ReLU"; }
  const Tensor& output() const override { return y_; }

 protected:
  const Tensor& forward_impl(const Tensor& x) override {
    detail::clamp_forward(x, y_, std::numeric_limits<float>::infinity());
    return y_;
  }
  const Tensor& backward_impl(const Tensor& dy) override {
    if (input_grad_) detail::clamp_backward(y_, dy, dx_, std::numeric_limits<float>::infinity());
    return dx_;
  }
  Tensor y_, dx_;
};

/// min(max(x, 0), 6).
class ReLU6 : public Module {
 public:
  std::string kind() const override { return "ReLU6"; }
  const Tensor& output() const override { return y_; }

 protected:
  const Tensor& forward_impl(const Tensor& x) override {
    detail::clamp_forward(x, y_, 6.f);
    return y_;
  }
  const Tensor& backward_impl(const Tensor& dy) override {
    if (input_grad_) detail::clamp_backward(y_, dy, dx_, 6.f);
    return dx_;
  }
  Tensor y_, dx_;
};

/// Max pooling with a square window (no padding); the gradient goes to the first maximum of each window.
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Index kernel, Index stride = 0) : k_(kernel), s_(stride > 0 ? stride : kernel) {
    if (kernel <= 0) mixq::detail::fail("MaxPool2d: kernel must be positive, got ", kernel);
  }
  std::string kind() const override { return "MaxPool2d"; }
  const Tensor& output() const override { return y_; }

 protected:
  const Tensor& forward_impl(const Tensor& x) override {
    const Index OH = (x.h() - k_) / s_ + 1, OW = (x.w() - k_) / s_ + 1;
    if (OH <= 0 || OW <= 0) mixq::detail::fail("MaxPool2d: input ", x.h(), "x", x.w(), " smaller than kernel ", k_);
    in_shape_ = x.shape;
    y_.resize(x.n(), x.c(), OH, OW);
    argmax_.resize(static_cast<std::size_t>(y_.size()));
    const Index planes = x.n() * x.c();
    parallel_for(planes, [&](Index b, Index e, int) {
      for (Index pl = b; pl < e; ++pl) {
        const float* xp = x.ptr() + pl * x.h() * x.w();
        for (Index oy = 0; oy < OH; ++oy)
          for (Index ox = 0; ox < OW; ++ox) {
            Index best = (oy * s_) * x.w() + ox * s_;
            for (Index ky = 0; ky < k_; ++ky)
              for (Index kx = 0; kx < k_; ++kx) {
                const Index i = (oy * s_ + ky) * x.w() + ox * s_ + kx;
                if (xp[i] > xp[best]) best = i;
              }
            const Index o = pl * OH * OW + oy * OW + ox;
            y_.data[o] = xp[best];
            argmax_[static_cast<std::size_t>(o)] = static_cast<std::int32_t>(best);
          }
      }
    });
    return y_;
  }
  const Tensor& backward_impl(const Tensor& dy) override {
    if (!input_grad_) return dx_;
    dx_.resize(in_shape_[0], in_shape_[1], in_shape_[2], in_shape_[3]);
    dx_.set_zero();
    const Index planes = dx_.n() * dx_.c(), in_plane = dx_.h() * dx_.w(), out_plane = y_.h() * y_.w();
    for (Index pl = 0; pl < planes; ++pl)
      for (Index o = 0; o < out_plane; ++o)
        dx_.data[pl * in_plane + argmax_[static_cast<std::size_t>(pl * out_plane + o)]] += dy.data[pl * out_plane + o];
    return dx_;
  }
  Index k_, s_;
  std::array<Index, 4> in_shape_{};
  std::vector<std::int32_t> argmax_;
  Tensor y_, dx_;
};

/// Average pooling with a square window (no padding).
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Index kernel, Index stride = 0) : k_(kernel), s_(stride > 0 ? stride : kernel) {
    if (kernel <= 0) mixq::detail::fail("AvgPool2d: kernel must be positive, got ", kernel);
  }
  std::string kind() const override { return "AvgPool2d"; }
  const Tensor& output() const override { return y_; }

 protected:
  const Tensor& forward_impl(const Tensor& x) override {
    const Index OH = (x.h() - k_) / s_ + 1, OW = (x.w() - k_) / s_ + 1;
    if (OH <= 0 || OW <= 0) mixq::detail::fail("AvgPool2d: input ", x.h(), "x", x.w(), " smaller than kernel ", k_);
    in_shape_ = x.shape;
    y_.resize(x.n(), x.c(), OH, OW);
    const float inv = 1.f / static_cast<float>(k_ * k_);
    const Index planes = x.n() * x.c();
    for (Index pl = 0; pl < planes; ++pl) {
      const float* xp = x.ptr() + pl * x.h() * x.w();
      for (Index oy = 0; oy < OH; ++oy)
        for (Index ox = 0; ox < OW; ++ox) {
          float acc = 0.f;
          for (Index ky = 0; ky < k_; ++ky)
            for (Index kx = 0; kx < k_; ++kx) acc += xp[(oy * s_ + ky) * x.w() + ox * s_ + kx];
          y_.data[pl * OH * OW + oy * OW + ox] = acc * inv;
        }
    }
    return y_;
  }
  const Tensor& backward_impl(const Tensor& dy) override {
    if (!input_grad_) return dx_;
    dx_.resize(in_shape_[0], in_shape_[1], in_shape_[2], in_shape_[3]);
    dx_.set_zero();
    const float inv = 1.f / static_cast<float>(k_ * k_);
    const Index planes = dx_.n() * dx_.c(), OH = y_.h(), OW = y_.w(), W = dx_.w();
    for (Index pl = 0; pl < planes; ++pl) {
      float* dp = dx_.ptr() + pl * dx_.h() * W;
      for (Index oy = 0; oy < OH; ++oy)
        for (Index ox = 0; ox < OW; ++ox) {
          const float g = dy.data[pl * OH * OW + oy * OW + ox] * inv;
          for (Index ky = 0; ky < k_; ++ky)
            for (Index kx = 0; kx < k_; ++kx) dp[(oy * s_ + ky) * W + ox * s_ + kx] += g;
        }
    }
    return dx_;
  }
  Index k_, s_;
  std::array<Index, 4> in_shape_{};
  Tensor y_, dx_;
};

/// Mean over H and W: (N, C, H, W) -> (N, C, 1, 1).
class GlobalAvgPool2d : public Module {
 public:
  std::string kind() const override { return "GlobalAvgPool2d"; }
  const Tensor& output() const override { return y_; }

 protected:
  const Tensor& forward_impl(const Tensor& x) override {
    in_shape_ = x.shape;
    const Index HW = x.h() * x.w();
    y_.resize(x.n(), x.c());
    Eigen::Map<Eigen::VectorXf>(y_.ptr(), y_.size()) =
        ConstMapRM(x.ptr(), x.n() * x.c(), HW).rowwise().mean();
    return y_;
  }
  const Tensor& backward_impl(const Tensor& dy) override {
    if (!input_grad_) return dx_;
    dx_.resize(in_shape_[0], in_shape_[1], in_shape_[2], in_shape_[3]);
    const Index HW = dx_.h() * dx_.w();
    MapRM(dx_.ptr(), dx_.n() * dx_.c(), HW).colwise() =
        Eigen::Map<const Eigen::VectorXf>(dy.ptr(), dy.size()) / static_cast<float>(HW);
    return dx_;
  }
  std::array<Index, 4> in_shape_{};
  Tensor y_, dx_;
};

/// (N, C, H, W) -> (N, C*H*W, 1, 1).
class Flatten : public Module {
 public:
  std::string kind() const override { return "Flatten"; }
  const Tensor& output() const override { return y_; }

 protected:
  const Tensor& forward_impl(const Tensor& x) override {
    in_shape_ = x.shape;
    y_.resize(x.n(), x.sample_size());
    y_.data = x.data;
    return y_;
  }
  const Tensor& backward_impl(const Tensor& dy) override {
    if (!input_grad_) return dx_;
    dx_.resize(in_shape_[0], in_shape_[1], in_shape_[2], in_shape_[3]);
    dx_.data = dy.data;
    return dx_;
  }
  std::array<Index, 4> in_shape_{};
  Tensor y_, dx_;
};

/// activation(main(x) + shortcut(x)); the shortcut is the identity when absent (ResNet basic block,
/// MobileNetV2 inverted residual). Children: "main" and, if present, "shortcut".
class Residual : public Module {
 public:
  Residual(std::unique_ptr<Sequential> main, std::unique_ptr<Sequential> shortcut, Activation act)
      : main_(std::move(main)), shortcut_(std::move(shortcut)), act_(act) {
    if (!main_) mixq::detail::fail("Residual: main branch is null");
  }
  std::string kind() const override { return "Residual"; }
  void children(std::vector<std::pair<std::string, Module*>>& out) override {
    out.emplace_back("main", main_.get());
    if (shortcut_) out.emplace_back("shortcut", shortcut_.get());
  }
  const Tensor& output() const override { return y_; }
  Sequential& main() { return *main_; }
  Sequential* shortcut() { return shortcut_.get(); }
  /// The activation after the sum.
  Activation activation() const { return act_; }
  void set_input_grad(bool needed) override {
    input_grad_ = needed;
    main_->set_input_grad(needed);
    if (shortcut_) shortcut_->set_input_grad(needed);
  }

 protected:
  const Tensor& forward_impl(const Tensor& x) override {
    const Tensor& m = main_->forward(x);
    const Tensor& s = shortcut_ ? shortcut_->forward(x) : x;
    if (!m.same_shape(s)) mixq::detail::fail("Residual: main output and shortcut shapes differ");
    y_.resize_like(m);
    const float upper = act_ == Activation::relu6 ? 6.f : std::numeric_limits<float>::infinity();
    const Index S = m.sample_size();
    parallel_for(m.n(), [&](Index b, Index e, int) {
      auto ma = Eigen::Map<const Eigen::ArrayXf>(m.ptr() + b * S, (e - b) * S);
      auto sa = Eigen::Map<const Eigen::ArrayXf>(s.ptr() + b * S, (e - b) * S);
      auto ya = Eigen::Map<Eigen::ArrayXf>(y_.ptr() + b * S, (e - b) * S);
      if (act_ == Activation::none)
        ya = ma + sa;
      else
        ya = (ma + sa).max(0.f).min(upper);
    });
    return y_;
  }
  const Tensor& backward_impl(const Tensor& dy) override {
    const Tensor* g = &dy;
    if (act_ != Activation::none) {
      detail::clamp_backward(y_, dy, dsum_, act_ == Activation::relu6 ? 6.f : std::numeric_limits<float>::infinity());
      g = &dsum_;
    }
    const Tensor& dm = main_->backward(*g);
    if (!input_grad_) {
      if (shortcut_) shortcut_->backward(*g);
      return dx_;
    }
    const Tensor& ds = shortcut_ ? shortcut_->backward(*g) : *g;
    dx_.resize_like(dm);
    const Index S = dm.sample_size();
    parallel_for(dm.n(), [&](Index b, Index e, int) {
      Eigen::Map<Eigen::ArrayXf>(dx_.ptr() + b * S, (e - b) * S) =
          Eigen::Map<const Eigen::ArrayXf>(dm.ptr() + b * S, (e - b) * S) +
          Eigen::Map<const Eigen::ArrayXf>(ds.ptr() + b * S, (e - b) * S);
    });
    return dx_;
  }
  std::unique_ptr<Sequential> main_, shortcut_;
  Activation act_;
  Tensor y_, dsum_, dx_;
};

}  // namespace mixq::nn
