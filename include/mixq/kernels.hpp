#pragma once
/// @file
/// The kernels layer of mixq: raw-pointer SIMD kernels with runtime ISA dispatch, the performance core
/// every higher layer calls. Namespace mixq::kernels.
///
/// - ISA selection (kernels/isa.hpp, kernels/dispatch.hpp): Isa, active_isa(), available_isas(), force_isa(),
///   isa_name(), isa_from_name(), environment variable MIXQ_FORCE_ISA=scalar|avx2|avx512|neon (read on first
///   use). x86 picks the best of AVX-512 / AVX2 / scalar by CPUID (no -march needed); aarch64 uses NEON.
/// - Fake quantization (kernels/fake_quant.hpp): fake_quant, fake_quant_per_channel, fake_quant_per_group,
///   fake_quant_backward{,_per_channel,_per_group}, lsq_backward{,_per_channel,_per_group}.
/// - Deployment (kernels/quantize.hpp, kernels/pack_bits.hpp): quantize, dequantize, minmax, packed_size,
///   pack_bits, unpack_bits.
///
/// The numeric contract (rounding, clamping, NaN and Inf, bit-identity across ISAs, bounds of the LSQ sums)
/// is docs/NUMERICS.md; throughput against memcpy and PyTorch is docs/PERFORMANCE.md, section Kernels.

#include "mixq/error.hpp"
#include "mixq/kernels/isa.hpp"
#include "mixq/kernels/dispatch.hpp"
#include "mixq/kernels/fake_quant.hpp"
#include "mixq/kernels/quantize.hpp"
#include "mixq/kernels/pack_bits.hpp"
