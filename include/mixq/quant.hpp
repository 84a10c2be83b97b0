#pragma once
/// @file
/// The quant layer of mixq: includes every public header of include/mixq/quant/.
///
/// - QuantSpec, params_from_range() (quant/spec.hpp); channel_layout() (quant/layout.hpp).
/// - Observers (quant/observers.hpp): MinMaxObserver, EmaMinMaxObserver, PercentileObserver, MseObserver (its
///   clipping search: quant/mse_search.hpp).
/// - LSQ step-size initialisers (quant/lsq.hpp): lsq_init_step_sizes, three_sigma_step_sizes,
///   step_sizes_from_observer.
/// - QuantizedTensor (quant/quantized_tensor.hpp): bit-packed codes, scales, zero points.
/// - Binary weights (quant/binary.hpp): binary_forward, binary_backward, binary_mean_abs_alpha, quantize_binary.
/// - Quantizer<Granularity> (quant/quantizer.hpp): calibrate, forward, backward, lsq_backward, quantize,
///   dequantize.

#include "mixq/error.hpp"
#include "mixq/quant/spec.hpp"
#include "mixq/quant/layout.hpp"
#include "mixq/quant/mse_search.hpp"
#include "mixq/quant/observers.hpp"
#include "mixq/quant/lsq.hpp"
#include "mixq/quant/quantized_tensor.hpp"
#include "mixq/quant/binary.hpp"
#include "mixq/quant/quantizer.hpp"
