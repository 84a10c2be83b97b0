#pragma once
/// @file
/// The kernels layer of mixq: includes every public header of include/mixq/kernels/.

#include "mixq/error.hpp"
