#pragma once
/// @file
/// Umbrella header: every public part of mixq. Layers, bottom up (docs/ARCHITECTURE.md).

#include "mixq/version.hpp"
#include "mixq/error.hpp"
#include "mixq/kernels.hpp"
#include "mixq/quant.hpp"
#include "mixq/io.hpp"
#include "mixq/search.hpp"
#include "mixq/nn.hpp"
#include "mixq/schedule.hpp"
#include "mixq/ptq.hpp"
