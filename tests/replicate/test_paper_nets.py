"""The release's 2014 (V0) prototxts run unchanged: half0A's train/val nets and its solver build
(with ``imagenet_*_leveldb`` and ``imagenet_mean.binaryproto`` made here as a tiny database of
256x256 images) and one forward of the validation net gives Caffe's shapes."""
from __future__ import annotations

import shutil

import pytest

from data_prep.mean import write_mean
from prototxt_like import caffe_pb2
from replicate.log import NullLog
from replicate.net import Net
from tests._shared import random_image_db, require


@pytest.fixture(scope="module")
def half0a(tmp_path_factory):
    src = require("paper", "results", "half0A")
    d = tmp_path_factory.mktemp("half0A")
    for f in ("imagenet_train.prototxt", "imagenet_val.prototxt", "imagenet_solver.prototxt"):
        shutil.copy(src / f, d / f)
    for name in ("imagenet_train_leveldb", "imagenet_val_leveldb"):
        random_image_db(d, d / name, n=3, size=256, classes=3, backend="leveldb")
    write_mean(str(d / "imagenet_train_leveldb"), str(d / "imagenet_mean.binaryproto"), backend="leveldb",
               log=lambda m: None)
    return d


def test_half0a_val_net_builds_and_runs(half0a, monkeypatch):
    monkeypatch.chdir(half0a)
    net = Net("imagenet_val.prototxt", caffe_pb2.TEST)
    try:
        assert [l.type for l in net.layers][:6] == ["Data", "Convolution", "ReLU", "Pooling", "LRN", "Convolution"]
        shapes = {l.name: [p.shape for p in l.params] for l in net.layers if l.params}
        assert shapes["conv1"] == [(96, 3, 11, 11), (96,)]
        assert shapes["conv2"] == [(256, 48, 5, 5), (256,)]
        assert shapes["fc6"] == [(4096, 9216), (4096,)]
        assert shapes["fc8"] == [(1000, 4096), (1000,)]  # the release keeps 1000 outputs for 500-class halves
        net.forward()
        assert tuple(net.blobs["data"].data.shape) == (50, 3, 227, 227)
        assert tuple(net.blobs["pool5"].data.shape) == (50, 256, 6, 6)
        assert set(net.output_names) == {"accuracy"}
        acc = float(net.blobs["accuracy"].data)
        assert 0.0 <= acc <= 1.0
    finally:
        net.close()


def test_half0a_solver_builds(half0a, monkeypatch):
    from replicate.solver import SGDSolver
    monkeypatch.chdir(half0a)
    s = SGDSolver("imagenet_solver.prototxt", log=NullLog())
    try:
        assert s.param.max_iter == 450000 and s.param.lr_policy == "step"
        assert len(s.test_nets) == 1 and s.test_nets[0].phase == caffe_pb2.TEST
        # the paper's multipliers: weights lr 1 decay 1, biases lr 2 decay 0
        assert s.net.params_lr[:2] == [1.0, 2.0] and s.net.params_decay[:2] == [1.0, 0.0]
        assert len(s.net.learnable) == 16
        assert s.net.phase == caffe_pb2.TRAIN
        assert [l.type for l in s.net.layers][-1] == "SoftmaxWithLoss"
    finally:
        s.close()
