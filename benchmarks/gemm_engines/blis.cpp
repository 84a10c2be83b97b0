// BLIS (Debian's libblis-serial-dev), through its typed API bli_sgemm (general strides: the stored matrices are
// row-major, rs = ld, cs = 1; the cblas_* symbols of the process belong to OpenBLAS when both are linked).
#include <blis.h>

extern "C" void mixq_bench_gemm_blis(bool ta, bool tb, long M, long N, long K, const float* A, long lda,
                                     const float* B, long ldb, float beta, float* C, long ldc) {
  float one = 1.0f, b = beta;
  bli_sgemm(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, M, N, K, &one,
            const_cast<float*>(A), lda, 1, const_cast<float*>(B), ldb, 1, &b,
            C, ldc, 1);
}
