"""``python -m replicate blobs`` against every case of ../shared/golden/layers, bit for bit in exact
mode: every blob Caffe's net holds after forward (Split blobs included), and after backward every
blob diff and parameter diff, from the loss or from the recorded top diffs."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from prototxt_like import caffe_pb2
from replicate import ops as R
from replicate.__main__ import run_blobs
from replicate.net import Net
from replicate.rng import CaffeRNG
from tests._shared import REPO, require
from tests.ops.golden import assert_bits, assert_golden_bits, assert_golden_close, exact_blas_ready, run_golden

CASES = ["caffenet_head_train_dropout", "caffenet_narrow", "conv1_like", "conv_group2", "innerproduct",
         "lrn_across", "lrn_across_k2", "lrn_within", "pool_ave_pad", "pool_max_ceil", "pool_max_ties", "relu",
         "softmax_loss_accuracy"]


def _run(case: str):
    return run_golden(require("golden", "layers", case))


@pytest.mark.parametrize("case", CASES)
def test_blobs_exact(case):
    exact_blas_ready()
    with R.blas_mode("exact"):
        out, forward, backward = _run(case)
    assert_golden_bits(case, out, forward, backward)


@pytest.mark.parametrize("case", ["caffenet_narrow", "softmax_loss_accuracy", "lrn_across"])
def test_blobs_fast_close(case):
    with R.blas_mode("fast"):
        out, forward, backward = _run(case)
    assert_golden_close(case, out, forward, backward)


def test_dropout_masks_need_the_seed():
    """Without Caffe's seed the TRAIN masks differ: the seeded match above is not luck."""
    path = require("golden", "layers", "caffenet_head_train_dropout")
    net = Net(str(path / "net.prototxt"), caffe_pb2.TRAIN, rng=CaffeRNG(0))
    net.copy_trained_layers_from(str(path / "weights.caffemodel"))
    out = run_blobs(net, dict(np.load(path / "inputs.npz")), backward=False, top_diff=None, iterations=1, seed=114)
    fwd = np.load(path / "forward.npz")
    assert not np.array_equal(out["fc7"], fwd["fc7"])


@pytest.mark.parametrize("dash", ["-", "--"])
def test_blobs_cli(tmp_path, dash):
    """The command line itself, in both flag spellings, with two iterations (``<i>/`` keys) of a
    TRAIN-phase net: iteration 0 is Caffe's recorded forward; iteration 1 draws new masks."""
    exact_blas_ready()
    path = require("golden", "layers", "caffenet_head_train_dropout")
    out = tmp_path / "out.npz"
    cmd = [sys.executable, "-m", "replicate", "blobs", f"{dash}model", "net.prototxt", f"{dash}weights",
           "weights.caffemodel", f"{dash}inputs", "inputs.npz", f"{dash}out", str(out), f"{dash}phase", "TRAIN",
           f"{dash}random_seed", "113", f"{dash}iterations", "2", f"{dash}backward", "--blas", "exact"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(cmd, cwd=path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = np.load(out)
    fwd, bwd = np.load(path / "forward.npz"), np.load(path / "backward.npz")
    for k in fwd.files:
        assert_bits(got[f"0/{k}"], fwd[k], f"iteration 0 blob {k}")
    for k in bwd.files:
        if not k.startswith("top_diff/"):
            assert_bits(got[f"0/{k}"], bwd[k], f"iteration 0 {k}")
    assert not np.array_equal(got["1/fc7"], got["0/fc7"]), "iteration 1 must draw fresh dropout masks"


def test_blobs_cli_errors(tmp_path):
    path = require("golden", "layers", "relu")
    np.savez(tmp_path / "in.npz", nonexistent=np.zeros((1,), np.float32))
    r = subprocess.run([sys.executable, "-m", "replicate", "blobs", "-model", str(path / "net.prototxt"),
                        "-inputs", str(tmp_path / "in.npz"), "-out", str(tmp_path / "o.npz")],
                       env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "'nonexistent' is not a blob" in r.stderr
