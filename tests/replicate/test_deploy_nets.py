"""Published deploy nets nobody here wrote: BVLC's AlexNet and GoogLeNet (models/bvlc_alexnet and
models/bvlc_googlenet/deploy.prototxt of Caffe 1.0) and Kaiming He's ResNet-50 deploy net (with
BatchNorm and Scale).

Their files are not copied here (they are other people's files).  Each net is *generated* by a
function below that emits the same layer graph (names, types, bottoms, tops and layer parameters;
the generators leave out ParamSpecs and fillers, which a deploy net in TEST phase does not use).
Where the Caffe repository is mirrored (``/work/.mirror/BVLC+caffe/repo``, not in CI) the BVLC
files are read from it at test time, compared layer by layer with the generators' nets and built
and run too; otherwise those tests skip, saying so.  ResNet-50-deploy.prototxt (KaimingHe/
deep-residual-networks) is not mirrored: its generator follows that file's structure (conv1 /
bn_conv1 / scale_conv1 / conv1_relu / pool1, bottleneck blocks res2a..res5c with ``_branch1`` on
each stage's first block and ``_branch2a/b/c``, stride 2 on ``res3a/res4a/res5a``'s branch1 and
branch2a, convolutions without bias, ``batch_norm_param { use_global_stats: true }``,
``scale_param { bias_term: true }``, Eltwise sum and ReLU, pool5 AVE 7, fc1000, prob).

Each net builds through replicate.net.Net in TEST phase at its published input (shapes only: the
published output shapes), then runs forward and backward (``force_backward``, a random diff on
``prob``) with random weights set through the net's params, in exact and in fast mode; fast must be
within tolerance of exact.  AlexNet runs at a reduced input (its graph allows it); GoogLeNet and
ResNet-50 end in a 7x7 average pool, so they run at the published 224 x 224 with a batch of one.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from prototxt_like import caffe_pb2
from prototxt_like.codec import parse_text
from replicate import ops as R
from replicate.net import Net
from replicate.rng import CaffeRNG
from tests.ops.golden import assert_close, exact_blas_ready

MIRROR = Path("/work/.mirror/BVLC+caffe/repo")
CAFFE_COMMIT = "9b89154"


# --- generators ---------------------------------------------------------------------------------
class _P:
    def __init__(self, name):
        self.lines = [f'name: "{name}"']

    def add(self, name, type_, bottoms, tops, body=""):
        b = " ".join(f'bottom: "{x}"' for x in ([bottoms] if isinstance(bottoms, str) else bottoms))
        t = " ".join(f'top: "{x}"' for x in ([tops] if isinstance(tops, str) else tops))
        self.lines.append(f'layer {{ name: "{name}" type: "{type_}" {b} {t} {body} }}')

    def input(self, shape):
        self.add("data", "Input", [], "data",
                 "input_param { shape: { " + " ".join(f"dim: {d}" for d in shape) + " } }")

    def conv(self, name, bottom, n, k, s=1, p=0, group=1, bias=True, top=None):
        body = f"num_output: {n}" + (" bias_term: false" if not bias else "") + (f" pad: {p}" if p else "") + \
            f" kernel_size: {k}" + (f" group: {group}" if group != 1 else "") + (f" stride: {s}" if s != 1 else "")
        self.add(name, "Convolution", bottom, top or name, f"convolution_param {{ {body} }}")

    def relu(self, name, blob):
        self.add(name, "ReLU", blob, blob)

    def pool(self, name, bottom, kind, k, s, p=0, top=None):
        body = f"pool: {kind} kernel_size: {k} stride: {s}" + (f" pad: {p}" if p else "")
        self.add(name, "Pooling", bottom, top or name, f"pooling_param {{ {body} }}")

    def lrn(self, name, bottom, top=None):
        self.add(name, "LRN", bottom, top or name, "lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }")

    def ip(self, name, bottom, n):
        self.add(name, "InnerProduct", bottom, name, f"inner_product_param {{ num_output: {n} }}")

    def text(self):
        return "\n".join(self.lines) + "\n"


def alexnet_deploy(shape=(10, 3, 227, 227)) -> str:
    """models/bvlc_alexnet/deploy.prototxt's graph."""
    p = _P("AlexNet")
    p.input(shape)
    p.conv("conv1", "data", 96, 11, s=4)
    p.relu("relu1", "conv1")
    p.lrn("norm1", "conv1")
    p.pool("pool1", "norm1", "MAX", 3, 2)
    p.conv("conv2", "pool1", 256, 5, p=2, group=2)
    p.relu("relu2", "conv2")
    p.lrn("norm2", "conv2")
    p.pool("pool2", "norm2", "MAX", 3, 2)
    p.conv("conv3", "pool2", 384, 3, p=1)
    p.relu("relu3", "conv3")
    p.conv("conv4", "conv3", 384, 3, p=1, group=2)
    p.relu("relu4", "conv4")
    p.conv("conv5", "conv4", 256, 3, p=1, group=2)
    p.relu("relu5", "conv5")
    p.pool("pool5", "conv5", "MAX", 3, 2)
    for i, bottom in ((6, "pool5"), (7, "fc6")):
        p.ip(f"fc{i}", bottom, 4096)
        p.relu(f"relu{i}", f"fc{i}")
        p.add(f"drop{i}", "Dropout", f"fc{i}", f"fc{i}", "dropout_param { dropout_ratio: 0.5 }")
    p.ip("fc8", "fc7", 1000)
    p.add("prob", "Softmax", "fc8", "prob")
    return p.text()


# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) of Szegedy et al.'s Table 1
INCEPTION = {"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
             "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
             "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
             "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
             "5b": (384, 192, 384, 48, 128, 128)}


def googlenet_deploy(shape=(10, 3, 224, 224)) -> str:
    """models/bvlc_googlenet/deploy.prototxt's graph."""
    p = _P("GoogleNet")
    p.input(shape)
    p.conv("conv1/7x7_s2", "data", 64, 7, s=2, p=3)
    p.relu("conv1/relu_7x7", "conv1/7x7_s2")
    p.pool("pool1/3x3_s2", "conv1/7x7_s2", "MAX", 3, 2)
    p.lrn("pool1/norm1", "pool1/3x3_s2")
    p.conv("conv2/3x3_reduce", "pool1/norm1", 64, 1)
    p.relu("conv2/relu_3x3_reduce", "conv2/3x3_reduce")
    p.conv("conv2/3x3", "conv2/3x3_reduce", 192, 3, p=1)
    p.relu("conv2/relu_3x3", "conv2/3x3")
    p.lrn("conv2/norm2", "conv2/3x3")
    p.pool("pool2/3x3_s2", "conv2/norm2", "MAX", 3, 2)
    bottom = "pool2/3x3_s2"
    for key, (n1, r3, n3, r5, n5, pp) in INCEPTION.items():
        m = f"inception_{key}"
        p.conv(f"{m}/1x1", bottom, n1, 1)
        p.relu(f"{m}/relu_1x1", f"{m}/1x1")
        p.conv(f"{m}/3x3_reduce", bottom, r3, 1)
        p.relu(f"{m}/relu_3x3_reduce", f"{m}/3x3_reduce")
        p.conv(f"{m}/3x3", f"{m}/3x3_reduce", n3, 3, p=1)
        p.relu(f"{m}/relu_3x3", f"{m}/3x3")
        p.conv(f"{m}/5x5_reduce", bottom, r5, 1)
        p.relu(f"{m}/relu_5x5_reduce", f"{m}/5x5_reduce")
        p.conv(f"{m}/5x5", f"{m}/5x5_reduce", n5, 5, p=2)
        p.relu(f"{m}/relu_5x5", f"{m}/5x5")
        p.pool(f"{m}/pool", bottom, "MAX", 3, 1, p=1)
        p.conv(f"{m}/pool_proj", f"{m}/pool", pp, 1)
        p.relu(f"{m}/relu_pool_proj", f"{m}/pool_proj")
        p.add(f"{m}/output", "Concat", [f"{m}/1x1", f"{m}/3x3", f"{m}/5x5", f"{m}/pool_proj"], f"{m}/output")
        bottom = f"{m}/output"
        if key in ("3b", "4e"):
            name = "pool3/3x3_s2" if key == "3b" else "pool4/3x3_s2"
            p.pool(name, bottom, "MAX", 3, 2)
            bottom = name
    p.pool("pool5/7x7_s1", bottom, "AVE", 7, 1)
    p.add("pool5/drop_7x7_s1", "Dropout", "pool5/7x7_s1", "pool5/7x7_s1", "dropout_param { dropout_ratio: 0.4 }")
    p.ip("loss3/classifier", "pool5/7x7_s1", 1000)
    p.add("prob", "Softmax", "loss3/classifier", "prob")
    return p.text()


def resnet50_deploy(shape=(1, 3, 224, 224)) -> str:
    """KaimingHe/deep-residual-networks' ResNet-50-deploy.prototxt's graph."""
    p = _P("ResNet-50")
    p.input(shape)

    def conv_bn(conv, bn, scale, bottom, n, k, s=1, pad=0, relu=None):
        p.conv(conv, bottom, n, k, s=s, p=pad, bias=False)
        p.add(bn, "BatchNorm", conv, conv, "batch_norm_param { use_global_stats: true }")
        p.add(scale, "Scale", conv, conv, "scale_param { bias_term: true }")
        if relu:
            p.relu(relu, conv)

    conv_bn("conv1", "bn_conv1", "scale_conv1", "data", 64, 7, s=2, pad=3, relu="conv1_relu")
    p.pool("pool1", "conv1", "MAX", 3, 2)
    bottom = "pool1"
    for stage, (blocks, width) in zip("2345", ((3, 64), (4, 128), (6, 256), (3, 512))):
        for b in "abcdef"[:blocks]:
            r = f"res{stage}{b}"
            stride = 2 if (b == "a" and stage != "2") else 1
            if b == "a":
                conv_bn(f"{r}_branch1", f"bn{stage}{b}_branch1", f"scale{stage}{b}_branch1", bottom, 4 * width, 1,
                        s=stride)
                shortcut = f"{r}_branch1"
            else:
                shortcut = bottom
            conv_bn(f"{r}_branch2a", f"bn{stage}{b}_branch2a", f"scale{stage}{b}_branch2a", bottom, width, 1,
                    s=stride, relu=f"{r}_branch2a_relu")
            conv_bn(f"{r}_branch2b", f"bn{stage}{b}_branch2b", f"scale{stage}{b}_branch2b", f"{r}_branch2a", width, 3,
                    pad=1, relu=f"{r}_branch2b_relu")
            conv_bn(f"{r}_branch2c", f"bn{stage}{b}_branch2c", f"scale{stage}{b}_branch2c", f"{r}_branch2b",
                    4 * width, 1)
            p.add(r, "Eltwise", [shortcut, f"{r}_branch2c"], r)
            p.relu(f"{r}_relu", r)
            bottom = r
    p.pool("pool5", bottom, "AVE", 7, 1)
    p.ip("fc1000", "pool5", 1000)
    p.add("prob", "Softmax", "fc1000", "prob")
    return p.text()


# --- helpers -------------------------------------------------------------------------------------
def _mirror_text(path: str) -> str:
    if not (MIRROR / "HEAD").exists() and not (MIRROR / ".git").exists():
        pytest.skip(f"the Caffe repository is not mirrored at {MIRROR} (never in CI): BVLC's own {path} "
                    "is not read; the generated net of the same graph is tested instead")
    return subprocess.run(["git", "-C", str(MIRROR), "show", f"{CAFFE_COMMIT}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def _param(text: str) -> caffe_pb2.NetParameter:
    return parse_text(text, caffe_pb2.NetParameter)


def _with_input(param: caffe_pb2.NetParameter, shape) -> caffe_pb2.NetParameter:
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    dims = out.layer[0].input_param.shape[0].dim
    del dims[:]
    dims.extend(shape)
    out.force_backward = True
    return out


def _graph(param: caffe_pb2.NetParameter):
    """Each layer without its ParamSpecs and fillers (what a deploy net in TEST does not use)."""
    out = []
    for lp in param.layer:
        c = caffe_pb2.LayerParameter()
        c.CopyFrom(lp)
        del c.param[:]
        for sub in (c.convolution_param, c.inner_product_param):
            sub.ClearField("weight_filler")
            sub.ClearField("bias_filler")
        out.append(c)
    return out


def _set_random_weights(net: Net, seed: int) -> None:
    rs = np.random.RandomState(seed)
    for layer in net.layers:
        ps = layer.params
        if not ps:
            continue
        if layer.type == "BatchNorm":  # mean, variance, moving-average factor
            c = ps[0].data.shape[0]
            vals = [rs.randn(c) * 0.1, rs.uniform(0.5, 1.5, c), np.ones(1)]
        elif layer.type == "Scale":
            c = ps[0].data.shape[0]
            vals = [rs.uniform(0.5, 1.0, c), rs.randn(c) * 0.05][: len(ps)]
        else:  # weights scaled by fan-in, small biases
            w = ps[0].data
            fan_in = int(np.prod(w.shape[1:]))
            vals = [rs.randn(*w.shape) * np.sqrt(2.0 / fan_in)] + [rs.randn(*q.data.shape) * 0.01 for q in ps[1:]]
        for q, v in zip(ps, vals):
            q.data.copy_(torch.from_numpy(np.asarray(v, dtype=np.float32).reshape(q.data.shape)))


def _run(param, shape, mode: str, seed: int = 0):
    """Forward and backward (a random diff on ``prob``) of ``param`` at input ``shape``."""
    with R.blas_mode(mode):
        net = Net(_with_input(param, shape), caffe_pb2.TEST, rng=CaffeRNG(1))
        try:
            _set_random_weights(net, seed)
            rs = np.random.RandomState(seed + 1)
            net.blobs["data"].data = torch.from_numpy(rs.uniform(-1, 1, shape).astype(np.float32))
            net.forward()
            prob = net.blobs["prob"].data.clone()
            net.blobs["prob"].diff = torch.from_numpy(rs.randn(*prob.shape).astype(np.float32))
            net.backward()
            first = next(l for l in net.layers if l.params)
            return {"prob": prob.numpy(), "data_diff": net.blobs["data"].diff.clone().numpy(),
                    "first_weight_diff": first.params[0].diff.clone().numpy()}
        finally:
            net.close()


def _check_published_shapes(param, want: dict) -> None:
    """Build at the published input (shapes only, no forward) and compare the named blobs."""
    net = Net(param, caffe_pb2.TEST, rng=CaffeRNG(1))
    try:
        for blob, shape in want.items():
            assert net._meta_shapes[blob] == shape, f"{blob}: {net._meta_shapes[blob]} != {shape}"
        assert net.output_names == ["prob"]
    finally:
        net.close()


def _exact_vs_fast(param, shape, n_out: int):
    exact_blas_ready()
    ex = _run(param, shape, "exact")
    fa = _run(param, shape, "fast")
    assert ex["prob"].shape == (shape[0], n_out)
    np.testing.assert_allclose(ex["prob"].sum(axis=1), 1.0, rtol=1e-5)
    assert np.abs(ex["data_diff"]).max() > 0 and np.abs(ex["first_weight_diff"]).max() > 0
    assert_close(fa["prob"], ex["prob"], "fast vs exact prob", rel=1e-4)
    # backward through dozens of ReLUs and max pools: a value that rounds differently in fast mode
    # can flip a near-tie of a max pool (the gradient goes to another position) or a ReLU at ~0, so
    # the diffs are compared as a whole, by their relative L2 error.  Measured with the im2col
    # convolution: AlexNet ~5e-7 (no flip at its size), GoogLeNet ~1e-3 and ResNet-50 ~8e-4 (a few
    # flips among ~10^5 switches); with fast mode's oneDNN convolution (another summation order, so
    # more near-ties flip) GoogLeNet's data diff measured 1.25e-2; a wrong gradient would be off by O(1)
    for k in ("data_diff", "first_weight_diff"):
        a, b = fa[k].astype(np.float64), ex[k].astype(np.float64)
        err = np.linalg.norm(a - b) / np.linalg.norm(b)
        print(f"fast vs exact {k}: relative L2 error {err:.3g}")
        assert err <= 5e-2, f"fast vs exact {k}: relative L2 error {err:.3g}"


NETS = {
    # name: (generator, BVLC file, published input, published blob shapes, reduced run input)
    "alexnet": (alexnet_deploy, "models/bvlc_alexnet/deploy.prototxt", (10, 3, 227, 227),
                {"conv1": (10, 96, 55, 55), "pool2": (10, 256, 13, 13), "pool5": (10, 256, 6, 6),
                 "fc6": (10, 4096), "prob": (10, 1000)}, (2, 3, 67, 67)),
    "googlenet": (googlenet_deploy, "models/bvlc_googlenet/deploy.prototxt", (10, 3, 224, 224),
                  {"pool2/3x3_s2": (10, 192, 28, 28), "inception_3a/output": (10, 256, 28, 28),
                   "inception_4e/output": (10, 832, 14, 14), "inception_5b/output": (10, 1024, 7, 7),
                   "pool5/7x7_s1": (10, 1024, 1, 1), "prob": (10, 1000)}, (1, 3, 224, 224)),
    "resnet50": (resnet50_deploy, None, (1, 3, 224, 224),
                 {"pool1": (1, 64, 56, 56), "res2c": (1, 256, 56, 56), "res3d": (1, 512, 28, 28),
                  "res4f": (1, 1024, 14, 14), "res5c": (1, 2048, 7, 7), "pool5": (1, 2048, 1, 1),
                  "prob": (1, 1000)}, (1, 3, 224, 224)),
}


# --- tests ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(NETS))
def test_generated_net_has_published_shapes(name):
    gen, _, shape, want, _ = NETS[name]
    _check_published_shapes(_param(gen(shape)), want)


@pytest.mark.parametrize("name", ["alexnet", "googlenet"])
def test_bvlc_file_is_the_generated_graph(name):
    gen, path, shape, want, _ = NETS[name]
    theirs = _param(_mirror_text(path))
    ours = _param(gen(shape))
    a, b = _graph(theirs), _graph(ours)
    assert [l.name for l in a] == [l.name for l in b]
    for x, y in zip(a, b):
        assert x == y, f"layer {x.name!r} differs:\n{x}\nvs\n{y}"
    _check_published_shapes(theirs, want)


def test_resnet50_structure():
    layers = _param(resnet50_deploy()).layer
    types = [l.type for l in layers]
    assert types.count("Convolution") == 53 and types.count("BatchNorm") == 53 and types.count("Scale") == 53
    assert types.count("Eltwise") == 16 and types.count("InnerProduct") == 1
    names = [l.name for l in layers]
    assert names[:6] == ["data", "conv1", "bn_conv1", "scale_conv1", "conv1_relu", "pool1"]
    assert names[-3:] == ["pool5", "fc1000", "prob"]
    assert all(l.batch_norm_param.use_global_stats for l in layers if l.type == "BatchNorm")
    assert all(l.scale_param.bias_term for l in layers if l.type == "Scale")
    assert all(not l.convolution_param.bias_term for l in layers if l.type == "Convolution")


@pytest.mark.parametrize("name", list(NETS))
def test_generated_net_runs_exact_and_fast(name):
    gen, _, _, _, run_shape = NETS[name]
    _exact_vs_fast(_param(gen(run_shape)), run_shape, 1000)


@pytest.mark.parametrize("name", ["alexnet", "googlenet"])
def test_bvlc_file_runs_exact_and_fast(name):
    _, path, _, _, run_shape = NETS[name]
    _exact_vs_fast(_param(_mirror_text(path)), run_shape, 1000)
