#pragma once
/// @file
/// The generic mixed-precision search problem: a multiple-choice knapsack with K resource rows (MCKP/MMKP).
/// Choose one allowed option per class (layer) minimising the summed cost with the summed use of every
/// resource within its budget. Classes can be tied (they take the same option index), fixed, or have
/// forbidden options; forbidden options are never costs (no big-M).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "mixq/error.hpp"

namespace mixq::search {

/// One choice of a class: a cost (any finite double) and its use of each of the K resources (>= 0).
struct Option {
  std::string label;
  double cost = 0.0;
  std::vector<std::int64_t> use;
  bool allowed = true;  ///< false: the solver never picks it (its cost and use are still validated)
};

/// A class (usually a layer): the solver picks exactly one of its allowed options.
struct ChoiceClass {
  std::string name;
  std::vector<Option> options;
  int fixed_option = -1;  ///< >= 0: only this option may be chosen
};

/// An MCKP/MMKP instance. Build it with add_class, tie, fix and forbid; the solver validates it.
struct Problem {
  std::vector<std::int64_t> budgets;         ///< K budgets, one per resource row, each >= 0
  std::vector<std::string> resource_names;   ///< optional, K names used in messages (default "resource k")
  std::vector<ChoiceClass> classes;
  std::vector<std::vector<int>> ties;        ///< groups of class indices that take the same option index

  Problem() = default;
  /// A problem with K = budgets.size() resource rows.
  explicit Problem(std::vector<std::int64_t> budgets_, std::vector<std::string> names = {})
      : budgets(std::move(budgets_)), resource_names(std::move(names)) {}

  /// Number of resource rows K.
  std::size_t resource_count() const { return budgets.size(); }

  /// Appends a class and returns its index.
  int add_class(std::string name, std::vector<Option> options) {
    classes.push_back(ChoiceClass{std::move(name), std::move(options), -1});
    return static_cast<int>(classes.size()) - 1;
  }

  /// Index of the class with this name; throws mixq::error if there is none.
  int class_index(const std::string& name) const {
    for (std::size_t i = 0; i < classes.size(); ++i)
      if (classes[i].name == name) return static_cast<int>(i);
    mixq::detail::fail("problem: unknown class name '", name, "'");
  }

  /// Ties classes by name: they must choose the same option index (e.g. a downsample conv and its block).
  void tie(const std::vector<std::string>& names) {
    std::vector<int> group;
    for (const std::string& n : names) group.push_back(class_index(n));
    ties.push_back(std::move(group));
  }

  /// Fixes a class to one option.
  void fix(const std::string& name, int option) {
    ChoiceClass& c = classes[static_cast<std::size_t>(class_index(name))];
    if (option < 0 || option >= static_cast<int>(c.options.size()))
      mixq::detail::fail("problem: fix option=", option, " out of range for class '", name, "' with ",
                         c.options.size(), " options");
    c.fixed_option = option;
  }

  /// Forbids one option of a class.
  void forbid(const std::string& name, int option) {
    ChoiceClass& c = classes[static_cast<std::size_t>(class_index(name))];
    if (option < 0 || option >= static_cast<int>(c.options.size()))
      mixq::detail::fail("problem: forbid option=", option, " out of range for class '", name, "' with ",
                         c.options.size(), " options");
    c.options[static_cast<std::size_t>(option)].allowed = false;
  }

  /// Name of resource k for messages.
  std::string resource_name(std::size_t k) const {
    if (k < resource_names.size() && !resource_names[k].empty()) return resource_names[k];
    return "resource " + std::to_string(k);
  }
};

namespace detail {

/// Checks everything the issue lists as bad input; throws mixq::error naming the culprit.
inline void validate(const Problem& p) {
  const std::size_t K = p.budgets.size();
  if (K == 0) mixq::detail::fail("problem: needs at least one budget (resource row), got 0");
  if (!p.resource_names.empty() && p.resource_names.size() != K)
    mixq::detail::fail("problem: resource_names has ", p.resource_names.size(), " names for K=", K, " budgets");
  for (std::size_t k = 0; k < K; ++k)
    if (p.budgets[k] < 0) mixq::detail::fail("problem: budget of ", p.resource_name(k), " is negative: ", p.budgets[k]);
  if (p.classes.empty()) mixq::detail::fail("problem: empty (no classes)");
  const std::int64_t limit = std::numeric_limits<std::int64_t>::max() / 4;
  std::int64_t max_total = 0;
  for (std::size_t c = 0; c < p.classes.size(); ++c) {
    const ChoiceClass& cl = p.classes[c];
    if (cl.options.empty()) mixq::detail::fail("problem: class '", cl.name, "' has no options");
    if (cl.fixed_option >= static_cast<int>(cl.options.size()))
      mixq::detail::fail("problem: class '", cl.name, "' fixed_option=", cl.fixed_option, " out of range");
    bool any = false;
    std::int64_t class_max = 0;
    for (std::size_t j = 0; j < cl.options.size(); ++j) {
      const Option& o = cl.options[j];
      if (!std::isfinite(o.cost))
        mixq::detail::fail("problem: class '", cl.name, "' option ", j, " ('", o.label, "') has a non-finite cost ",
                           o.cost);
      if (o.use.size() != K)
        mixq::detail::fail("problem: class '", cl.name, "' option ", j, " ('", o.label, "') has ", o.use.size(),
                           " resource uses, expected K=", K);
      for (std::size_t k = 0; k < K; ++k) {
        if (o.use[k] < 0)
          mixq::detail::fail("problem: class '", cl.name, "' option ", j, " ('", o.label, "') has a negative use ",
                             o.use[k], " of ", p.resource_name(k));
        if (o.use[k] > limit)
          mixq::detail::fail("problem: class '", cl.name, "' option ", j, " use ", o.use[k], " is too large");
        class_max = std::max(class_max, o.use[k]);
      }
      if (o.allowed && (cl.fixed_option < 0 || cl.fixed_option == static_cast<int>(j))) any = true;
    }
    if (!any) mixq::detail::fail("problem: class '", cl.name, "' has no allowed option");
    if (class_max > limit - max_total) mixq::detail::fail("problem: total resource use overflows int64");
    max_total += class_max;
  }
  // duplicate names: adjacent after a sort of the names (a sort of pointers: no string copies)
  std::vector<const std::string*> names(p.classes.size());
  for (std::size_t c = 0; c < p.classes.size(); ++c) names[c] = &p.classes[c].name;
  std::sort(names.begin(), names.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
  for (std::size_t i = 1; i < names.size(); ++i)
    if (*names[i] == *names[i - 1]) mixq::detail::fail("problem: duplicate class name '", *names[i], "'");
  for (std::size_t t = 0; t < p.ties.size(); ++t) {
    const std::vector<int>& g = p.ties[t];
    if (g.empty()) mixq::detail::fail("problem: tie ", t, " is empty");
    for (int c : g) {
      if (c < 0 || c >= static_cast<int>(p.classes.size()))
        mixq::detail::fail("problem: tie ", t, " names class index ", c, " out of range");
      if (p.classes[static_cast<std::size_t>(c)].options.size() != p.classes[static_cast<std::size_t>(g[0])].options.size())
        mixq::detail::fail("problem: tied classes '", p.classes[static_cast<std::size_t>(g[0])].name, "' and '",
                           p.classes[static_cast<std::size_t>(c)].name, "' have different option counts (",
                           p.classes[static_cast<std::size_t>(g[0])].options.size(), " and ",
                           p.classes[static_cast<std::size_t>(c)].options.size(), ")");
    }
  }
}

}  // namespace detail
}  // namespace mixq::search
