#pragma once
/// @file
/// Runtime ISA dispatch. x86: every path is compiled into one binary with function target attributes,
/// CPUID picks the best on first use, MIXQ_FORCE_ISA or force_isa() override. aarch64: NEON, chosen at
/// compile time. The table of the active ISA is held in a function-local static (no SIMD types at
/// namespace scope).

#include "mixq/error.hpp"
#include "mixq/kernels/isa.hpp"
#include "mixq/kernels/detail/scalar.hpp"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define MIXQ_KERNELS_X86 1
#include "mixq/kernels/detail/avx2.hpp"
#include "mixq/kernels/detail/avx512.hpp"
#elif defined(__aarch64__) && defined(__ARM_NEON)
#define MIXQ_KERNELS_NEON 1
#include "mixq/kernels/detail/neon.hpp"
#endif

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace mixq::kernels {
namespace detail {

/// One ISA's implementation of every kernel (unchecked, raw pointers).
struct KernelTable {
  Isa isa;
  void (*fake_quant)(const float*, float*, std::ptrdiff_t, const Params&);
  void (*fake_quant_channels)(const float*, float*, std::ptrdiff_t, std::ptrdiff_t, std::ptrdiff_t, const float*,
                              const std::int32_t*, std::int32_t, std::int32_t);
  void (*fake_quant_backward)(const float*, const float*, float*, std::ptrdiff_t, const Params&);
  void (*fake_quant_backward_channels)(const float*, const float*, float*, std::ptrdiff_t, std::ptrdiff_t,
                                       std::ptrdiff_t, const float*, const std::int32_t*, std::int32_t,
                                       std::int32_t);
  void (*lsq_backward)(const float*, const float*, float*, std::ptrdiff_t, const Params&, double*, double*);
  void (*lsq_backward_channels)(const float*, const float*, float*, std::ptrdiff_t, std::ptrdiff_t,
                                std::ptrdiff_t, const float*, const std::int32_t*, std::int32_t, std::int32_t,
                                double*, double*);
  void (*quantize_s8)(const float*, std::int8_t*, std::ptrdiff_t, const Params&);
  void (*quantize_u8)(const float*, std::uint8_t*, std::ptrdiff_t, const Params&);
  void (*quantize_s16)(const float*, std::int16_t*, std::ptrdiff_t, const Params&);
  void (*dequantize_s8)(const std::int8_t*, float*, std::ptrdiff_t, float, std::int32_t);
  void (*dequantize_u8)(const std::uint8_t*, float*, std::ptrdiff_t, float, std::int32_t);
  void (*dequantize_s16)(const std::int16_t*, float*, std::ptrdiff_t, float, std::int32_t);
  void (*minmax)(const float*, std::ptrdiff_t, float*, float*);
  void (*pack_bits)(const std::uint8_t*, std::ptrdiff_t, int, std::uint8_t*);
  void (*unpack_bits)(const std::uint8_t*, std::ptrdiff_t, int, std::uint8_t*, bool);
};

// Every ISA namespace provides the same function set; quantize/dequantize are templates or overloads
// on the code type.
#define MIXQ_KERNEL_TABLE(ns, isa_value)                                                                        \
  KernelTable {                                                                                                 \
    isa_value, &ns::fake_quant, &ns::fake_quant_channels, &ns::fake_quant_backward,                             \
        &ns::fake_quant_backward_channels, &ns::lsq_backward, &ns::lsq_backward_channels,                       \
        &ns::quantize<std::int8_t>, &ns::quantize<std::uint8_t>, &ns::quantize<std::int16_t>,                   \
        &ns::dequantize<std::int8_t>, &ns::dequantize<std::uint8_t>, &ns::dequantize<std::int16_t>,             \
        &ns::minmax, &ns::pack_bits, &ns::unpack_bits                                                           \
  }

/// The table of `isa`, or nullptr when this build has no such path.
inline const KernelTable* table_for(Isa isa) {
  static const KernelTable scalar_table = MIXQ_KERNEL_TABLE(scalar, Isa::scalar);
  switch (isa) {
    case Isa::scalar: return &scalar_table;
#if defined(MIXQ_KERNELS_X86)
    case Isa::avx2: {
      static const KernelTable t = MIXQ_KERNEL_TABLE(avx2, Isa::avx2);
      return &t;
    }
    case Isa::avx512: {
      static const KernelTable t = MIXQ_KERNEL_TABLE(avx512, Isa::avx512);
      return &t;
    }
#endif
#if defined(MIXQ_KERNELS_NEON)
    case Isa::neon: {
      static const KernelTable t = MIXQ_KERNEL_TABLE(neon, Isa::neon);
      return &t;
    }
#endif
    default: return nullptr;
  }
}

/// True when this build has a path for `isa` and the CPU (and OS) can run it.
inline bool cpu_supports(Isa isa) {
  if (table_for(isa) == nullptr) return false;
#if defined(MIXQ_KERNELS_X86)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
    case Isa::avx512:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2") &&
             __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    default: return true;
  }
#else
  return true;
#endif
}

inline std::string available_list() {
  std::string s;
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon})
    if (cpu_supports(isa)) s += std::string(s.empty() ? "" : ", ") + isa_name(isa);
  return s;
}

inline const KernelTable* initial_table() {
  const char* forced = std::getenv("MIXQ_FORCE_ISA");
  if (forced != nullptr && *forced != '\0') {
    for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon})
      if (equal_ignoring_case(forced, isa_name(isa))) {  // "AVX2" is avx2
        if (!cpu_supports(isa))
          mixq::detail::fail("MIXQ_FORCE_ISA: ISA '", forced, "' is not available on this CPU (available: ",
                             available_list(), ")");
        return table_for(isa);
      }
    mixq::detail::fail("MIXQ_FORCE_ISA: must be one of scalar, avx2, avx512, neon, got '", forced, "'");
  }
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::neon})
    if (cpu_supports(isa)) return table_for(isa);
  return table_for(Isa::scalar);
}

inline std::atomic<const KernelTable*>& active_slot() {
  static std::atomic<const KernelTable*> slot{initial_table()};
  return slot;
}

/// The ISA whose kernel ran last on this thread (a test hook: the forced ISA must be the one that ran).
inline Isa& last_isa_used() {
  thread_local Isa last = Isa::scalar;
  return last;
}

/// The active table; records its ISA in last_isa_used().
inline const KernelTable& active() {
  const KernelTable* t = active_slot().load(std::memory_order_acquire);
  last_isa_used() = t->isa;
  return *t;
}

}  // namespace detail

/// The ISA the kernels run on: MIXQ_FORCE_ISA if set (read on first use, case-insensitive; throws mixq::error if
/// it names an unknown ISA or one the CPU lacks, on every call until it is fixed), else the last force_isa(), else the best the CPU supports.
inline Isa active_isa() { return detail::active_slot().load(std::memory_order_acquire)->isa; }

/// Every ISA this build and CPU can run, scalar first, best last.
inline std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::scalar, Isa::neon, Isa::avx2, Isa::avx512})
    if (detail::cpu_supports(isa)) out.push_back(isa);
  return out;
}

/// Makes every later kernel call (from any thread) run on `isa`. Throws mixq::error if the CPU lacks it.
inline void force_isa(Isa isa) {
  if (!detail::cpu_supports(isa))
    mixq::detail::fail("force_isa: ISA '", isa_name(isa), "' is not available on this CPU (available: ",
                       detail::available_list(), ")");
  detail::active_slot().store(detail::table_for(isa), std::memory_order_release);
}

}  // namespace mixq::kernels
