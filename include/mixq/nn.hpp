#pragma once
/// @file
/// The nn layer of mixq: includes every public header of include/mixq/nn/.

#include "mixq/error.hpp"
