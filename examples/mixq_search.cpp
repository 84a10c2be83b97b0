// mixq-search: exact mixed-precision search from the command line (see include/mixq/search/cli.hpp).
//   mixq-search problem.json
//   mixq-search --limpq resnet50 ../shared/data/limpq_r50_real.txt --level W3A4 --ratio 12.2
//   mixq-search --help        # the JSON format, the built-in networks, the exit codes
#include <mixq/search/cli.hpp>

#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv, argv + argc);
  return mixq::search::run_cli(args, std::cin, std::cout, std::cerr);
}
