#pragma once
/// @file
/// 2-D convolution with hand-written forward and backward: the geometry, padded planes, im2col and col2im, the
/// direct depthwise path, the GEMM path (nn/gemm.hpp: oneDNN or Eigen) with its per-thread reductions, Kaiming-normal initialisation (also
/// used by Linear, nn/layers.hpp), and the Conv2d module (groups, depthwise, optional bias).

#include "mixq/detail/eigen.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "mixq/nn/gemm.hpp"
#include "mixq/nn/module.hpp"

namespace mixq::nn {

namespace detail {

/// Shape of a 2-D convolution with square kernels.
struct ConvGeometry {
  Index in_channels = 0, out_channels = 0, kernel = 1, stride = 1, padding = 0, groups = 1;
  Index in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  Index cols_per_group() const { return in_channels / groups * kernel * kernel; }  // K of one group
  Index out_per_group() const { return out_channels / groups; }
  Index pixels() const { return out_h * out_w; }
  bool pointwise() const { return kernel == 1 && stride == 1 && padding == 0; }
  bool depthwise() const { return groups == in_channels && groups == out_channels && groups > 1; }
};

/// The output columns [lo, hi) whose input column ox*s - p + kx lies inside [0, W).
inline std::pair<Index, Index> valid_range(Index OW, Index W, Index s, Index p, Index kx) {
  Index lo = 0;
  while (lo < OW && lo * s - p + kx < 0) ++lo;
  Index hi = OW;
  while (hi > lo && (hi - 1) * s - p + kx >= W) --hi;
  return {lo, hi};
}

/// dst[i] = src[i * step] for i in [0, n): an inline vectorised copy (rows here are a few dozen floats, where a
/// memcpy call costs more than the copy).
inline void copy_row(const float* src, Index step, float* dst, Index n) {
  if (step == 1)
    Eigen::Map<Eigen::ArrayXf>(dst, n) = Eigen::Map<const Eigen::ArrayXf>(src, n);
  else
    Eigen::Map<Eigen::ArrayXf>(dst, n) =
        Eigen::Map<const Eigen::ArrayXf, 0, Eigen::InnerStride<>>(src, n, Eigen::InnerStride<>(step));
}

/// dst[i * step] += src[i] for i in [0, n).
inline void add_row(const float* src, Index step, float* dst, Index n) {
  if (step == 1)
    Eigen::Map<Eigen::ArrayXf>(dst, n) += Eigen::Map<const Eigen::ArrayXf>(src, n);
  else
    Eigen::Map<Eigen::ArrayXf, 0, Eigen::InnerStride<>>(dst, n, Eigen::InnerStride<>(step)) +=
        Eigen::Map<const Eigen::ArrayXf>(src, n);
}

/// Floats a conv scratch row may be written or read past its end by the chunked copies below.
inline constexpr Index kCopySlack = 16;

/// dst[0, n) = src[0, n) in chunks of 8 floats: may read src and write dst up to 7 floats past n. For the short
/// rows of im2col, where a memcpy call or a vectorised loop with a scalar tail costs more than the copy.
inline void copy_row_chunked(const float* src, float* dst, Index n) {
  using Chunk = Eigen::Array<float, 8, 1>;
  for (Index i = 0; i < n; i += 8) Eigen::Map<Chunk>(dst + i) = Eigen::Map<const Chunk>(src + i);
}

/// dst[0, n) = 0 in chunks of 8 floats: may write up to 7 floats past n (short runs, where a memset costs more).
inline void zero_row_chunked(float* dst, Index n) {
  using Chunk = Eigen::Array<float, 8, 1>;
  for (Index i = 0; i < n; i += 8) Eigen::Map<Chunk>(dst + i).setZero();
}

/// The zero-padded plane of one channel with its columns split by phase (column j mod stride), so that the
/// inputs of one kernel column kx at stride s are contiguous: padded column j = ox * s + kx sits at
/// (kx % s) * phase_width + ox + kx / s of its row. At stride 1 this is the plain padded plane.
struct PaddedPlane {
  Index rows = 0;         ///< in_h + 2 * padding
  Index phase_width = 0;  ///< columns per phase: ceil((in_w + 2 * padding) / stride)
  Index row_size = 0;     ///< stride * phase_width
  explicit PaddedPlane(const ConvGeometry& g)
      : rows(g.in_h + 2 * g.padding),
        phase_width((g.in_w + 2 * g.padding + g.stride - 1) / g.stride),
        row_size(g.stride * phase_width) {}
  Index size() const { return rows * row_size; }
  /// Offset of padded column j in a row.
  Index column(Index j, Index stride) const { return (j % stride) * phase_width + j / stride; }
};

/// Floats of the padded plane buffer of a convolution (PaddedPlane plus kCopySlack).
inline Index padded_plane_size(const ConvGeometry& g) { return PaddedPlane(g).size() + kCopySlack; }

/// One channel plane xc (in_h x in_w) written into pad as a PaddedPlane (zero border of `padding`).
inline void pad_plane(const ConvGeometry& g, const PaddedPlane& pp, const float* xc, float* pad) {
  const Index p = g.padding, s = g.stride, H = g.in_h, W = g.in_w, R = pp.row_size;
  // Zero runs and row copies spill at most 7 floats forward, into what is written next or into the slack.
  zero_row_chunked(pad, p * R);
  for (Index iy = 0; iy < H; ++iy) {
    float* r = pad + (iy + p) * R;
    if (s == 1) {
      if ((H - 1 - iy) * W >= 7)  // the chunks read at most 7 floats past the row, not past the plane
        copy_row_chunked(xc + iy * W, r + p, W);
      else
        copy_row(xc + iy * W, 1, r + p, W);
      for (Index i = 0; i < p; ++i) r[i] = r[R - 1 - i] = 0.f;
      continue;
    }
    zero_row_chunked(r, R);
    for (Index ph = 0; ph < s; ++ph) {
      // padded columns j = ph + m * s that hold input column ix = j - p in [0, W)
      const Index m_lo = p > ph ? (p - ph + s - 1) / s : 0;
      const Index m_hi = (W + p - ph + s - 1) / s;  // first m with ph + m * s - p >= W
      const float* src = xc + iy * W + ph + m_lo * s - p;
      float* dst = r + ph * pp.phase_width + m_lo;
      if (s == 2)  // a constant stride the compiler vectorises
        for (Index m = 0; m < m_hi - m_lo; ++m) dst[m] = src[2 * m];
      else
        for (Index m = 0; m < m_hi - m_lo; ++m) dst[m] = src[m * s];
    }
  }
  zero_row_chunked(pad + (H + p) * R, p * R);
}

/// col (C*k*k rows, out_h*out_w columns) from one image x (C, H, W); col must have kCopySlack floats of room
/// past its end. `pad`: scratch of padded_plane_size(g) floats. Each row of col is a window of the padded,
/// phase-split input plane, copied row by row in chunks of 8 (a row spills into the rows written after it).
inline void im2col(const ConvGeometry& g, const float* x, float* col, float* pad) {
  const Index k = g.kernel, s = g.stride, H = g.in_h, W = g.in_w, OH = g.out_h, OW = g.out_w, P = OH * OW;
  const PaddedPlane pp(g);
  for (Index c = 0; c < g.in_channels; ++c) {
    pad_plane(g, pp, x + c * H * W, pad);
    for (Index ky = 0; ky < k; ++ky)
      for (Index kx = 0; kx < k; ++kx) {
        float* row = col + ((c * k + ky) * k + kx) * P;
        const float* src = pad + ky * pp.row_size + pp.column(kx, s);
        for (Index oy = 0; oy < OH; ++oy) copy_row_chunked(src + oy * s * pp.row_size, row + oy * OW, OW);
      }
  }
}

/// One image dx (C, H, W) = the sum of col (C*k*k, out_h*out_w) over the windows it came from (the adjoint of
/// im2col; dx is overwritten). `pad`: scratch as for im2col. Each value receives its terms in (ky, kx, oy)
/// order.
inline void col2im(const ConvGeometry& g, const float* col, float* dx, float* pad) {
  const Index k = g.kernel, s = g.stride, p = g.padding, H = g.in_h, W = g.in_w, OH = g.out_h, OW = g.out_w;
  const Index P = OH * OW;
  const PaddedPlane pp(g);
  for (Index c = 0; c < g.in_channels; ++c) {
    Eigen::Map<Eigen::ArrayXf>(pad, pp.size()).setZero();
    for (Index ky = 0; ky < k; ++ky)
      for (Index kx = 0; kx < k; ++kx) {
        const float* row = col + ((c * k + ky) * k + kx) * P;
        float* dst = pad + ky * pp.row_size + pp.column(kx, s);
        for (Index oy = 0; oy < OH; ++oy) add_row(row + oy * OW, 1, dst + oy * s * pp.row_size, OW);
      }
    float* dc = dx + c * H * W;
    for (Index iy = 0; iy < H; ++iy) {
      const float* r = pad + (iy + p) * pp.row_size;
      if (s == 1) {
        copy_row(r + p, 1, dc + iy * W, W);
        continue;
      }
      for (Index ph = 0; ph < s; ++ph) {  // the inverse of pad_plane's phase split
        const Index m_lo = p > ph ? (p - ph + s - 1) / s : 0;
        const Index m_hi = (W + p - ph + s - 1) / s;
        const float* src = r + ph * pp.phase_width + m_lo;
        float* dst = dc + iy * W + ph + m_lo * s - p;
        if (s == 2)
          for (Index m = 0; m < m_hi - m_lo; ++m) dst[2 * m] = src[m];
        else
          for (Index m = 0; m < m_hi - m_lo; ++m) dst[m * s] = src[m];
      }
    }
  }
}

/// Per-thread scratch of a convolution.
/// Chunks of images whose weight gradients conv2d_backward sums separately (then in chunk order).
inline constexpr Index kConvReduceChunks = 8;

/// Scratch of a convolution: per thread (im2col buffers) and per chunk of images (partial gradients).
struct ConvScratch {
  std::vector<Eigen::VectorXf> col, dcol;  // im2col buffers, kCopySlack floats longer than the matrix
  std::vector<MatrixRM> dweight;           // per chunk
  MatrixRM flipped;  // (in, out*k*k): the weight of the transposed convolution (input gradient)
  std::vector<Eigen::VectorXf> dbias, pad;  // per chunk, per thread
  void ensure_chunks(Index chunks) {
    if (static_cast<Index>(dweight.size()) < chunks) {
      dweight.resize(static_cast<std::size_t>(chunks));
      dbias.resize(static_cast<std::size_t>(chunks));
    }
  }
  void ensure(int threads, Index pad_size) {
    if (static_cast<int>(col.size()) < threads) {
      col.resize(threads);
      dcol.resize(threads);
      pad.resize(threads);
    }
    for (auto& p : pad)
      if (p.size() < pad_size) p.setZero(pad_size);
  }
};

/// Depthwise convolution of one image (C channels, one k x k filter each).
inline void depthwise_forward(const ConvGeometry& g, const float* x, const float* w, float* y) {
  const Index k = g.kernel, s = g.stride, p = g.padding, H = g.in_h, W = g.in_w, OH = g.out_h, OW = g.out_w;
  for (Index c = 0; c < g.in_channels; ++c) {
    const float* xc = x + c * H * W;
    const float* wc = w + c * k * k;
    float* yc = y + c * OH * OW;
    std::fill(yc, yc + OH * OW, 0.f);
    for (Index ky = 0; ky < k; ++ky)
      for (Index kx = 0; kx < k; ++kx) {
        const float wv = wc[ky * k + kx];
        const auto [ox_lo, ox_hi] = valid_range(OW, W, s, p, kx);
        for (Index oy = 0; oy < OH; ++oy) {
          const Index iy = oy * s - p + ky;
          if (iy < 0 || iy >= H) continue;
          const Index base = iy * W - p + kx;
          float* yr = yc + oy * OW;
          for (Index ox = ox_lo; ox < ox_hi; ++ox) yr[ox] += wv * xc[base + ox * s];
        }
      }
  }
}

inline void depthwise_backward(const ConvGeometry& g, const float* x, const float* w, const float* dy, float* dw,
                               float* dx) {
  const Index k = g.kernel, s = g.stride, p = g.padding, H = g.in_h, W = g.in_w, OH = g.out_h, OW = g.out_w;
  for (Index c = 0; c < g.in_channels; ++c) {
    const float* xc = x + c * H * W;
    const float* wc = w + c * k * k;
    const float* dyc = dy + c * OH * OW;
    float* dwc = dw + c * k * k;
    float* dxc = dx ? dx + c * H * W : nullptr;
    for (Index ky = 0; ky < k; ++ky)
      for (Index kx = 0; kx < k; ++kx) {
        const float wv = wc[ky * k + kx];
        const auto [ox_lo, ox_hi] = valid_range(OW, W, s, p, kx);
        float acc = 0.f;
        for (Index oy = 0; oy < OH; ++oy) {
          const Index iy = oy * s - p + ky;
          if (iy < 0 || iy >= H) continue;
          const Index base = iy * W - p + kx;
          const float* dyr = dyc + oy * OW;
          for (Index ox = ox_lo; ox < ox_hi; ++ox) acc += dyr[ox] * xc[base + ox * s];
          if (dxc)
            for (Index ox = ox_lo; ox < ox_hi; ++ox) dxc[base + ox * s] += wv * dyr[ox];
        }
        dwc[ky * k + kx] += acc;
      }
  }
}

/// The GEMM path's right-hand side for image xn: xn itself for a pointwise convolution, else its im2col columns
/// (in col, grown as needed; pad: the padded-plane scratch).
inline const float* gemm_columns(const ConvGeometry& g, const float* xn, Eigen::VectorXf& col, float* pad) {
  if (g.pointwise()) return xn;
  const Index size = g.cols_per_group() * g.groups * g.pixels() + kCopySlack;
  if (col.size() < size) col.resize(size);
  im2col(g, xn, col.data(), pad);
  return col.data();
}

/// y = conv(x, w) + bias for a batch, images in parallel. w is (out, in/groups, k, k); bias may be null.
inline void conv2d_forward(const ConvGeometry& g, const Tensor& x, const float* w, const float* bias, Tensor& y,
                           ConvScratch& scratch) {
  const Index N = x.n(), P = g.pixels(), K = g.cols_per_group(), OCg = g.out_per_group();
  const Index in_size = g.in_channels * g.in_h * g.in_w, out_size = g.out_channels * P;
  y.resize(N, g.out_channels, g.out_h, g.out_w);
  scratch.ensure(num_threads(), padded_plane_size(g));
  parallel_for(N, [&](Index b, Index e, int t) {
    Eigen::VectorXf& col = scratch.col[static_cast<std::size_t>(t)];
    float* pad = scratch.pad[static_cast<std::size_t>(t)].data();
    for (Index n = b; n < e; ++n) {
      const float* xn = x.ptr() + n * in_size;
      float* yn = y.ptr() + n * out_size;
      if (g.depthwise()) {
        depthwise_forward(g, xn, w, yn);
      } else {
        const float* cp = gemm_columns(g, xn, col, pad);
        for (Index gr = 0; gr < g.groups; ++gr) {
          gemm(false, false, OCg, P, K, w + gr * OCg * K, K, cp + gr * K * P, P, false, yn + gr * OCg * P, P);
        }
      }
      if (bias) {
        for (Index o = 0; o < g.out_channels; ++o)
          Eigen::Map<Eigen::ArrayXf>(yn + o * P, P) += bias[o];
      }
    }
  });
}

/// Backward of conv2d_forward: dw += dL/dw, dbias += dL/dbias (if not null), dx = dL/dx (if not null).
/// Partial sums per chunk of images are reduced in chunk order: the result does not depend on the threads.
inline void conv2d_backward(const ConvGeometry& g, const Tensor& x, const float* w, const Tensor& dy, float* dw,
                            float* dbias, Tensor* dx, ConvScratch& scratch) {
  const Index N = x.n(), P = g.pixels(), K = g.cols_per_group(), OCg = g.out_per_group();
  const Index in_size = g.in_channels * g.in_h * g.in_w, out_size = g.out_channels * P;
  const Index wsize = g.out_channels * K;
  if (dx) dx->resize_like(x);
  // Stride-1 'same' convolutions (groups 1): dL/dx is the convolution of dy with the flipped, transposed
  // weight. One im2col of dy and a GEMM write dx directly (no col2im scatter, no zeroing).
  const bool transposed = dx && g.groups == 1 && g.stride == 1 && !g.pointwise() && 2 * g.padding == g.kernel - 1;
  ConvGeometry tg = g;
  if (transposed) {
    const Index k = g.kernel, kk = k * k, C = g.in_channels, O = g.out_channels;
    scratch.flipped.resize(C, O * kk);
    for (Index o = 0; o < O; ++o)
      for (Index c = 0; c < C; ++c)
        for (Index t = 0; t < kk; ++t) scratch.flipped(c, o * kk + (kk - 1 - t)) = w[(o * C + c) * kk + t];
    tg.in_channels = O;
    tg.out_channels = C;
  }
  // Partial weight and bias gradients per chunk of images, reduced in chunk order: the same bits for any
  // thread count.
  const Index chunks = std::min<Index>(N, kConvReduceChunks);
  scratch.ensure(num_threads(), padded_plane_size(g));
  scratch.ensure_chunks(chunks);
  for (Index c = 0; c < chunks; ++c) {
    scratch.dweight[static_cast<std::size_t>(c)].resize(g.out_channels, K);
    if (g.depthwise()) scratch.dweight[static_cast<std::size_t>(c)].setZero();
    scratch.dbias[static_cast<std::size_t>(c)].setZero(g.out_channels);
  }
  parallel_for_chunks(N, chunks, [&](Index b, Index e, Index chunk, int t) {
    const auto ts = static_cast<std::size_t>(t);
    Eigen::VectorXf& col = scratch.col[ts];
    Eigen::VectorXf& dcol = scratch.dcol[ts];
    MatrixRM& dwt = scratch.dweight[static_cast<std::size_t>(chunk)];
    Eigen::VectorXf& dbt = scratch.dbias[static_cast<std::size_t>(chunk)];
    float* pad = scratch.pad[ts].data();
    for (Index n = b; n < e; ++n) {
      const float* xn = x.ptr() + n * in_size;
      const float* dyn = dy.ptr() + n * out_size;
      float* dxn = dx ? dx->ptr() + n * in_size : nullptr;
      if (dbias)
        for (Index o = 0; o < g.out_channels; ++o) dbt[o] += Eigen::Map<const Eigen::ArrayXf>(dyn + o * P, P).sum();
      if (g.depthwise()) {
        if (dxn) std::fill(dxn, dxn + in_size, 0.f);
        depthwise_backward(g, xn, w, dyn, dwt.data(), dxn);
        continue;
      }
      const float* cp = gemm_columns(g, xn, col, pad);
      for (Index gr = 0; gr < g.groups; ++gr)  // the chunk's first image initialises its partial sum
        gemm(false, true, OCg, K, P, dyn + gr * OCg * P, P, cp + gr * K * P, P, n != b, dwt.data() + gr * OCg * K, K);
      if (!dxn) continue;
      if (transposed) {
        if (dcol.size() < tg.cols_per_group() * P + kCopySlack) dcol.resize(tg.cols_per_group() * P + kCopySlack);
        im2col(tg, dyn, dcol.data(), pad);
        const Index Kt = tg.cols_per_group();
        gemm(false, false, g.in_channels, P, Kt, scratch.flipped.data(), Kt, dcol.data(), P, false, dxn, P);
      } else if (g.pointwise()) {
        for (Index gr = 0; gr < g.groups; ++gr)
          gemm(true, false, K, P, OCg, w + gr * OCg * K, K, dyn + gr * OCg * P, P, false, dxn + gr * K * P, P);
      } else {
        if (dcol.size() < K * g.groups * P) dcol.resize(K * g.groups * P + kCopySlack);
        for (Index gr = 0; gr < g.groups; ++gr)
          gemm(true, false, K, P, OCg, w + gr * OCg * K, K, dyn + gr * OCg * P, P, false, dcol.data() + gr * K * P, P);
        col2im(g, dcol.data(), dxn, pad);
      }
    }
  });
  Eigen::Map<Eigen::VectorXf> dwm(dw, wsize);
  for (Index c = 0; c < chunks; ++c)
    dwm += Eigen::Map<const Eigen::VectorXf>(scratch.dweight[static_cast<std::size_t>(c)].data(), wsize);
  if (dbias) {
    Eigen::Map<Eigen::VectorXf> dbm(dbias, g.out_channels);
    for (Index c = 0; c < chunks; ++c) dbm += scratch.dbias[static_cast<std::size_t>(c)];
  }
}

/// Kaiming-normal (fan_in, ReLU gain) initialisation of a weight with fan_in inputs per output.
inline void kaiming_normal(Eigen::VectorXf& w, Index fan_in, std::mt19937_64& rng) {
  std::normal_distribution<float> d(0.f, std::sqrt(2.f / static_cast<float>(fan_in)));
  for (Index i = 0; i < w.size(); ++i) w[i] = d(rng);
}

}  // namespace detail

/// 2-D convolution (row-major NCHW, square kernel), groups including depthwise (groups == channels).
/// Weight shape (out_channels, in_channels/groups, kernel, kernel), Kaiming-normal initialised.
class Conv2d : public Module {
 public:
  /// Conv2d(in, out, kernel, stride, padding, groups, bias, seed).
  Conv2d(Index in_channels, Index out_channels, Index kernel, Index stride = 1, Index padding = 0, Index groups = 1,
         bool bias = false, std::uint64_t seed = 0) {
    if (in_channels <= 0 || out_channels <= 0 || kernel <= 0 || stride <= 0 || padding < 0 || groups <= 0)
      mixq::detail::fail("Conv2d: invalid shape in=", in_channels, " out=", out_channels, " kernel=", kernel,
                         " stride=", stride, " padding=", padding, " groups=", groups);
    if (in_channels % groups != 0 || out_channels % groups != 0)
      mixq::detail::fail("Conv2d: groups=", groups, " must divide in_channels=", in_channels,
                         " and out_channels=", out_channels);
    g_.in_channels = in_channels;
    g_.out_channels = out_channels;
    g_.kernel = kernel;
    g_.stride = stride;
    g_.padding = padding;
    g_.groups = groups;
    weight_ = Parameter("weight", {out_channels, in_channels / groups, kernel, kernel}, true, true);
    std::mt19937_64 rng(seed);
    detail::kaiming_normal(weight_.value, in_channels / groups * kernel * kernel, rng);
    has_bias_ = bias;
    if (bias) bias_ = Parameter("bias", {out_channels}, true, false);
  }

  std::string kind() const override { return "Conv2d"; }
  void own_parameters(std::vector<Parameter*>& out) override {
    out.push_back(&weight_);
    if (has_bias_) out.push_back(&bias_);
  }
  const Tensor& output() const override { return y_; }

  Parameter& weight() { return weight_; }
  Parameter* bias() { return has_bias_ ? &bias_ : nullptr; }
  /// Geometry of the last forward (in_h/out_h are 0 before the first forward).
  const detail::ConvGeometry& geometry() const { return g_; }
  Index in_channels() const { return g_.in_channels; }
  Index out_channels() const { return g_.out_channels; }
  Index kernel_size() const { return g_.kernel; }
  Index stride() const { return g_.stride; }
  Index padding() const { return g_.padding; }
  Index groups() const { return g_.groups; }

 protected:
  void set_geometry(const Tensor& x) {
    if (x.c() != g_.in_channels)
      mixq::detail::fail("Conv2d: input has ", x.c(), " channels, expected ", g_.in_channels);
    g_.in_h = x.h();
    g_.in_w = x.w();
    g_.out_h = (x.h() + 2 * g_.padding - g_.kernel) / g_.stride + 1;
    g_.out_w = (x.w() + 2 * g_.padding - g_.kernel) / g_.stride + 1;
    if (g_.out_h <= 0 || g_.out_w <= 0)
      mixq::detail::fail("Conv2d: input ", x.h(), "x", x.w(), " too small for kernel ", g_.kernel);
  }
  const Tensor& forward_impl(const Tensor& x) override {
    set_geometry(x);
    input_ = &x;
    detail::conv2d_forward(g_, x, weight_.value.data(), has_bias_ ? bias_.value.data() : nullptr, y_, scratch_);
    return y_;
  }
  const Tensor& backward_impl(const Tensor& dy) override {
    detail::conv2d_backward(g_, *input_, weight_.value.data(), dy, weight_.grad.data(),
                            has_bias_ ? bias_.grad.data() : nullptr, input_grad_ ? &dx_ : nullptr, scratch_);
    weight_.has_grad = true;
    if (has_bias_) bias_.has_grad = true;
    return dx_;
  }

  detail::ConvGeometry g_;
  Parameter weight_, bias_;
  bool has_bias_ = false;
  const Tensor* input_ = nullptr;  // the caller keeps the input alive until backward
  Tensor y_, dx_;
  detail::ConvScratch scratch_;
};

}  // namespace mixq::nn
