"""examples/python/ddp_lsq_qat.py under torch.distributed: 2 processes (gloo, localhost) and 1 process with the
same global batch give the same loss curve and the same parameters within float tolerance (summation order of
the BatchNorm statistics and of the gradient all-reduce is all that differs)."""
import json
import os
import subprocess
import sys

import pytest

SOURCE_DIR = os.environ.get("MIXQ_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE = os.path.join(SOURCE_DIR, "examples", "python", "ddp_lsq_qat.py")
DATA = "/usr/share/datasets/fashion-mnist"


def run(tmp_path, world_size, steps):
    out = tmp_path / f"world{world_size}.json"
    cmd = [sys.executable, EXAMPLE, "--world-size", str(world_size), "--global-batch", "32", "--max-steps", str(steps),
           "--train-samples", "512", "--test-samples", "0", "--no-search", "--json", str(out)]
    subprocess.run(cmd, check=True, env=dict(os.environ), timeout=600)
    return json.loads(out.read_text())


@pytest.mark.skipif(not os.path.exists(os.path.join(DATA, "train-images-idx3-ubyte.gz")),
                    reason="needs the Debian package dataset-fashion-mnist")
def test_two_processes_equal_one_process(tmp_path):
    steps = 6
    one = run(tmp_path, 1, steps)
    two = run(tmp_path, 2, steps)
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert len(one["losses"]) == len(two["losses"]) == steps
    # training moves: the curve is not flat
    assert one["losses"][-1] < one["losses"][0]
    for a, b in zip(one["losses"], two["losses"]):
        assert abs(a - b) <= 1e-5 * abs(a), (one["losses"], two["losses"])  # measured: 1.1e-7
    for name, a in one["parameters"].items():
        b = two["parameters"][name]
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), name


def test_help_exits_zero():
    r = subprocess.run([sys.executable, EXAMPLE, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--world-size" in r.stdout and "--quick" in r.stdout
