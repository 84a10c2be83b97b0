#!/usr/bin/env python3
"""PyTorch side of mixq's training comparison on Fashion-MNIST.

Trains the same small ResNet as mixq::nn::make_resnet (stem 16, stages 16/32/64 with one basic block each,
global pool, FC) with the same recipe as examples/train_fashion_mnist: batch 128, SGD with Nesterov momentum
0.9, weight decay 5e-4 (not on biases and BN), one-cycle learning rate with max 0.1 (cycle_momentum off),
inputs normalised with mean 0.2860 and std 0.3530, no augmentation. Optionally with LSQ fake quantization of
weights (signed, per channel) and activations (unsigned after ReLU) through PyTorch's learnable fake-quant ops
(first conv and last FC at 8 bits), from a float checkpoint of this script or from scratch.

Prints one line per epoch and a last line "test_accuracy=0.XXXX epoch_seconds=S", like the C++ program, so the
two can be compared in one run:

    /usr/bin/python3 benchmarks/torch_compare.py --epochs 5 --threads 2
    ./build/n-rel/examples/train_fashion_mnist --model resnet --epochs 5 --threads 2

Data: --data DIR, else $MIXQ_FASHION_MNIST, else /usr/share/datasets/fashion-mnist.
Exits with status 0 and a note when torch is not installed.
"""
import argparse
import gzip
import math
import os
import struct
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    print(f"torch_compare: PyTorch is not installed ({e}); nothing to compare", file=sys.stderr)
    sys.exit(0)


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(directory, split):
    x = read_idx(os.path.join(directory, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(directory, f"{split}-labels-idx1-ubyte.gz"))
    x = (torch.from_numpy(x.astype(np.float32) / 255.0) - 0.2860) / 0.3530
    return x.unsqueeze(1).contiguous(), torch.from_numpy(y.astype(np.int64))


class LsqAct(tnn.Module):
    """LSQ fake quantization through torch's learnable per-tensor op (step initialised on first batch)."""

    def __init__(self, bits, signed):
        super().__init__()
        self.bits = bits
        self.qmin, self.qmax = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        self.scale = tnn.Parameter(torch.zeros(1))
        self.register_buffer("zero_point", torch.zeros(1))
        self.initialised = False

    def forward(self, x):
        if self.bits >= 32:
            return x
        if not self.initialised:
            with torch.no_grad():
                self.scale.fill_(2 * x.abs().mean().item() / math.sqrt(self.qmax))
            self.initialised = True
        g = 1.0 / math.sqrt(x[0].numel() * self.qmax)
        return torch._fake_quantize_learnable_per_tensor_affine(x, self.scale, self.zero_point, self.qmin,
                                                                self.qmax, g)


class LsqWeight(tnn.Module):
    def __init__(self, bits, channels):
        super().__init__()
        self.bits = bits
        self.qmin, self.qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        self.scale = tnn.Parameter(torch.zeros(channels))
        self.register_buffer("zero_point", torch.zeros(channels, dtype=torch.int32))
        self.initialised = False

    def forward(self, w):
        if self.bits >= 32:
            return w
        if not self.initialised:
            with torch.no_grad():
                self.scale.copy_(2 * w.abs().flatten(1).mean(1) / math.sqrt(self.qmax))
            self.initialised = True
        g = 1.0 / math.sqrt(w[0].numel() * self.qmax)
        return torch._fake_quantize_learnable_per_channel_affine(w, self.scale, self.zero_point.float(), 0,
                                                                 self.qmin, self.qmax, g)


class QConv(tnn.Conv2d):
    def __init__(self, cin, cout, k, stride, pad, wbits, abits, signed_in):
        super().__init__(cin, cout, k, stride, pad, bias=False)
        tnn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        self.wq = LsqWeight(wbits, cout)
        self.aq = LsqAct(abits, signed_in)

    def forward(self, x):
        return F.conv2d(self.aq(x), self.wq(self.weight), None, self.stride, self.padding)


class QLinear(tnn.Linear):
    def __init__(self, cin, cout, wbits, abits):
        super().__init__(cin, cout)
        self.wq = LsqWeight(wbits, cout)
        self.aq = LsqAct(abits, False)

    def forward(self, x):
        return F.linear(self.aq(x), self.wq(self.weight), self.bias)


class Block(tnn.Module):
    def __init__(self, cin, cout, stride, wb, ab):
        super().__init__()
        self.conv1 = QConv(cin, cout, 3, stride, 1, wb, ab, False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = QConv(cout, cout, 3, 1, 1, wb, ab, False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = tnn.Sequential(QConv(cin, cout, 1, stride, 0, wb, ab, False), tnn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet(tnn.Module):
    def __init__(self, wb=32, ab=32, classes=10):
        super().__init__()
        fb = 32 if wb >= 32 and ab >= 32 else 8
        self.stem = tnn.Sequential(QConv(1, 16, 3, 1, 1, fb, fb, True), tnn.BatchNorm2d(16), tnn.ReLU())
        self.stage1 = Block(16, 16, 1, wb, ab)
        self.stage2 = Block(16, 32, 2, wb, ab)
        self.stage3 = Block(32, 64, 2, wb, ab)
        self.fc = QLinear(64, classes, fb, fb)

    def forward(self, x):
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.fc(x.mean((2, 3)))


def one_cycle(step, total, max_lr, pct=0.3, div=25.0, final_div=1e4):
    init = max_lr / div
    final = init / final_div
    up = pct * total - 1
    down = total - 1
    ann = lambda a, b, p: b + (a - b) / 2 * (math.cos(math.pi * p) + 1)
    if step <= up:
        return ann(init, max_lr, step / up)
    return ann(max_lr, final, min(1.0, (step - up) / (down - up)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=-1)
    ap.add_argument("--wbits", type=int, default=32)
    ap.add_argument("--abits", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--train-limit", type=int, default=0)
    ap.add_argument("--init", default="", help="float state_dict (.pt) written by --out")
    ap.add_argument("--out", default="")
    ap.add_argument("--data", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    directory = a.data or os.environ.get("MIXQ_FASHION_MNIST") or "/usr/share/datasets/fashion-mnist"
    xtr, ytr = load(directory, "train")
    xte, yte = load(directory, "t10k")
    if a.train_limit > 0:
        xtr, ytr = xtr[:a.train_limit], ytr[:a.train_limit]
    quant = a.wbits < 32 or a.abits < 32
    model = ResNet(a.wbits, a.abits)
    if a.init:
        model.load_state_dict(torch.load(a.init), strict=False)
    lr = a.lr if a.lr > 0 else (0.01 if quant else 0.1)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0}],
                          lr=lr, momentum=0.9, nesterov=True)
    steps = (len(xtr) + a.batch - 1) // a.batch
    total = steps * a.epochs
    print(f"torch {torch.__version__} threads={torch.get_num_threads()} wbits={a.wbits} abits={a.abits} "
          f"train={len(xtr)} lr={lr}", flush=True)
    step = 0
    train_seconds = 0.0
    acc = 0.0
    for epoch in range(1, a.epochs + 1):
        model.train()
        perm = torch.randperm(len(xtr))
        t0, c0 = time.time(), time.process_time()
        loss_sum, correct = 0.0, 0
        for b in range(0, len(xtr), a.batch):
            idx = perm[b:b + a.batch]
            x, y = xtr[idx], ytr[idx]
            cur = one_cycle(step, total, lr) if not quant else 0.5 * lr * (1 + math.cos(math.pi * step / total))
            for g in opt.param_groups:
                g["lr"] = cur
            opt.zero_grad(set_to_none=True)
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == y).sum().item()
        secs, cpu = time.time() - t0, time.process_time() - c0
        train_seconds += secs
        model.eval()
        with torch.no_grad():
            acc = sum((model(xte[i:i + 500]).argmax(1) == yte[i:i + 500]).sum().item()
                      for i in range(0, len(xte), 500)) / len(xte)
        print(f"epoch {epoch}/{a.epochs} train_loss={loss_sum / len(xtr):.4f} train_acc={correct / len(xtr):.4f} "
              f"test_acc={acc:.4f} seconds={secs:.1f} cpu_seconds={cpu:.1f}", flush=True)
    if a.out:
        torch.save(model.state_dict(), a.out)
    print(f"test_accuracy={acc:.4f} epoch_seconds={train_seconds / a.epochs:.2f}")


if __name__ == "__main__":
    main()
