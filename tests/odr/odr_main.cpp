// ODR check: this file and odr_other.cpp both include the umbrella header and link into one program.
// Any non-inline definition with external linkage in a header fails the link with a duplicate symbol.
#include <mixq/mixq.hpp>

#include <cstdio>
#include <cstring>

const char* mixq_odr_other_version();

int main() {
  if (std::strcmp(mixq_odr_other_version(), mixq::version_string) != 0) {
    std::puts("ODR check failed: the two translation units disagree on the version");
    return 1;
  }
  std::printf("ODR check passed: mixq %s\n", mixq::version_string);
  return 0;
}
