#pragma once
/// @file
/// Dense bit packing of 1..8-bit codes: n codes of b bits take ceil(b * n / 8) bytes.
/// Layout: a little-endian bit stream; code i occupies stream bits [i * b, (i + 1) * b), stream bit k is bit
/// k % 8 of byte k / 8, padding bits of the last byte are 0. Bit-identical on every ISA.

#include "mixq/kernels/detail/check.hpp"
#include "mixq/kernels/dispatch.hpp"

#include <cstddef>
#include <cstdint>

namespace mixq::kernels {

/// Bytes that n codes of `bits` bits take when packed: ceil(bits * n / 8).
/// @pre n >= 0; bits in 1..8.
inline std::ptrdiff_t packed_size(std::ptrdiff_t n, int bits) {
  detail::check_size("packed_size", "n", n);
  detail::check_bits("packed_size", bits);
  return n / 8 * bits + (n % 8 * bits + 7) / 8;
}

/// Packs the low `bits` bits of each of n codes into packed_size(n, bits) bytes at out (higher bits of a
/// code are ignored, so two's-complement signed codes pack as their low bits).
/// @pre n >= 0; bits in 1..8; codes and out do not overlap.
inline void pack_bits(const std::uint8_t* codes, std::ptrdiff_t n, int bits, std::uint8_t* out) {
  constexpr const char* fn = "pack_bits";
  detail::check_size(fn, "n", n);
  detail::check_bits(fn, bits);
  detail::check_pointer(fn, "codes", codes, n);
  detail::check_pointer(fn, "out", out, n);
  detail::active().pack_bits(codes, n, bits, out);
}

/// Packs signed codes (their low `bits` bits, two's complement); as the unsigned overload.
inline void pack_bits(const std::int8_t* codes, std::ptrdiff_t n, int bits, std::uint8_t* out) {
  pack_bits(reinterpret_cast<const std::uint8_t*>(codes), n, bits, out);
}

/// Unpacks n codes of `bits` bits from packed_size(n, bits) bytes into codes in [0, 2^bits).
/// @pre n >= 0; bits in 1..8; packed and codes do not overlap.
inline void unpack_bits(const std::uint8_t* packed, std::ptrdiff_t n, int bits, std::uint8_t* codes) {
  constexpr const char* fn = "unpack_bits";
  detail::check_size(fn, "n", n);
  detail::check_bits(fn, bits);
  detail::check_pointer(fn, "packed", packed, n);
  detail::check_pointer(fn, "codes", codes, n);
  detail::active().unpack_bits(packed, n, bits, codes, false);
}

/// Unpacks n codes of `bits` bits as signed two's-complement values in [-2^(bits-1), 2^(bits-1)).
inline void unpack_bits(const std::uint8_t* packed, std::ptrdiff_t n, int bits, std::int8_t* codes) {
  constexpr const char* fn = "unpack_bits";
  detail::check_size(fn, "n", n);
  detail::check_bits(fn, bits);
  detail::check_pointer(fn, "packed", packed, n);
  detail::check_pointer(fn, "codes", codes, n);
  detail::active().unpack_bits(packed, n, bits, reinterpret_cast<std::uint8_t*>(codes), true);
}

}  // namespace mixq::kernels
