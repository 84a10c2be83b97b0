// The nn layers' GEMM engine (include/mixq/nn/gemm.hpp): every engine against a double-precision reference on
// every transpose combination, leading dimensions larger than the matrices, accumulation; the fallback for calls
// oneDNN does not take; the engine selection and its errors.
#include <mixq/nn/gemm.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace nn = mixq::nn;

namespace {

struct Case {
  bool ta, tb;
  long M, N, K;
  long pad;  // extra columns of every stored matrix (leading dimension = columns + pad)
  bool accumulate;
};

// C = (accumulate ? C0 : 0) + op(A) op(B) in double precision.
std::vector<double> reference(const Case& c, const std::vector<float>& A, long lda, const std::vector<float>& B,
                              long ldb, const std::vector<float>& C0, long ldc) {
  std::vector<double> r(static_cast<std::size_t>(c.M * ldc), 0.0);
  for (long i = 0; i < c.M; ++i)
    for (long j = 0; j < c.N; ++j) {
      double s = c.accumulate ? C0[static_cast<std::size_t>(i * ldc + j)] : 0.0;
      for (long k = 0; k < c.K; ++k) {
        const double a = c.ta ? A[static_cast<std::size_t>(k * lda + i)] : A[static_cast<std::size_t>(i * lda + k)];
        const double b = c.tb ? B[static_cast<std::size_t>(j * ldb + k)] : B[static_cast<std::size_t>(k * ldb + j)];
        s += a * b;
      }
      r[static_cast<std::size_t>(i * ldc + j)] = s;
    }
  return r;
}

std::vector<nn::GemmEngine> engines() {
  std::vector<nn::GemmEngine> e{nn::GemmEngine::eigen};
  if (nn::gemm_dnnl_available) e.push_back(nn::GemmEngine::dnnl);
  return e;
}

class EngineGuard {
 public:
  EngineGuard() : saved_(nn::gemm_engine()) {}
  ~EngineGuard() { nn::set_gemm_engine(saved_); }

 private:
  nn::GemmEngine saved_;
};

}  // namespace

TEST(GemmEngine, EveryEngineMatchesTheDoubleReference) {
  EngineGuard guard;
  const std::vector<Case> cases = {
      {false, false, 16, 784, 144, 0, false},  // the ResNet's first block, forward
      {false, true, 16, 144, 784, 0, true},    // its weight gradient (accumulated)
      {true, false, 144, 784, 16, 0, false},   // its input gradient through W^T
      {true, true, 7, 5, 3, 2, false},         {false, false, 1, 1, 1, 0, false},
      {false, true, 128, 10, 64, 3, false},    {true, false, 10, 64, 128, 1, true},
      {false, false, 33, 17, 65, 5, true},
  };
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (const Case& c : cases) {
    const long a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
    const long b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
    const long lda = a_cols + c.pad, ldb = b_cols + c.pad, ldc = c.N + c.pad;
    std::vector<float> A(static_cast<std::size_t>(a_rows * lda)), B(static_cast<std::size_t>(b_rows * ldb)),
        C0(static_cast<std::size_t>(c.M * ldc));
    for (float& v : A) v = u(rng);
    for (float& v : B) v = u(rng);
    for (float& v : C0) v = u(rng);
    const std::vector<double> r = reference(c, A, lda, B, ldb, C0, ldc);
    for (nn::GemmEngine e : engines()) {
      nn::set_gemm_engine(e);
      std::vector<float> C = C0;
      nn::detail::gemm(c.ta, c.tb, c.M, c.N, c.K, A.data(), lda, B.data(), ldb, c.accumulate, C.data(), ldc);
      double worst = 0.0;
      for (long i = 0; i < c.M; ++i)
        for (long j = 0; j < ldc; ++j) {
          const auto at = static_cast<std::size_t>(i * ldc + j);
          if (j >= c.N) {  // padding columns of C are never written
            ASSERT_EQ(C[at], C0[at]) << nn::gemm_engine_name(e);
            continue;
          }
          worst = std::max(worst, std::fabs(C[at] - r[at]) / std::sqrt(static_cast<double>(c.K) + 1.0));
        }
      EXPECT_LT(worst, 2e-6) << nn::gemm_engine_name(e) << " M=" << c.M << " N=" << c.N << " K=" << c.K
                             << " ta=" << c.ta << " tb=" << c.tb;
    }
  }
}

TEST(GemmEngine, CallsTheEngineDoesNotTakeFallBackToEigen) {
  EngineGuard guard;
  for (nn::GemmEngine e : engines()) {
    nn::set_gemm_engine(e);
    // K = 0: the product is empty; C = 0, or C unchanged when accumulating (oneDNN does not take the call).
    std::vector<float> C(6, 3.f);
    const float a = 1.f, b = 1.f;
    nn::detail::gemm(false, false, 2, 3, 0, &a, 1, &b, 3, false, C.data(), 3);
    for (float v : C) EXPECT_EQ(v, 0.f) << nn::gemm_engine_name(e);
    std::fill(C.begin(), C.end(), 3.f);
    nn::detail::gemm(false, false, 2, 3, 0, &a, 1, &b, 3, true, C.data(), 3);
    for (float v : C) EXPECT_EQ(v, 3.f) << nn::gemm_engine_name(e);
    // M = 0: nothing is written.
    nn::detail::gemm(false, false, 0, 3, 2, &a, 2, &b, 3, false, C.data(), 3);
    for (float v : C) EXPECT_EQ(v, 3.f) << nn::gemm_engine_name(e);
  }
}

TEST(GemmEngine, SelectionAndItsErrors) {
  EngineGuard guard;
  EXPECT_EQ(nn::gemm_engine() == nn::GemmEngine::dnnl, nn::gemm_dnnl_available && std::getenv("MIXQ_NN_ENGINE") == nullptr);
  nn::set_gemm_engine(nn::GemmEngine::eigen);
  EXPECT_EQ(nn::gemm_engine(), nn::GemmEngine::eigen);
  if (!nn::gemm_dnnl_available) {
    EXPECT_THROW(nn::set_gemm_engine(nn::GemmEngine::dnnl), mixq::error);
  } else {
    nn::set_gemm_engine(nn::GemmEngine::dnnl);
    EXPECT_EQ(nn::gemm_engine(), nn::GemmEngine::dnnl);
  }
  EXPECT_THROW(nn::set_gemm_engine(static_cast<nn::GemmEngine>(7)), mixq::error);
  // The environment variable: names in any case; an unknown name is an error naming it.
  const char* saved = std::getenv("MIXQ_NN_ENGINE");
  const std::string saved_value = saved ? saved : "";
  setenv("MIXQ_NN_ENGINE", "Eigen", 1);
  EXPECT_EQ(nn::detail::engine_from_environment(), nn::GemmEngine::eigen);
  setenv("MIXQ_NN_ENGINE", "cublas", 1);
  try {
    nn::detail::engine_from_environment();
    ADD_FAILURE() << "no error for MIXQ_NN_ENGINE=cublas";
  } catch (const mixq::error& e) {
    EXPECT_NE(std::string(e.what()).find("cublas"), std::string::npos) << e.what();
  }
  setenv("MIXQ_NN_ENGINE", "DNNL", 1);
  if (nn::gemm_dnnl_available) EXPECT_EQ(nn::detail::engine_from_environment(), nn::GemmEngine::dnnl);
  else EXPECT_THROW(nn::detail::engine_from_environment(), mixq::error);
  if (saved) setenv("MIXQ_NN_ENGINE", saved_value.c_str(), 1);
  else unsetenv("MIXQ_NN_ENGINE");
}
