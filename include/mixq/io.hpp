#pragma once
/// @file
/// The io layer of mixq: includes every public header of include/mixq/io/.

#include "mixq/error.hpp"
#include "mixq/io/fashion_mnist.hpp"
#include "mixq/io/safetensors.hpp"
