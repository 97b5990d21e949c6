"""The out-of-place ReLU's streaming stores (csrc/cpu/relu.cpp: outputs from 64 MB up are written with
non-temporal stores through a small buffer) give the bits of the ordinary loop: Caffe's goldens run through
the streaming path (``REPLICATE_STREAM_MIN_BYTES=0`` in a child process), and every length, alignment and
special value gives the same bytes streamed as not."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import sys, torch
sys.path.insert(0, {repo!r})
from replicate import ops as R  # noqa: F401 (loads the ops)
ops = torch.ops.replicate
g = torch.Generator().manual_seed(3)
special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), 1e-40, -1e-40, 1.0, -1.0, 3e38])
out = {{}}
# On 1-4 threads at::parallel_for's ranges start at every residue of 4 floats (2 doubles) of the
# fresh output, so the unaligned heads before the streamed chunks run too.
for threads in (1, 2, 3, 4):
    torch.set_num_threads(threads)
    for dtype in (torch.float32, torch.float64):
        for n in (1, 2, 3, 4, 5, 7, 15, 16, 17, 1023, 1024, 1025, 4095, 4097, 16384, 16385, 40001, 100003, 65537,
                  98305, 131074, 196611):
            base = torch.randn(n + 3, generator=g, dtype=torch.float64) * 4
            base[: min(n, 10)] = special[: min(n, 10)].double()
            for off in (0, 1, 3):  # the input's offset in its storage
                x = base[off: off + n].to(dtype)
                t = torch.randn(n, generator=g, dtype=dtype)
                for slope in (0.0, 0.1):
                    out[f"{{threads}}/{{dtype}}/{{n}}/{{off}}/{{slope}}/f"] = ops.relu_forward(x, slope)
                    out[f"{{threads}}/{{dtype}}/{{n}}/{{off}}/{{slope}}/b"] = ops.relu_backward(t, x, slope)
torch.save(out, sys.argv[1])
"""


def _run(tmp_path, name, stream_min):
    f = tmp_path / f"{name}.pt"
    env = {**os.environ, "REPLICATE_STREAM_MIN_BYTES": str(stream_min)}
    r = subprocess.run([sys.executable, "-c", SCRIPT.format(repo=str(REPO)), str(f)], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return torch.load(f)


def test_streamed_relu_gives_the_ordinary_loops_bytes(tmp_path):
    streamed = _run(tmp_path, "streamed", 0)
    plain = _run(tmp_path, "plain", 1 << 62)
    assert streamed.keys() == plain.keys() and len(plain) == 4 * 2 * 22 * 3 * 2 * 2
    for k in plain:
        a, b = streamed[k], plain[k]
        assert a.dtype == b.dtype and a.shape == b.shape, k
        assert a.view(torch.uint8).equal(b.view(torch.uint8)), f"{k}: streamed bytes differ"


def test_caffe_goldens_through_the_streaming_path():
    env = {**os.environ, "REPLICATE_STREAM_MIN_BYTES": "0"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/ops/test_golden_layers.py::test_relu"], cwd=REPO, env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "skipped" not in r.stdout.split("\n")[-2], r.stdout[-1000:]
