"""Issue 15's review findings, each against Caffe 1.0 (9b89154): the ``blobs`` command's backward
start and top diffs (pycaffe's ``net.blobs[b].diff[...] = g; net.backward(start=...)``), Pooling's
last-window clip on both axes, Eltwise backward's zeros and SUM coefficients, and the checks of
Net::ShareTrainedLayersWith / AppendParam and of the solver."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from prototxt_like import caffe_pb2
from prototxt_like.codec import parse_text
from replicate import ops as R
from replicate.__main__ import run_blobs
from replicate.log import NullLog
from replicate.net import Net, NetError
from replicate.rng import CaffeRNG
from replicate.solver import SGDSolver, SolverError
from tests._shared import REPO, require
from tests.ops.golden import assert_bits, exact_blas_ready

f32 = np.float32


def _golden(case: str, folder: str = "layers"):
    path = require("golden", folder, case)
    net = Net(str(path / "net.prototxt"), caffe_pb2.TEST, rng=CaffeRNG(0))
    if (path / "weights.caffemodel").exists():
        net.copy_trained_layers_from(str(path / "weights.caffemodel"))
    return path, net, dict(np.load(path / "inputs.npz")), dict(np.load(path / "backward.npz"))


def _bits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


# ---------------------------------------------------------------------------------------------
# 1. blobs -backward: start after the loss, top diffs from a file with other keys, 0-d loss diffs


def _blobs_cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "replicate", "blobs", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def test_blobs_cli_top_diff_file_is_a_whole_backward_npz(tmp_path):
    """-top_diff given Caffe's own backward.npz (top_diff/, diff/ and param_diff/ keys) on a net whose
    Accuracy layers follow the loss: only the top_diff/ keys are read, backward starts at the loss
    (pycaffe's ``net.backward(start='loss')``) and every diff is Caffe's."""
    exact_blas_ready()
    path = require("golden", "layers", "softmax_loss_accuracy")
    out = tmp_path / "out.npz"
    r = _blobs_cli("-model", path / "net.prototxt", "-inputs", path / "inputs.npz", "-out", out, "-backward",
                   "-top_diff", path / "backward.npz", "--blas", "exact")
    assert r.returncode == 0, r.stderr
    got, bwd = np.load(out), np.load(path / "backward.npz")
    for k in bwd.files:
        if not k.startswith("top_diff/"):
            assert_bits(got[k], bwd[k], k)


def test_blobs_cli_scalar_loss_top_diff(tmp_path):
    """A 0-d top diff for the loss replaces the loss weight (SoftmaxWithLoss scales by top diff[0]):
    2.0 doubles every diff exactly (a power-of-two scale commutes with every rounding)."""
    exact_blas_ready()
    path = require("golden", "layers", "softmax_loss_accuracy")
    td, out = tmp_path / "td.npz", tmp_path / "out.npz"
    np.savez(td, **{"top_diff/loss": np.array(2.0, np.float32), "diff/fc": np.zeros((8, 10), np.float32)})
    r = _blobs_cli("-model", path / "net.prototxt", "-inputs", path / "inputs.npz", "-out", out, "-backward",
                   "-top_diff", td, "--blas", "exact")
    assert r.returncode == 0, r.stderr
    got, bwd = np.load(out), np.load(path / "backward.npz")
    for k in bwd.files:
        if not k.startswith("top_diff/"):
            assert_bits(got[k], bwd[k] * f32(2), k)
    assert float(got["diff/loss"]) == 2.0


@pytest.mark.parametrize("case", ["softmax_loss_accuracy", "caffenet_narrow"])
@pytest.mark.parametrize("style", ["top_diff/", "plain"])
def test_blobs_loss_top_diff_replaces_the_seed(case, style):
    """run_blobs with a scalar loss top diff (either key style, with keys that are no top diffs
    beside it): every diff and parameter diff is exactly twice Caffe's loss-weight-1 backward."""
    exact_blas_ready()
    path, net, inputs, bwd = _golden(case)
    two = np.array(2.0, np.float64)  # a float64 0-d array: cast to float32 as pycaffe's diff[...] = g
    if style == "plain":
        td = {"loss": two, "diff/fc": np.zeros(3, np.float32), "notes": np.zeros(1, np.float32)}
    else:
        td = {"top_diff/loss": two, "loss": np.array(5.0, np.float32), "param_diff/x/0": np.zeros(2, np.float32)}
    with R.blas_mode("exact"):
        out = run_blobs(net, inputs, backward=True, top_diff=td, iterations=1, seed=None)
    for k, v in bwd.items():
        if not k.startswith("top_diff/"):
            assert_bits(out[k], v * f32(2), f"{case} {k}")


def test_blobs_top_diff_errors():
    path, net, inputs, _ = _golden("softmax_loss_accuracy")
    with pytest.raises(SystemExit, match="'top_diff/nope' names no blob"):
        run_blobs(net, inputs, backward=True, top_diff={"top_diff/nope": np.zeros(1, np.float32)},
                  iterations=1, seed=None)
    with pytest.raises(SystemExit, match="no top diff"):
        run_blobs(net, inputs, backward=True, top_diff={"diff/fc": np.zeros((8, 10), np.float32)},
                  iterations=1, seed=None)
    with pytest.raises(SystemExit, match="'fc'.*shape"):
        run_blobs(net, inputs, backward=True, top_diff={"fc": np.zeros((8, 9), np.float32)},
                  iterations=1, seed=None)


def test_blobs_help_documents_top_diff_keys():
    from replicate.__main__ import build_parser
    sub = build_parser()._subparsers._group_actions[0].choices["blobs"]
    text = " ".join(sub.format_help().split())
    assert "top_diff/<blob>" in text and "ignored" in text and "start=" in text


# ---------------------------------------------------------------------------------------------
# 2. Pooling: with any padding, Caffe drops a last window starting in the padding on BOTH axes


def caffe_pooled(h, w, k, s, p, ceil_mode=True):
    """PoolingLayer::Reshape (9b89154), float ceil/floor, and its clip under ``pad_h_ || pad_w_``."""
    rnd = math.ceil if ceil_mode else math.floor
    ph = int(rnd(float(f32(h + 2 * p[0] - k[0]) / f32(s[0])))) + 1
    pw = int(rnd(float(f32(w + 2 * p[1] - k[1]) / f32(s[1])))) + 1
    if p[0] or p[1]:
        if (ph - 1) * s[0] >= h + p[0]:
            ph -= 1
        if (pw - 1) * s[1] >= w + p[1]:
            pw -= 1
    return ph, pw


def caffe_pool(x, k, s, p, method):
    """Forward_cpu's loops on one plane: MAX from -FLT_MAX (strict >), AVE sums in row-major order
    and divides by the window clipped to the padded image."""
    h, w = x.shape
    ph_n, pw_n = caffe_pooled(h, w, k, s, p)
    out = np.empty((ph_n, pw_n), np.float32)
    for ph in range(ph_n):
        for pw in range(pw_n):
            hs, ws = ph * s[0] - p[0], pw * s[1] - p[1]
            he, we = min(hs + k[0], h + p[0]), min(ws + k[1], w + p[1])
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            if method == "MAX":
                best = f32(-np.finfo(np.float32).max)
                for i in range(hs, he):
                    for j in range(ws, we):
                        if x[i, j] > best:
                            best = x[i, j]
                out[ph, pw] = best
            else:
                acc = f32(0)
                for i in range(hs, he):
                    for j in range(ws, we):
                        acc = f32(acc + x[i, j])
                out[ph, pw] = f32(acc / f32(size))
    return out


RECT = [((3, 5), (2, 2), (3, 3), (0, 1)),   # pad_w only: H's last window (start 3 = H) is dropped
        ((5, 3), (2, 2), (3, 3), (1, 0)),   # pad_h only: W's last window is dropped
        ((7, 6), (3, 2), (2, 4), (0, 1))]   # a shape where the per-axis and both-axes rules agree


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("hw,k,s,p", RECT)
def test_pool_rect_pad_clips_both_axes(method, hw, k, s, p):
    x = torch.from_numpy(np.random.RandomState(3).randn(2, 3, *hw).astype(np.float32))
    expect_hw = caffe_pooled(*hw, k, s, p)
    text = f"""name: "p" force_backward: true
layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ dim: 2 dim: 3 dim: {hw[0]} dim: {hw[1]} }} }} }}
layer {{ name: "pool" type: "Pooling" bottom: "x" top: "y" pooling_param {{ pool: {method}
         kernel_h: {k[0]} kernel_w: {k[1]} stride_h: {s[0]} stride_w: {s[1]} pad_h: {p[0]} pad_w: {p[1]} }} }}
"""
    net = Net(parse_text(text, caffe_pb2.NetParameter), caffe_pb2.TEST, rng=CaffeRNG(0))
    net.blobs["x"].data = x
    net.forward()
    y = net.blobs["y"].data.numpy()
    assert y.shape == (2, 3, *expect_hw)
    assert net._meta_shapes["y"] == (2, 3, *expect_hw)  # the shape pass (fake kernels)
    for n in range(2):
        for c in range(3):
            assert_bits(y[n, c], caffe_pool(x[n, c].numpy(), k, s, p, method), f"{method} plane {n},{c}")
    op = torch.ops.replicate.pool_max_forward if method == "MAX" else torch.ops.replicate.pool_ave_forward
    meta = op(x.to("meta"), list(k), list(s), list(p), True)
    assert tuple((meta[0] if method == "MAX" else meta).shape) == (2, 3, *expect_hw)
    # backward takes the top's shape (AVE checks grad_output's pooled size)
    net.blobs["y"].diff = torch.ones_like(net.blobs["y"].data)
    net.backward()
    assert net.blobs["x"].diff.shape == x.shape


def test_pool_ave_backward_rejects_the_per_axis_size():
    g = torch.zeros(1, 1, 2, 2)  # (3, 5) input, kernel 2, stride 3, pad (0, 1): Caffe's top is 1 x 2
    with pytest.raises(RuntimeError, match="grad_output"):
        torch.ops.replicate.pool_ave_backward(g, [1, 1, 3, 5], [2, 2], [3, 3], [0, 1])
    torch.ops.replicate.pool_ave_backward(torch.zeros(1, 1, 1, 2), [1, 1, 3, 5], [2, 2], [3, 3], [0, 1])


def test_global_pooling_refuses_kernel_w():
    """LayerSetUp: with global_pooling none of kernel_size, kernel_h, kernel_w may be given."""
    text = """name: "g"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 3 dim: 3 } } }
layer { name: "pool" type: "Pooling" bottom: "x" top: "y" pooling_param { global_pooling: true kernel_w: 2 } }
"""
    with pytest.raises(NetError, match="global_pooling"):
        Net(parse_text(text, caffe_pb2.NetParameter), caffe_pb2.TEST, rng=CaffeRNG(0))


# ---------------------------------------------------------------------------------------------
# 3. Eltwise backward: MAX writes 0 + top_diff (a positive zero); SUM is copy or copy + sscal

def _eltwise(op: str, coeff=(), n=2, shape=(2, 3)):
    c = "".join(f" coeff: {v}" for v in coeff)
    tops = "".join(f' top: "b{i}"' for i in range(n))
    shapes = "".join(" shape { " + "".join(f"dim: {d} " for d in shape) + "}" for _ in range(n))
    bottoms = "".join(f' bottom: "b{i}"' for i in range(n))
    text = f"""name: "e" force_backward: true
layer {{ name: "in" type: "Input"{tops} input_param {{{shapes} }} }}
layer {{ name: "e" type: "Eltwise"{bottoms} top: "y" eltwise_param {{ operation: {op}{c} }} }}
"""
    return Net(parse_text(text, caffe_pb2.NetParameter), caffe_pb2.TEST, rng=CaffeRNG(0))


def _run_eltwise(net, bottoms, top_diff):
    for i, b in enumerate(bottoms):
        net.blobs[f"b{i}"].data = torch.from_numpy(np.asarray(b, np.float32))
    net.forward()
    net.blobs["y"].diff = torch.from_numpy(np.asarray(top_diff, np.float32))
    net.backward()
    return [net.blobs[f"b{i}"].diff.numpy() for i in range(len(bottoms))]


@pytest.mark.parametrize("blas", ["fast", "exact"])
def test_eltwise_max_backward_gives_positive_zeros(blas):
    if blas == "exact":
        exact_blas_ready()
    a = [[1, 2, 3], [-1, 0, 5]]
    b = [[0, 3, 3], [-2, 1, 4]]
    td = [[-0.0, -0.0, -1.5], [-0.0, 2.0, -0.0]]
    with R.blas_mode(blas):
        da, db = _run_eltwise(_eltwise("MAX"), [a, b], td)
    # mask: a > b strictly, else b (a tie goes to bottom 1); gradient = 0 + top_diff
    want_a = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    want_b = np.array([[0.0, 0.0, -1.5], [0.0, 2.0, 0.0]], np.float32)
    assert_bits(da, want_a, "bottom 0")
    assert_bits(db, want_b, "bottom 1")


def test_eltwise_sum_backward_is_copy_then_sscal():
    """coeff 1: caffe_copy (memcpy: -0.0 and NaN bits kept); otherwise caffe_cpu_scale = cblas_scopy +
    cblas_sscal, and OpenBLAS 0.3.21's sscal with alpha 0 stores zeros (+0.0, NaN included)."""
    exact_blas_ready()
    nan = np.array([0x7FC01234], np.uint32).view(np.float32)[0]
    td = np.array([[-0.0, 1.5, -2.25], [nan, 3.0e-3, -7.0]], np.float32)
    bottoms = [np.ones((2, 3), np.float32)] * 4
    with R.blas_mode("exact"):
        d = _run_eltwise(_eltwise("SUM", (1, 0, -1, 0.1), n=4), bottoms, td)
    assert_bits(d[0], td, "coeff 1 (copy)")
    assert_bits(d[1], np.zeros((2, 3), np.float32), "coeff 0 (sscal by zero)")
    assert_bits(d[2][0], -td[0], "coeff -1")
    assert np.isnan(d[2][1, 0])
    with np.errstate(invalid="ignore"):
        assert_bits(d[3][0], td[0] * f32(0.1), "coeff 0.1")
        assert_bits(d[3][1, 1:], td[1, 1:] * f32(0.1), "coeff 0.1")


def test_eltwise_golden_layers_more():
    """layers_more/eltwise (PROD stable, SUM coeff 1 -0.5 2, MAX ties), through the blobs command."""
    exact_blas_ready()
    path = require("golden", "layers_more", "eltwise")
    net = Net(str(path / "net.prototxt"), caffe_pb2.TEST, rng=CaffeRNG(0))
    bwd = dict(np.load(path / "backward.npz"))
    td = {k: v for k, v in bwd.items() if k.startswith("top_diff/")}
    with R.blas_mode("exact"):
        out = run_blobs(net, dict(np.load(path / "inputs.npz")), backward=True, top_diff=td, iterations=1,
                        seed=None)
    for k, v in np.load(path / "forward.npz").items():
        assert_bits(out[k], v, k)
    for k, v in bwd.items():
        if not k.startswith("top_diff/"):
            assert_bits(out[k], v, k)


# ---------------------------------------------------------------------------------------------
# 4. ShareTrainedLayersWith checks the blob count of every same-named layer

SHARE = """name: "s"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "f" type: "%s" bottom: "x" top: "y" %s }
"""
IPP = "inner_product_param { num_output: 4 }"


@pytest.mark.parametrize("src,dst", [(("ReLU", ""), ("InnerProduct", IPP)), (("InnerProduct", IPP), ("ReLU", ""))])
def test_share_trained_layers_checks_blob_counts(src, dst):
    train = Net(parse_text(SHARE % src, caffe_pb2.NetParameter), caffe_pb2.TRAIN, rng=CaffeRNG(0))
    test = Net(parse_text(SHARE % dst, caffe_pb2.NetParameter), caffe_pb2.TEST, rng=CaffeRNG(0))
    with pytest.raises(NetError, match="Incompatible number of blobs for layer f"):
        test.share_trained_layers_with(train)


def test_permissive_share_count_mismatch_message():
    text = """name: "p"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" } param { name: "b" }
        inner_product_param { num_output: 4 } }
layer { name: "c" type: "InnerProduct" bottom: "x" top: "c" param { name: "w" share_mode: PERMISSIVE }
        param { name: "b" } inner_product_param { num_output: 5 } }
"""
    with pytest.raises(NetError, match=r"Cannot share param 'w' owned by layer 'a' with layer 'c'; count mismatch\."
                                       r"  Owner layer param shape is 4 3 \(12\); sharing layer shape is 5 3 \(15\)"):
        Net(parse_text(text, caffe_pb2.NetParameter), caffe_pb2.TEST, rng=CaffeRNG(0))


def test_forward_backward_range_checks():
    """ForwardFromTo: CHECK_GE(start, 0), CHECK_LT(end, size); BackwardFromTo: CHECK_GE(end, 0),
    CHECK_LT(start, size) (a negative start is no Python index from the end)."""
    net = Net(parse_text(SHARE % ("InnerProduct", IPP), caffe_pb2.NetParameter), caffe_pb2.TEST, rng=CaffeRNG(0))
    for bad in (lambda: net.forward(-1), lambda: net.forward(0, 2)):
        with pytest.raises(NetError, match="the net has layers 0..1"):
            bad()
    net.forward()
    for bad in (lambda: net.backward(2), lambda: net.backward(1, -1)):
        with pytest.raises(NetError, match="the net has layers 0..1"):
            bad()
    net.forward(1, 1)
    net.backward(-1)  # Caffe: start -1 passes CHECK_LT and runs no layer


def test_filter_net_message_has_caffes_words():
    from replicate.net import filter_net
    text = SHARE % ("ReLU", 'include { phase: TEST } exclude { phase: TRAIN }')
    with pytest.raises(NetError, match="Specify either include rules or exclude rules; not both."):
        filter_net(parse_text(text, caffe_pb2.NetParameter))


# ---------------------------------------------------------------------------------------------
# 5. Solver: Init's order of checks, train-net field messages, zero test iterations

SOLVER_NET = """net_param { name: "n"
layer { name: "in" type: "Input" top: "data" top: "label" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" } }
base_lr: 0.1 lr_policy: "fixed" max_iter: 1 random_seed: 1 snapshot_after_train: false
"""


def _sp(text):
    return parse_text(text, caffe_pb2.SolverParameter)


def test_solver_checks_average_loss_before_the_snapshot_prefix():
    # Solver::Init: CHECK_GE(average_loss, 1) comes before CheckSnapshotWritePermissions
    with pytest.raises(SolverError, match="average_loss should be non-negative"):
        SGDSolver(_sp(SOLVER_NET + "average_loss: 0 snapshot: 5\n"), log=NullLog())


def test_solver_train_net_field_messages():
    base = SOLVER_NET.split("\nbase_lr")[1]
    with pytest.raises(SolverError, match="SolverParameter must specify a train net using one of these fields: "
                                          "net, net_param, train_net, train_net_param"):
        SGDSolver(_sp("base_lr" + base), log=NullLog())
    with pytest.raises(SolverError, match="SolverParameter must not contain more than one of these fields "
                                          "specifying a train_net: net, net_param, train_net, train_net_param"):
        SGDSolver(_sp(SOLVER_NET + 'train_net: "x.prototxt"\n'), log=NullLog())


def test_solver_zero_test_iterations():
    """test_iter: 0 tests nothing and logs no outputs (Caffe's empty test_score), without failing."""
    s = SGDSolver(_sp(SOLVER_NET + "test_iter: 0 test_interval: 1 display: 1\n"), log=NullLog())
    try:
        s.solve()
        assert s.iter == 1
    finally:
        s.close()


def test_step_policy_checks_stepsize_before_gamma():
    """GetLearningRate "step": CHECK_GT(stepsize, 0) comes before CHECK_GE(gamma, 0)."""
    s = SGDSolver(_sp(SOLVER_NET.replace('"fixed"', '"step" gamma: -1 stepsize: 0')), log=NullLog())
    try:
        with pytest.raises(SolverError, match="stepsize > 0"):
            s.learning_rate()
        s.param.stepsize = 2
        with pytest.raises(SolverError, match="gamma >= 0"):
            s.learning_rate()
    finally:
        s.close()


def test_batchnorm_need_backward_from_the_nets_param_specs(tmp_path):
    """Net::Init decides a layer's need-backward from the net's ParamSpecs (default lr_mult 1), read
    before BatchNorm's LayerSetUp adds lr_mult 0 to its own copy (which AppendParam, and so the
    solver, reads). So BatchNorm on an Input needs backward: the loss after it writes the diff of
    BatchNorm's top, although no gradient reaches the Input."""
    import numpy as np
    import torch
    from prototxt_like import caffe_pb2
    from replicate.net import Net
    from replicate.rng import CaffeRNG
    text = ('layer { name: "in" type: "Input" top: "x" top: "t" '
            'input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } } }\n'
            'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "bn" batch_norm_param { use_global_stats: true } }\n'
            'layer { name: "loss" type: "EuclideanLoss" bottom: "bn" bottom: "t" top: "loss" }\n')
    p = tmp_path / "net.prototxt"
    p.write_text(text)
    net = Net(str(p), caffe_pb2.TEST, rng=CaffeRNG(1))
    assert net.layer_need_backward[net.layer_names.index("bn")]
    assert net.learnable and all(lr == 0 for lr in net.params_lr)  # the solver sees lr_mult 0
    net.blobs["x"].data = torch.ones(2, 3)
    net.blobs["t"].data = torch.zeros(2, 3)
    net.forward()
    net.backward()
    assert np.any(net.blobs["bn"].diff.numpy() != 0)
