#pragma once
/// @file
/// The quant layer of mixq: includes every public header of include/mixq/quant/.

#include "mixq/error.hpp"
