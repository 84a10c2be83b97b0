#pragma once
/// @file
/// The instruction sets mixq's kernels are written for, and their names.

#include "mixq/error.hpp"

namespace mixq::kernels {

/// An instruction set with its own kernel implementation. scalar is portable C++ and the reference;
/// avx2 means AVX2 + FMA + BMI2; avx512 means AVX-512 F, BW, DQ and VL; neon is aarch64 Advanced SIMD.
enum class Isa { scalar, avx2, avx512, neon };

/// The lower-case name of an ISA ("scalar", "avx2", "avx512", "neon"), as MIXQ_FORCE_ISA spells it.
inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
  }
  return "unknown";
}

namespace detail {
/// ASCII case-insensitive equality of two NUL-terminated strings.
inline bool equal_ignoring_case(const char* a, const char* b) {
  for (; *a != '\0' && *b != '\0'; ++a, ++b) {
    const char x = (*a >= 'A' && *a <= 'Z') ? static_cast<char>(*a - 'A' + 'a') : *a;
    const char y = (*b >= 'A' && *b <= 'Z') ? static_cast<char>(*b - 'A' + 'a') : *b;
    if (x != y) return false;
  }
  return *a == *b;
}
}  // namespace detail

/// The ISA named `name` (as isa_name() spells it, case-insensitive: "AVX2" is avx2). Throws mixq::error for an
/// unknown name.
inline Isa isa_from_name(const char* name) {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon})
    if (name != nullptr && detail::equal_ignoring_case(name, isa_name(isa))) return isa;
  mixq::detail::fail("isa_from_name: name must be one of scalar, avx2, avx512, neon, got '",
                     name ? name : "(null)", "'");
}

}  // namespace mixq::kernels
