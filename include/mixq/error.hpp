#pragma once
/// @file
/// The single exception type of mixq.

#include <sstream>
#include <stdexcept>
#include <string>

namespace mixq {

/// Thrown for every invalid argument, malformed file or unsatisfiable request. The message names the
/// argument (or file) and the offending value. Thrown before any output is written.
class error : public std::invalid_argument {
 public:
  explicit error(const std::string& what) : std::invalid_argument(what) {}
};

namespace detail {
/// Builds a message from streamable parts and throws mixq::error.
template <class... Parts>
[[noreturn]] inline void fail(const Parts&... parts) {
  std::ostringstream os;
  os.precision(9);
  (os << ... << parts);
  throw error(os.str());
}
}  // namespace detail
}  // namespace mixq
