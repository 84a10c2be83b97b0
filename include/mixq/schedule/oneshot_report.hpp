#pragma once
/// @file
/// The record of one one-shot weight-coupling run (one seed) and its JSON form, written by
/// examples/oneshot_fashion_mnist.cpp and read by scripts/oneshot_plot.py. Fields (oneshot_run_fields()):
/// seed, settings, float_accuracy, epochs (per-epoch losses), scheduler_events (epoch, ratio, per-layer metric,
/// frozen layers, microseconds), final_candidates (per layer: weight and activation candidates after the last
/// event), memory (the supernet's extra state in bytes), searches (per level and method: policy, BitOps, size,
/// search seconds, one-shot accuracy, retrained accuracy or -1), uniform (per level: one-shot and retrained
/// accuracy), frontier (method, budget, policy, BitOps, accuracy), kendall_tau (one-shot vs retrained accuracy
/// over the retrained policies, NaN when fewer than 2), timing (seconds of each phase).

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mixq/schedule/bit_width_scheduler.hpp"
#include "mixq/schedule/oneshot.hpp"
#include "mixq/schedule/oneshot_search.hpp"
#include "mixq/schedule/supernet.hpp"

namespace mixq::schedule {

/// A searched policy at a level with its accuracies.
struct SearchRecord {
  std::string level;                 ///< "W3A3": the budget is this uniform level's BitOps
  SearchResult result;
  double oneshot_accuracy = -1;      ///< supernet (EMA) weights, BN re-estimated, no retraining
  double retrained_accuracy = -1;    ///< trained separately with LSQ QAT from the float model; -1: not run
};

/// A uniform policy with its accuracies.
struct UniformRecord {
  std::string level;
  double oneshot_accuracy = -1;
  double retrained_accuracy = -1;
};

/// A point of the retraining-free Pareto frontier.
struct FrontierPoint {
  std::string method;
  std::int64_t budget = 0;
  SearchResult result;
  double accuracy = -1;
};

/// Everything one seed's run reports.
struct OneShotRunReport {
  std::uint64_t seed = 0;
  nlohmann::json settings = nlohmann::json::object();
  double float_accuracy = -1;
  std::vector<EpochStats> epochs;
  std::vector<SchedulerEvent> scheduler_events;
  SupernetMemory memory;
  std::vector<SearchRecord> searches;
  std::vector<UniformRecord> uniform;
  std::vector<FrontierPoint> frontier;
  double kendall_tau = std::numeric_limits<double>::quiet_NaN();
  nlohmann::json timing = nlohmann::json::object();
};

/// The top-level fields of to_json's object.
inline std::vector<std::string> oneshot_run_fields() {
  return {"seed", "settings", "float_accuracy", "epochs", "scheduler_events", "final_candidates", "memory",
          "searches", "uniform", "frontier", "kendall_tau", "timing"};
}

/// A policy as [[w, a], ...].
inline nlohmann::json policy_json(const Policy& p) {
  nlohmann::json j = nlohmann::json::array();
  for (const search::BitPair& b : p) j.push_back({b.weight_bits, b.activation_bits});
  return j;
}

inline nlohmann::json search_json(const SearchResult& r) {
  return {{"method", r.method}, {"policy", policy_json(r.policy)}, {"policy_text", Supernet::to_string(r.policy)},
          {"bit_operations", r.bit_operations}, {"size_bits", r.size_bits}, {"seconds", r.seconds},
          {"evaluations", r.evaluations}, {"objective", r.objective}};
}

/// The report as JSON (NaN as null); `net` gives the layer names and final candidates.
inline nlohmann::json to_json(const OneShotRunReport& r, const Supernet& net) {
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json j;
  j["seed"] = r.seed;
  j["settings"] = r.settings;
  j["float_accuracy"] = num(r.float_accuracy);
  j["epochs"] = nlohmann::json::array();
  for (const EpochStats& e : r.epochs)
    j["epochs"].push_back({{"epoch", e.epoch}, {"max_loss", e.max_loss}, {"random_loss", e.random_loss},
                           {"idm", e.idm}, {"max_train_accuracy", e.max_train_accuracy}, {"seconds", e.seconds}});
  j["scheduler_events"] = nlohmann::json::array();
  for (const SchedulerEvent& e : r.scheduler_events)
    j["scheduler_events"].push_back({{"epoch", e.epoch}, {"ratio", e.ratio}, {"metric", e.metric},
                                     {"frozen", e.frozen}, {"microseconds", e.microseconds}});
  j["final_candidates"] = nlohmann::json::array();
  for (std::size_t l = 0; l < net.size(); ++l)
    j["final_candidates"].push_back({{"layer", net.name(l)}, {"weight_bits", net.weight_candidates(l)},
                                     {"activation_bits", net.activation_candidates(l)}});
  j["memory"] = {{"bn_grid_bytes", r.memory.bn_grid_bytes}, {"step_size_bytes", r.memory.step_size_bytes},
                 {"bn_copies", r.memory.bn_copies}, {"step_sizes_per_layer", r.memory.step_sizes}};
  j["searches"] = nlohmann::json::array();
  for (const SearchRecord& s : r.searches) {
    nlohmann::json e = search_json(s.result);
    e["level"] = s.level;
    e["oneshot_accuracy"] = s.oneshot_accuracy;
    e["retrained_accuracy"] = s.retrained_accuracy;
    j["searches"].push_back(e);
  }
  j["uniform"] = nlohmann::json::array();
  for (const UniformRecord& u : r.uniform)
    j["uniform"].push_back({{"level", u.level}, {"oneshot_accuracy", u.oneshot_accuracy},
                            {"retrained_accuracy", u.retrained_accuracy}});
  j["frontier"] = nlohmann::json::array();
  for (const FrontierPoint& f : r.frontier) {
    nlohmann::json e = search_json(f.result);
    e["budget"] = f.budget;
    e["accuracy"] = f.accuracy;
    j["frontier"].push_back(e);
  }
  j["kendall_tau"] = num(r.kendall_tau);
  j["timing"] = r.timing;
  return j;
}

}  // namespace mixq::schedule
