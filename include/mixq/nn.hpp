#pragma once
/// @file
/// The nn layer of mixq: a small, quantization-first training substrate on Eigen (namespace mixq::nn).
///
/// - Tensors, parameters, threads (nn/tensor.hpp): Tensor (row-major NCHW), Parameter, set_num_threads().
/// - Modules (nn/module.hpp): Module with forward/backward hooks, Sequential with forward_range/backward_range,
///   named_modules(), named_parameters().
/// - Layers (nn/conv.hpp, nn/layers.hpp, nn/batchnorm.hpp): Conv2d, Linear, ReLU, ReLU6, MaxPool2d, AvgPool2d,
///   GlobalAvgPool2d, Flatten, Residual, BatchNorm2d, SwitchableBatchNorm2d.
/// - Quantized layers (nn/quant_layers.hpp): LsqQuantizer, QuantConv2d, QuantLinear.
/// - Losses, optimisers, schedules (nn/loss.hpp, nn/optim.hpp).
/// - Hooks (nn/hooks.hpp): quant_layers(), layer_table(), set_bits(), sync_bn_keys(), FeatureCapture,
///   fold_batchnorm().
/// - Models (nn/models.hpp): make_mlp(), make_resnet(), make_mobilenet().
/// - Data (nn/data.hpp), checkpoints for resuming training (nn/checkpoint.hpp), the quantized-model export
///   (nn/export.hpp: fold BN, quantize with the learned step sizes, pack).

#include "mixq/error.hpp"
#include "mixq/nn/tensor.hpp"
#include "mixq/nn/module.hpp"
#include "mixq/nn/gemm.hpp"
#include "mixq/nn/conv.hpp"
#include "mixq/nn/layers.hpp"
#include "mixq/nn/batchnorm.hpp"
#include "mixq/nn/quant_layers.hpp"
#include "mixq/nn/loss.hpp"
#include "mixq/nn/optim.hpp"
#include "mixq/nn/hooks.hpp"
#include "mixq/nn/models.hpp"
#include "mixq/nn/data.hpp"
#include "mixq/nn/checkpoint.hpp"
#include "mixq/nn/export.hpp"
