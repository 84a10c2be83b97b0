// Eigen's GEMM as the nn layers call it (row-major maps, noalias), compiled with whatever -march this translation
// unit gets: built twice, as eigen_generic (no -march: SSE2) and as eigen_native (-march=native), each in a shared
// library with hidden symbols so that the two instantiations of Eigen's templates cannot be merged by the linker.
#include "mixq/detail/eigen.hpp"  // Eigen with GCC 12's false AVX-512 warning silenced (issue 16)

#ifndef MIXQ_BENCH_EIGEN_NAME
#error "define MIXQ_BENCH_EIGEN_NAME"
#endif

namespace {
using MatRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;
using CMap = Eigen::Map<const MatRM, 0, Stride>;
using Map = Eigen::Map<MatRM, 0, Stride>;

template <class L, class R>
void assign(Map& c, const L& l, const R& r, float beta) {
  if (beta == 0.f) c.noalias() = l * r;
  else c.noalias() += l * r;  // beta is 0 or 1 in the nn layers
}
}  // namespace

extern "C" __attribute__((visibility("default"))) void MIXQ_BENCH_EIGEN_NAME(bool ta, bool tb, long M, long N, long K,
                                                                             const float* A, long lda, const float* B,
                                                                             long ldb, float beta, float* C, long ldc) {
  Map c(C, M, N, Stride(ldc));
  const CMap a(A, ta ? K : M, ta ? M : K, Stride(lda));
  const CMap b(B, tb ? N : K, tb ? K : N, Stride(ldb));
  if (!ta && !tb) assign(c, a, b, beta);
  else if (ta && !tb) assign(c, a.transpose(), b, beta);
  else if (!ta && tb) assign(c, a, b.transpose(), beta);
  else assign(c, a.transpose(), b.transpose(), beta);
}
