#pragma once
/// @file
/// The search layer of mixq (namespace mixq::search): decides how many bits each layer gets under budgets.
///
/// - search/cost_model.hpp: Layer (conv, depthwise conv, linear), parameter counts, MACs, BitOps, model size,
///   average bit-width, BitPolicy.
/// - search/networks.hpp: torchvision ResNet-18, ResNet-50 (v1.5), MobileNetV2 layer tables at 224x224.
/// - search/problem.hpp: the MCKP/MMKP problem: classes, options (cost, K uses), budgets, ties, fix, forbid.
/// - search/solver.hpp: the exact solver (OPTIMAL / FEASIBLE with gap / INFEASIBLE with the failing resource).
/// - search/objectives.hpp: LIMPQ objective and budgets, user cost tables on a layer table.
/// - search/hawq.hpp: HAWQ-V3 style costs (Hessian trace times weight perturbation).
/// - search/pareto.hpp: sweeps over budgets, Pareto fronts.
/// - search/width.hpp: width-multiplier alignment (Chin et al.).
/// - search/policy.hpp: a solution as a per-layer policy (policy_from_solution, layer_bit_map for nn::set_bits).
/// - search/json.hpp: problem and solution JSON (parse_problem, problem_to_json, solution_to_json).
/// - search/cli.hpp: the mixq-search program as a function (run_cli).

#include "mixq/error.hpp"
#include "mixq/search/cost_model.hpp"
#include "mixq/search/networks.hpp"
#include "mixq/search/problem.hpp"
#include "mixq/search/solver.hpp"
#include "mixq/search/objectives.hpp"
#include "mixq/search/hawq.hpp"
#include "mixq/search/pareto.hpp"
#include "mixq/search/width.hpp"
#include "mixq/search/policy.hpp"
#include "mixq/search/json.hpp"
#include "mixq/search/cli.hpp"
