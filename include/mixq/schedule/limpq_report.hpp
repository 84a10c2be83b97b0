#pragma once
/// @file
/// The results table of a LIMPQ experiment (examples/limpq_fashion_mnist.cpp) as data and as JSON: for every
/// budget level (W2A2, W3A3, W4A4), the accuracy of the uniform, LIMPQ, Hessian and random policies over
/// seeds (mean, spread, values), their BitOps, size and search time. Needs nlohmann/json.

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mixq/error.hpp"
#include "mixq/schedule/limpq.hpp"

namespace mixq::schedule {

/// One method at one level for one seed: the searched (or uniform) policy and its fine-tuned accuracy.
struct MethodRun {
  PolicySearch search;          ///< policy, BitOps, size, search time, solver status
  double accuracy = 0;          ///< test accuracy after QAT fine-tuning
  bool same_as_uniform = false; ///< the policy equals the uniform one (accuracy reused, not retrained)
};

/// One budget level: its BitOps budget and, per method name, one run per seed (seed order of the report).
struct LevelReport {
  std::string level;                   ///< "W3A3"
  int weight_bits = 0, activation_bits = 0;
  std::int64_t budget_bit_operations = 0;
  std::int64_t budget_size_bits = 0;   ///< 0: no size budget
  std::map<std::string, std::vector<MethodRun>> runs;
};

/// A whole experiment.
struct LimpqReport {
  std::string mode;                         ///< "quick" or "full"
  std::string model;                        ///< "resnet", ...
  std::vector<std::uint64_t> seeds;
  std::vector<double> float_accuracy;       ///< per seed
  std::vector<double> monotone_fraction;    ///< per seed: indicator_monotone_fraction of the learned indicators
  nlohmann::json settings = nlohmann::json::object();  ///< epochs, subsets, learning rates, ...
  std::vector<LevelReport> levels;
  std::int64_t total_weights = 0;           ///< weights of the whole network (average bit-width = size / this)
  std::int64_t total_macs = 0;              ///< MACs of the whole network per image
  double total_seconds = 0;
};

/// The methods of a level, in table order.
inline const std::vector<std::string>& report_methods() {
  static const std::vector<std::string> m{"uniform", "limpq", "hessian", "random"};
  return m;
}

/// Mean and spread (sample standard deviation, 0 for one value) of a list.
struct MeanStd {
  double mean = 0, std = 0;
};
inline MeanStd mean_std(const std::vector<double>& v) {
  MeanStd r;
  if (v.empty()) return r;
  for (double x : v) r.mean += x;
  r.mean /= static_cast<double>(v.size());
  if (v.size() > 1) {
    double s = 0;
    for (double x : v) s += (x - r.mean) * (x - r.mean);
    r.std = std::sqrt(s / static_cast<double>(v.size() - 1));
  }
  return r;
}

/// The report as JSON:
/// {"mode", "model", "seeds", "settings", "float_accuracy": {"mean", "std", "values"}, "monotone_fraction",
///  "total_seconds", "total_weights", "total_macs", "levels": [{"level", "weight_bits", "activation_bits", "budget_bit_operations",
///  "budget_size_bits", "methods": {"uniform"|"limpq"|"hessian"|"random": {"accuracy_mean", "accuracy_std",
///  "accuracies", "bit_operations", "bit_operations_per_seed", "size_bits", "size_bits_per_seed",
///  "average_weight_bits", "search_us", "search_us_per_seed", "status", "relaxed", "same_as_uniform",
///  "policies": [{layer: "w4a3", ...} per seed]}}}]}.
/// bit_operations, size_bits and search_us are means over seeds. Throws mixq::error when a method has a
/// different number of runs than there are seeds.
inline nlohmann::json limpq_report_json(const LimpqReport& r) {
  using nlohmann::json;
  json j;
  j["mode"] = r.mode;
  j["model"] = r.model;
  j["seeds"] = r.seeds;
  j["settings"] = r.settings;
  const MeanStd fa = mean_std(r.float_accuracy);
  j["float_accuracy"] = {{"mean", fa.mean}, {"std", fa.std}, {"values", r.float_accuracy}};
  j["monotone_fraction"] = r.monotone_fraction;
  j["total_seconds"] = r.total_seconds;
  j["total_weights"] = r.total_weights;
  j["total_macs"] = r.total_macs;
  j["levels"] = json::array();
  for (const LevelReport& lv : r.levels) {
    json jl;
    jl["level"] = lv.level;
    jl["weight_bits"] = lv.weight_bits;
    jl["activation_bits"] = lv.activation_bits;
    jl["budget_bit_operations"] = lv.budget_bit_operations;
    jl["budget_size_bits"] = lv.budget_size_bits;
    jl["methods"] = json::object();
    for (const auto& [name, runs] : lv.runs) {
      if (runs.size() != r.seeds.size())
        mixq::detail::fail("limpq_report_json: level ", lv.level, " method '", name, "' has ", runs.size(),
                           " runs for ", r.seeds.size(), " seeds");
      std::vector<double> acc, ops, size, us;
      json status = json::array(), relaxed = json::array(), same = json::array(), policies = json::array();
      for (const MethodRun& m : runs) {
        acc.push_back(m.accuracy);
        ops.push_back(static_cast<double>(m.search.bit_operations));
        size.push_back(static_cast<double>(m.search.size_bits));
        us.push_back(m.search.search_microseconds);
        status.push_back(m.search.status);
        relaxed.push_back(m.search.relaxed);
        same.push_back(m.same_as_uniform);
        json p = json::object();
        for (const auto& [layer, bits] : m.search.bits)
          p[layer] = "w" + std::to_string(bits.first) + "a" + std::to_string(bits.second);
        policies.push_back(p);
      }
      const MeanStd a = mean_std(acc);
      json jm;
      jm["accuracy_mean"] = a.mean;
      jm["accuracy_std"] = a.std;
      jm["accuracies"] = acc;
      jm["bit_operations"] = mean_std(ops).mean;
      jm["bit_operations_per_seed"] = ops;
      jm["size_bits"] = mean_std(size).mean;
      jm["size_bits_per_seed"] = size;
      jm["average_weight_bits"] =
          r.total_weights > 0 ? mean_std(size).mean / static_cast<double>(r.total_weights) : 0.0;
      jm["search_us"] = mean_std(us).mean;
      jm["search_us_per_seed"] = us;
      jm["status"] = status;
      jm["relaxed"] = relaxed;
      jm["same_as_uniform"] = same;
      jm["policies"] = policies;
      jl["methods"][name] = jm;
    }
    j["levels"].push_back(jl);
  }
  return j;
}

/// The JSON paths a report must have (see limpq_report_json) that `j` lacks; empty when complete. Every level
/// must have every method of report_methods().
inline std::vector<std::string> missing_report_fields(const nlohmann::json& j) {
  std::vector<std::string> missing;
  auto need = [&](const nlohmann::json& obj, const std::string& path, const std::vector<std::string>& keys) {
    for (const std::string& k : keys)
      if (!obj.is_object() || !obj.contains(k)) missing.push_back(path + k);
  };
  need(j, "", {"mode", "model", "seeds", "settings", "float_accuracy", "monotone_fraction", "total_seconds", "total_weights",
              "total_macs", "levels"});
  if (j.contains("float_accuracy")) need(j["float_accuracy"], "float_accuracy.", {"mean", "std", "values"});
  if (!j.contains("levels") || !j["levels"].is_array() || j["levels"].empty()) {
    missing.push_back("levels[]");
    return missing;
  }
  for (std::size_t i = 0; i < j["levels"].size(); ++i) {
    const nlohmann::json& lv = j["levels"][i];
    const std::string p = "levels[" + std::to_string(i) + "].";
    need(lv, p, {"level", "weight_bits", "activation_bits", "budget_bit_operations", "budget_size_bits", "methods"});
    if (!lv.contains("methods")) continue;
    for (const std::string& m : report_methods()) {
      if (!lv["methods"].contains(m)) {
        missing.push_back(p + "methods." + m);
        continue;
      }
      need(lv["methods"][m], p + "methods." + m + ".",
           {"accuracy_mean", "accuracy_std", "accuracies", "bit_operations", "bit_operations_per_seed", "size_bits",
            "size_bits_per_seed", "average_weight_bits", "search_us", "search_us_per_seed", "status", "relaxed",
            "same_as_uniform", "policies"});
    }
  }
  return missing;
}

}  // namespace mixq::schedule
