#pragma once
// The GEMM engines bench_gemm compares, each in its own translation unit (their headers and their -march
// differ): one row-major single-precision GEMM signature,
//   C[M x N] = A' B' + beta C,  A' = A or A^T (ta), B' = B or B^T (tb), leading dimensions lda, ldb, ldc,
// called from one thread (every library is its single-threaded build or is told to use one thread).
#include <string>
#include <vector>

namespace mixq_bench {

using GemmFn = void (*)(bool ta, bool tb, long M, long N, long K, const float* A, long lda, const float* B, long ldb,
                        float beta, float* C, long ldc);

struct GemmEngine {
  std::string name;
  GemmFn fn;
};

/// Every engine compiled into this binary (Eigen generic always; the others when CMake found them).
std::vector<GemmEngine> gemm_engines();

}  // namespace mixq_bench

extern "C" {
void mixq_bench_gemm_eigen_generic(bool, bool, long, long, long, const float*, long, const float*, long, float, float*,
                                   long);
void mixq_bench_gemm_eigen_native(bool, bool, long, long, long, const float*, long, const float*, long, float, float*,
                                  long);
void mixq_bench_gemm_openblas(bool, bool, long, long, long, const float*, long, const float*, long, float, float*,
                              long);
void mixq_bench_gemm_blis(bool, bool, long, long, long, const float*, long, const float*, long, float, float*, long);
void mixq_bench_gemm_dnnl(bool, bool, long, long, long, const float*, long, const float*, long, float, float*, long);
void mixq_bench_gemm_xsmm(bool, bool, long, long, long, const float*, long, const float*, long, float, float*, long);
}
