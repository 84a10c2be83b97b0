#pragma once
// Helpers shared by the test programs (header only; each test program is one translation unit, or one unity
// translation unit for the nn stack's tests).
#include <gtest/gtest.h>
#include <mixq/error.hpp>

#include <string>

namespace mixq_test {

/// Runs f, which must throw mixq::error with a message containing needle (a test failure otherwise).
template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected mixq::error containing \"" << needle << "\"";
  } catch (const mixq::error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace mixq_test
