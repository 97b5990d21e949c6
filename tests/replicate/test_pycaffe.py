"""The pycaffe-style API (replicate.pycaffe, alias replicate.caffe) against Caffe 1.0's own numbers:
every case of ../shared/golden/layers driven as its generator drove pycaffe (forward blobs, blob
diffs and parameter diffs bit for bit in exact mode; .save() byte-identical to Caffe's), the
golden solver run through SGDSolver (byte-identical snapshots, and resume), and caffe.io's
Transformer against its formulas."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from replicate import caffe
from replicate import ops as R
from replicate import pycaffe
from tests._shared import require
from tests.ops.golden import LAYERS_MORE_CASES, assert_bits, exact_blas_ready

CASES = ["caffenet_head_train_dropout", "caffenet_narrow", "conv1_like", "conv_group2", "innerproduct",
         "lrn_across", "lrn_across_k2", "lrn_within", "pool_ave_pad", "pool_max_ceil", "pool_max_ties", "relu",
         "softmax_loss_accuracy"]


@pytest.fixture(autouse=True)
def _exact(request):
    """Exact BLAS for every test but the caffe.io ones (numpy only)."""
    if "transformer" in request.node.name or "image" in request.node.name or "io_module" in request.node.name:
        yield
        return
    exact_blas_ready()
    with R.blas_mode("exact"):
        yield


def _case(case):
    path = require("golden", "layers", case)
    meta = json.loads((path / "case.json").read_text())
    phase = caffe.TRAIN if meta["phase"] == "TRAIN" else caffe.TEST
    return path, meta, phase


def _weights(path):
    return str(path / "weights.caffemodel") if (path / "weights.caffemodel").exists() else None


def _run_like_caffe(net, path, meta):
    """The golden generator's pycaffe calls: inputs, (set_random_seed,) forward, clear_param_diffs,
    top diffs into the blobs' diff views, backward (start='loss' where it was)."""
    inputs = dict(np.load(path / "inputs.npz"))
    if meta["phase"] == "TRAIN":
        caffe.set_random_seed(meta["seed"])  # right before forward, as recorded
    out = net.forward(**inputs)
    assert set(out) == set(net.outputs)
    backward = dict(np.load(path / "backward.npz"))
    net.clear_param_diffs()
    for k, v in backward.items():
        if k.startswith("top_diff/"):
            net.blobs[k[len("top_diff/"):]].diff[...] = v
    start = "loss" if "start='loss'" in meta["backward_call"] else None
    diffs = net.backward(start=start)
    assert set(diffs) == set(net.inputs)
    return backward


@pytest.mark.parametrize("case", CASES)
def test_golden_case_through_pycaffe(case):
    path, meta, phase = _case(case)
    net = caffe.Net(str(path / "net.prototxt"), phase, weights=_weights(path))
    backward = _run_like_caffe(net, path, meta)
    forward = dict(np.load(path / "forward.npz"))
    assert list(net.blobs) == [k for k in net.blobs if k in forward] and set(net.blobs) == set(forward), \
        "net.blobs holds other blobs than Caffe's"
    for k, v in forward.items():
        assert_bits(net.blobs[k].data, v, f"{case} blob {k}")
    for k, v in backward.items():
        if k.startswith("diff/"):
            assert_bits(net.blobs[k[len("diff/"):]].diff, v, f"{case} {k}")
        elif k.startswith("param_diff/"):
            _, layer, i = k.split("/")
            assert_bits(net.params[layer][int(i)].diff, v, f"{case} {k}")
    n_param_diffs = sum(1 for k in backward if k.startswith("param_diff/"))
    assert n_param_diffs == sum(len(b) for b in net.params.values())


@pytest.mark.parametrize("case", ["caffenet_narrow", "conv_group2", "innerproduct", "caffenet_head_train_dropout"])
def test_save_is_caffes_caffemodel(tmp_path, case):
    """net.save() of a net loaded from Caffe's weights.caffemodel (itself written by pycaffe's
    net.save()) gives the same bytes."""
    path, _, phase = _case(case)
    net = caffe.Net(str(path / "net.prototxt"), phase, weights=str(path / "weights.caffemodel"))
    net.save(str(tmp_path / "w.caffemodel"))
    assert (tmp_path / "w.caffemodel").read_bytes() == (path / "weights.caffemodel").read_bytes()


def test_views_write_through_and_old_signature():
    """Weights written through net.params[...].data views and inputs through net.blobs[...].data
    views give Caffe's forward; Net(prototxt, weights, phase) loads the same net."""
    path, meta, phase = _case("caffenet_narrow")
    with pytest.warns(DeprecationWarning):
        ref = caffe.Net(str(path / "net.prototxt"), str(path / "weights.caffemodel"), phase)  # deprecated form
    net = caffe.Net(str(path / "net.prototxt"), phase)
    for name, blobs in ref.params.items():
        for i, b in enumerate(blobs):
            view = net.params[name][i].data
            view[...] = b.data
            assert np.shares_memory(view, net.params[name][i].data)
    for k, v in np.load(path / "inputs.npz").items():
        net.blobs[k].data[...] = v
    net.forward()
    fwd = np.load(path / "forward.npz")
    for k in ("conv1", "fc8", "loss"):
        assert_bits(net.blobs[k].data, fwd[k], k)
    # net.layers / _layer_names / top_names / bottom_names / blob_loss_weights
    assert [l.type for l in net.layers][:3] == ["Input", "Split", "Convolution"]
    assert list(net._layer_names) == list(net.layer_dict)
    assert net.top_names["conv1"] == ["conv1"] and net.bottom_names["loss"] == ["fc8_fc8_0_split_0",
                                                                                  "label_data_1_split_0"]
    assert net.blob_loss_weights["loss"] == 1.0 and net.blob_loss_weights["fc8"] == 0.0
    assert net.inputs == ["data", "label"] and net.outputs == ["accuracy", "loss"]


def test_forward_start_end_and_blobs():
    """forward(end=...) returns end's tops, forward(start=...) resumes from a layer, forward(blobs=[...])
    adds blobs; the pieces give the same bits as one pass."""
    path, meta, phase = _case("caffenet_narrow")
    net = caffe.Net(str(path / "net.prototxt"), phase, weights=str(path / "weights.caffemodel"))
    inputs = dict(np.load(path / "inputs.npz"))
    out = net.forward(end="pool2", **inputs)
    assert set(out) == {"pool2"}
    out = net.forward(start="norm2", blobs=["fc7"])
    assert set(out) == {"accuracy", "loss", "fc7"}
    fwd = np.load(path / "forward.npz")
    for k in fwd.files:
        assert_bits(net.blobs[k].data, fwd[k], k)
    with pytest.raises(Exception, match="do not match net inputs"):
        net.forward(data=inputs["data"])
    with pytest.raises(ValueError):
        net.forward(start="no_such_layer")


def test_backward_kwargs_and_end():
    """backward(**top_diffs) on a net without a loss sets the output diffs; end= stops at a layer
    and returns its bottoms' diffs."""
    path, meta, phase = _case("relu")
    net = caffe.Net(str(path / "net.prototxt"), phase)
    net.forward(**dict(np.load(path / "inputs.npz")))
    bwd = dict(np.load(path / "backward.npz"))
    tops = {k[len("top_diff/"):]: v for k, v in bwd.items() if k.startswith("top_diff/")}
    assert set(tops) == set(net.outputs)
    diffs = net.backward(**tops)
    for k in net.inputs:
        assert_bits(diffs[k], bwd[f"diff/{k}"], k)


def test_blob_reshape_and_net_reshape():
    path, _, phase = _case("caffenet_narrow")
    net = caffe.Net(str(path / "net.prototxt"), phase, weights=str(path / "weights.caffemodel"))
    net.blobs["data"].reshape(1, 3, 227, 227)
    net.blobs["label"].reshape(1)
    net.reshape()
    assert net.blobs["data"].shape == (1, 3, 227, 227) and net.blobs["data"].num == 1
    assert net.blobs["conv1"].shape == (1, 24, 55, 55) and net.blobs["fc8"].shape == (1, 10)
    assert net.blobs["conv1"].count == 24 * 55 * 55 and net.blobs["conv1"].channels == 24
    x = np.load(path / "inputs.npz")
    net.blobs["data"].data[...] = x["data"][:1]
    net.blobs["label"].data[...] = x["label"][:1]
    net.forward()
    assert net.blobs["fc8"].data.shape == (1, 10)
    # convolution runs per image: image 0's conv1 is the batch-of-2 value
    assert_bits(net.blobs["conv1"].data, np.load(path / "forward.npz")["conv1"][:1], "conv1 of image 0")


def test_set_random_seed_is_one_process_wide_generator():
    """Fillers of nets built after the same seed draw the same values; reseeding changes what an
    already-built TRAIN net's Dropout draws (Caffe's generator is global)."""
    path, meta, _ = _case("caffenet_head_train_dropout")
    caffe.set_random_seed(5 + 2 ** 32)  # taken modulo 2^32, as Caffe's unsigned int
    a = caffe.Net(str(path / "net.prototxt"), caffe.TRAIN)
    caffe.set_random_seed(5)
    b = caffe.Net(str(path / "net.prototxt"), caffe.TRAIN)
    for name in a.params:
        for x, y in zip(a.params[name], b.params[name]):
            assert np.array_equal(x.data.view(np.uint32), y.data.view(np.uint32))
    net = caffe.Net(str(path / "net.prototxt"), caffe.TRAIN, weights=str(path / "weights.caffemodel"))
    inputs = dict(np.load(path / "inputs.npz"))
    fwd = np.load(path / "forward.npz")
    caffe.set_random_seed(meta["seed"])
    net.forward(**inputs)
    assert_bits(net.blobs["fc7"].data, fwd["fc7"], "fc7 with Caffe's seed")
    net.forward(**inputs)  # the generator moved on: new masks
    assert not np.array_equal(net.blobs["fc7"].data, fwd["fc7"])


def _solver_dir(tmp_path: Path, files) -> Path:
    golden = require("golden", "solver")
    data = require("golden", "data")
    (tmp_path / "data").symlink_to(data, target_is_directory=True)
    d = tmp_path / "solver"
    d.mkdir()
    for f in files:
        shutil.copy(golden / f, d / f)
    return d


def test_sgd_solver_matches_caffes_snapshots(tmp_path, monkeypatch):
    """SGDSolver('solver.prototxt'), the train net's weights from init.caffemodel, step(60): the
    snapshots at 30 and 60 are Caffe's bytes (as ``caffe train -weights init.caffemodel``)."""
    golden = require("golden", "solver")
    d = _solver_dir(tmp_path, ("net.prototxt", "solver.prototxt", "init.caffemodel"))
    monkeypatch.chdir(d)
    from replicate.log import CaffeLog
    solver = caffe.SGDSolver("solver.prototxt", log=CaffeLog(str(d / "log.txt"), stream=None))
    solver.net.copy_from("init.caffemodel")
    assert solver.iter == 0 and len(solver.test_nets) == 1
    solver.step(60)
    assert solver.iter == 60
    assert solver.net.blobs["loss"].data.shape == () and solver.net.blobs["conv1"].data.shape[0] == 8
    for f in ("snap_iter_30.caffemodel", "snap_iter_30.solverstate", "snap_iter_60.caffemodel",
              "snap_iter_60.solverstate"):
        assert (d / f).read_bytes() == (golden / f).read_bytes(), f"{f} differs from Caffe's"


def test_solver_restore_then_step(tmp_path, monkeypatch):
    """restore(Caffe's iteration-30 solverstate), step(30): Caffe's resumed run, byte for byte."""
    golden = require("golden", "solver")
    d = _solver_dir(tmp_path, ("net.prototxt", "solver.prototxt", "snap_iter_30.caffemodel",
                               "snap_iter_30.solverstate"))
    monkeypatch.chdir(d)
    from replicate.log import CaffeLog
    solver = caffe.get_solver("solver.prototxt", log=CaffeLog(str(d / "log.txt"), stream=None))
    assert type(solver.solver).TYPE == "SGD"
    solver.restore("snap_iter_30.solverstate")
    assert solver.iter == 30
    solver.step(30)
    assert (d / "snap_iter_60.caffemodel").read_bytes() == (golden / "resume_iter_60.caffemodel").read_bytes()
    assert (d / "snap_iter_60.solverstate").read_bytes() == (golden / "snap_iter_60.solverstate").read_bytes()


def test_solver_class_overrides_type(tmp_path):
    """caffe.AdamSolver(file) builds Adam whatever the file's type says, as pycaffe's classes do."""
    d = _solver_dir(tmp_path, ("net.prototxt", "solver.prototxt"))
    from replicate.log import CaffeLog
    import os
    cwd = os.getcwd()
    os.chdir(d)
    try:
        s = caffe.AdamSolver("solver.prototxt", log=CaffeLog(str(d / "log.txt"), stream=None))
        assert type(s.solver).TYPE == "Adam" and s.param.type == "Adam"
        s.close()
    finally:
        os.chdir(cwd)


# ---------------------------------------------------------------------------------------------
# caffe.io

def test_transformer_matches_caffe_io_formulas():
    rs = np.random.RandomState(0)
    img = rs.rand(8, 6, 3).astype(np.float32)  # H x W x K in [0, 1], as load_image gives
    mean = np.array([104.0, 117.0, 123.0])
    t = caffe.io.Transformer({"data": (2, 3, 8, 6)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_mean("data", mean)
    t.set_input_scale("data", 0.017)
    got = t.preprocess("data", img)
    # python/caffe/io.py: float32 image, transpose, swap, *= raw_scale, -= mean, *= input_scale
    x = img.transpose(2, 0, 1)[[2, 1, 0], :, :].copy()
    x *= 255
    x -= mean[:, np.newaxis, np.newaxis]
    x *= 0.017
    assert got.dtype == x.dtype and np.array_equal(got, x)
    back = t.deprocess("data", got)
    assert back.shape == img.shape and np.allclose(back, img, atol=1e-5)
    with pytest.raises(Exception, match="not one of the net inputs"):
        t.preprocess("other", img)
    with pytest.raises(ValueError, match="Mean channels"):
        t.set_mean("data", np.zeros(4))
    with pytest.raises(Exception, match="Transpose order"):
        t.set_transpose("data", (1, 0))


def test_transformer_resizes_and_elementwise_mean():
    t = caffe.io.Transformer({"data": (1, 3, 4, 4)})
    t.set_transpose("data", (2, 0, 1))
    mean = np.full((3, 4, 4), 0.25, dtype=np.float32)
    t.set_mean("data", mean)
    out = t.preprocess("data", np.full((2, 2, 3), 0.75, dtype=np.float32))
    assert out.shape == (3, 4, 4) and np.all(out == np.float32(0.5))  # a constant image stays constant


def test_resize_image_is_skimage_bilinear_with_constant_border():
    """2 x 2 -> 4 x 4: output pixel r samples the input at (r + .5) / 2 - .5 (pixel centres),
    bilinearly, with 0 outside the image (mode='constant'), on the image normalised to [0, 1]."""
    im = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)[:, :, None]
    out = caffe.io.resize_image(im, (4, 4))
    assert out.shape == (4, 4, 1) and out.dtype == np.float32
    # row coordinate of output row 1 is 0.25, column of output column 2 is 0.75 (both inside)
    v = (1 - .25) * ((1 - .75) * 0.0 + .75 * 1.0) + .25 * ((1 - .75) * 1.0 + .75 * 0.0)
    assert out[1, 2, 0] == np.float32(v)
    # output (0, 1): row -0.25 mixes in the zero border
    v = .75 * ((1 - .25) * 0.0 + .25 * 1.0) + .25 * 0.0
    assert out[0, 1, 0] == np.float32(v)
    const = caffe.io.resize_image(np.full((3, 5, 3), 7.0, np.float32), (6, 2))
    assert const.shape == (6, 2, 3) and np.all(const == 7.0)
    four = caffe.io.resize_image(np.arange(2 * 2 * 4, dtype=np.float32).reshape(2, 2, 4), (3, 3))
    assert four.shape == (3, 3, 4) and four[1, 1, 0] == np.float32((0 + 4 + 8 + 12) / 4)  # zoom: corners aligned


def test_load_image_with_pillow(tmp_path):
    from PIL import Image
    rgb = np.random.RandomState(1).randint(0, 256, (5, 7, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    img = caffe.io.load_image(str(tmp_path / "c.png"))
    assert img.shape == (5, 7, 3) and img.dtype == np.float32
    assert np.array_equal(img, (rgb / 255.0).astype(np.float32))  # skimage's img_as_float, then float32
    grey = rgb[:, :, 0]
    Image.fromarray(grey).save(tmp_path / "g.png")
    g3 = caffe.io.load_image(str(tmp_path / "g.png"))
    g1 = caffe.io.load_image(str(tmp_path / "g.png"), color=False)
    assert g3.shape == (5, 7, 3) and g1.shape == (5, 7, 1)
    assert np.array_equal(g1[:, :, 0], (grey / 255.0).astype(np.float32)) and np.array_equal(g3[:, :, 2], g1[:, :, 0])


def test_io_module_aliases():
    from replicate.caffe.io import Transformer as T1
    from replicate.pycaffe.io import Transformer as T2  # noqa: F401  (sys.modules entry)
    assert T1 is caffe.io.Transformer is pycaffe.Transformer is T2
    blob = caffe.io.array_to_blobproto(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.array_equal(caffe.io.blobproto_to_array(blob), np.arange(6).reshape(2, 3))
    d = caffe.io.array_to_datum(np.arange(12, dtype=np.uint8).reshape(3, 2, 2), label=4)
    assert d.label == 4 and np.array_equal(caffe.io.datum_to_array(d), np.arange(12).reshape(3, 2, 2))


def test_readme_example_top5():
    """The README's worked example: a prototxt and a caffemodel, the top-5 classes of fc8 per image
    equal those of Caffe's recorded forward."""
    path = require("golden", "layers", "caffenet_narrow")
    net = caffe.Net(str(path / "net.prototxt"), caffe.TEST, weights=str(path / "weights.caffemodel"))
    inputs = np.load(path / "inputs.npz")
    net.blobs["data"].data[...] = inputs["data"]
    net.blobs["label"].data[...] = inputs["label"]
    net.forward()
    ours = [s.argsort()[::-1][:5].tolist() for s in net.blobs["fc8"].data]
    theirs = [s.argsort()[::-1][:5].tolist() for s in np.load(path / "forward.npz")["fc8"]]
    assert ours == theirs == [[5, 8, 3, 2, 0], [5, 8, 3, 2, 0]]


@pytest.mark.parametrize("case", LAYERS_MORE_CASES)
def test_layers_more_case_through_pycaffe(case):
    """../shared/golden/layers_more as its generator drove pycaffe: forward(**inputs),
    clear_param_diffs, top diffs into the diff views, backward(); every recorded array bit for bit."""
    path = require("golden", "layers_more", case)
    meta = json.loads((path / "case.json").read_text())
    phase = caffe.TRAIN if meta["phase"] == "TRAIN" else caffe.TEST
    net = caffe.Net(str(path / "net.prototxt"), phase, weights=_weights(path))
    inputs = dict(np.load(path / "inputs.npz")) if (path / "inputs.npz").exists() else {}
    net.forward(**inputs)
    for k, v in np.load(path / "forward.npz").items():
        assert_bits(net.blobs[k].data, v, f"{case} blob {k}")
    if not (path / "backward.npz").exists():
        return
    backward = dict(np.load(path / "backward.npz"))
    net.clear_param_diffs()
    for k, v in backward.items():
        if k.startswith("top_diff/"):
            net.blobs[k[len("top_diff/"):]].diff[...] = v
    net.backward()
    for k, v in backward.items():
        if k.startswith("diff/"):
            assert_bits(net.blobs[k[len("diff/"):]].diff, v, f"{case} {k}")
        elif k.startswith("param_diff/"):
            _, layer, i = k.split("/")
            assert_bits(net.params[layer][int(i)].diff, v, f"{case} {k}")
