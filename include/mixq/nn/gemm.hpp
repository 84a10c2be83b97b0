#pragma once
/// @file
/// The GEMM engine of the nn layers (convolutions and linear layers): one row-major call,
///
///   C[M x N] = op(A) op(B)            (accumulate = false)
///   C[M x N] = C + op(A) op(B)        (accumulate = true)
///
/// op(A) = A (A stored M x K, leading dimension lda) or A^T (A stored K x M); the same for B. Each call runs on
/// the calling thread only: the layers parallelise over images themselves (nn/tensor.hpp), and their reduction
/// order, hence their bits for any thread count, does not depend on the engine.
///
/// Engines (docs/PERFORMANCE.md, "GEMM engine", has the measurement that chose them):
/// - **oneDNN** (`dnnl_sgemm`, libdnnl-dev 2.6): JIT kernels for the CPU it runs on (AVX-512, AVX2, SSE4.1),
///   so a build without `-march` gets the machine's vector width. Compiled in when MIXQ_NN_DNNL is defined
///   (CMake: `MIXQ_NN_ENGINE=dnnl`, the default when libdnnl-dev is installed); it needs `-ldnnl -lgomp`.
/// - **Eigen** (always compiled in): the header-only fallback, vectorised at compile time (SSE2 without
///   `-march`). Used when oneDNN is not compiled in, when set_gemm_engine(GemmEngine::eigen) chose it, and for
///   any call oneDNN does not take (a zero dimension, or oneDNN returning an error): those calls give Eigen's
///   result, never a wrong one.
///
/// Numerics: both engines accumulate in float; they differ in summation order, so results differ in the last
/// bits between engines (a relative difference of about 1e-6 on the nn layers' shapes), never between runs or
/// thread counts with one engine on one machine.

#include "mixq/detail/eigen.hpp"
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "mixq/error.hpp"

#if defined(MIXQ_NN_DNNL)
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#endif

namespace mixq::nn {

/// The GEMM engines (see the file's comment).
enum class GemmEngine { eigen, dnnl };

/// True when oneDNN is compiled in (MIXQ_NN_DNNL).
inline constexpr bool gemm_dnnl_available =
#if defined(MIXQ_NN_DNNL)
    true;
#else
    false;
#endif

namespace detail {

/// The engine in use: oneDNN when compiled in, else Eigen; MIXQ_NN_ENGINE=eigen|dnnl (any case) in the
/// environment overrides the default at the first call (an unknown name, or dnnl when it is not compiled in, is
/// a mixq::error naming the value).
inline GemmEngine engine_from_environment() {
  const char* env = std::getenv("MIXQ_NN_ENGINE");
  if (env == nullptr || *env == '\0') return gemm_dnnl_available ? GemmEngine::dnnl : GemmEngine::eigen;
  std::string v(env);
  for (char& c : v) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (v == "eigen") return GemmEngine::eigen;
  if (v == "dnnl" || v == "onednn") {
    if (!gemm_dnnl_available)
      mixq::detail::fail("MIXQ_NN_ENGINE=", env, ": oneDNN is not compiled in (configure with -DMIXQ_NN_ENGINE=dnnl; "
                         "apt-get install libdnnl-dev)");
    return GemmEngine::dnnl;
  }
  mixq::detail::fail("MIXQ_NN_ENGINE must be eigen or dnnl, got '", env, "'");
}

inline std::atomic<int>& engine_slot() {
  static std::atomic<int> slot{static_cast<int>(engine_from_environment())};
  return slot;
}

}  // namespace detail

/// The engine the nn layers' GEMMs use.
inline GemmEngine gemm_engine() { return static_cast<GemmEngine>(detail::engine_slot().load(std::memory_order_relaxed)); }

/// Chooses the engine (e.g. Eigen, to compare). GemmEngine::dnnl when oneDNN is not compiled in is a mixq::error.
/// Not to be called while layers run on other threads.
inline void set_gemm_engine(GemmEngine e) {
  if (e == GemmEngine::dnnl && !gemm_dnnl_available)
    mixq::detail::fail("set_gemm_engine: oneDNN is not compiled in (configure with -DMIXQ_NN_ENGINE=dnnl)");
  if (e != GemmEngine::eigen && e != GemmEngine::dnnl)
    mixq::detail::fail("set_gemm_engine: unknown engine ", static_cast<int>(e));
  detail::engine_slot().store(static_cast<int>(e), std::memory_order_relaxed);
}

/// "eigen" or "dnnl".
inline const char* gemm_engine_name(GemmEngine e) { return e == GemmEngine::dnnl ? "dnnl" : "eigen"; }

namespace detail {

/// Eigen's GEMM on row-major maps with leading dimensions (the fallback engine).
inline void gemm_eigen(bool ta, bool tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, const float* A,
                       std::ptrdiff_t lda, const float* B, std::ptrdiff_t ldb, bool accumulate, float* C,
                       std::ptrdiff_t ldc) {
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  Eigen::Map<Mat, 0, Stride> c(C, M, N, Stride(ldc));
  if (K == 0) {
    if (!accumulate) c.setZero();
    return;
  }
  const Eigen::Map<const Mat, 0, Stride> a(A, ta ? K : M, ta ? M : K, Stride(lda));
  const Eigen::Map<const Mat, 0, Stride> b(B, tb ? N : K, tb ? K : N, Stride(ldb));
  auto run = [&](const auto& l, const auto& r) {
    if (accumulate) c.noalias() += l * r;
    else c.noalias() = l * r;
  };
  if (!ta && !tb) run(a, b);
  else if (ta && !tb) run(a.transpose(), b);
  else if (!ta && tb) run(a, b.transpose());
  else run(a.transpose(), b.transpose());
}

#if defined(MIXQ_NN_DNNL)
/// oneDNN's sgemm on the calling thread; false when it did not take the call (the caller falls back to Eigen).
inline bool gemm_dnnl(bool ta, bool tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, const float* A,
                      std::ptrdiff_t lda, const float* B, std::ptrdiff_t ldb, bool accumulate, float* C,
                      std::ptrdiff_t ldc) {
  if (M == 0 || N == 0 || K == 0) return false;
  // oneDNN's OpenMP runtime: this thread's team is one thread (the layers' own pool runs the images in parallel).
  thread_local const bool one_thread = [] {
    omp_set_num_threads(1);
    return true;
  }();
  (void)one_thread;
  const dnnl_status_t s = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb,
                                     accumulate ? 1.0f : 0.0f, C, ldc);
  return s == dnnl_success;
}
#endif

/// The nn layers' GEMM (see the file's comment) on the engine in use.
inline void gemm(bool ta, bool tb, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, const float* A,
                 std::ptrdiff_t lda, const float* B, std::ptrdiff_t ldb, bool accumulate, float* C,
                 std::ptrdiff_t ldc) {
#if defined(MIXQ_NN_DNNL)
  if (gemm_engine() == GemmEngine::dnnl && gemm_dnnl(ta, tb, M, N, K, A, lda, B, ldb, accumulate, C, ldc)) return;
#endif
  gemm_eigen(ta, tb, M, N, K, A, lda, B, ldb, accumulate, C, ldc);
}

}  // namespace detail

}  // namespace mixq::nn
