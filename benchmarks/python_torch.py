#!/usr/bin/env python3
"""mixq.torch's operators against PyTorch's own CPU fake-quant ops, in the same run, single thread.

    PYTHONPATH=build/rel/python python3 benchmarks/python_torch.py            # table: G elements/s, ratios
    PYTHONPATH=build/rel/python python3 benchmarks/python_torch.py --json F   # also write the figures

Rows, on a contiguous float32 CPU tensor of --elements elements (default 1M = 4 MiB):
- lsq fwd+bwd: y = op(x, scale, zero_point, -8, 7, g); y.backward(dy) with x, scale and zero_point requiring
  gradients: mixq.torch.lsq against torch._fake_quantize_learnable_per_tensor_affine (the issue's goal: >= 20x);
- fake_quant fwd: mixq.torch.fake_quant against torch.fake_quantize_per_tensor_affine (no autograd);
- fake_quant fwd+bwd: the same with x requiring gradients (straight-through backward).
Times are CPU time of the process (time.process_time: the machine is shared, wall time would count other
processes' slices), median of --repetitions repetitions of calls repeated for >= 0.2 s, alternating mixq and torch
in each repetition; the ratio is the median over repetitions of torch / mixq. torch.set_num_threads(1): mixq's
kernels run on one thread.
"""
import argparse
import json
import statistics
import sys
import time

import torch

import mixq
import mixq.torch as mt

clock = time.process_time


def seconds_per_call(fn, min_time):
    number = 1
    while True:
        t0 = clock()
        for _ in range(number):
            fn()
        elapsed = clock() - t0
        if elapsed >= min_time or number >= 1 << 16:
            return elapsed / number
        number *= 2


def main():
    p = argparse.ArgumentParser(description="mixq.torch vs torch fake-quant ops, single thread")
    p.add_argument("--elements", type=int, default=1 << 20)
    p.add_argument("--repetitions", type=int, default=7)
    p.add_argument("--min-time", type=float, default=0.2)
    p.add_argument("--smoke", action="store_true", help="tiny run (the ctest check)")
    p.add_argument("--json", default="")
    args = p.parse_args()
    if args.smoke:
        args.repetitions, args.min_time = 1, 0.0
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.elements, generator=g)
    dy = torch.randn(args.elements, generator=g)
    n = args.elements
    grad_factor = 1.0 / (n * 7) ** 0.5

    def lsq_step(op):
        xr = x.detach().requires_grad_()
        s = torch.tensor([0.1], requires_grad=True)
        z = torch.tensor([0.0], requires_grad=True)

        def run():
            xr.grad = s.grad = z.grad = None
            op(xr, s, z, -8, 7, grad_factor).backward(dy)
        return run

    def fq_forward(op):
        return lambda: op(x, 0.1, 0, -8, 7)

    def fq_step(op):
        xr = x.detach().requires_grad_()

        def run():
            xr.grad = None
            op(xr, 0.1, 0, -8, 7).backward(dy)
        return run

    rows = [("lsq fwd+bwd", lsq_step(mt.lsq), lsq_step(torch._fake_quantize_learnable_per_tensor_affine)),
            ("fake_quant fwd", fq_forward(mt.fake_quant), fq_forward(torch.fake_quantize_per_tensor_affine)),
            ("fake_quant fwd+bwd", fq_step(mt.fake_quant), fq_step(torch.fake_quantize_per_tensor_affine))]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, mixq kernels on {mixq.active_isa()}, "
          f"{n} elements, CPU time medians of {args.repetitions}")
    print(f"{'op':<20} {'mixq G/s':>9} {'torch G/s':>10} {'torch/mixq':>11}")
    out = {}
    for name, ours, theirs in rows:
        ours()
        theirs()
        tm, tt, ratios = [], [], []
        for _ in range(args.repetitions):
            a = seconds_per_call(ours, args.min_time)
            b = seconds_per_call(theirs, args.min_time)
            tm.append(a)
            tt.append(b)
            ratios.append(b / a)
        row = {"mixq_seconds": statistics.median(tm), "torch_seconds": statistics.median(tt),
               "speedup": statistics.median(ratios), "speedup_repetitions": ratios}
        row["mixq_elements_per_second"] = n / row["mixq_seconds"]
        row["torch_elements_per_second"] = n / row["torch_seconds"]
        print(f"{name:<20} {row['mixq_elements_per_second'] / 1e9:9.3f} {row['torch_elements_per_second'] / 1e9:10.3f} "
              f"{row['speedup']:11.1f}")
        out[name] = row
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"elements": n, "threads": 1, "rows": out}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
