// oneDNN 2.6 (Debian's libdnnl-dev, OpenMP runtime, JIT kernels for the CPU at run time): dnnl_sgemm, row-major.
// The calling thread's OpenMP team is set to one thread, so a call never spawns threads of its own.
#include <oneapi/dnnl/dnnl.h>

extern "C" void omp_set_num_threads(int);

extern "C" void mixq_bench_gemm_dnnl(bool ta, bool tb, long M, long N, long K, const float* A, long lda,
                                     const float* B, long ldb, float beta, float* C, long ldc) {
  thread_local const bool one_thread = [] {
    omp_set_num_threads(1);
    return true;
  }();
  (void)one_thread;
  dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}
