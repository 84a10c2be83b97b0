#include <mixq/mixq.hpp>

#include <cstdio>

int main() {
  std::printf("mixq %s\n", mixq::version_string);
  return mixq::version_number > 0 ? 0 : 1;
}
