"""mixq from Python: the exact mixed-precision bit-width search, the quantization kernels and the quantized
safetensors format of the mixq C++ library
(header-only C++17), through pybind11.

    import mixq
    table = mixq.resnet50()                                   # layer tables, cost model
    ind = mixq.read_limpq_indicators("limpq_r50_real.txt")    # LIMPQ objective
    problem = mixq.limpq_problem(table, ind, mixq.limpq_budgets(table, ind, "W3A4", 12.2))
    solution = mixq.solve(problem)                            # proven optimum, ~0.3 ms
    policy = mixq.policy_from_solution(table, problem, solution)

Kernels take C-contiguous numpy.float32 arrays and never copy them (a wrong dtype, a non-contiguous array or a
read-only output raises ValueError instead). Every error of the library arrives as ValueError with its message.
PyTorch operators and an LSQ module live in mixq.torch (import it explicitly; it needs torch).
"""

from ._core import *  # noqa: F401,F403  (the bindings: every public name has a docstring)
from ._core import __version__  # noqa: F401
from . import _core

__all__ = [name for name in dir(_core) if not name.startswith("_")] + ["policy_from_solution", "parse_label"]


def parse_label(label):
    """The (weight_bits, activation_bits) of an option label "w4a8" (the labels of layer_problem and
    limpq_problem). Raises ValueError for another form."""
    import re

    m = re.fullmatch(r"w(\d+)a(\d+)", label)
    if m is None:
        raise ValueError(f"parse_label: expected a label like 'w4a8', got {label!r}")
    return int(m.group(1)), int(m.group(2))


def policy_from_solution(table, problem, solution):
    """The BitPolicy (bits of every layer of `table`) of a solution of a layer problem (layer_problem,
    limpq_problem): searchable layers take the bits of their chosen option's label, fixed layers their
    fixed_bits. Classes are matched to layers by name. Raises ValueError if the solution has no choice."""
    choices = solution.choices
    if len(choices) != len(problem):
        raise ValueError(f"policy_from_solution: the solution has {len(choices)} choices for a problem of "
                         f"{len(problem)} classes (status {solution.status})")
    chosen = {}
    for c, name in enumerate(problem.class_names):
        chosen[name] = parse_label(problem.labels(c)[int(choices[c])])
    w, a = [], []
    for layer in table:
        if layer.fixed_bits:
            w.append(layer.fixed_bits)
            a.append(layer.fixed_bits)
        elif layer.name in chosen:
            w.append(chosen[layer.name][0])
            a.append(chosen[layer.name][1])
        else:
            raise ValueError(f"policy_from_solution: searchable layer {layer.name!r} is not a class of the problem")
    return BitPolicy(w, a)  # noqa: F405
