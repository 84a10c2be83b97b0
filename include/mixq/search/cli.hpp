#pragma once
/// @file
/// The mixq-search program as a function (examples/mixq_search.cpp calls it; tests call it in-process).
///
///   mixq-search [--time-limit S] [--node-limit N] [--pretty] PROBLEM.json|-
///   mixq-search --limpq NETWORK INDICATORS --level W3A4 --ratio 12.2 [--alpha 2] [--exact-macs] [...]
///
/// The first form solves a JSON problem (search/json.hpp) read from a file or stdin ("-"). The second builds the
/// LIMPQ problem of a built-in network (resnet18, resnet50, mobilenet_v2; first conv and FC at 8 bits) from an
/// indicator file in the column format of LIMPQ's published indicators, with budgets: BitOps of the level
/// "W3A4" and size = 32 * weights / ratio; --exact-macs uses the table's MACs instead of the file's column.
/// Writes the solution JSON to stdout. Exit codes (cli_exit_codes): 0 a solution (optimal, or feasible when a limit
/// stopped the proof), 1 infeasible (the solution JSON says which budget), 3 no solution found within the limits,
/// 2 bad input (one line "mixq-search: <message>" on stderr; argument errors also print the usage).

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mixq/detail/cli_args.hpp"
#include "mixq/error.hpp"
#include "mixq/search/json.hpp"
#include "mixq/search/networks.hpp"
#include "mixq/search/objectives.hpp"
#include "mixq/search/solver.hpp"

namespace mixq::search {

/// Exit codes of mixq-search.
enum cli_exit_codes : int {
  cli_solved = 0,      ///< optimal, or feasible with a proven gap when a node or time limit stopped the search
  cli_infeasible = 1,  ///< proven infeasible: no choice meets every budget
  cli_bad_input = 2,   ///< bad arguments, unreadable or invalid problem, bad MIXQ_FORCE_ISA
  cli_unknown = 3      ///< a limit stopped the search before any solution was found
};

namespace detail {

inline const char* cli_notes() {
  return "PROBLEM JSON (a file, or '-' for stdin):\n"
         "  {\"budgets\": [B0, B1, ...],                       one budget per resource row, integers >= 0\n"
         "   \"resources\": [\"BitOps\", \"size\", ...],          optional: names of the rows, for messages\n"
         "   \"layers\": [{\"name\": \"conv1\",\n"
         "               \"options\": [{\"label\": \"w4a4\", \"cost\": 1.5, \"use\": [U0, U1, ...],\n"
         "                            \"allowed\": true}, ...],   label and allowed optional\n"
         "               \"fixed\": 0}, ...],                    optional: the only option index allowed\n"
         "   \"ties\": [[\"conv2\", \"down\"], ...]}                optional: layers that take the same option index\n"
         "  The solver picks one allowed option per layer, minimising the summed cost with every row's summed use\n"
         "  within its budget. Integers may be written 1e9 or 10.0; any other key is an error (exit 2).\n"
         "\n"
         "SOLUTION JSON (stdout):\n"
         "  {\"status\": \"optimal\"|\"feasible\"|\"infeasible\"|\"unknown\", \"objective\": number|null,\n"
         "   \"choices\": [{\"layer\": \"conv1\", \"option\": 1, \"label\": \"w4a4\"}, ...], \"use\": [...],\n"
         "   \"bound\": ..., \"gap\": ..., \"nodes\": N, \"solve_seconds\": S}\n"
         "  infeasible: also \"infeasible_resource\", \"minimum_use\", \"message\".\n"
         "  --limpq: also \"budgets\" [BitOps, size bits]. Its layers include the 8-bit first and last layers (one\n"
         "  option each): \"use\" and the budgets are the whole network's.\n"
         "\n"
         "--limpq NETWORK INDICATORS: NETWORK is resnet18, resnet50 or mobilenet_v2 (torchvision, 224x224);\n"
         "  INDICATORS has one line per searchable layer: params MACs S_w(6) .. S_w(2) S_a(6) .. S_a(2)\n"
         "  (LIMPQ's published format). Budgets: BitOps of the uniform --level, size 32 * weights / --ratio.\n"
         "\n"
         "exit codes: 0 solved (optimal, or feasible when a limit stopped the proof), 1 infeasible,\n"
         "            2 bad input or arguments, 3 no solution found within the limits.\n"
         "\n"
         "examples:\n"
         "  mixq-search problem.json\n"
         "  mixq-search --limpq resnet50 limpq_r50_real.txt --level W3A4 --ratio 12.2 --pretty\n";
}

/// The exit code of a solve's status.
inline int cli_exit_code(Status s) {
  switch (s) {
    case Status::optimal:
    case Status::feasible: return cli_solved;
    case Status::infeasible: return cli_infeasible;
    default: return cli_unknown;
  }
}

}  // namespace detail

/// Runs mixq-search with argv (argv[0] is the program name); returns the exit code (cli_exit_codes).
inline int run_cli(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err) {
  namespace cli = mixq::detail::cli;
  SolveOptions options;
  bool pretty = false, exact_macs = false;
  std::string level, network, indicators, problem_path;
  double ratio = 0.0, alpha = 2.0;
  cli::Parser parser("mixq-search",
                     "Exact mixed-precision bit-width search: one option per layer, minimum summed cost, every\n"
                     "budget met. Reads a JSON problem (or builds LIMPQ's with --limpq), writes the solution JSON.");
  parser.option("--time-limit", options.time_limit_seconds, "S", "stop the branch and bound after S seconds (0: none)",
                0.0, 1e9);
  parser.option("--node-limit", options.node_limit, "N", "stop after N branch-and-bound nodes (0: none)", 0);
  parser.flag("--pretty", pretty, "indent the solution JSON");
  parser.option_values("--limpq", 2, "NETWORK INDICATORS", "build LIMPQ's problem of a built-in network",
                       [&](const std::vector<std::string>& v) {
                         network = v[0];
                         indicators = v[1];
                       });
  parser.option("--level", level, "W3A4", "--limpq: the uniform level whose BitOps are the budget");
  parser.option("--ratio", ratio, "R", "--limpq: size budget = 32 * weights / R (R > 0)", 1e-9, 1e9);
  parser.option("--alpha", alpha, "A", "--limpq: cost S_a(b_a) + A * S_w(b_w)", 0.0, 1e9);
  parser.flag("--exact-macs", exact_macs, "--limpq: the network table's MACs instead of the file's column");
  parser.positional("PROBLEM.json|-", problem_path, "the problem file, or - for stdin (not with --limpq)", false);
  parser.notes(detail::cli_notes());
  if (auto code = parser.parse(args, out, err)) return *code;
  const bool limpq = parser.given("--limpq");
  auto usage_error = [&](const std::string& msg) {
    err << "mixq-search: " << msg << "\n" << parser.usage() << "Try 'mixq-search --help'.\n";
    return cli_bad_input;
  };
  if (limpq) {
    if (!problem_path.empty()) return usage_error("--limpq takes no problem file, got '" + cli::printable(problem_path) + "'");
    if (level.empty()) return usage_error("--limpq needs --level (e.g. W3A4)");
    if (!parser.given("--ratio")) return usage_error("--limpq needs --ratio (e.g. 12.2)");
  } else {
    if (problem_path.empty()) return usage_error("no problem file (give a path, or '-' for stdin)");
    for (const char* f : {"--level", "--ratio", "--alpha", "--exact-macs"})
      if (parser.given(f)) return usage_error(std::string(f) + " is an option of --limpq");
  }
  try {
    Problem problem;
    nlohmann::json extra;
    if (limpq) {
      const BitPair lv = parse_level(level);
      const LayerTable table = network_by_name(network);
      const LimpqIndicators ind = read_limpq_indicators(indicators);
      const LimpqBudgets b = limpq_budgets(table, ind, lv.weight_bits, lv.activation_bits, ratio, !exact_macs);
      problem = limpq_problem(table, ind, b, alpha, !exact_macs);
      extra["budgets"] = {b.bit_operations, b.size_bits};
    } else {
      std::ostringstream ss;
      if (problem_path == "-") {
        ss << in.rdbuf();
      } else {
        std::ifstream f(problem_path, std::ios::binary);
        if (!f) mixq::detail::fail("cannot open '", problem_path, "'");
        ss << f.rdbuf();
      }
      problem = parse_problem(ss.str());
    }
    const Solution s = Solver(problem).solve(options);
    nlohmann::json j = solution_to_json(problem, s);
    for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
    // error_handler_t::replace: a layer name with invalid UTF-8 is written with U+FFFD instead of throwing.
    out << j.dump(pretty ? 2 : -1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return detail::cli_exit_code(s.status);
  } catch (const std::exception& e) {
    err << "mixq-search: " << cli::printable(e.what()) << "\n";
    return cli_bad_input;
  }
}

}  // namespace mixq::search
