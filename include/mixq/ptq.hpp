#pragma once
/// @file
/// The ptq layer of mixq: post-training quantization by reconstruction (namespace mixq::ptq; methods/PTQ.md).
///
/// - AdaRound (ptq/adaround.hpp): rectified sigmoid, V's initialisation, rounding regulariser, beta schedule,
///   WeightQuantizer (per-channel MSE grid; float, nearest, soft, hard rounding).
/// - QDrop masks (ptq/qdrop.hpp): DropMask (counter-based, seeded), mix_by_mask().
/// - Activation quantizer (ptq/act_quantizer.hpp): ActQuantizer (EMA of MSE ranges, learnable scale, QDrop).
/// - Weight layers (ptq/layers.hpp): PtqConv2d, PtqLinear (BN folded).
/// - The network (ptq/network.hpp): PtqNetwork from a trained nn model (quantizer placement, 8-bit exceptions).
/// - Reconstruction (ptq/reconstruction.hpp): calibrate_rtn(), unit_errors(), reconstruct() (AdaRound layer-wise,
///   BRECQ block-wise with optional Fisher weights, QDrop, merged units), evaluate_accuracy().
/// - MRECG (ptq/modcap.hpp): data-free and data-dependent ModCap, differentials, top-k merging with chaining,
///   random merges, merge lists, oscillation measures.

#include "mixq/error.hpp"
#include "mixq/ptq/adaround.hpp"
#include "mixq/ptq/qdrop.hpp"
#include "mixq/ptq/act_quantizer.hpp"
#include "mixq/ptq/layers.hpp"
#include "mixq/ptq/network.hpp"
#include "mixq/ptq/reconstruction.hpp"
#include "mixq/ptq/modcap.hpp"
