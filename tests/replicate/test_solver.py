"""Solver behaviour beyond the golden runs: learning-rate policies, the update rule against a
float32 reference, iter_size, clip_gradients, average_loss, test_compute_loss, and Caffe's
signal handling (SIGINT/SIGTERM stop with a snapshot, SIGHUP snapshots and goes on)."""
from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from prototxt_like import caffe_pb2
from prototxt_like.codec import parse_text
from replicate import ops as R
from replicate.log import NullLog
from replicate.solver import SGDSolver
from tests._shared import REPO, random_image_db

NET = """name: "tiny"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        data_param { source: "db" batch_size: 4 backend: LMDB } transform_param { scale: 0.00390625 } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
        data_param { source: "db" batch_size: 4 backend: LMDB } transform_param { scale: 0.00390625 } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "fc" bottom: "label" top: "acc" include { phase: TEST } }
"""

SOLVER = """net: "net.prototxt"
base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.001 max_iter: %d display: 1
test_iter: 2 test_interval: 5 random_seed: 7 snapshot_prefix: "snap"
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    random_image_db(tmp_path, tmp_path / "db", n=12, size=8, classes=3)
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER % 20)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def solver(extra: str = "", max_iter: int = 20, log=None) -> SGDSolver:
    p = parse_text(SOLVER % max_iter + extra, caffe_pb2.SolverParameter)
    return SGDSolver(p, log=log or NullLog())


def test_learning_rate_policies(tiny):
    s = solver()
    p = s.param
    p.base_lr, p.gamma, p.power, p.stepsize, p.max_iter = 0.01, 0.1, 0.75, 100000, 450000
    cases = {
        "fixed": lambda it: 0.01,
        "step": lambda it: 0.01 * 0.1 ** (it // 100000),
        "exp": lambda it: 0.01 * 0.1 ** it,
        "inv": lambda it: 0.01 * (1 + 0.1 * it) ** -0.75,
        # Caffe computes 1 - iter / max_iter in float: near the end that cancellation is Caffe's value
        "poly": lambda it: 0.01 * float(np.float32(1) - np.float32(np.float32(it) / np.float32(450000))) ** 0.75,
        "sigmoid": lambda it: 0.01 * 0.5 * (1 + math.tanh(0.05 * (it - 100000))),
    }
    for policy, ref in cases.items():
        p.lr_policy = policy
        for it in (0, 1, 7, 99999, 100000, 250000, 449999):
            s.iter = it
            assert float(s.learning_rate()) == pytest.approx(ref(it), rel=2e-6, abs=1e-30), (policy, it)
    p.lr_policy = "step"
    s.iter = 100000
    assert float(s.learning_rate()) == float(np.float32(0.01 * 0.1)), "float(double(0.01f) * pow(0.1f, 1))"
    p.lr_policy = "multistep"
    p.stepvalue.extend([3, 5])
    s.current_step = 0
    rates = []
    for it in range(7):
        s.iter = it
        rates.append(float(s.learning_rate()))
    assert rates == pytest.approx([0.01] * 3 + [0.001] * 2 + [0.0001] * 2, rel=1e-6)
    p.lr_policy = "cosine"
    with pytest.raises(ValueError, match="Unknown learning rate policy: cosine"):
        s.learning_rate()
    s.close()


@pytest.mark.parametrize("blas", ["fast", "exact"])
@pytest.mark.parametrize("reg,scale", [("L2", 1.0), ("L1", 0.5)])
def test_sgd_update_rule(blas, reg, scale):
    """diff *= scale; diff += decay * (w or sign(w)); h = rate * diff + momentum * h; diff = h; w -= diff."""
    if blas == "exact":
        from tests.ops.golden import exact_blas_ready
        exact_blas_ready()
    g = torch.Generator().manual_seed(0)
    w, d, h = (torch.randn(1000, generator=g) for _ in range(3))
    w32, d32, h32 = (t.numpy().astype(np.float32).copy() for t in (w, d, h))
    with R.blas_mode(blas):
        R.sgd_update(w, d, h, 0.01, 0.9, 0.0005, reg, scale)
    f = np.float32
    d32 = d32 * f(scale)
    d32 = d32 + f(0.0005) * (w32 if reg == "L2" else np.sign(w32).astype(np.float32))
    h32 = f(0.01) * d32 + f(0.9) * h32
    for ours, ref in ((h, h32), (d, h32), (w, w32 - h32)):
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-6, atol=1e-7)


def _train_outputs(log_text):
    return [float(x) for x in re.findall(r"Train net output #0: loss = ([-0-9.e+]+)", log_text)]


def test_average_loss_and_test_loss(tiny, tmp_path):
    from replicate.log import CaffeLog
    log = CaffeLog(str(tmp_path / "l.log"), stream=None)
    s = solver("average_loss: 3\ntest_compute_loss: true\n", 8, log)
    s.solve()
    s.close()
    log.close()
    text = (tmp_path / "l.log").read_text()
    raw = _train_outputs(text)
    smoothed = [float(x) for x in re.findall(r"Iteration \d+ \(.*\), loss = ([-0-9.e+]+)", text)]
    ref = [np.mean(raw[max(0, i - 2):i + 1]) for i in range(len(raw))]
    assert smoothed == pytest.approx(ref, rel=1e-4)
    assert len(re.findall(r"Test loss: ", text)) == 2  # iterations 0 and 5 (8 is not a test iteration)
    assert "Iteration 8, loss = " in text and "Optimization Done." in text
    # the glog head Caffe's tools/extra/parse_log.py and extract_seconds.py read: I<MMDD> <time> <pid> <file:line>]
    import datetime
    for line in text.splitlines():
        if not re.match(r"[IWEF]\d", line):
            continue  # continuation lines of the multi-line solver parameters (lower-case field names)
        m = re.match(r"^[IWEF](\d\d)(\d\d) (\d\d:\d\d:\d\d\.\d{6}) +\d+ [\w.]+:\d+\] ", line)
        assert m, line
        datetime.datetime(2000, int(m.group(1)), int(m.group(2)))  # a real month and day


def test_iter_size_matches_a_bigger_batch(tiny):
    a = solver("iter_size: 2\n", 3)
    b_param = (SOLVER % 3)
    (tiny / "net8.prototxt").write_text(NET.replace("batch_size: 4", "batch_size: 8"))
    b = SGDSolver(parse_text(b_param.replace('net.prototxt', 'net8.prototxt'), caffe_pb2.SolverParameter),
                  log=NullLog())
    b.net.copy_trained_layers_from(a.net.to_proto())
    a.param.test_interval = b.param.test_interval = 0
    a.solve()
    b.solve()
    for pa, pb in zip(a.net.learnable, b.net.learnable):
        torch.testing.assert_close(pa.data, pb.data, rtol=1e-5, atol=1e-6)
    a.close()
    b.close()


def test_clip_gradients(tiny, tmp_path):
    from replicate.log import CaffeLog
    log = CaffeLog(str(tmp_path / "c.log"), stream=None)
    s = solver("clip_gradients: 0.001\n", 1, log)
    s.param.momentum = s.param.weight_decay = 0
    before = [p.data.clone() for p in s.net.learnable]
    s.param.test_interval = 0
    s.solve()
    log.close()
    assert "Gradient clipping: scaling down gradients (L2 norm" in (tmp_path / "c.log").read_text()
    step = math.sqrt(sum(float(((p.data - q) ** 2).sum()) for p, q in zip(s.net.learnable, before)))
    assert step == pytest.approx(0.1 * 0.001, rel=1e-3), "the update is lr * the clipped gradient"
    s.close()


def _cli_train(d, *extra):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "replicate", "train", "-solver", "solver.prototxt",
                             "--log", "run.log", *extra], cwd=d, env=env, stderr=subprocess.PIPE)


def _wait_for(path, pattern, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.exists() and re.search(pattern, path.read_text()):
            return
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} never appeared in {path}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_signal_snapshots_and_exits(tiny, sig):
    (tiny / "solver.prototxt").write_text(SOLVER % 1000000)
    p = _cli_train(tiny)
    _wait_for(tiny / "run.log", r"Iteration 12, lr", p)
    p.send_signal(sig)
    assert p.wait(timeout=60) == 0
    text = (tiny / "run.log").read_text()
    assert "Optimization stopped early." in text
    it = int(re.findall(r"Snapshotting to binary proto file snap_iter_(\d+)\.caffemodel", text)[-1])
    assert it >= 13 and (tiny / f"snap_iter_{it}.solverstate").exists()
    assert not list(tiny.glob("*.tmp*"))


def test_sighup_snapshots_and_continues(tiny):
    (tiny / "solver.prototxt").write_text(SOLVER % 1000000)
    p = _cli_train(tiny)
    _wait_for(tiny / "run.log", r"Iteration 3, lr", p)
    p.send_signal(signal.SIGHUP)
    _wait_for(tiny / "run.log", r"Snapshotting solver state", p)
    _wait_for(tiny / "run.log", r"Iteration 40, lr", p)
    assert p.poll() is None, "SIGHUP must not stop training"
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=60) == 0


def test_solver_checks(tiny):
    def sp(text):
        return parse_text(text, caffe_pb2.SolverParameter)
    with pytest.raises(ValueError, match="test_interval must be positive"):
        SGDSolver(sp((SOLVER % 5).replace("test_interval: 5", "")), log=NullLog())
    with pytest.raises(ValueError, match="average_loss"):
        solver("average_loss: 0\n")
    with pytest.raises(ValueError, match="Cannot write to snapshot prefix 'nodir/snap'"):
        SGDSolver(sp((SOLVER % 5).replace('"snap"', '"nodir/snap"') + "snapshot: 2\n"), log=NullLog())
    with pytest.raises(ValueError, match="missing.caffemodel"):
        solver('weights: "missing.caffemodel"\n')
    s = solver()
    s.net.save("w.caffemodel")
    s.close()
    # weights given to the solver replace the solver file's `weights` (caffe train's -weights)
    SGDSolver(sp(SOLVER % 5 + 'weights: "missing.caffemodel"\n'), log=NullLog(), weights=["w.caffemodel"]).close()


SHARED_BIAS = NET.replace(
    'layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"\n',
    'layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" param { } param { name: "b" }\n').replace(
    'layer { name: "loss"',
    'layer { name: "bias" type: "Bias" bottom: "fc" top: "fcb" param { name: "b" } bias_param { axis: 1 num_axes: 1 } }\n'
    'layer { name: "loss"').replace('bottom: "fc" bottom: "label" top: "loss"', 'bottom: "fcb" bottom: "label" top: "loss"')


@pytest.mark.parametrize("net", ["tiny", "shared_bias"])
def test_known_zero_diffs_give_the_same_bits(tiny, net, monkeypatch):
    """The solver's train net hands InnerProduct a diff known to be zero as none (the op adds into
    fresh zeros, so fc6's diff is never copied); with iter_size 2 the second pass must accumulate,
    and a blob shared with a layer that adds into it in place (Bias, before the InnerProduct in
    backward order) must keep that layer's share.  The same runs with the flag never set (as
    pycaffe's nets) give the same bits."""
    from replicate.layers.inner_product import InnerProduct
    if net == "shared_bias":
        assert SHARED_BIAS.count('name: "b"') == 2
        (tiny / "net.prototxt").write_text(SHARED_BIAS)
    released = []
    backward = InnerProduct.backward

    def spy(self, *a):
        released.append(self.params[0].zeroed)
        return backward(self, *a)
    monkeypatch.setattr(InnerProduct, "backward", spy)
    runs = []
    for release in (True, False):
        s = solver("iter_size: 2\n", 3)
        s.param.test_interval = 0
        s.net.release_after_backward = release
        released.clear()
        s.solve()
        assert released == [release, False] * 3  # the first pass of each iteration starts from zeros
        fc = s.net.learnable[s.net.learnable_names.index("fc/0")]
        assert not fc.zeroed  # every backward's assignment resets the flag
        s.net.clear_param_diffs()
        assert fc.zeroed is release and not fc.diff.any() and not fc.zeroed
        runs.append([p.data.clone() for p in s.net.learnable])
        s.close()
    for a, b in zip(*runs):
        assert torch.equal(a, b)
