#!/usr/bin/env python3
"""The LIMPQ ResNet-50 search from Python: mixq.solve against the same solve timed inside C++, and against
PuLP + CBC (the way LIMPQ's own search code solves it), in the same run.

    PYTHONPATH=build/rel/python python3 benchmarks/python_search.py            # table (medians, same-run ratios)
    PYTHONPATH=build/rel/python python3 benchmarks/python_search.py --json F   # also write the figures

Instances: ../shared/data/limpq_r50_real.txt and _quirk.txt (LIMPQ's published indicators), budgets W3A4 BitOps
and compression 12.2, alpha 2 (tests/test_search.cpp's instance). Times are wall time (CBC runs as a separate
process) of one solve: "C++" is mixq::search::solve timed in C++ by mixq._core._cxx_solve_seconds (a loop of
solves, median), "Python" is time.perf_counter around mixq.solve(problem) (call overhead and the Solution's
conversion included, median), alternated in rounds so that both see the same machine load; the ratio is the
median over rounds of Python / C++. PuLP: the LIMPQ formulation (one binary per layer and option, one-hot rows,
the two budget rows, forbidden options left out) solved with pulp's COIN_CMD (Debian's cbc binary), model
building excluded, median of a few solves. Needs python3-pulp (else the CBC rows are skipped).
"""
import argparse
import json
import os
import statistics
import sys
import time

import mixq

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")


def limpq_instance(name):
    table = mixq.resnet50()
    ind = mixq.read_limpq_indicators(os.path.join(DATA, name))
    return mixq.limpq_problem(table, ind, mixq.limpq_budgets(table, ind, "W3A4", 12.2))


def python_seconds(problem, repetitions):
    t = []
    for _ in range(repetitions):
        t0 = time.perf_counter()
        mixq.solve(problem)
        t.append(time.perf_counter() - t0)
    return statistics.median(t)


def pulp_solve(problem, repetitions):
    """LIMPQ's formulation in PuLP, solved by CBC; returns (objective, median seconds of prob.solve)."""
    import pulp

    times, objective = [], None
    for _ in range(repetitions):
        prob = pulp.LpProblem("limpq", pulp.LpMinimize)
        terms, rows = [], [[] for _ in problem.budgets]
        for c in range(len(problem)):
            costs, uses, allowed = problem.costs(c), problem.uses(c), problem.allowed(c)
            xs = []
            for o in range(len(costs)):
                if not allowed[o]:
                    continue
                x = pulp.LpVariable(f"x_{c}_{o}", cat="Binary")
                xs.append(x)
                terms.append(float(costs[o]) * x)
                for k in range(len(problem.budgets)):
                    rows[k].append(int(uses[o][k]) * x)
            prob += pulp.lpSum(xs) == 1
        prob += pulp.lpSum(terms)
        for k, b in enumerate(problem.budgets):
            prob += pulp.lpSum(rows[k]) <= int(b)
        solver = pulp.COIN_CMD(msg=False, gapRel=0)
        t0 = time.perf_counter()
        prob.solve(solver)
        times.append(time.perf_counter() - t0)
        if pulp.LpStatus[prob.status] != "Optimal":
            raise RuntimeError(f"CBC status {pulp.LpStatus[prob.status]}")
        objective = pulp.value(prob.objective)
    return objective, statistics.median(times)


def main():
    p = argparse.ArgumentParser(description="mixq.solve from Python vs C++ vs PuLP + CBC on LIMPQ's ResNet-50")
    p.add_argument("--rounds", type=int, default=15, help="alternating rounds of C++ and Python solves")
    p.add_argument("--repetitions", type=int, default=21, help="solves per round and side (median)")
    p.add_argument("--cbc-repetitions", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="one round of one solve each (the ctest check)")
    p.add_argument("--json", default="")
    args = p.parse_args()
    if args.smoke:
        args.rounds, args.repetitions, args.cbc_repetitions = 1, 1, 1
    try:
        import pulp  # noqa: F401
        have_pulp = True
    except ImportError:
        have_pulp = False
    print(f"mixq {mixq.__version__} (kernels on {mixq.active_isa()}), {args.rounds} rounds x {args.repetitions} solves")
    print(f"{'instance':<10} {'C++ ms':>8} {'Python ms':>10} {'Py/C++':>7} {'CBC ms':>8} {'CBC/Py':>7}  objective")
    out = {}
    for name in ("limpq_r50_real.txt", "limpq_r50_real_quirk.txt"):
        problem = limpq_instance(name)
        solution = mixq.solve(problem)
        cxx, py, ratios = [], [], []
        for _ in range(args.rounds):
            c = mixq._core._cxx_solve_seconds(problem, args.repetitions)
            q = python_seconds(problem, args.repetitions)
            cxx.append(c)
            py.append(q)
            ratios.append(q / c)
        row = {"objective": solution.objective, "status": solution.status, "nodes": solution.nodes,
               "cxx_seconds": statistics.median(cxx), "python_seconds": statistics.median(py),
               "python_over_cxx": statistics.median(ratios), "python_over_cxx_rounds": ratios}
        if have_pulp:
            obj, t = pulp_solve(problem, args.cbc_repetitions)
            row.update({"cbc_seconds": t, "cbc_objective": obj, "cbc_over_python": t / row["python_seconds"]})
        cbc = f"{row['cbc_seconds'] * 1e3:8.1f} {row['cbc_over_python']:7.0f}" if have_pulp else f"{'-':>8} {'-':>7}"
        short = name.replace("limpq_r50_", "").replace(".txt", "")
        print(f"{short:<10} {row['cxx_seconds'] * 1e3:8.3f} {row['python_seconds'] * 1e3:10.3f} "
              f"{row['python_over_cxx']:7.3f} {cbc}  {solution.objective:.8f}"
              + (f" (CBC {row['cbc_objective']:.8f})" if have_pulp else ""))
        out[short] = row
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
