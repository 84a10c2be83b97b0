#pragma once
/// @file
/// The search layer of mixq: includes every public header of include/mixq/search/.

#include "mixq/error.hpp"
