// The MCKP/MMKP of a mixq::search::Problem as a COIN-OR CBC model (binary x[c][j], one choice per class,
// ties as equalities, fixed and forbidden options as bounds, resource rows divided by their budgets).
// Shared by tests/test_search_cbc.cpp and benchmarks/bench_search.cpp.
#pragma once

#include <coin/Cbc_C_Interface.h>
#include <mixq/search/problem.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace mixq_test {

struct CbcResult {
  bool optimal = false;
  bool infeasible = false;
  double objective = 0.0;
  std::vector<int> choice;
};

inline Cbc_Model* cbc_model(const mixq::search::Problem& p) {
  Cbc_Model* m = Cbc_newModel();
  Cbc_setLogLevel(m, 0);
  int col = 0;
  std::vector<std::vector<int>> cols(p.classes.size());
  for (std::size_t c = 0; c < p.classes.size(); ++c) {
    const auto& cl = p.classes[c];
    for (std::size_t j = 0; j < cl.options.size(); ++j) {
      const bool ok = cl.options[j].allowed && (cl.fixed_option < 0 || cl.fixed_option == static_cast<int>(j));
      Cbc_addCol(m, "", 0.0, ok ? 1.0 : 0.0, ok ? cl.options[j].cost : 0.0, 1, 0, nullptr, nullptr);
      cols[c].push_back(col++);
    }
  }
  for (std::size_t c = 0; c < p.classes.size(); ++c) {
    std::vector<double> one(cols[c].size(), 1.0);
    Cbc_addRow(m, "", static_cast<int>(cols[c].size()), cols[c].data(), one.data(), 'E', 1.0);
  }
  for (std::size_t k = 0; k < p.budgets.size(); ++k) {
    std::vector<int> idx;
    std::vector<double> val;
    const double scale = 1.0 / static_cast<double>(std::max<std::int64_t>(p.budgets[k], 1));
    for (std::size_t c = 0; c < p.classes.size(); ++c)
      for (std::size_t j = 0; j < p.classes[c].options.size(); ++j) {
        const std::int64_t u = p.classes[c].options[j].use[k];
        if (u == 0) continue;
        idx.push_back(cols[c][j]);
        val.push_back(static_cast<double>(u) * scale);
      }
    Cbc_addRow(m, "", static_cast<int>(idx.size()), idx.data(), val.data(), 'L',
               static_cast<double>(p.budgets[k]) * scale);
  }
  for (const auto& t : p.ties)
    for (std::size_t i = 1; i < t.size(); ++i)
      for (std::size_t j = 0; j < cols[static_cast<std::size_t>(t[0])].size(); ++j) {
        const int c2[2] = {cols[static_cast<std::size_t>(t[0])][j], cols[static_cast<std::size_t>(t[i])][j]};
        const double v[2] = {1.0, -1.0};
        Cbc_addRow(m, "", 2, c2, v, 'E', 0.0);
      }
  Cbc_setAllowableGap(m, 0.0);
  Cbc_setAllowableFractionGap(m, 0.0);
  return m;
}

/// Solves p with CBC to a zero gap. The model build is inside (as a user of CBC would pay it).
/// plain = true switches CBC's preprocessing and cut generators off: the oracle setting (with them on, CBC 2.10
/// reported a suboptimal "optimal" answer on one of our random instances, see docs/PERFORMANCE.md).
inline CbcResult cbc_solve(const mixq::search::Problem& p, bool plain = false) {
  Cbc_Model* m = cbc_model(p);
  if (plain) {
    Cbc_setParameter(m, "preprocess", "off");
    Cbc_setParameter(m, "cuts", "off");
  }
  Cbc_solve(m);
  CbcResult r;
  r.optimal = Cbc_isProvenOptimal(m) != 0;
  r.infeasible = Cbc_isProvenInfeasible(m) != 0;
  if (r.optimal) {
    r.objective = Cbc_getObjValue(m);
    const double* x = Cbc_getColSolution(m);
    int col = 0;
    for (const auto& cl : p.classes) {
      int best = 0;
      for (std::size_t j = 0; j < cl.options.size(); ++j, ++col)
        if (x[col] > x[col - static_cast<int>(j) + best]) best = static_cast<int>(j);
      r.choice.push_back(best);
    }
  }
  Cbc_deleteModel(m);
  return r;
}

}  // namespace mixq_test
