// OpenBLAS (Debian's libopenblas-serial-dev: one thread, kernels chosen from the CPU at run time).
#include <cblas.h>

extern "C" void mixq_bench_gemm_openblas(bool ta, bool tb, long M, long N, long K, const float* A, long lda,
                                         const float* B, long ldb, float beta, float* C, long ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(M),
              static_cast<int>(N), static_cast<int>(K), 1.0f, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta,
              C, static_cast<int>(ldc));
}
