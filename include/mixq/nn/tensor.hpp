#pragma once
/// @file
/// Tensors and parameters of the nn layer: dense float storage in an Eigen vector with a row-major NCHW shape,
/// and a small thread pool used by the layers (dynamic scheduling of fixed chunks: results independent of the
/// thread count).

#include "mixq/detail/eigen.hpp"
#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mixq/error.hpp"

namespace mixq::nn {

using Index = std::ptrdiff_t;
/// Row-major dynamic float matrix (the layout of every GEMM operand in nn).
using MatrixRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapRM = Eigen::Map<MatrixRM>;
using ConstMapRM = Eigen::Map<const MatrixRM>;

/// A dense float tensor of shape (N, C, H, W), row-major (W fastest). A matrix of features is (N, F, 1, 1).
/// Resizing to the same element count never reallocates, so layers keep their buffers across steps.
struct Tensor {
  std::array<Index, 4> shape{0, 0, 0, 0};
  Eigen::VectorXf data;

  Tensor() = default;
  Tensor(Index n, Index c, Index h = 1, Index w = 1) { resize(n, c, h, w); }

  /// Sets the shape; keeps the storage when the element count is unchanged. Contents are unspecified.
  void resize(Index n, Index c, Index h = 1, Index w = 1) {
    shape = {n, c, h, w};
    if (data.size() != n * c * h * w) data.resize(n * c * h * w);
  }
  void resize_like(const Tensor& t) { resize(t.shape[0], t.shape[1], t.shape[2], t.shape[3]); }
  Index n() const { return shape[0]; }
  Index c() const { return shape[1]; }
  Index h() const { return shape[2]; }
  Index w() const { return shape[3]; }
  Index size() const { return data.size(); }
  /// Elements per sample (C*H*W).
  Index sample_size() const { return shape[1] * shape[2] * shape[3]; }
  float* ptr() { return data.data(); }
  const float* ptr() const { return data.data(); }
  /// The tensor as an N x (C*H*W) row-major matrix.
  MapRM matrix() { return MapRM(data.data(), shape[0], sample_size()); }
  ConstMapRM matrix() const { return ConstMapRM(data.data(), shape[0], sample_size()); }
  void set_zero() { data.setZero(); }
  bool same_shape(const Tensor& t) const { return shape == t.shape; }
};

/// A named learnable (or buffered) array with its gradient and logical shape (for checkpoints).
struct Parameter {
  std::string name;            ///< local name inside its module ("weight", "bias", "step_size_w4", ...)
  std::vector<Index> shape;    ///< logical shape, product equals value.size()
  Eigen::VectorXf value;
  Eigen::VectorXf grad;        ///< same size as value for trainable parameters, empty for buffers
  bool trainable = true;       ///< false for buffers such as BatchNorm running statistics
  bool weight_decay = true;    ///< false for biases, BN affine parameters and step sizes
  float lr_scale = 1.0f;       ///< multiplies the learning rate (LSQ step sizes may use a smaller one)
  /// Set by the layer whenever backward wrote a gradient since the last zero_grad(). Optimisers skip
  /// parameters without one (like PyTorch's grad=None): an inactive bit-width's step size or an inactive BN
  /// of a switchable bank is not moved by momentum or weight decay.
  bool has_grad = false;

  Parameter() = default;
  Parameter(std::string n, std::vector<Index> s, bool is_trainable = true, bool decay = true)
      : name(std::move(n)), shape(std::move(s)), trainable(is_trainable), weight_decay(decay) {
    Index total = 1;
    for (Index d : shape) total *= d;
    value = Eigen::VectorXf::Zero(total);
    if (trainable) grad = Eigen::VectorXf::Zero(total);
  }
  void zero_grad() {
    if (trainable) grad.setZero();
    has_grad = false;
  }
};

// ----------------------------------------------------------------------------------------------------------
// Threads

namespace detail {

/// A fixed pool of worker threads. run(tasks, chunks, fn) splits [0, tasks) into `chunks` contiguous chunks
/// with fixed boundaries (chunk c is [tasks * c / chunks, tasks * (c + 1) / chunks)) and hands them out
/// dynamically: each thread, the caller included (thread 0), claims the next chunk until none is left, and run
/// returns as soon as every chunk is done. A worker that the OS has not scheduled yet (a shared machine) delays
/// nothing: the threads that run take its chunks. Results that depend on chunk boundaries only are
/// independent of the thread count.
class ThreadPool {
 public:
  /// Whether the calling thread is running a chunk of some pool's loop.
  static bool inside() { return inside_flag(); }

  using Fn = std::function<void(Index, Index, Index, int)>;  // (begin, end, chunk, thread)

  explicit ThreadPool(int threads) : threads_(threads < 1 ? 1 : threads) {
    for (int t = 1; t < threads_; ++t) workers_.emplace_back([this, t] { loop(t); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_; }

  /// Runs fn(begin, end, chunk, thread) for every chunk; returns when all are done. An exception thrown by fn
  /// (on any thread) is rethrown here once every chunk has finished (the first one thrown; the other chunks
  /// still run), so no thread uses fn after run returns or unwinds. fn must not start another parallel loop
  /// (parallel_for_chunks throws mixq::error when asked to).
  void run(Index tasks, Index chunks, const Fn& fn) {
    if (tasks <= 0) return;
    if (threads_ == 1 || chunks <= 1) {
      for (Index c = 0; c < chunks; ++c) fn(tasks * c / chunks, tasks * (c + 1) / chunks, c, 0);
      return;
    }
    std::uint64_t gen;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      tasks_ = tasks;
      chunks_ = chunks;
      gen = ++generation_;
      done_.store(0, std::memory_order_relaxed);
      error_ = nullptr;
      ticket_.store(gen << 32, std::memory_order_release);
    }
    cv_.notify_all();
    work(fn, tasks, chunks, gen, 0);
    std::exception_ptr error;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      done_cv_.wait(lock, [&] { return done_.load(std::memory_order_acquire) == chunks; });
      std::swap(error, error_);
    }
    if (error) std::rethrow_exception(error);
  }

 private:
  static bool& inside_flag() {
    thread_local bool flag = false;
    return flag;
  }
  struct InsidePool {
    bool was = inside_flag();
    InsidePool() { inside_flag() = true; }
    ~InsidePool() { inside_flag() = was; }
  };
  // Claims chunks of run `gen` (the ticket holds the generation in its high 32 bits and the next chunk in its
  // low 32 bits, so a late worker can never claim a chunk of a later run with the function of an earlier one).
  void work(const Fn& fn, Index tasks, Index chunks, std::uint64_t gen, int t) {
    std::uint64_t ticket = ticket_.load(std::memory_order_acquire);
    for (;;) {
      if ((ticket >> 32) != (gen & 0xffffffffu)) return;
      const auto c = static_cast<Index>(ticket & 0xffffffffu);
      if (c >= chunks) return;
      if (!ticket_.compare_exchange_weak(ticket, ticket + 1, std::memory_order_acq_rel)) continue;
      try {
        InsidePool inside;
        fn(tasks * c / chunks, tasks * (c + 1) / chunks, c, t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks) {
        { std::lock_guard<std::mutex> lock(mutex_); }
        done_cv_.notify_one();
      }
      ticket = ticket_.load(std::memory_order_acquire);
    }
  }
  void loop(int t) {
    std::uint64_t seen = 0;
    for (;;) {
      const Fn* fn;
      Index tasks, chunks;
      std::uint64_t gen;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return generation_ != seen; });
        seen = gen = generation_;
        if (stop_) return;
        fn = fn_;
        tasks = tasks_;
        chunks = chunks_;
      }
      work(*fn, tasks, chunks, gen, t);
    }
  }

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable cv_, done_cv_;
  const Fn* fn_ = nullptr;
  Index tasks_ = 0, chunks_ = 0;
  std::atomic<std::uint64_t> ticket_{0};
  std::atomic<Index> done_{0};
  std::exception_ptr error_;  // first exception of the current run (guarded by mutex_)
  std::uint64_t generation_ = 0;
  bool stop_ = false;
};

inline std::unique_ptr<ThreadPool>& thread_pool_slot() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}

}  // namespace detail

/// Sets the number of threads the nn layers use (default 1). Results do not depend on the count: loops are
/// split into chunks fixed by their size, and partial sums are reduced in chunk order. Not thread-safe: call
/// between steps.
inline void set_num_threads(int threads) {
  if (threads < 1) mixq::detail::fail("set_num_threads: threads must be >= 1, got ", threads);
  auto& slot = detail::thread_pool_slot();
  if (slot && slot->threads() == threads) return;
  slot.reset();
  if (threads > 1) slot = std::make_unique<detail::ThreadPool>(threads);
}

/// The number of threads the nn layers use.
inline int num_threads() {
  const auto& slot = detail::thread_pool_slot();
  return slot ? slot->threads() : 1;
}

/// Chunks parallel_for splits a loop into (fewer when there are fewer tasks), whatever the thread count.
inline constexpr Index kParallelChunks = 16;

/// Calls fn(begin, end, chunk, thread) for each of `chunks` contiguous chunks of [0, tasks) (boundaries fixed by
/// tasks and chunks only), spread over num_threads() threads. `thread` indexes per-thread scratch; `chunk`
/// indexes partial results, so reducing them in chunk order gives the same bits for any thread count.
inline void parallel_for_chunks(Index tasks, Index chunks, const detail::ThreadPool::Fn& fn) {
  chunks = std::max<Index>(1, std::min(chunks, tasks));
  auto& slot = detail::thread_pool_slot();
  if (detail::ThreadPool::inside())  // its per-thread scratch indices would collide with the outer loop's
    mixq::detail::fail("parallel_for: a parallel loop cannot start inside another one's chunk");
  if (!slot) {
    for (Index c = 0; c < chunks && tasks > 0; ++c) fn(tasks * c / chunks, tasks * (c + 1) / chunks, c, 0);
    return;
  }
  slot->run(tasks, chunks, fn);
}

/// Calls fn(begin, end, thread) over contiguous chunks of [0, tasks) (at most kParallelChunks, fixed
/// boundaries), spread dynamically over num_threads() threads; a thread may get several chunks.
inline void parallel_for(Index tasks, const std::function<void(Index, Index, int)>& fn) {
  parallel_for_chunks(tasks, kParallelChunks, [&fn](Index b, Index e, Index, int t) { fn(b, e, t); });
}

}  // namespace mixq::nn
