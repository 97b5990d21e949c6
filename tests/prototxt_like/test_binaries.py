""".caffemodel (V0/V1/V2), .binaryproto, .solverstate: Caffe's files read
to exactly the golden arrays, and what we write is what Caffe writes."""
import numpy as np
import pytest

import prototxt_like as pl
from prototxt_like import caffe_pb2

MODELS = ["small", "small_v1", "small_v0", "small_v1.upgraded", "small_v0.upgraded"]


def _golden_weights(formats):
    z = np.load(formats / "small.npz")
    out = {}
    for key in sorted(z.files, key=lambda k: (k.split("/")[0], int(k.split("/")[1]))):
        layer, _ = key.split("/")
        out.setdefault(layer, []).append(z[key])
    return out


def _assert_same(weights, golden):
    assert weights.keys() == golden.keys()
    for layer, arrays in golden.items():
        assert len(weights[layer]) == len(arrays), layer
        for ours, theirs in zip(weights[layer], arrays):
            assert ours.dtype == theirs.dtype == np.float32
            assert ours.shape == theirs.shape, layer
            assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32)), layer


@pytest.mark.parametrize("name", MODELS)
def test_caffemodel_weights_equal_golden(formats, name):
    _assert_same(pl.caffemodel_weights(formats / f"{name}.caffemodel"), _golden_weights(formats))


@pytest.mark.parametrize("name", ["small_v1", "small_v0"])
def test_binary_upgrade_equals_caffe(formats, name):
    ours = pl.load_net_binary(formats / f"{name}.caffemodel")
    caffe = pl.load_net_binary(formats / f"{name}.upgraded.caffemodel", upgrade=False)
    assert ours == caffe
    # and serialises to the very bytes upgrade_net_proto_binary wrote
    assert ours.SerializeToString() == (formats / f"{name}.upgraded.caffemodel").read_bytes()


def test_raw_keeps_legacy_dims(formats):
    raw = pl.caffemodel_weights(formats / "small_v1.caffemodel", raw=True)
    assert raw["ip1"][0].shape == (1, 1, 5, 36) and raw["conv1"][1].shape == (1, 1, 1, 4)
    assert pl.fit_to_shape(raw["ip1"][0], (5, 36)).shape == (5, 36)
    with pytest.raises(pl.BlobError):
        pl.fit_to_shape(raw["ip1"][0], (36, 5))


def test_written_caffemodel_is_byte_identical_to_pycaffe(formats, tmp_path):
    out = tmp_path / "small.caffemodel"
    pl.save_caffemodel(out, formats / "small.prototxt", _golden_weights(formats))
    assert out.read_bytes() == (formats / "small.caffemodel").read_bytes()
    _assert_same(pl.caffemodel_weights(out), _golden_weights(formats))


def test_written_caffemodel_round_trips_from_legacy(formats, tmp_path):
    weights = pl.caffemodel_weights(formats / "small_v0.caffemodel")
    net = pl.load_net(formats / "small.prototxt")
    pl.save_caffemodel(tmp_path / "w.caffemodel", net, weights)
    _assert_same(pl.caffemodel_weights(tmp_path / "w.caffemodel"), _golden_weights(formats))


def test_save_refuses_weights_for_unknown_layers(formats, tmp_path):
    with pytest.raises(pl.CaffeFormatError, match="nope"):
        pl.save_caffemodel(tmp_path / "x", formats / "small.prototxt", {"nope": [np.zeros(1)]})


def test_completeness_check_with_net(formats):
    path = formats / "small.caffemodel"
    assert pl.caffemodel_weights(path, net=formats / "small.prototxt")
    model = pl.load_net_binary(path, upgrade=False)
    del model.layer[-1]  # what a file cut right after layer relu2 holds
    with pytest.raises(pl.BinaryFormatError, match="ip2"):
        pl.caffemodel_weights(model.SerializeToString(), net=formats / "small.prototxt")


def test_golden_layer_cases_load():
    from tests._shared import require
    layers = require("golden", "layers")
    cases = sorted(p for p in layers.iterdir() if (p / "net.prototxt").exists())
    assert cases
    for case in cases:
        net = pl.load_net(case / "net.prototxt")
        assert net.layer
        if (case / "weights.caffemodel").exists():
            w = pl.caffemodel_weights(case / "weights.caffemodel", net=net)
            assert w and all(a.dtype == np.float32 for v in w.values() for a in v)


def test_mean_binaryproto(formats, tmp_path):
    mean = pl.load_blob(formats / "mean.binaryproto")
    golden = np.load(formats / "mean.npy")
    assert mean.dtype == golden.dtype and np.array_equal(mean, golden)
    assert pl.load_mean(formats / "mean.binaryproto").shape == golden.shape[1:]
    pl.save_blob(tmp_path / "m.binaryproto", golden, legacy_4d=True)
    assert (tmp_path / "m.binaryproto").read_bytes() == (formats / "mean.binaryproto").read_bytes()
    pl.save_blob(tmp_path / "n.binaryproto", golden)  # N-D form reads back the same
    assert np.array_equal(pl.load_blob(tmp_path / "n.binaryproto"), golden)


def test_blob_vector(formats, tmp_path):
    z = np.load(formats / "blobs_vector.npz")
    golden = [z[f"blob_{i}"] for i in range(3)]
    ours = pl.load_blob_vector(formats / "blobs.binaryproto_vector")
    assert [a.shape for a in ours] == [a.shape for a in golden]
    assert all(np.array_equal(a, b) for a, b in zip(ours, golden))
    pl.save_blob_vector(tmp_path / "v", golden)
    assert (tmp_path / "v").read_bytes() == (formats / "blobs.binaryproto_vector").read_bytes()


def test_blob_dtypes_and_shapes():
    d = np.arange(6, dtype=np.float64).reshape(2, 3)
    b = pl.numpy_to_blob(d)
    assert list(b.double_data) == list(range(6)) and not b.data
    back = pl.blob_to_numpy(b)
    assert back.dtype == np.float64 and np.array_equal(back, d)
    s = pl.numpy_to_blob(np.float32(2.5))  # scalar: no shape, count 1
    assert not s.HasField("shape") and pl.blob_to_numpy(s).shape == ()
    legacy = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=1, data=[1, 2])
    assert pl.blob_to_numpy(legacy).shape == (1, 2, 1, 1)
    with pytest.raises(pl.BlobError, match="needs 6 values"):
        pl.blob_to_numpy(caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[2, 3]), data=[1.0]))
    with_diff = pl.numpy_to_blob(np.ones(3, np.float32), diff=np.full(3, 2, np.float32))
    assert np.array_equal(pl.blob_to_numpy(with_diff, diff=True), [2, 2, 2])


def test_solverstate_round_trip(tmp_path):
    hist = [np.arange(12, dtype=np.float32).reshape(3, 4), np.ones(3, np.float32)]
    written = pl.save_solverstate(tmp_path / "s.solverstate", iter=70, history=hist,
                                  learned_net="snap_iter_70.caffemodel", current_step=2)
    state, arrays = pl.load_solverstate(tmp_path / "s.solverstate")
    assert state == written and state.iter == 70 and state.current_step == 2
    assert state.learned_net == "snap_iter_70.caffemodel"
    assert all(np.array_equal(a, b) for a, b in zip(arrays, hist))
    # the fields Caffe always sets are present even at their defaults
    zero = pl.save_solverstate(tmp_path / "z", iter=0, history=[])
    assert zero.HasField("current_step") and zero.HasField("learned_net")
