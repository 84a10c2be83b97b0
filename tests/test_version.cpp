#include <mixq/error.hpp>
#include <mixq/version.hpp>

#include <gtest/gtest.h>

#include <string>

TEST(Version, StringMatchesNumber) {
  const std::string expected = std::to_string(MIXQ_VERSION_MAJOR) + "." + std::to_string(MIXQ_VERSION_MINOR) +
                               "." + std::to_string(MIXQ_VERSION_PATCH);
  EXPECT_EQ(expected, mixq::version_string);
  EXPECT_EQ(mixq::version_number, MIXQ_VERSION_MAJOR * 10000 + MIXQ_VERSION_MINOR * 100 + MIXQ_VERSION_PATCH);
}

TEST(Error, MessageNamesArgument) {
  try {
    mixq::detail::fail("scale must be positive, got ", -1.5f);
    FAIL() << "no exception";
  } catch (const mixq::error& e) {
    EXPECT_STREQ(e.what(), "scale must be positive, got -1.5");
  }
}
