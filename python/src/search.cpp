// The search layer from Python: problems, the exact solver, Pareto sweeps, the LIMPQ and HAWQ objectives,
// layer tables, the cost model and width alignment (include/mixq/search/*.hpp).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "common.hpp"
#include "mixq/search/cost_model.hpp"
#include "mixq/search/hawq.hpp"
#include "mixq/search/networks.hpp"
#include "mixq/search/objectives.hpp"
#include "mixq/search/pareto.hpp"
#include "mixq/search/problem.hpp"
#include "mixq/search/solver.hpp"
#include "mixq/search/width.hpp"

namespace mixq::python {

namespace ms = mixq::search;
using namespace pybind11::literals;

namespace {

/// Options of one class from Python inputs: costs (O,), uses (O, K), labels and allowed (optional, O each).
std::vector<ms::Option> make_options(const char* fn, const std::string& name, const py::handle& costs,
                                     const py::handle& uses, const py::handle& labels, const py::handle& allowed,
                                     std::size_t K) {
  const auto c = real_array(fn, "costs", costs, 1);
  const auto u = integer_array(fn, "uses", uses, 2);
  const py::ssize_t O = c.shape(0);
  if (u.shape(0) != O || static_cast<std::size_t>(u.shape(1)) != K)
    mixq::detail::fail(fn, ": class '", name, "': uses must have shape (", O, ", ", K, ") (options x resources), got (",
                       u.shape(0), ", ", u.shape(1), ")");
  std::vector<std::string> lab;
  if (!labels.is_none()) {
    lab = labels.cast<std::vector<std::string>>();
    if (static_cast<py::ssize_t>(lab.size()) != O)
      mixq::detail::fail(fn, ": class '", name, "': ", lab.size(), " labels for ", O, " options");
  }
  std::vector<bool> ok(static_cast<std::size_t>(O), true);
  if (!allowed.is_none()) {
    const auto a = bool_array(fn, "allowed", allowed, 1);
    if (a.shape(0) != O) mixq::detail::fail(fn, ": class '", name, "': allowed has ", a.shape(0), " entries for ", O, " options");
    ok = to_vector<bool>(a);
  }
  auto cr = c.unchecked<1>();
  auto ur = u.unchecked<2>();
  std::vector<ms::Option> opts(static_cast<std::size_t>(O));
  for (py::ssize_t o = 0; o < O; ++o) {
    ms::Option& op = opts[static_cast<std::size_t>(o)];
    op.label = lab.empty() ? std::to_string(o) : lab[static_cast<std::size_t>(o)];
    op.cost = cr(o);
    if (!std::isfinite(op.cost))
      mixq::detail::fail(fn, ": class '", name, "' option ", o, " has a non-finite cost ", op.cost);
    op.use.resize(K);
    for (std::size_t k = 0; k < K; ++k) op.use[k] = ur(o, static_cast<py::ssize_t>(k));
    op.allowed = ok[static_cast<std::size_t>(o)];
  }
  return opts;
}

std::vector<std::int64_t> budgets_of(const char* fn, const py::handle& b) { return to_vector<std::int64_t>(integer_array(fn, "budgets", b, 1)); }

ms::SolveOptions solve_options(std::int64_t node_limit, double time_limit, double relative_tolerance) {
  ms::SolveOptions o;
  o.node_limit = node_limit;
  o.time_limit_seconds = time_limit;
  o.relative_tolerance = relative_tolerance;
  if (node_limit < 0 || !(time_limit >= 0.0) || !(relative_tolerance >= 0.0))
    mixq::detail::fail("solve: node_limit, time_limit and relative_tolerance must be >= 0, got ", node_limit, ", ",
                       time_limit, ", ", relative_tolerance);
  return o;
}

ms::Resource resource_of(const std::string& s) {
  if (s == "BitOps" || s == "bitops" || s == "bit_operations") return ms::Resource::bit_operations;
  if (s == "size" || s == "size_bits") return ms::Resource::size_bits;
  mixq::detail::fail("resource must be 'BitOps' or 'size', got '", s, "'");
}

std::vector<ms::BitPair> bit_pairs_of(const py::handle& obj) {
  std::vector<ms::BitPair> v;
  for (const py::handle& h : obj) {
    if (py::isinstance<ms::BitPair>(h)) {
      v.push_back(h.cast<ms::BitPair>());
    } else {
      const auto t = h.cast<std::pair<int, int>>();
      v.push_back(ms::BitPair{t.first, t.second});
    }
  }
  return v;
}

/// Written by every timed solve, so that the compiler keeps them.
volatile double solve_sink = 0.0;

/// The median of `repetitions` timed C++ solves (seconds): the in-binary baseline of benchmarks/python_search.py.
double cxx_solve_seconds(const ms::Problem& p, int repetitions) {
  if (repetitions < 1) mixq::detail::fail("cxx_solve_seconds: repetitions must be >= 1, got ", repetitions);
  std::vector<double> t(static_cast<std::size_t>(repetitions));
  for (int r = 0; r < repetitions; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const ms::Solution s = ms::solve(p);
    t[static_cast<std::size_t>(r)] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    solve_sink = s.objective;
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

void bind_search(py::module_& m) {
  // ---- problem ------------------------------------------------------------------------------------------------
  py::class_<ms::Problem>(m, "Problem", R"doc(
A multiple-choice knapsack (MCKP/MMKP) search problem: choose one allowed option per class (layer) minimising
the summed cost, with the summed use of every resource row within its budget. Build it with add_class, tie,
fix and forbid, or all at once with Problem.from_arrays. Validated when solved (ValueError naming the culprit).
)doc")
      .def(py::init([](py::object budgets, py::object resource_names) {
             std::vector<std::string> names;
             if (!resource_names.is_none()) names = resource_names.cast<std::vector<std::string>>();
             return ms::Problem(budgets_of("Problem", budgets), names);
           }),
           "budgets"_a, "resource_names"_a = py::none(),
           "A problem with K = len(budgets) resource rows (integers >= 0) and optional row names.")
      .def_static(
          "from_arrays",
          [](py::object costs, py::object uses, py::object budgets, py::object allowed, py::object names,
             py::object labels, py::object resource_names) {
            const auto c = real_array("Problem.from_arrays", "costs", costs, 2);
            const auto u = integer_array("Problem.from_arrays", "uses", uses, 3);
            std::vector<std::string> rn;
            if (!resource_names.is_none()) rn = resource_names.cast<std::vector<std::string>>();
            ms::Problem p(budgets_of("Problem.from_arrays", budgets), rn);
            const py::ssize_t L = c.shape(0), O = c.shape(1), K = static_cast<py::ssize_t>(p.budgets.size());
            if (u.shape(0) != L || u.shape(1) != O || u.shape(2) != K)
              mixq::detail::fail("Problem.from_arrays: uses must have shape (", L, ", ", O, ", ", K,
                                 ") (classes x options x resources), got (", u.shape(0), ", ", u.shape(1), ", ",
                                 u.shape(2), ")");
            std::vector<std::string> nm, lab;
            if (!names.is_none()) {
              nm = names.cast<std::vector<std::string>>();
              if (static_cast<py::ssize_t>(nm.size()) != L)
                mixq::detail::fail("Problem.from_arrays: ", nm.size(), " names for ", L, " classes");
            }
            if (!labels.is_none()) {
              lab = labels.cast<std::vector<std::string>>();
              if (static_cast<py::ssize_t>(lab.size()) != O)
                mixq::detail::fail("Problem.from_arrays: ", lab.size(), " labels for ", O, " options");
            }
            py::array_t<bool> a;
            if (!allowed.is_none()) {
              a = bool_array("Problem.from_arrays", "allowed", allowed, 2);
              if (a.shape(0) != L || a.shape(1) != O)
                mixq::detail::fail("Problem.from_arrays: allowed must have shape (", L, ", ", O, "), got (", a.shape(0),
                                   ", ", a.shape(1), ")");
            }
            auto cr = c.unchecked<2>();
            auto ur = u.unchecked<3>();
            for (py::ssize_t l = 0; l < L; ++l) {
              std::vector<ms::Option> opts(static_cast<std::size_t>(O));
              const std::string name = nm.empty() ? "class " + std::to_string(l) : nm[static_cast<std::size_t>(l)];
              for (py::ssize_t o = 0; o < O; ++o) {
                ms::Option& op = opts[static_cast<std::size_t>(o)];
                op.label = lab.empty() ? std::to_string(o) : lab[static_cast<std::size_t>(o)];
                op.cost = cr(l, o);
                if (!std::isfinite(op.cost))
                  mixq::detail::fail("Problem.from_arrays: costs[", l, ", ", o, "] is not finite: ", op.cost);
                op.use.resize(static_cast<std::size_t>(K));
                for (py::ssize_t k = 0; k < K; ++k) op.use[static_cast<std::size_t>(k)] = ur(l, o, k);
                op.allowed = allowed.is_none() ? true : a.at(l, o);
              }
              p.add_class(name, std::move(opts));
            }
            return p;
          },
          "costs"_a, "uses"_a, "budgets"_a, "allowed"_a = py::none(), "names"_a = py::none(), "labels"_a = py::none(),
          "resource_names"_a = py::none(),
          R"doc(A problem from arrays: costs (L, O) real, uses (L, O, K) integers, budgets (K,), allowed (L, O) bool
(optional; False forbids an option), class names (L) and option labels (O) optional.)doc")
      .def(
          "add_class",
          [](ms::Problem& p, const std::string& name, py::object costs, py::object uses, py::object labels,
             py::object allowed) {
            return p.add_class(name, make_options("Problem.add_class", name, costs, uses, labels, allowed,
                                                  p.budgets.size()));
          },
          "name"_a, "costs"_a, "uses"_a, "labels"_a = py::none(), "allowed"_a = py::none(),
          "Appends a class: costs (O,) real and finite, uses (O, K) integers >= 0, labels and allowed optional. "
          "Returns its index.")
      .def("tie", &ms::Problem::tie, "names"_a,
           "Ties classes by name: they take the same option index (e.g. a downsample conv and its block).")
      .def("fix", &ms::Problem::fix, "name"_a, "option"_a, "Fixes a class to one option index.")
      .def("forbid", &ms::Problem::forbid, "name"_a, "option"_a, "Forbids one option of a class.")
      .def("class_index", &ms::Problem::class_index, "name"_a, "Index of the class with this name.")
      .def_property(
          "budgets", [](const ms::Problem& p) { return to_numpy(p.budgets); },
          [](ms::Problem& p, py::object b) {
            std::vector<std::int64_t> v = budgets_of("Problem.budgets", b);
            if (v.size() != p.budgets.size())
              mixq::detail::fail("Problem.budgets: expected ", p.budgets.size(), " budgets, got ", v.size());
            p.budgets = std::move(v);
          },
          "The K budgets (int64 array; assign a new list of K integers to change them).")
      .def_property_readonly("resource_names", [](const ms::Problem& p) {
        std::vector<std::string> n;
        for (std::size_t k = 0; k < p.budgets.size(); ++k) n.push_back(p.resource_name(k));
        return n;
      }, "Names of the K resource rows.")
      .def_property_readonly("class_names", [](const ms::Problem& p) {
        std::vector<std::string> n;
        for (const auto& c : p.classes) n.push_back(c.name);
        return n;
      }, "Names of the classes, in order.")
      .def_property_readonly("ties", [](const ms::Problem& p) { return p.ties; }, "Tie groups (class indices).")
      .def("__len__", [](const ms::Problem& p) { return p.classes.size(); }, "Number of classes.")
      .def("labels", [](const ms::Problem& p, int c) {
        if (c < 0 || c >= static_cast<int>(p.classes.size())) mixq::detail::fail("Problem.labels: class ", c, " out of range");
        std::vector<std::string> v;
        for (const auto& o : p.classes[static_cast<std::size_t>(c)].options) v.push_back(o.label);
        return v;
      }, "c"_a, "Option labels of class c.")
      .def("costs", [](const ms::Problem& p, int c) {
        if (c < 0 || c >= static_cast<int>(p.classes.size())) mixq::detail::fail("Problem.costs: class ", c, " out of range");
        std::vector<double> v;
        for (const auto& o : p.classes[static_cast<std::size_t>(c)].options) v.push_back(o.cost);
        return to_numpy(v);
      }, "c"_a, "Option costs of class c.")
      .def("uses", [](const ms::Problem& p, int c) {
        if (c < 0 || c >= static_cast<int>(p.classes.size())) mixq::detail::fail("Problem.uses: class ", c, " out of range");
        const auto& opts = p.classes[static_cast<std::size_t>(c)].options;
        const py::ssize_t K = static_cast<py::ssize_t>(p.budgets.size());
        py::array_t<std::int64_t> a({static_cast<py::ssize_t>(opts.size()), K});
        auto r = a.mutable_unchecked<2>();
        for (std::size_t o = 0; o < opts.size(); ++o)
          for (py::ssize_t k = 0; k < K; ++k) r(static_cast<py::ssize_t>(o), k) = opts[o].use[static_cast<std::size_t>(k)];
        return a;
      }, "c"_a, "Option uses of class c, shape (O, K).")
      .def("allowed", [](const ms::Problem& p, int c) {
        if (c < 0 || c >= static_cast<int>(p.classes.size())) mixq::detail::fail("Problem.allowed: class ", c, " out of range");
        const auto& cl = p.classes[static_cast<std::size_t>(c)];
        std::vector<bool> v;
        for (std::size_t o = 0; o < cl.options.size(); ++o)
          v.push_back(cl.options[o].allowed && (cl.fixed_option < 0 || cl.fixed_option == static_cast<int>(o)));
        return v;
      }, "c"_a, "Whether each option of class c may be chosen (forbidden and fixed-out options are False).")
      .def("validate", [](const ms::Problem& p) { const ms::Solver check(p); },
           "Checks the problem (ValueError naming the first bad field), as solve() does first.")
      .def("__repr__", [](const ms::Problem& p) {
        std::ostringstream os;
        os << "<mixq.Problem " << p.classes.size() << " classes, K=" << p.budgets.size() << ">";
        return os.str();
      });

  // ---- solution and solver -------------------------------------------------------------------------------------
  py::class_<ms::Solution>(m, "Solution", "Result of a solve.")
      .def_property_readonly("status", [](const ms::Solution& s) { return std::string(ms::to_string(s.status)); },
                             "'optimal', 'feasible' (a limit stopped it: see gap), 'infeasible' or 'unknown'.")
      .def_readonly("objective", &ms::Solution::objective, "Summed cost of the chosen options (NaN when none).")
      .def_property_readonly("choices", [](const ms::Solution& s) { return to_numpy(s.choice); },
                             "Per class: the chosen option index (int32 array; empty when none was found).")
      .def_property_readonly("uses", [](const ms::Solution& s) { return to_numpy(s.use); },
                             "Per resource: the total use of the chosen options (int64 array).")
      .def_readonly("bound", &ms::Solution::bound, "Proven lower bound on the optimum.")
      .def_readonly("gap", &ms::Solution::gap, "objective - bound: 0 when optimal (proven gap).")
      .def_readonly("nodes", &ms::Solution::nodes, "Branch-and-bound nodes visited.")
      .def_readonly("solve_seconds", &ms::Solution::solve_seconds, "Wall time of the solve (seconds).")
      .def_readonly("infeasible_resource", &ms::Solution::infeasible_resource,
                    "Infeasible: the resource row that cannot be met (-1 otherwise).")
      .def_readonly("minimum_use", &ms::Solution::minimum_use, "Infeasible: its minimum possible use.")
      .def("__repr__", [](const ms::Solution& s) {
        std::ostringstream os;
        os.precision(10);
        os << "<mixq.Solution " << ms::to_string(s.status) << " objective=" << s.objective << " gap=" << s.gap
           << " nodes=" << s.nodes << ">";
        return os.str();
      });

  m.def(
      "solve",
      [](const ms::Problem& p, std::int64_t node_limit, double time_limit, double relative_tolerance) {
        const ms::SolveOptions o = solve_options(node_limit, time_limit, relative_tolerance);
        py::gil_scoped_release release;
        return ms::solve(p, o);
      },
      "problem"_a, "node_limit"_a = 0, "time_limit"_a = 0.0, "relative_tolerance"_a = 1e-9,
      R"doc(Solves a problem exactly (branch and bound with LP, Lagrangian and DP bounds; include/mixq/search/solver.hpp).
node_limit, time_limit (seconds): 0 = none; a limit that stops the search gives status 'feasible' with a proven
gap. 'optimal' means no solution is cheaper by more than relative_tolerance * max(1, |objective|).
The GIL is released while solving.)doc");

  m.def("describe_infeasibility", &ms::describe_infeasibility, "problem"_a, "solution"_a,
        "A one-line description of an infeasible solution: the resource and its minimum possible use.");

  py::class_<ms::Solver>(m, "Solver",
                         "A reusable solver: the problem is validated, tie-merged and dominance-filtered once; solve() "
                         "may then be called with many budget vectors.")
      .def(py::init<ms::Problem>(), "problem"_a)
      .def(
          "solve",
          [](const ms::Solver& s, py::object budgets, std::int64_t node_limit, double time_limit,
             double relative_tolerance, py::object warm_start) {
            const ms::SolveOptions o = solve_options(node_limit, time_limit, relative_tolerance);
            std::vector<std::int64_t> b =
                budgets.is_none() ? s.problem().budgets : budgets_of("Solver.solve", budgets);
            std::vector<int> warm;
            if (!warm_start.is_none()) warm = to_vector<int>(integer_array("Solver.solve", "warm_start", warm_start, 1));
            py::gil_scoped_release release;
            return s.solve(b, o, warm_start.is_none() ? nullptr : &warm);
          },
          "budgets"_a = py::none(), "node_limit"_a = 0, "time_limit"_a = 0.0, "relative_tolerance"_a = 1e-9,
          "warm_start"_a = py::none(),
          "Solves with the problem's budgets or others (K integers); warm_start: a per-class choice tried first.")
      .def_property_readonly("problem", &ms::Solver::problem, "The problem (a copy).");

  m.def(
      "pareto_sweep",
      [](const ms::Problem& p, py::object budget_list, py::object values, std::int64_t node_limit, double time_limit,
         double relative_tolerance) {
        const ms::SolveOptions o = solve_options(node_limit, time_limit, relative_tolerance);
        if (values.is_none()) {
          const auto b = integer_array("pareto_sweep", "budgets", budget_list, 2);
          std::vector<std::vector<std::int64_t>> list(static_cast<std::size_t>(b.shape(0)));
          auto r = b.unchecked<2>();
          for (py::ssize_t i = 0; i < b.shape(0); ++i)
            for (py::ssize_t k = 0; k < b.shape(1); ++k) list[static_cast<std::size_t>(i)].push_back(r(i, k));
          py::gil_scoped_release release;
          return ms::pareto_sweep(p, list, o);
        }
        const std::size_t resource = budget_list.cast<std::size_t>();
        const std::vector<std::int64_t> v = to_vector<std::int64_t>(integer_array("pareto_sweep", "values", values, 1));
        py::gil_scoped_release release;
        return ms::pareto_sweep(p, resource, v, o);
      },
      "problem"_a, "budgets"_a, "values"_a = py::none(), "node_limit"_a = 0, "time_limit"_a = 0.0,
      "relative_tolerance"_a = 1e-9,
      R"doc(Optimal solutions for many budgets, reusing work between them (include/mixq/search/pareto.hpp).
pareto_sweep(problem, budgets) with budgets an (N, K) integer array, or pareto_sweep(problem, resource, values)
sweeping one row (the others as in the problem). Results in input order.)doc");
  m.def("pareto_front", &ms::pareto_front, "results"_a, "resource"_a,
        "Indices of the Pareto-optimal results of a sweep over one resource, sorted by use.");

  // ---- layer tables and cost model ---------------------------------------------------------------------------
  py::enum_<ms::LayerKind>(m, "LayerKind", "The kind of a layer with weights.")
      .value("conv", ms::LayerKind::conv)
      .value("depthwise_conv", ms::LayerKind::depthwise_conv)
      .value("linear", ms::LayerKind::linear);

  py::class_<ms::Layer>(m, "Layer", R"doc(
One layer with weights (square convolutions; a linear layer uses in/out_channels as features). fixed_bits = 0:
searchable, else the layer's fixed weight and activation bit-width. Make them with conv_layer,
depthwise_conv_layer and linear_layer; a layer table is a list of Layer.)doc")
      .def(py::init<>())
      .def_readwrite("name", &ms::Layer::name, "Layer name (a class name in layer problems).")
      .def_readwrite("kind", &ms::Layer::kind, "LayerKind: conv, depthwise_conv or linear.")
      .def_readwrite("in_channels", &ms::Layer::in_channels, "Input channels (a linear layer: input features).")
      .def_readwrite("out_channels", &ms::Layer::out_channels, "Output channels (a linear layer: output features).")
      .def_readwrite("kernel", &ms::Layer::kernel, "Square kernel size (pixels).")
      .def_readwrite("stride", &ms::Layer::stride, "Stride (both axes).")
      .def_readwrite("padding", &ms::Layer::padding, "Zero padding (both axes).")
      .def_readwrite("groups", &ms::Layer::groups, "Convolution groups (depthwise: in_channels).")
      .def_readwrite("input_height", &ms::Layer::input_height, "Input feature map height (pixels).")
      .def_readwrite("input_width", &ms::Layer::input_width, "Input feature map width (pixels).")
      .def_readwrite("bias", &ms::Layer::bias, "Whether the layer has a bias vector.")
      .def_readwrite("batch_norm", &ms::Layer::batch_norm, "Whether a BatchNorm follows (its weight and bias count as parameters).")
      .def_readwrite("fixed_bits", &ms::Layer::fixed_bits, "0: searchable; else the fixed weight and activation bit-width.")
      .def("__repr__", [](const ms::Layer& l) {
        std::ostringstream os;
        os << "<mixq.Layer '" << l.name << "' " << (l.kind == ms::LayerKind::linear ? "linear" : l.kind == ms::LayerKind::conv ? "conv" : "depthwise_conv")
           << " " << l.in_channels << "->" << l.out_channels;
        if (l.kind != ms::LayerKind::linear) os << " k" << l.kernel << " s" << l.stride << " @" << l.input_height << "x" << l.input_width;
        if (l.fixed_bits) os << " fixed " << l.fixed_bits << " bits";
        return os.str() + ">";
      });

  m.def("conv_layer", &ms::conv_layer, "name"_a, "in_channels"_a, "out_channels"_a, "kernel"_a, "stride"_a,
        "padding"_a, "input_height"_a, "input_width"_a, "batch_norm"_a = true, "bias"_a = false, "groups"_a = 1,
        "A convolution layer (square kernel, input size in pixels).");
  m.def("depthwise_conv_layer", &ms::depthwise_conv_layer, "name"_a, "channels"_a, "kernel"_a, "stride"_a,
        "padding"_a, "input_height"_a, "input_width"_a, "batch_norm"_a = true,
        "A depthwise convolution (groups = in = out channels).");
  m.def("linear_layer", &ms::linear_layer, "name"_a, "in_features"_a, "out_features"_a, "bias"_a = true,
        "A fully connected layer.");
  m.def("resnet18", &ms::resnet18, "first_last_bits"_a = 8,
        "torchvision resnet18's layer table at 224x224 (first conv and FC fixed at first_last_bits; 0: searchable).");
  m.def("resnet50", &ms::resnet50, "first_last_bits"_a = 8, "torchvision resnet50 (v1.5) layer table at 224x224.");
  m.def("mobilenet_v2", &ms::mobilenet_v2, "first_last_bits"_a = 8, "torchvision mobilenet_v2 layer table at 224x224.");
  m.def("network_by_name", &ms::network_by_name, "name"_a, "first_last_bits"_a = 8,
        "A built-in table by name: 'resnet18', 'resnet50' or 'mobilenet_v2'.");
  m.def("output_height", &ms::output_height, "layer"_a, "Output height: floor((H + 2 padding - kernel) / stride) + 1.");
  m.def("output_width", &ms::output_width, "layer"_a, "Output width of a convolution.");
  m.def("weight_count", &ms::weight_count, "layer"_a, "Number of weights of the layer.");
  m.def("parameter_count", &ms::parameter_count, "layer"_a, "Weights, bias and BatchNorm parameters (torchvision's count).");
  m.def("macs", &ms::macs, "layer"_a, "Multiply-accumulates for one input image.");
  m.def("bit_operations", &ms::bit_operations, "layer"_a, "weight_bits"_a, "activation_bits"_a,
        "BitOps of a layer: MACs * w_bits * a_bits.");
  m.def("total_parameters", &ms::total_parameters, "table"_a, "Sum of parameter_count over the table.");
  m.def("total_weights", &ms::total_weights, "table"_a, "Sum of weight_count over the table.");
  m.def("total_macs", &ms::total_macs, "table"_a, "Sum of MACs over the table (one image).");

  py::class_<ms::BitPolicy>(m, "BitPolicy", "Per-layer weight and activation bit-widths of every layer of a table.")
      .def(py::init([](std::vector<int> w, std::vector<int> a) { return ms::BitPolicy{std::move(w), std::move(a)}; }),
           "weight_bits"_a, "activation_bits"_a)
      .def_readwrite("weight_bits", &ms::BitPolicy::weight_bits, "Weight bit-width of every layer.")
      .def_readwrite("activation_bits", &ms::BitPolicy::activation_bits, "Activation bit-width of every layer.")
      .def("__repr__", [](const ms::BitPolicy& p) {
        std::ostringstream os;
        os << "<mixq.BitPolicy " << p.weight_bits.size() << " layers>";
        return os.str();
      });
  m.def("uniform_policy", &ms::uniform_policy, "table"_a, "weight_bits"_a, "activation_bits"_a,
        "Searchable layers at (weight_bits, activation_bits), fixed layers at their fixed_bits.");
  m.def("total_bit_operations", &ms::total_bit_operations, "table"_a, "policy"_a, "Total BitOps of a policy.");
  m.def("model_size_bits", &ms::model_size_bits, "table"_a, "policy"_a,
        "Model size in bits: sum of weight_count * weight bits (biases and BatchNorm not counted).");
  m.def("average_bit_width", &ms::average_bit_width, "table"_a, "policy"_a, "model_size_bits / total_weights.");

  // ---- width alignment ----------------------------------------------------------------------------------------
  m.def("scale_channels", &ms::scale_channels, "channels"_a, "multiplier"_a, "divisor"_a = 8,
        "channels * multiplier rounded to the nearest multiple of divisor (halves up), at least divisor.");
  m.def("widen", &ms::widen, "table"_a, "multiplier"_a, "divisor"_a = 8,
        "The table with every channel count scaled (input channels and class count kept; Chin et al. 2020).");
  m.def("size_at_bits", &ms::size_at_bits, "table"_a, "weight_bits"_a,
        "Model size in bits with searchable layers at weight_bits and fixed layers at their fixed_bits.");
  py::class_<ms::WidthAlignment>(m, "WidthAlignment", "Result of align_width.")
      .def_readonly("multiplier", &ms::WidthAlignment::multiplier,
                    "The largest width multiplier (a double, exactly) whose widened table fits the target.")
      .def_readonly("table", &ms::WidthAlignment::table, "The widened layer table at multiplier.")
      .def_readonly("size_bits", &ms::WidthAlignment::size_bits, "Its size in bits at weight_bits (<= the target).")
      .def_readonly("next_multiplier", &ms::WidthAlignment::next_multiplier,
                    "The next double up: the smallest multiplier whose table does not fit.")
      .def_readonly("next_size_bits", &ms::WidthAlignment::next_size_bits, "The size there (> the target).");
  m.def("align_width", &ms::align_width, "table"_a, "weight_bits"_a, "target_size_bits"_a, "divisor"_a = 8,
        "The largest width multiplier whose widened table at weight_bits (1..8; fixed layers at their fixed bits) fits\n"
        "target_size_bits, exactly: a bisection over the doubles, about 64 size evaluations (Chin et al. 2020).\n"
        "ValueError for weight_bits outside 1..8, divisor <= 0, target <= 0 or below the narrowest table's size.");

  // ---- objectives ---------------------------------------------------------------------------------------------
  py::class_<ms::BitPair>(m, "BitPair", "A (weight, activation) bit-width option.")
      .def(py::init([](int w, int a) { return ms::BitPair{w, a}; }), "weight_bits"_a, "activation_bits"_a)
      .def_readwrite("weight_bits", &ms::BitPair::weight_bits, "Weight bit-width.")
      .def_readwrite("activation_bits", &ms::BitPair::activation_bits, "Activation bit-width.")
      .def("__repr__", [](const ms::BitPair& p) { return "<mixq.BitPair " + ms::label(p) + ">"; });
  m.def("bit_pairs", &ms::bit_pairs, "weight_bits"_a, "activation_bits"_a,
        "Every (w, a) pair, weight bits outer: [w0a0, w0a1, ..., w1a0, ...].");
  m.def("label", &ms::label, "pair"_a, "Label of an option: 'w4a8'.");
  m.def("parse_level", &ms::parse_level, "level"_a, "Parses a level 'W3A4' into a BitPair.");

  m.def(
      "layer_problem",
      [](const ms::LayerTable& table, py::object cost, py::object options, std::vector<std::string> resources,
         py::object budgets, py::object allowed, py::object macs_override) {
        const auto c = real_array("layer_problem", "cost", cost, 2);
        std::vector<std::vector<double>> cv(static_cast<std::size_t>(c.shape(0)));
        auto cr = c.unchecked<2>();
        for (py::ssize_t l = 0; l < c.shape(0); ++l)
          for (py::ssize_t o = 0; o < c.shape(1); ++o) {
            if (!std::isfinite(cr(l, o))) mixq::detail::fail("layer_problem: cost[", l, ", ", o, "] is not finite: ", cr(l, o));
            cv[static_cast<std::size_t>(l)].push_back(cr(l, o));
          }
        std::vector<ms::Resource> res;
        for (const std::string& r : resources) res.push_back(resource_of(r));
        std::vector<std::vector<bool>> av;
        if (!allowed.is_none()) {
          const auto a = bool_array("layer_problem", "allowed", allowed, 2);
          for (py::ssize_t l = 0; l < a.shape(0); ++l) {
            av.emplace_back();
            for (py::ssize_t o = 0; o < a.shape(1); ++o) av.back().push_back(a.at(l, o));
          }
        }
        std::vector<std::int64_t> mo;
        if (!macs_override.is_none()) mo = to_vector<std::int64_t>(integer_array("layer_problem", "macs_override", macs_override, 1));
        return ms::layer_problem(table, cv, bit_pairs_of(options), res, budgets_of("layer_problem", budgets),
                                 allowed.is_none() ? nullptr : &av, macs_override.is_none() ? nullptr : &mo);
      },
      "table"_a, "cost"_a, "options"_a, "resources"_a, "budgets"_a, "allowed"_a = py::none(),
      "macs_override"_a = py::none(),
      R"doc(The problem of a layer table with a user cost table: cost (L, O) for the L searchable layers
(fixed_bits == 0, in table order) and the O options (BitPair or (w, a) tuples); resources: a list of 'BitOps'
and 'size'; budgets for the whole network (the fixed layers' use is subtracted). allowed (L, O) bool optional.)doc");

  py::class_<ms::LimpqIndicators>(m, "LimpqIndicators", R"doc(
LIMPQ importance indicators (Tang et al., ECCV 2022) of the searchable layers: learned LSQ step sizes per
candidate bit-width (bit_widths descending), with each layer's params and MACs.)doc")
      .def(py::init([](py::object params, py::object macs, py::object weight_step, py::object activation_step,
                       std::vector<int> bit_widths) {
             ms::LimpqIndicators ind;
             ind.bit_widths = bit_widths;
             ind.params = to_vector<std::int64_t>(integer_array("LimpqIndicators", "params", params, 1));
             ind.macs = to_vector<std::int64_t>(integer_array("LimpqIndicators", "macs", macs, 1));
             const auto w = real_array("LimpqIndicators", "weight_step", weight_step, 2);
             const auto a = real_array("LimpqIndicators", "activation_step", activation_step, 2);
             const py::ssize_t L = static_cast<py::ssize_t>(ind.params.size()), n = static_cast<py::ssize_t>(bit_widths.size());
             if (static_cast<py::ssize_t>(ind.macs.size()) != L || w.shape(0) != L || a.shape(0) != L || w.shape(1) != n ||
                 a.shape(1) != n)
               mixq::detail::fail("LimpqIndicators: params and macs need L entries and the step sizes shape (L, ",
                                  n, "); got ", ind.params.size(), ", ", ind.macs.size(), ", (", w.shape(0), ", ",
                                  w.shape(1), "), (", a.shape(0), ", ", a.shape(1), ")");
             for (py::ssize_t l = 0; l < L; ++l) {
               ind.weight_step.emplace_back();
               ind.activation_step.emplace_back();
               for (py::ssize_t i = 0; i < n; ++i) {
                 const double sw = w.at(l, i), sa = a.at(l, i);
                 if (!std::isfinite(sw) || !(sw > 0) || !std::isfinite(sa) || !(sa > 0))
                   mixq::detail::fail("LimpqIndicators: step sizes must be positive and finite, got ", sw, " and ", sa,
                                      " in row ", l);
                 ind.weight_step.back().push_back(sw);
                 ind.activation_step.back().push_back(sa);
               }
             }
             return ind;
           }),
           "params"_a, "macs"_a, "weight_step"_a, "activation_step"_a, "bit_widths"_a = std::vector<int>{6, 5, 4, 3, 2},
           "Indicators from arrays: params, macs (L,), weight_step and activation_step (L, len(bit_widths)).")
      .def_readonly("bit_widths", &ms::LimpqIndicators::bit_widths, "Candidate bit-widths, descending (the columns of the step sizes).")
      .def_property_readonly("params", [](const ms::LimpqIndicators& i) { return to_numpy(i.params); },
                             "Weight count of each searchable layer (int64 array).")
      .def_property_readonly("macs", [](const ms::LimpqIndicators& i) { return to_numpy(i.macs); },
                             "MACs of each searchable layer for one image (int64 array).")
      .def_readonly("weight_step", &ms::LimpqIndicators::weight_step, "Learned weight step sizes S_w(b) per layer and bit-width.")
      .def_readonly("activation_step", &ms::LimpqIndicators::activation_step, "Learned activation step sizes S_a(b) per layer and bit-width.")
      .def("__len__", [](const ms::LimpqIndicators& i) { return i.params.size(); });
  m.def("read_limpq_indicators",
        py::overload_cast<const std::string&, const std::vector<int>&>(&ms::read_limpq_indicators), "path"_a,
        "bit_widths"_a = std::vector<int>{6, 5, 4, 3, 2},
        "Reads LIMPQ indicators (params MACs S_w(b...) S_a(b...) per line; LIMPQ's published format).");
  m.def("synthetic_limpq_indicators", &ms::synthetic_limpq_indicators, "table"_a, "seed"_a = 1,
        "bit_widths"_a = std::vector<int>{6, 5, 4, 3, 2},
        "Synthetic, strictly monotone indicators for a table (tests and benchmarks).");
  py::class_<ms::LimpqBudgets>(m, "LimpqBudgets", "Budgets of a LIMPQ search (whole network).")
      .def(py::init([](std::int64_t b, std::int64_t s) { return ms::LimpqBudgets{b, s}; }), "bit_operations"_a,
           "size_bits"_a)
      .def_readwrite("bit_operations", &ms::LimpqBudgets::bit_operations, "BitOps budget (whole network).")
      .def_readwrite("size_bits", &ms::LimpqBudgets::size_bits, "Model size budget in bits (whole network).");
  m.def(
      "limpq_budgets",
      [](const ms::LayerTable& t, const ms::LimpqIndicators& ind, const std::string& level, double ratio,
         bool use_indicator_macs) {
        const ms::BitPair p = ms::parse_level(level);
        return ms::limpq_budgets(t, ind, p.weight_bits, p.activation_bits, ratio, use_indicator_macs);
      },
      "table"_a, "indicators"_a, "level"_a, "compression_ratio"_a, "use_indicator_macs"_a = true,
      "LIMPQ's budgets: BitOps of the level 'W3A4' and size = floor(32 * weights / compression_ratio) bits.");
  m.def("limpq_problem", &ms::limpq_problem, "table"_a, "indicators"_a, "budgets"_a, "alpha"_a = 2.0,
        "use_indicator_macs"_a = true,
        R"doc(The LIMPQ ILP on a layer table: cost S_a(b_a) + alpha * S_w(b_w) per (w, a) option, rows BitOps and
size; LIMPQ's non-monotone ("wired") bit-widths and 1e8 entries are forbidden options, never costs.)doc");

  m.def(
      "weight_perturbation",
      [](py::object w, std::int64_t out_channels, int bits) {
        const auto a = strict_array<float>("weight_perturbation", "weights", w);
        py::gil_scoped_release release;
        return ms::weight_perturbation(a.data(), static_cast<std::int64_t>(a.size()), out_channels, bits);
      },
      "weights"_a, "out_channels"_a, "bits"_a,
      "||W - Q_b(W)||^2 of a float32 weight tensor laid out [out_channels, ...], symmetric per channel.");
  m.def(
      "hawq_costs",
      [](const ms::LayerTable& table, py::object traces, py::list weights, py::object options) {
        std::vector<std::vector<float>> w;
        for (const py::handle& h : weights) {
          const auto a = strict_array<float>("hawq_costs", "weights[i]", h);
          w.emplace_back(a.data(), a.data() + a.size());
        }
        const std::vector<double> tr = to_vector<double>(real_array("hawq_costs", "traces", traces, 1));
        const std::vector<std::vector<double>> c = ms::hawq_costs(table, tr, w, bit_pairs_of(options));
        py::array_t<double> out({static_cast<py::ssize_t>(c.size()), static_cast<py::ssize_t>(c.empty() ? 0 : c[0].size())});
        auto r = out.mutable_unchecked<2>();
        for (std::size_t l = 0; l < c.size(); ++l)
          for (std::size_t o = 0; o < c[l].size(); ++o) r(static_cast<py::ssize_t>(l), static_cast<py::ssize_t>(o)) = c[l][o];
        return out;
      },
      "table"_a, "traces"_a, "weights"_a, "options"_a,
      R"doc(HAWQ-V3 cost table (Yao et al., ICML 2021): cost[l, o] = Tr(H_l) / n_l * ||W_l - Q_{w_o}(W_l)||^2 for
the searchable layers (traces: Hessian traces; weights: float32 arrays [out_channels, ...]); for layer_problem.)doc");

  m.def("_cxx_solve_seconds", &cxx_solve_seconds, "problem"_a, "repetitions"_a,
        py::call_guard<py::gil_scoped_release>(),
        "Median wall time of `repetitions` solves timed inside C++ (the baseline of benchmarks/python_search.py).");
}

}  // namespace mixq::python
