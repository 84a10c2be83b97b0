// Tests of the JSON problem format and the mixq-search program, run in-process through run_cli.
#include <mixq/search/cli.hpp>
#include <mixq/search/json.hpp>
#include <mixq/search/policy.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>
#include <string>
#include <vector>

namespace ms = mixq::search;

namespace {

const char* kProblem = R"({
  "budgets": [10, 3],
  "layers": [
    {"name": "conv1", "options": [{"label": "w8", "cost": 0.0, "use": [8, 1]}, {"label": "w4", "cost": 1.0, "use": [4, 1]},
                                  {"label": "w2", "cost": 3.0, "use": [2, 0]}]},
    {"name": "conv2", "options": [{"label": "w8", "cost": 0.0, "use": [8, 1]}, {"label": "w4", "cost": 0.5, "use": [4, 1]},
                                  {"label": "w2", "cost": 2.5, "use": [2, 0]}]},
    {"name": "down", "options": [{"label": "w8", "cost": 0.0, "use": [0, 1]}, {"label": "w4", "cost": 0.25, "use": [0, 1]},
                                 {"label": "w2", "cost": 0.75, "use": [0, 0]}]}
  ],
  "ties": [["conv2", "down"]]
})";

struct CliRun {
  int code;
  std::string out, err;
};

CliRun run(const std::vector<std::string>& args, const std::string& stdin_text = "") {
  std::istringstream in(stdin_text);
  std::ostringstream out, err;
  std::vector<std::string> a = {"mixq-search"};
  a.insert(a.end(), args.begin(), args.end());
  const int code = ms::run_cli(a, in, out, err);
  return {code, out.str(), err.str()};
}

TEST(SearchJson, ParsesAndSolves) {
  const ms::Problem p = ms::parse_problem(kProblem);
  ASSERT_EQ(p.classes.size(), 3u);
  ASSERT_EQ(p.ties.size(), 1u);
  const ms::Solution s = ms::solve(p);
  ASSERT_EQ(s.status, ms::Status::optimal);
  // brute force by hand: conv2 and down tied; rows: sum use0 <= 10, sum use1 <= 3
  EXPECT_DOUBLE_EQ(s.objective, 1.75);  // conv1 w4 (1.0) + conv2 w4 (0.5) + down w4 (0.25)
  EXPECT_EQ(s.choice[1], s.choice[2]);
  const nlohmann::json j = ms::solution_to_json(p, s);
  EXPECT_EQ(j["status"], "optimal");
  EXPECT_EQ(j["choices"].size(), 3u);
  EXPECT_EQ(j["choices"][0]["layer"], "conv1");
  EXPECT_EQ(j["choices"][0]["label"], "w4");
  EXPECT_EQ(j["use"][0], 8);
  EXPECT_TRUE(j["solve_seconds"].is_number());
}

TEST(SearchJson, CliSolvesStdinAndReportsInfeasible) {
  const CliRun r = run({"-"}, kProblem);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["status"], "optimal");
  EXPECT_NEAR(j["objective"].get<double>(), 1.75, 1e-12);
  nlohmann::json tight = nlohmann::json::parse(kProblem);
  tight["budgets"] = {3, 3};
  const CliRun t = run({"-"}, tight.dump());
  ASSERT_EQ(t.code, ms::cli_infeasible) << t.err;  // its own exit code, the solution JSON on stdout
  const nlohmann::json k = nlohmann::json::parse(t.out);
  EXPECT_EQ(k["status"], "infeasible");
  EXPECT_EQ(k["infeasible_resource"], 0);
  EXPECT_EQ(k["minimum_use"], 4);
  EXPECT_TRUE(k["objective"].is_null());
}

TEST(SearchJson, CliLimpqMode) {
  const std::string file = std::string(MIXQ_SHARED_DATA_DIR) + "/limpq_r50_real_quirk.txt";
  const CliRun r = run({"--limpq", "resnet50", file, "--level", "W3A4", "--ratio", "12.2"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["status"], "optimal");
  EXPECT_NEAR(j["objective"].get<double>(), 4.61743923, 5e-9);
  EXPECT_EQ(j["choices"].size(), 54u);  // 52 searchable layers and the 8-bit first conv and FC
  // the whole network's use, within the whole network's budgets
  EXPECT_EQ(j["use"].size(), 2u);
  EXPECT_LE(j["use"][0].get<std::int64_t>(), j["budgets"][0].get<std::int64_t>());
  EXPECT_GT(j["use"][0].get<std::int64_t>(), j["budgets"][0].get<std::int64_t>() / 2);
  EXPECT_EQ(run({"--limpq", "resnet50", file, "--level", "3A4", "--ratio", "12.2"}).code, 2);
  EXPECT_EQ(run({"--limpq", "vgg16", file, "--level", "W3A4", "--ratio", "12.2"}).code, 2);
  EXPECT_EQ(run({"--limpq", "resnet18", file, "--level", "W3A4", "--ratio", "12.2"}).code, 2);  // 52 rows vs 19 layers
  EXPECT_EQ(run({"--limpq", "resnet50", "/nonexistent.txt", "--level", "W3A4", "--ratio", "12.2"}).code, 2);
}

TEST(SearchJson, BadInputExitsWithCode2AndOneLine) {
  auto bad = [](const std::string& text) {
    const CliRun r = run({"-"}, text);
    EXPECT_EQ(r.code, 2) << text;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind("mixq-search: ", 0), 0u) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
    EXPECT_THROW(ms::parse_problem(text), mixq::error) << text;
  };
  bad("{\"budgets\": [1],");                                        // malformed
  bad("[]");                                                        // not an object
  bad(R"({"budgets": [1], "layers": []})");                         // empty problem
  bad(R"({"budgets": [], "layers": [{"name": "a", "options": [{"cost": 1, "use": []}]}]})");  // K = 0
  bad(R"({"budgets": [-1], "layers": [{"name": "a", "options": [{"cost": 1, "use": [0]}]}]})");
  bad(R"({"budgets": [1], "layers": [{"name": "a", "options": [{"cost": 1, "use": [-2]}]}]})");
  bad(R"({"budgets": [1], "layers": [{"name": "a", "options": [{"cost": 1, "use": [1, 2]}]}]})");  // mismatched K
  bad(R"({"budgets": [1], "layers": [{"name": "a", "options": [{"cost": 1e999, "use": [1]}]}]})");  // Inf cost
  bad(R"({"budgets": [1], "layers": [{"name": "a", "options": [{"cost": "x", "use": [1]}]}]})");
  bad(R"({"budgets": [1], "layers": [{"name": "a", "options": [{"cost": 1, "use": [1.5]}]}]})");
  bad(R"({"budgets": [1], "layers": [{"name": "a", "options": []}]})");  // no option
  bad(R"({"budgets": [1], "layers": [{"name": "a", "options": [{"cost": 1, "use": [1], "allowed": false}]}]})");
  bad(R"({"budgets": [1], "layers": [{"name": "a", "options": [{"cost": 1, "use": [1]}]}], "ties": [["a", "b"]]})");
  bad(R"({"budgets": [9], "layers": [{"name": "a", "options": [{"cost": 1, "use": [1]}]},
       {"name": "b", "options": [{"cost": 1, "use": [1]}, {"cost": 2, "use": [0]}]}], "ties": [["a", "b"]]})");
  bad(R"({"budgets": [1], "layers": [{"name": "a", "options": [{"cost": 1, "use": [1]}], "fixed": 4}]})");
  EXPECT_EQ(run({}).code, 2);
  EXPECT_EQ(run({"--frobnicate", "-"}).code, 2);
  EXPECT_EQ(run({"/nonexistent/problem.json"}).code, 2);
  EXPECT_EQ(run({"--time-limit", "abc", "-"}, kProblem).code, 2);
  EXPECT_EQ(run({"--help"}).code, 0);
}

// A misspelt key must not silently give a different problem: each is an error naming the key and where it is.
TEST(SearchJson, UnknownKeysAreErrorsNamingKeyAndPlace) {
  auto rejects = [](const std::string& text, const std::string& key, const std::string& where) {
    const CliRun r = run({"-"}, text);
    EXPECT_EQ(r.code, 2) << text;
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("unknown key \"" + key + "\" in " + where + " "), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  };
  nlohmann::json j = nlohmann::json::parse(kProblem);
  j["tie"] = j["ties"];
  j.erase("ties");
  rejects(j.dump(), "tie", "the top level");
  j = nlohmann::json::parse(kProblem);
  j["layers"][1]["options"][2]["alowed"] = false;
  rejects(j.dump(), "alowed", "layers[1].options[2]");
  j = nlohmann::json::parse(kProblem);
  j["layers"][2]["fix"] = 0;
  rejects(j.dump(), "fix", "layers[2]");
  // the correctly spelt keys change the answer (so the misspelt ones would have been dropped silently)
  j = nlohmann::json::parse(kProblem);
  j["layers"][0]["options"][1]["allowed"] = false;
  const ms::Solution s = ms::solve(ms::problem_from_json(j));
  ASSERT_EQ(s.status, ms::Status::optimal);
  EXPECT_NE(s.choice[0], 1);
}

TEST(SearchJson, MessagesUseTheJsonWordsAndIntegralNumbersAreIntegers) {
  auto message = [](const std::string& text) {
    try {
      ms::parse_problem(text);
    } catch (const mixq::error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string two = message(R"({"budgets": [1], "layers": [{"name": "a", "options": [{"cost": 1, "use": [1, 2]}]}]})");
  EXPECT_EQ(two, "problem JSON: layers[0].options[0].use has 2 entries but \"budgets\" has 1");
  EXPECT_EQ(message(R"({"budgets": [1], "resources": ["BitOps", "size"],
                        "layers": [{"name": "a", "options": [{"cost": 1, "use": [1]}]}]})"),
            "problem JSON: \"resources\" has 2 names but \"budgets\" has 1 entries");
  EXPECT_EQ(message(R"({"budgets": [1.5], "layers": [{"name": "a", "options": [{"cost": 1, "use": [1]}]}]})"),
            "problem JSON: budgets[0] must be an integer, got 1.5");
  EXPECT_EQ(message(R"({"budgets": [1], "layers": [{"name": "a", "options": [{"cost": 1, "use": [1]}]},
                                                   {"name": "a", "options": [{"cost": 1, "use": [1]}]}]})"),
            "problem JSON: layers[1].name 'a' is used by layers[0] too");
  // 10.0 and 1e1 are integers
  const ms::Problem p =
      ms::parse_problem(R"({"budgets": [10.0, 1e1], "layers": [{"name": "a", "options": [{"cost": 1, "use": [2.0, 3]}]}]})");
  EXPECT_EQ(p.budgets, (std::vector<std::int64_t>{10, 10}));
  EXPECT_EQ(p.classes[0].options[0].use, (std::vector<std::int64_t>{2, 3}));
}

TEST(SearchJson, ProblemToJsonRoundTrips) {
  ms::Problem p({100, 10}, {"BitOps", "size"});
  p.add_class("conv1", {{"w8", 0.0, {64, 8}}, {"w4", 1.25, {32, 4}}, {"w2", 3.5, {16, 2}}});
  p.add_class("conv2", {{"w8", 0.0, {64, 8}}, {"", 0.5, {32, 4}}, {"w2", 2.0, {16, 2}}});
  p.add_class("fc", {{"w8", 0.0, {8, 1}}, {"w4", 0.1, {4, 1}}, {"w2", 0.2, {2, 1}}});
  p.tie({"conv1", "conv2"});
  p.fix("fc", 0);
  p.forbid("conv2", 2);
  const nlohmann::json j = ms::problem_to_json(p);
  const ms::Problem q = ms::parse_problem(j.dump());
  EXPECT_EQ(ms::problem_to_json(q), j);
  EXPECT_EQ(q.budgets, p.budgets);
  EXPECT_EQ(q.resource_names, p.resource_names);
  EXPECT_EQ(q.ties, p.ties);
  ASSERT_EQ(q.classes.size(), 3u);
  EXPECT_EQ(q.classes[2].fixed_option, 0);
  EXPECT_FALSE(q.classes[1].options[2].allowed);
  EXPECT_EQ(q.classes[0].options[1].cost, 1.25);
  // the CLI solves it to the same optimum as the C++ solver
  const CliRun r = run({"-"}, j.dump());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(r.out)["objective"].get<double>(), ms::solve(p).objective);
}

TEST(SearchJson, CliBehavesLikeAUnixTool) {
  const CliRun help = run({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_EQ(help.err, "");
  for (const char* s : {"usage: mixq-search", "--time-limit", "\"budgets\"", "\"ties\"", "resnet50", "mobilenet_v2",
                        "exit codes", "1 infeasible"})
    EXPECT_NE(help.out.find(s), std::string::npos) << s;
  EXPECT_EQ(run({"-h"}).out, help.out);
  const CliRun version = run({"--version"});
  EXPECT_EQ(version.code, 0);
  EXPECT_EQ(version.out, std::string("mixq-search (mixq ") + mixq::version_string + ")\n");
  // no argument: the usage on stderr, exit 2
  const CliRun none = run({});
  EXPECT_EQ(none.code, 2);
  EXPECT_EQ(none.out, "");
  EXPECT_NE(none.err.find("usage: mixq-search"), std::string::npos) << none.err;
  const CliRun unknown = run({"--frobnicate"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("unknown option '--frobnicate'"), std::string::npos) << unknown.err;
  EXPECT_NE(unknown.err.find("usage: mixq-search"), std::string::npos) << unknown.err;
  EXPECT_NE(run({"--limpq", "resnet50"}).err.find("--limpq needs 2 values"), std::string::npos);
  // strict numbers
  EXPECT_EQ(run({"--node-limit", "2x", "-"}, kProblem).code, 2);
  EXPECT_EQ(run({"--node-limit", "-1", "-"}, kProblem).code, 2);
  EXPECT_EQ(run({"--time-limit", "1e", "-"}, kProblem).code, 2);
  EXPECT_EQ(run({"--time-limit", "nan", "-"}, kProblem).code, 2);
  EXPECT_EQ(run({"--node-limit", "5", "-"}, kProblem).code, 0);
  // binary garbage is reported with escapes, on one line
  const CliRun garbage = run({"-"}, std::string("\x01\xff\x1b[31m\n\x00garbage", 16));
  EXPECT_EQ(garbage.code, 2);
  EXPECT_EQ(garbage.err.find('\x1b'), std::string::npos) << garbage.err;
  EXPECT_EQ(garbage.err.find('\x01'), std::string::npos) << garbage.err;
  EXPECT_EQ(garbage.err.find('\n'), garbage.err.size() - 1) << garbage.err;
}

// A layer problem's solution covers the whole network: use totals with the 8-bit layers included (the budgets
// are the network's), and policy_from_solution gives every layer's bits, as total_bit_operations counts them.
TEST(SearchPolicy, SolutionUseIsTheWholeNetworkAndGivesAPolicy) {
  const ms::LayerTable t = ms::resnet18();
  const ms::LimpqIndicators ind = ms::synthetic_limpq_indicators(t, 5);
  const ms::LimpqBudgets b = ms::limpq_budgets(t, ind, 3, 4, 10.0, false);
  const ms::Problem p = ms::limpq_problem(t, ind, b, 2.0, false);
  EXPECT_EQ(p.budgets, (std::vector<std::int64_t>{b.bit_operations, b.size_bits}));
  const ms::Solution s = ms::solve(p);
  ASSERT_EQ(s.status, ms::Status::optimal);
  const ms::BitPolicy policy = ms::policy_from_solution(t, p, s);
  ASSERT_EQ(policy.weight_bits.size(), t.size());
  EXPECT_EQ(policy.weight_bits.front(), 8);
  EXPECT_EQ(policy.activation_bits.back(), 8);
  EXPECT_EQ(s.use[0], ms::total_bit_operations(t, policy));
  EXPECT_EQ(s.use[1], ms::model_size_bits(t, policy));
  EXPECT_LE(s.use[0], b.bit_operations);
  const auto map = ms::layer_bit_map(t, policy);
  ASSERT_EQ(map.size(), t.size());
  EXPECT_EQ(map.at(t[1].name), std::make_pair(policy.weight_bits[1], policy.activation_bits[1]));
  // the JSON round trip of the problem solves to the same policy through the CLI
  const CliRun r = run({"-"}, ms::problem_to_json(p).dump());
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["use"][0].get<std::int64_t>(), s.use[0]);
  // no solution, no policy; labels must be w{w}a{a}
  ms::Problem tight = p;
  tight.budgets[0] = 1;
  EXPECT_THROW(ms::policy_from_solution(t, tight, ms::solve(tight)), mixq::error);
  EXPECT_THROW(ms::parse_label("w4"), mixq::error);
  EXPECT_THROW(ms::parse_label("w4a8x"), mixq::error);
  EXPECT_EQ(ms::parse_label("w4a8").activation_bits, 8);
}

TEST(SearchJson, NodeLimitGivesFeasibleOrOptimal) {
  const CliRun r = run({"--node-limit", "1", "-"}, kProblem);
  ASSERT_TRUE(r.code == 0 || r.code == ms::cli_unknown) << r.err;
  const std::string status = nlohmann::json::parse(r.out)["status"];
  EXPECT_TRUE(status == "optimal" || status == "feasible" || status == "unknown") << status;
}

}  // namespace
