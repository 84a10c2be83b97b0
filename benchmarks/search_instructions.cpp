// Instruction counts of the exact solver, for callgrind (scripts/search_instructions.sh), and its node counts and
// optima on bench_search's problems. Wall and CPU times of the solver move with a shared machine's phase by up to 2x;
// instructions per solve do not, so solver changes are compared by them (and by unchanged node counts).
//   search_instructions --check          every problem once (and the LLM seeds 1-6, the 100-budget sweep):
//                                        status, objective, nodes
//   search_instructions PROBLEM N        solves PROBLEM N times (the sweep: N sweeps); PROBLEM is one of
//                                        real, quirk, resnet18, mobilenet_v2, llm, llm_seedS, sweep
#include <mixq/search.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "search_problems.hpp"

namespace ms = mixq::search;

namespace {

ms::Problem problem(const std::string& name) {
  if (name == "real" || name == "sweep") return mixq_bench::limpq("limpq_r50_real.txt");
  if (name == "quirk") return mixq_bench::limpq("limpq_r50_real_quirk.txt");
  if (name == "resnet18") return mixq_bench::synthetic(false);
  if (name == "mobilenet_v2") return mixq_bench::synthetic(true);
  if (name == "llm") return mixq_bench::llm_instance();
  if (name.rfind("llm_seed", 0) == 0) return mixq_bench::llm_instance(std::stoull(name.substr(8)));
  std::fprintf(stderr, "search_instructions: unknown problem '%s' (see --help)\n", name.c_str());
  std::exit(2);
}

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: search_instructions --check\n"
               "       search_instructions PROBLEM N   (PROBLEM: real, quirk, resnet18, mobilenet_v2, llm,\n"
               "                                        llm_seed1..llm_seed6, sweep; N >= 1 solves or sweeps)\n"
               "Run under valgrind --tool=callgrind with N and with 1: the difference / (N - 1) is one solve\n"
               "(compile included); scripts/search_instructions.sh does it for every problem.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "--check") == 0) {
    for (const char* n : {"real", "quirk", "resnet18", "mobilenet_v2", "llm", "llm_seed1", "llm_seed2", "llm_seed3",
                          "llm_seed4", "llm_seed5", "llm_seed6"}) {
      const ms::Solution s = ms::solve(problem(n));
      std::printf("%-13s %-10s objective %.10g nodes %lld\n", n, ms::to_string(s.status), s.objective,
                  static_cast<long long>(s.nodes));
    }
    const ms::Problem p = problem("sweep");
    long long nodes = 0, proven = 0;
    double sum = 0.0;
    for (const ms::Solution& s : ms::pareto_sweep(p, 0, mixq_bench::sweep_bitops(p))) {
      nodes += s.nodes;
      sum += s.objective;
      proven += s.status == ms::Status::optimal || s.status == ms::Status::infeasible;
    }
    std::printf("%-13s proven %lld of 100, summed objective %.10g nodes %lld\n", "sweep", proven, sum, nodes);
    return 0;
  }
  const int reps = argc == 3 ? std::atoi(argv[2]) : 0;
  if (reps < 1) {
    usage(stderr);
    return 2;
  }
  const std::string name = argv[1];
  const ms::Problem p = problem(name);
  double acc = 0.0;
  if (name == "sweep") {
    const std::vector<std::int64_t> budgets = mixq_bench::sweep_bitops(p);
    for (int i = 0; i < reps; ++i) acc += static_cast<double>(ms::pareto_sweep(p, 0, budgets).size());
  } else {
    for (int i = 0; i < reps; ++i) acc += ms::solve(p).objective;
  }
  std::printf("%.10g\n", acc);
  return 0;
}
