#pragma once
/// @file
/// JSON form of search problems and solutions (needs nlohmann_json, a dependency of the mixq target).
///
/// Problem: {"budgets": [int, ...], "layers": [{"name": str, "options": [{"label": str, "cost": number,
/// "use": [int, ...]}, ...]}, ...], "ties": [[name, name, ...], ...]}. "ties" is optional. Extensions, all
/// optional: "resources": [str, ...] (names of the budget rows), a layer's "fixed": option index, an option's
/// "allowed": bool (false forbids it). Integers may be written as integral numbers (1e9, 10.0); any other key is
/// an error naming the key and where it is (a misspelt "tie" or "alowed" would otherwise change the problem).
/// Solution: {"status": "optimal"|"feasible"|"infeasible"|"unknown", "objective": number|null,
/// "choices": [{"layer": str, "option": index, "label": str}, ...], "use": [int, ...], "solve_seconds": number,
/// "bound": number, "gap": number, "nodes": int} and, when infeasible, "infeasible_resource" (index),
/// "minimum_use" and "message".

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "mixq/error.hpp"
#include "mixq/search/problem.hpp"
#include "mixq/search/solver.hpp"

namespace mixq::search {

namespace detail {

/// An integer field: a JSON integer, or a finite integral number in the int64 range (10.0, 1e9).
inline std::int64_t json_int(const nlohmann::json& v, const std::string& what) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      mixq::detail::fail("problem JSON: ", what, " is too large: ", u);
    return static_cast<std::int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    // 2^63 is exactly representable; every integral double below it converts exactly.
    if (std::isfinite(d) && d == std::floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
      return static_cast<std::int64_t>(d);
  }
  mixq::detail::fail("problem JSON: ", what, " must be an integer, got ", v.dump());
}

/// Throws mixq::error naming the first key of object `o` (at `where`) that is not in `known`.
inline void check_keys(const nlohmann::json& o, std::initializer_list<const char*> known, const std::string& where) {
  for (auto it = o.begin(); it != o.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    if (ok) continue;
    std::string list;
    for (const char* k : known) list += (list.empty() ? "\"" : ", \"") + std::string(k) + "\"";
    mixq::detail::fail("problem JSON: unknown key \"", it.key(), "\" in ", where, " (known keys: ", list, ")");
  }
}

}  // namespace detail

/// Builds a Problem from its JSON form (see the file comment). Every check runs before the Problem is returned;
/// a bad field gives mixq::error "problem JSON: ..." naming the field by its JSON path (layers[2].options[0].use)
/// in the JSON's words (layers, options, use, budgets, resources).
inline Problem problem_from_json(const nlohmann::json& j) {
  using mixq::detail::fail;
  if (!j.is_object()) fail("problem JSON: the top level must be an object, got ", j.type_name());
  detail::check_keys(j, {"budgets", "layers", "ties", "resources"}, "the top level");
  if (!j.contains("budgets") || !j["budgets"].is_array()) fail("problem JSON: \"budgets\" must be an array of integers");
  if (!j.contains("layers") || !j["layers"].is_array()) fail("problem JSON: \"layers\" must be an array");
  Problem p;
  const std::size_t K = j["budgets"].size();
  if (K == 0) fail("problem JSON: \"budgets\" is empty (one budget per resource row needed)");
  for (std::size_t k = 0; k < K; ++k) {
    const std::int64_t b = detail::json_int(j["budgets"][k], "budgets[" + std::to_string(k) + "]");
    if (b < 0) fail("problem JSON: budgets[", k, "] must be >= 0, got ", b);
    p.budgets.push_back(b);
  }
  if (j.contains("resources")) {
    if (!j["resources"].is_array()) fail("problem JSON: \"resources\" must be an array of strings");
    for (const auto& r : j["resources"]) {
      if (!r.is_string()) fail("problem JSON: \"resources\" must be an array of strings, got ", r.dump());
      p.resource_names.push_back(r.get<std::string>());
    }
    if (p.resource_names.size() != K)
      fail("problem JSON: \"resources\" has ", p.resource_names.size(), " names but \"budgets\" has ", K, " entries");
  }
  const auto& layers = j["layers"];
  if (layers.empty()) fail("problem JSON: \"layers\" is empty");
  std::unordered_map<std::string, int> index;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const auto& L = layers[l];
    const std::string where = "layers[" + std::to_string(l) + "]";
    if (!L.is_object()) fail("problem JSON: ", where, " must be an object");
    detail::check_keys(L, {"name", "options", "fixed"}, where);
    if (!L.contains("name") || !L["name"].is_string()) fail("problem JSON: ", where, ".name must be a string");
    const std::string name = L["name"].get<std::string>();
    if (index.count(name)) fail("problem JSON: ", where, ".name '", name, "' is used by layers[", index[name], "] too");
    if (!L.contains("options") || !L["options"].is_array()) fail("problem JSON: ", where, ".options must be an array");
    if (L["options"].empty()) fail("problem JSON: ", where, ".options is empty");
    std::vector<Option> opts;
    bool any_allowed = false;
    for (std::size_t o = 0; o < L["options"].size(); ++o) {
      const auto& O = L["options"][o];
      const std::string ow = where + ".options[" + std::to_string(o) + "]";
      if (!O.is_object()) fail("problem JSON: ", ow, " must be an object");
      detail::check_keys(O, {"label", "cost", "use", "allowed"}, ow);
      Option op;
      if (O.contains("label")) {
        if (!O["label"].is_string()) fail("problem JSON: ", ow, ".label must be a string");
        op.label = O["label"].get<std::string>();
      }
      if (!O.contains("cost") || !O["cost"].is_number()) fail("problem JSON: ", ow, ".cost must be a number");
      op.cost = O["cost"].get<double>();
      if (!std::isfinite(op.cost)) fail("problem JSON: ", ow, ".cost must be finite, got ", op.cost);
      if (!O.contains("use") || !O["use"].is_array()) fail("problem JSON: ", ow, ".use must be an array");
      if (O["use"].size() != K)
        fail("problem JSON: ", ow, ".use has ", O["use"].size(), " entries but \"budgets\" has ", K);
      for (std::size_t k = 0; k < K; ++k) {
        const std::int64_t u = detail::json_int(O["use"][k], ow + ".use[" + std::to_string(k) + "]");
        if (u < 0) fail("problem JSON: ", ow, ".use[", k, "] must be >= 0, got ", u);
        op.use.push_back(u);
      }
      if (O.contains("allowed")) {
        if (!O["allowed"].is_boolean()) fail("problem JSON: ", ow, ".allowed must be a boolean");
        op.allowed = O["allowed"].get<bool>();
      }
      any_allowed = any_allowed || op.allowed;
      opts.push_back(std::move(op));
    }
    const std::size_t n_options = opts.size();
    const int c = p.add_class(name, std::move(opts));
    index.emplace(name, c);
    if (L.contains("fixed")) {
      const std::int64_t f = detail::json_int(L["fixed"], where + ".fixed");
      if (f < 0 || f >= static_cast<std::int64_t>(n_options))
        fail("problem JSON: ", where, ".fixed must be an option index in [0, ", n_options, "), got ", f);
      if (!p.classes[static_cast<std::size_t>(c)].options[static_cast<std::size_t>(f)].allowed)
        fail("problem JSON: ", where, ".fixed = ", f, " names an option with \"allowed\": false");
      p.classes[static_cast<std::size_t>(c)].fixed_option = static_cast<int>(f);
    } else if (!any_allowed) {
      fail("problem JSON: ", where, " has no allowed option (every option has \"allowed\": false)");
    }
  }
  if (j.contains("ties")) {
    if (!j["ties"].is_array()) fail("problem JSON: \"ties\" must be an array of arrays of layer names");
    for (std::size_t t = 0; t < j["ties"].size(); ++t) {
      const auto& T = j["ties"][t];
      if (!T.is_array() || T.empty()) fail("problem JSON: ties[", t, "] must be a non-empty array of layer names");
      std::vector<int> group;
      for (const auto& n : T) {
        if (!n.is_string()) fail("problem JSON: ties[", t, "] must hold layer names, got ", n.dump());
        const auto it = index.find(n.get<std::string>());
        if (it == index.end()) fail("problem JSON: ties[", t, "] names an unknown layer '", n.get<std::string>(), "'");
        const auto& first = p.classes[static_cast<std::size_t>(group.empty() ? it->second : group[0])];
        const auto& cur = p.classes[static_cast<std::size_t>(it->second)];
        if (cur.options.size() != first.options.size())
          fail("problem JSON: ties[", t, "] ties layers '", first.name, "' and '", cur.name,
               "' with different numbers of options (", first.options.size(), " and ", cur.options.size(), ")");
        group.push_back(it->second);
      }
      p.ties.push_back(std::move(group));
    }
  }
  detail::validate(p);  // what is left (int64 overflow of the summed uses) in the C++ API's words
  return p;
}

/// Parses JSON text into a Problem; malformed JSON gives a mixq::error with the parser's position.
inline Problem parse_problem(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    mixq::detail::fail("problem JSON: malformed: ", e.what());
  }
  return problem_from_json(j);
}

/// The JSON form of a problem (the inverse of problem_from_json: problem_from_json(problem_to_json(p)) equals p),
/// for handing a problem built in C++ to the mixq-search program or saving it. Validates p first (mixq::error).
/// Defaults are left out: "resources" when unnamed, "label" when empty, "allowed" when true, "fixed" when free.
inline nlohmann::json problem_to_json(const Problem& p) {
  detail::validate(p);
  nlohmann::json j;
  j["budgets"] = p.budgets;
  if (!p.resource_names.empty()) j["resources"] = p.resource_names;
  j["layers"] = nlohmann::json::array();
  for (const ChoiceClass& c : p.classes) {
    nlohmann::json L;
    L["name"] = c.name;
    L["options"] = nlohmann::json::array();
    for (const Option& o : c.options) {
      nlohmann::json O;
      if (!o.label.empty()) O["label"] = o.label;
      O["cost"] = o.cost;
      O["use"] = o.use;
      if (!o.allowed) O["allowed"] = false;
      L["options"].push_back(std::move(O));
    }
    if (c.fixed_option >= 0) L["fixed"] = c.fixed_option;
    j["layers"].push_back(std::move(L));
  }
  if (!p.ties.empty()) {
    j["ties"] = nlohmann::json::array();
    for (const std::vector<int>& t : p.ties) {
      nlohmann::json names = nlohmann::json::array();
      for (int c : t) names.push_back(p.classes[static_cast<std::size_t>(c)].name);
      j["ties"].push_back(std::move(names));
    }
  }
  return j;
}

/// The JSON form of a solution of problem p.
inline nlohmann::json solution_to_json(const Problem& p, const Solution& s) {
  nlohmann::json j;
  j["status"] = to_string(s.status);
  j["objective"] = s.choice.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.objective);
  j["choices"] = nlohmann::json::array();
  for (std::size_t c = 0; c < s.choice.size(); ++c) {
    const int o = s.choice[c];
    j["choices"].push_back({{"layer", p.classes[c].name}, {"option", o},
                            {"label", p.classes[c].options[static_cast<std::size_t>(o)].label}});
  }
  j["use"] = s.use;
  j["solve_seconds"] = s.solve_seconds;
  if (std::isfinite(s.bound)) j["bound"] = s.bound;
  if (std::isfinite(s.gap)) j["gap"] = s.gap;
  j["nodes"] = s.nodes;
  if (s.status == Status::infeasible) {
    j["infeasible_resource"] = s.infeasible_resource;
    j["minimum_use"] = s.minimum_use;
    j["message"] = describe_infeasibility(p, s);
  }
  return j;
}

}  // namespace mixq::search
