#pragma once
/// @file
/// The mixq-search program as a function (examples/mixq_search.cpp calls it; tests call it in-process).
/// Needs nlohmann_json; not included by <mixq/mixq.hpp>.
///
///   mixq-search [--time-limit S] [--node-limit N] [--pretty] PROBLEM.json|-
///   mixq-search --limpq NETWORK INDICATORS --level W3A4 --ratio 12.2 [--alpha 2] [--exact-macs] [...]
///
/// The first form solves a JSON problem (search/json.hpp) read from a file or stdin ("-"). The second builds the
/// LIMPQ problem of a built-in network (resnet18, resnet50, mobilenet_v2; first conv and FC at 8 bits) from an
/// indicator file in the column format of LIMPQ's published indicators, with budgets: BitOps of the level
/// "W3A4" and size = 32 * weights / ratio; --exact-macs uses the table's MACs instead of the file's column.
/// Writes the solution JSON to stdout. Bad input: one line "mixq-search: <message>" on stderr, exit code 2.

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mixq/error.hpp"
#include "mixq/search/json.hpp"
#include "mixq/search/networks.hpp"
#include "mixq/search/objectives.hpp"
#include "mixq/search/solver.hpp"

namespace mixq::search {

namespace detail {
inline double parse_number(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !std::isfinite(d)) mixq::detail::fail(flag, " expects a number, got '", v, "'");
  return d;
}

inline const char* cli_usage() {
  return "usage: mixq-search [--time-limit S] [--node-limit N] [--pretty] PROBLEM.json|-\n"
         "       mixq-search --limpq NETWORK INDICATORS --level W3A4 --ratio 12.2 [--alpha 2] [--exact-macs]\n";
}
}  // namespace detail

/// Runs mixq-search with argv (argv[0] is the program name); returns the exit code (0, or 2 on bad input).
inline int run_cli(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err) {
  try {
    SolveOptions options;
    bool pretty = false, limpq = false, exact_macs = false;
    std::string level, network, indicators, problem_path;
    double ratio = 0.0, alpha = 2.0;
    for (std::size_t i = 1; i < args.size(); ++i) {
      const std::string& a = args[i];
      auto value = [&]() -> const std::string& {
        if (i + 1 >= args.size()) mixq::detail::fail(a, " needs a value");
        return args[++i];
      };
      if (a == "--help" || a == "-h") {
        out << detail::cli_usage();
        return 0;
      } else if (a == "--time-limit") {
        options.time_limit_seconds = detail::parse_number(a, value());
        if (options.time_limit_seconds < 0) mixq::detail::fail("--time-limit must be >= 0, got ", options.time_limit_seconds);
      } else if (a == "--node-limit") {
        const double n = detail::parse_number(a, value());
        if (n < 0 || n != std::floor(n)) mixq::detail::fail("--node-limit must be a non-negative integer, got ", n);
        options.node_limit = static_cast<std::int64_t>(n);
      } else if (a == "--pretty") {
        pretty = true;
      } else if (a == "--limpq") {
        limpq = true;
        network = value();
        indicators = value();
      } else if (a == "--level") {
        level = value();
      } else if (a == "--ratio") {
        ratio = detail::parse_number(a, value());
      } else if (a == "--alpha") {
        alpha = detail::parse_number(a, value());
      } else if (a == "--exact-macs") {
        exact_macs = true;
      } else if (!a.empty() && a[0] == '-' && a != "-") {
        mixq::detail::fail("unknown option '", a, "'");
      } else {
        if (!problem_path.empty()) mixq::detail::fail("more than one problem file: '", problem_path, "' and '", a, "'");
        problem_path = a;
      }
    }
    Problem problem;
    nlohmann::json extra;
    if (limpq) {
      if (!problem_path.empty()) mixq::detail::fail("--limpq takes no problem file, got '", problem_path, "'");
      if (level.empty()) mixq::detail::fail("--limpq needs --level (e.g. W3A4)");
      if (!(ratio > 0)) mixq::detail::fail("--limpq needs --ratio > 0, got ", ratio);
      const BitPair lv = parse_level(level);
      const LayerTable table = network_by_name(network);
      const LimpqIndicators ind = read_limpq_indicators(indicators);
      const LimpqBudgets b = limpq_budgets(table, ind, lv.weight_bits, lv.activation_bits, ratio, !exact_macs);
      problem = limpq_problem(table, ind, b, alpha, !exact_macs);
      extra["budgets"] = {b.bit_operations, b.size_bits};
      extra["searchable_budgets"] = problem.budgets;
    } else {
      if (problem_path.empty()) mixq::detail::fail("no problem file (use '-' for stdin)");
      std::string text;
      if (problem_path == "-") {
        std::ostringstream ss;
        ss << in.rdbuf();
        text = ss.str();
      } else {
        std::ifstream f(problem_path);
        if (!f) mixq::detail::fail("cannot open '", problem_path, "'");
        std::ostringstream ss;
        ss << f.rdbuf();
        text = ss.str();
      }
      problem = parse_problem(text);
    }
    const Solution s = Solver(problem).solve(options);
    nlohmann::json j = solution_to_json(problem, s);
    for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
    out << (pretty ? j.dump(2) : j.dump()) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    for (char& c : msg)
      if (c == '\n' || c == '\r') c = ' ';
    err << "mixq-search: " << msg << "\n";
    return 2;
  }
}

}  // namespace mixq::search
