#pragma once
/// @file
/// mixq version. CMake parses the three macros below; keep their form.

#define MIXQ_VERSION_MAJOR 0
#define MIXQ_VERSION_MINOR 1
#define MIXQ_VERSION_PATCH 0

namespace mixq {
/// The library version as "MAJOR.MINOR.PATCH".
inline constexpr const char* version_string = "0.1.0";
/// The library version as one integer, MAJOR * 10000 + MINOR * 100 + PATCH.
inline constexpr int version_number = MIXQ_VERSION_MAJOR * 10000 + MIXQ_VERSION_MINOR * 100 + MIXQ_VERSION_PATCH;
}  // namespace mixq
