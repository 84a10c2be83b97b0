#pragma once
/// @file
/// JSON form of search problems and solutions (needs nlohmann_json; not included by <mixq/mixq.hpp>).
///
/// Problem: {"budgets": [int, ...], "layers": [{"name": str, "options": [{"label": str, "cost": number,
/// "use": [int, ...]}, ...]}, ...], "ties": [[name, name, ...], ...]}. "ties" is optional. Extensions, all
/// optional: "resources": [str, ...] (names of the K rows), a layer's "fixed": option index, an option's
/// "allowed": bool (false forbids it).
/// Solution: {"status": "optimal"|"feasible"|"infeasible"|"unknown", "objective": number|null,
/// "choices": [{"layer": str, "option": index, "label": str}, ...], "use": [int, ...], "solve_seconds": number,
/// "bound": number, "gap": number, "nodes": int} and, when infeasible, "infeasible_resource" (index),
/// "minimum_use" and "message".

#include <cmath>
#include <cstdint>
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
inline std::int64_t json_int(const nlohmann::json& v, const std::string& what) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      mixq::detail::fail(what, " is too large: ", u);
    return static_cast<std::int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<std::int64_t>();
  mixq::detail::fail(what, " must be an integer, got ", v.dump());
}
}  // namespace detail

/// Builds a Problem from its JSON form (see the file comment). Throws mixq::error naming the bad field.
inline Problem problem_from_json(const nlohmann::json& j) {
  if (!j.is_object()) mixq::detail::fail("problem JSON: the top level must be an object, got ", j.type_name());
  if (!j.contains("budgets") || !j["budgets"].is_array())
    mixq::detail::fail("problem JSON: \"budgets\" must be an array of integers");
  if (!j.contains("layers") || !j["layers"].is_array())
    mixq::detail::fail("problem JSON: \"layers\" must be an array");
  Problem p;
  for (std::size_t k = 0; k < j["budgets"].size(); ++k)
    p.budgets.push_back(detail::json_int(j["budgets"][k], "budgets[" + std::to_string(k) + "]"));
  if (j.contains("resources")) {
    if (!j["resources"].is_array()) mixq::detail::fail("problem JSON: \"resources\" must be an array of strings");
    for (const auto& r : j["resources"]) {
      if (!r.is_string()) mixq::detail::fail("problem JSON: \"resources\" must be an array of strings, got ", r.dump());
      p.resource_names.push_back(r.get<std::string>());
    }
  }
  const auto& layers = j["layers"];
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const auto& L = layers[l];
    const std::string where = "layers[" + std::to_string(l) + "]";
    if (!L.is_object()) mixq::detail::fail("problem JSON: ", where, " must be an object");
    if (!L.contains("name") || !L["name"].is_string()) mixq::detail::fail("problem JSON: ", where, ".name must be a string");
    if (!L.contains("options") || !L["options"].is_array())
      mixq::detail::fail("problem JSON: ", where, ".options must be an array");
    std::vector<Option> opts;
    for (std::size_t o = 0; o < L["options"].size(); ++o) {
      const auto& O = L["options"][o];
      const std::string ow = where + ".options[" + std::to_string(o) + "]";
      if (!O.is_object()) mixq::detail::fail("problem JSON: ", ow, " must be an object");
      Option op;
      if (O.contains("label")) {
        if (!O["label"].is_string()) mixq::detail::fail("problem JSON: ", ow, ".label must be a string");
        op.label = O["label"].get<std::string>();
      }
      if (!O.contains("cost") || !O["cost"].is_number()) mixq::detail::fail("problem JSON: ", ow, ".cost must be a number");
      op.cost = O["cost"].get<double>();
      if (!O.contains("use") || !O["use"].is_array()) mixq::detail::fail("problem JSON: ", ow, ".use must be an array");
      for (std::size_t k = 0; k < O["use"].size(); ++k)
        op.use.push_back(detail::json_int(O["use"][k], "problem JSON: " + ow + ".use[" + std::to_string(k) + "]"));
      if (O.contains("allowed")) {
        if (!O["allowed"].is_boolean()) mixq::detail::fail("problem JSON: ", ow, ".allowed must be a boolean");
        op.allowed = O["allowed"].get<bool>();
      }
      opts.push_back(std::move(op));
    }
    const int c = p.add_class(L["name"].get<std::string>(), std::move(opts));
    if (L.contains("fixed"))
      p.classes[static_cast<std::size_t>(c)].fixed_option =
          static_cast<int>(detail::json_int(L["fixed"], "problem JSON: " + where + ".fixed"));
  }
  std::unordered_map<std::string, int> index;
  for (std::size_t c = 0; c < p.classes.size(); ++c) index.emplace(p.classes[c].name, static_cast<int>(c));
  if (j.contains("ties")) {
    if (!j["ties"].is_array()) mixq::detail::fail("problem JSON: \"ties\" must be an array of arrays of layer names");
    for (std::size_t t = 0; t < j["ties"].size(); ++t) {
      const auto& T = j["ties"][t];
      if (!T.is_array()) mixq::detail::fail("problem JSON: ties[", t, "] must be an array of layer names");
      std::vector<int> group;
      for (const auto& n : T) {
        if (!n.is_string()) mixq::detail::fail("problem JSON: ties[", t, "] must hold layer names, got ", n.dump());
        const auto it = index.find(n.get<std::string>());
        if (it == index.end()) mixq::detail::fail("problem JSON: ties[", t, "] names an unknown layer '", n.get<std::string>(), "'");
        group.push_back(it->second);
      }
      p.ties.push_back(std::move(group));
    }
  }
  for (std::size_t c = 0; c < p.classes.size(); ++c) {
    const ChoiceClass& cl = p.classes[c];
    if (cl.fixed_option < -1 || cl.fixed_option >= static_cast<int>(cl.options.size()))
      mixq::detail::fail("problem JSON: layer '", cl.name, "' fixed=", cl.fixed_option, " out of range (",
                         cl.options.size(), " options)");
  }
  detail::validate(p);
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
