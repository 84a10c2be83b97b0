#!/usr/bin/env python3
"""Quantization-aware training of a small ResNet with mixq's LSQ operator under torch.distributed, then a mixq
bit-width search on the trained model's layer table.

    PYTHONPATH=build/rel/python python3 examples/python/ddp_lsq_qat.py            # --quick: 2 processes, 1 epoch
    PYTHONPATH=build/rel/python python3 examples/python/ddp_lsq_qat.py --full     # 6 epochs

The model is the small ResNet of mixq's C++ substrate (nn::make_resnet) written in PyTorch: stem conv3x3 (16),
basic blocks 16, 32 (stride 2), 64 (stride 2), global average pool, FC; every conv and the FC quantize their
weights and their input with mixq.torch.LsqQuantizer (stem and FC at 8 bits, the others at --bits). It trains
on Fashion-MNIST (Debian package dataset-fashion-mnist) with DistributedDataParallel, gloo backend,
--world-size processes on localhost (torch.multiprocessing.spawn). Each step takes one global batch of
--global-batch images from a permutation every process draws alike; process r takes its r-th contiguous share.
BatchNorm statistics are reduced over the whole global batch (a differentiable all_reduce on a process group of
their own), and LSQ's gradient scale counts the features of one sample, so a run with N processes computes the
same loss and gradients as a 1-process run with the same global batch, up to float summation order
(python/tests/test_ddp.py checks it on a few steps).

After training, process 0 evaluates on the test set, estimates each layer's Hessian trace (Hutchinson, on the
float model), builds the HAWQ-V3 cost table with mixq.hawq_costs, and asks mixq.solve for the weight bit-widths
(8, 6, 4, 3, 2) that minimise it under a size budget of --budget-bits bits per weight of the searchable layers
(stem and FC stay at 8) and the BitOps of the trained level; it prints the policy and writes the trained weights in mixq's quantized safetensors format
(--export FILE). Prints one line per epoch (loss and ETA on a terminal); --json FILE writes the losses of every
step, the accuracy and the search result.
"""
import argparse
import gzip
import json
import math
import os
import socket
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import mixq
import mixq.torch as mt

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


# ---- data ----------------------------------------------------------------------------------------------------------

def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim not in (1, 3):
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(folder, split, limit):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"))
    if limit:
        images, labels = images[:limit], labels[:limit]
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - MEAN) / STD
    return x.unsqueeze(1).contiguous(), torch.from_numpy(labels.astype(np.int64))


# ---- model ---------------------------------------------------------------------------------------------------------

class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the global batch of every process: the per-channel sums and sums of squares go through a
    differentiable all_reduce (torch.distributed.nn.functional) on `group`, so N processes normalise exactly as
    one process with the whole batch would. (torch 1.13's SyncBatchNorm runs on CUDA only.)"""

    group = None

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        c = x.shape[1]
        count = torch.tensor([x.numel() // c], dtype=x.dtype)
        stats = torch.cat([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)), count])
        if dist.is_initialized() and dist.get_world_size() > 1:
            stats = dist_fn.all_reduce(stats, group=GlobalBatchNorm2d.group)
        n = stats[-1]
        mean = stats[:c] / n
        var = stats[c:2 * c] / n - mean * mean
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * n / (n - 1))
            self.num_batches_tracked.add_(1)
        inv = torch.rsqrt(var + self.eps)
        return (x - mean[None, :, None, None]) * (inv * self.weight)[None, :, None, None] + self.bias[None, :, None, None]


class QuantConv2d(nn.Conv2d):
    """A convolution whose weights (per-tensor, signed) and input (unsigned after a ReLU, else signed) go through
    LsqQuantizer. Records its input size for the layer table."""

    def __init__(self, *args, bits=4, signed_input=False, **kw):
        super().__init__(*args, bias=False, **kw)
        self.weight_quantizer = mt.LsqQuantizer(bits)
        self.input_quantizer = mt.LsqQuantizer(bits, signed=signed_input, batch_dim=0)
        self.bits, self.input_size = bits, None

    def forward(self, x):
        self.input_size = tuple(x.shape[2:])
        return self._conv_forward(self.input_quantizer(x), self.weight_quantizer(self.weight), None)


class QuantLinear(nn.Linear):
    def __init__(self, *args, bits=8, **kw):
        super().__init__(*args, **kw)
        self.weight_quantizer = mt.LsqQuantizer(bits)
        self.input_quantizer = mt.LsqQuantizer(bits, signed=False, batch_dim=0)
        self.bits = bits

    def forward(self, x):
        return F.linear(self.input_quantizer(x), self.weight_quantizer(self.weight), self.bias)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, bits):
        super().__init__()
        self.conv1 = QuantConv2d(cin, cout, 3, stride=stride, padding=1, bits=bits)
        self.bn1 = GlobalBatchNorm2d(cout)
        self.conv2 = QuantConv2d(cout, cout, 3, padding=1, bits=bits)
        self.bn2 = GlobalBatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(QuantConv2d(cin, cout, 1, stride=stride, bits=bits), GlobalBatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class SmallResNet(nn.Module):
    """mixq's nn::make_resnet in PyTorch; stem conv and FC fixed at 8 bits."""

    def __init__(self, bits=4, width=1.0, classes=10):
        super().__init__()
        c1, c2, c3 = (max(8, int(round(c * width / 8)) * 8) for c in (16, 32, 64))
        self.stem = QuantConv2d(1, c1, 3, padding=1, bits=8, signed_input=True)
        self.stem_bn = GlobalBatchNorm2d(c1)
        self.stage1 = BasicBlock(c1, c1, 1, bits)
        self.stage2 = BasicBlock(c1, c2, 2, bits)
        self.stage3 = BasicBlock(c2, c3, 2, bits)
        self.fc = QuantLinear(c3, classes, bits=8)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(x.mean(dim=(2, 3)))


def quantizers(model):
    return [m for m in model.modules() if isinstance(m, mt.LsqQuantizer)]


def weight_layers(model):
    """(name, module) of every conv and linear layer in forward order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (QuantConv2d, QuantLinear))]


def layer_table(model):
    """The mixq layer table of the model (input sizes recorded by the last forward); stem and FC fixed at 8."""
    table = []
    layers = weight_layers(model)
    for i, (name, m) in enumerate(layers):
        if isinstance(m, QuantConv2d):
            h, w = m.input_size
            layer = mixq.conv_layer(name, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0],
                                    h, w, batch_norm=True)
        else:
            layer = mixq.linear_layer(name, m.in_features, m.out_features, bias=True)
        if i == 0 or i == len(layers) - 1:
            layer.fixed_bits = 8
        table.append(layer)
    return table


# ---- training ------------------------------------------------------------------------------------------------------

def batch_indices(n, global_batch, epoch, seed):
    """The global batches of one epoch: a permutation that every process draws alike (drop the last partial)."""
    perm = np.random.default_rng(seed * 1000 + epoch).permutation(n)
    return [perm[i:i + global_batch] for i in range(0, n - global_batch + 1, global_batch)]


def evaluate(model, x, y, batch=500):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch]).argmax(dim=1) == y[i:i + batch]).sum())
    model.train()
    return correct / max(1, len(x))


def hessian_traces(model, x, y, samples):
    """Hutchinson estimates of Tr(H) of the loss w.r.t. each layer's weights, on the float model (quantizers
    off, BatchNorm in eval mode): E[v^T H v] over Rademacher v."""
    for q in quantizers(model):
        q.enabled = False
    model.eval()
    params = [m.weight for _, m in weight_layers(model)]
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    traces = [0.0] * len(params)
    gen = torch.Generator().manual_seed(0)
    for _ in range(samples):
        vs = [torch.randint(0, 2, p.shape, generator=gen).float() * 2 - 1 for p in params]
        hv = torch.autograd.grad(grads, params, grad_outputs=vs, retain_graph=True)
        for i, (h, v) in enumerate(zip(hv, vs)):
            traces[i] += float((h * v).sum()) / samples
    for q in quantizers(model):
        q.enabled = True
    model.train()
    return traces


def search_policy(model, x, y, args):
    """HAWQ-V3 costs from Hessian traces and the trained weights, solved by mixq under size and BitOps budgets."""
    table = layer_table(model)
    t0 = time.perf_counter()
    traces = hessian_traces(model, x, y, args.trace_samples)
    trace_seconds = time.perf_counter() - t0
    layers = weight_layers(model)
    searchable = [i for i, l in enumerate(table) if not l.fixed_bits]
    weights = [layers[i][1].weight.detach().contiguous().numpy() for i in searchable]
    options = mixq.bit_pairs([8, 6, 4, 3, 2], [args.bits])
    cost = mixq.hawq_costs(table, [traces[i] for i in searchable], weights, options)
    size_budget = int(args.budget_bits * sum(mixq.weight_count(table[i]) for i in searchable)) + sum(
        mixq.weight_count(l) * l.fixed_bits for l in table if l.fixed_bits)
    bitops_budget = mixq.total_bit_operations(table, mixq.uniform_policy(table, args.bits, args.bits))
    problem = mixq.layer_problem(table, cost, options, ["size", "BitOps"], [size_budget, bitops_budget])
    solution = mixq.solve(problem)
    if solution.status != "optimal":
        return {"status": solution.status, "message": mixq.describe_infeasibility(problem, solution)}
    policy = mixq.policy_from_solution(table, problem, solution)
    return {
        "status": solution.status, "objective": solution.objective, "solve_seconds": solution.solve_seconds,
        "trace_seconds": trace_seconds, "traces": traces,
        "layers": [l.name for l in table], "weight_bits": list(policy.weight_bits),
        "activation_bits": list(policy.activation_bits),
        "size_bits": mixq.model_size_bits(table, policy), "size_budget": size_budget,
        "average_weight_bits": mixq.average_bit_width(table, policy),
        "average_searchable_weight_bits": sum(mixq.weight_count(table[i]) * policy.weight_bits[i] for i in searchable)
        / sum(mixq.weight_count(table[i]) for i in searchable),
        "bit_operations": mixq.total_bit_operations(table, policy), "bitops_budget": bitops_budget,
    }


def export(model, path):
    """The trained weights as mixq's quantized safetensors format: each weight at its quantizer's bits and
    learned step size, biases and BatchNorm parameters in float32."""
    quantized, floats = {}, {}
    for name, m in weight_layers(model):
        q = m.weight_quantizer
        spec = mixq.QuantSpec(bit_width=q.bits)
        quantized[name + ".weight"] = mixq.QuantizedTensor.quantize(
            m.weight.detach().contiguous().numpy(), spec, q.step_size.detach().numpy())
    for name, p in model.state_dict().items():
        if ("bn" in name or name.endswith(".bias") or "shortcut.1" in name) and p.dtype == torch.float32:
            floats[name] = p.detach().contiguous().numpy()
    mixq.write_quantized_model(path, quantized, floats, {"model": "SmallResNet", "source": "ddp_lsq_qat.py"})
    return sum(t.storage_bytes for t in quantized.values())


def worker(rank, args, port, result_path):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=args.world_size)
    GlobalBatchNorm2d.group = dist.new_group(list(range(args.world_size)))
    world = args.world_size
    x_train, y_train = load_fashion_mnist(args.data, "train", args.train_samples)
    torch.manual_seed(args.seed)
    model = SmallResNet(bits=args.bits, width=args.width)
    batches = batch_indices(len(x_train), args.global_batch, 0, args.seed)
    # LSQ's step sizes start from the first global batch, the same in every process (train mode: the activations
    # are normalised by batch statistics as in training; eval mode's initial running statistics would give step
    # sizes for other magnitudes)
    with torch.no_grad():
        model(x_train[batches[0]])
    ddp = DistributedDataParallel(model, broadcast_buffers=False)
    # no weight decay on step sizes and zero points (it would pull them to zero) nor on BatchNorm and biases
    decay = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
    rest = [p for n, p in model.named_parameters() if not (n.endswith("weight") and p.dim() > 1)]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": args.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                                lr=args.lr, momentum=0.9)
    share = args.global_batch // world
    steps_per_epoch = len(batches)
    total_steps = args.epochs * steps_per_epoch if not args.max_steps else min(args.max_steps, args.epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / max(1, total_steps))))
    losses, epochs = [], []
    step, t0 = 0, time.perf_counter()
    tty = sys.stdout.isatty()
    for epoch in range(args.epochs):
        batches = batch_indices(len(x_train), args.global_batch, epoch, args.seed)
        epoch_loss, epoch_correct, epoch_count = 0.0, 0, 0
        for b in batches:
            if step >= total_steps:
                break
            idx = b[rank * share:(rank + 1) * share]
            xb, yb = x_train[idx], y_train[idx]
            optimizer.zero_grad(set_to_none=True)
            out = ddp(xb)
            loss = F.cross_entropy(out, yb)
            loss.backward()
            optimizer.step()
            schedule.step()
            # the global batch's loss for the log: local sums reduced over the processes
            summary = torch.tensor([float(loss) * len(idx), float((out.argmax(1) == yb).sum()), float(len(idx))],
                                   dtype=torch.float64)
            dist.all_reduce(summary)
            losses.append(float(summary[0] / summary[2]))
            epoch_loss += float(summary[0])
            epoch_correct += int(summary[1])
            epoch_count += int(summary[2])
            step += 1
            if rank == 0 and tty and (step % 10 == 0 or step == total_steps):
                eta = (time.perf_counter() - t0) / step * (total_steps - step)
                print(f"\r  step {step}/{total_steps}  loss {losses[-1]:.4f}  ETA {eta:5.0f} s", end="", flush=True)
        if epoch_count == 0:
            break
        epochs.append({"epoch": epoch + 1, "loss": epoch_loss / epoch_count, "train_accuracy": epoch_correct / epoch_count,
                       "seconds": time.perf_counter() - t0})
        if rank == 0:
            print(("\n" if tty else "") + f"epoch {epoch + 1}/{args.epochs}: loss {epochs[-1]['loss']:.4f}, train "
                  f"accuracy {epochs[-1]['train_accuracy']:.4f}, {epochs[-1]['seconds']:.0f} s", flush=True)
    result = {"world_size": world, "global_batch": args.global_batch, "steps": step, "losses": losses, "epochs": epochs,
              "train_seconds": time.perf_counter() - t0}
    if rank == 0:
        result["parameters"] = {n: p.detach().double().sum().item() for n, p in model.named_parameters()}
        if args.test_samples:
            x_test, y_test = load_fashion_mnist(args.data, "test", args.test_samples)
            result["test_accuracy"] = evaluate(model, x_test, y_test)
            print(f"test accuracy {result['test_accuracy']:.4f} on {len(x_test)} images "
                  f"(W{args.bits}A{args.bits}, stem and FC at 8 bits)")
        if args.search:
            result["search"] = search_policy(model, x_train[:args.trace_images], y_train[:args.trace_images], args)
            s = result["search"]
            if s["status"] == "optimal":
                print(f"mixq search (HAWQ-V3 costs; size <= {args.budget_bits} bits per weight of the searchable "
                      f"layers, stem and FC at 8; BitOps <= W{args.bits}A{args.bits}): solved in "
                      f"{s['solve_seconds'] * 1e3:.2f} ms, {s['average_searchable_weight_bits']:.3f} bits per searchable "
                      f"weight, {s['average_weight_bits']:.3f} over all weights")
                for name, w in zip(s["layers"], s["weight_bits"]):
                    print(f"  {name:<22} w{w}")
            else:
                print(f"mixq search: {s['status']} {s.get('message', '')}")
        if args.export:
            result["export_bytes"] = export(model, args.export)
            print(f"wrote {args.export} ({result['export_bytes']} bytes of quantized weights)")
        with open(result_path, "w") as f:
            json.dump(result, f)
    dist.barrier()
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="1 epoch (the default; a few minutes)")
    mode.add_argument("--full", action="store_true", help="6 epochs (the figures of docs/RESULTS.md)")
    p.add_argument("--world-size", type=int, default=2, help="processes (gloo, localhost)")
    p.add_argument("--global-batch", type=int, default=128, help="images per step over all processes")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: 1 quick, 6 full)")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    p.add_argument("--bits", type=int, default=4, help="weight and activation bits of the inner layers")
    p.add_argument("--width", type=float, default=1.0, help="channel width multiplier")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (cosine schedule, momentum 0.9)")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default=DEFAULT_DATA, help="folder of the Fashion-MNIST IDX files")
    p.add_argument("--train-samples", type=int, default=0, help="use the first N training images (0: all 60000)")
    p.add_argument("--test-samples", type=int, default=10000, help="test images to evaluate on (0: no evaluation)")
    p.add_argument("--no-search", dest="search", action="store_false", help="skip the mixq search")
    p.add_argument("--budget-bits", type=float, default=3.0, help="size budget: bits per weight of the searchable layers")
    p.add_argument("--trace-samples", type=int, default=6, help="Hutchinson samples per Hessian trace")
    p.add_argument("--trace-images", type=int, default=128, help="training images the Hessian traces are taken on")
    p.add_argument("--export", default="", help="write the trained model in mixq's quantized safetensors format")
    p.add_argument("--json", default="", help="write the losses, accuracy and search result to this file")
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 6 if args.full else 1
    if args.world_size < 1 or args.global_batch % args.world_size:
        p.error(f"--global-batch {args.global_batch} must be a multiple of --world-size {args.world_size}")
    if not 2 <= args.bits <= 8:
        p.error(f"--bits must be in 2..8, got {args.bits}")
    if not os.path.exists(os.path.join(args.data, "train-images-idx3-ubyte.gz")):
        p.error(f"no Fashion-MNIST in {args.data} (Debian package dataset-fashion-mnist, or --data)")
    result_path = args.json or os.path.join("/tmp", f"ddp_lsq_qat_{os.getpid()}.json")
    port = free_port()
    t0 = time.perf_counter()
    print(f"ddp_lsq_qat: {args.world_size} processes (gloo), global batch {args.global_batch}, {args.epochs} epoch(s), "
          f"W{args.bits}A{args.bits}, mixq kernels on {mixq.active_isa()}", flush=True)
    mp.spawn(worker, args=(args, port, result_path), nprocs=args.world_size, join=True)
    with open(result_path) as f:
        result = json.load(f)
    result["config"] = {k: v for k, v in vars(args).items()}
    result["wall_seconds"] = time.perf_counter() - t0
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    else:
        os.remove(result_path)
    print(f"done in {result['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
