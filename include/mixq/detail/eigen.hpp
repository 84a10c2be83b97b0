#pragma once
/// @file
/// The one place mixq includes Eigen (Core and the unsupported Tensor module).
///
/// GCC 12 raises -Wmaybe-uninitialized inside Eigen's AVX-512 GEMM packing (`ptranspose` of a
/// `PacketBlock<Packet16f, 16>` in `Eigen/src/Core/arch/AVX512/PacketMath.h`, inlined into
/// `gemm_pack_lhs`) when a program is compiled with AVX-512 enabled (`-march=native` on such a CPU,
/// `-march=x86-64-v4`). The warning is a false positive in Eigen's own code, and it is reported after
/// inlining, so the location chain ends in the user's file and Eigen's -isystem path does not hide it.
/// GCC decides a middle-end warning by the innermost location of that chain covered by a diagnostic pragma:
/// Eigen's headers are read here, between push and pop, so the warning is silenced for code whose source
/// lives in Eigen and nowhere else (mixq's and the user's code keep -Wmaybe-uninitialized and -Werror).
/// Every mixq header includes Eigen through this file; a program that includes Eigen itself before mixq
/// gets Eigen's own behaviour.

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <Eigen/Core>
#include <unsupported/Eigen/CXX11/Tensor>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
