"""The Data layer vs the batches Caffe's Data layer returned (shared/golden/data), and its
TRAIN-phase randomness vs Caffe's formula."""

import lmdb
import numpy as np
import pytest

from prototxt_like import caffe_pb2, load_net
from prototxt_like.datum import parse_datum
from prototxt_like.io import load_blob
from replicate.data import DataSourceError, needs_rand, open_source
from replicate.rng import CaffeRNG

from tests._shared import writable_copy

SUFFIXES = ["", "_meanvalue", "_gray", "_encoded", "_leveldb"]


def _layer(golden_data, suffix=""):
    return load_net(golden_data / f"data_layer_test{suffix}.prototxt").layer[0]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_test_batches_bit_for_bit(golden_data, tmp_path, suffix, workers):
    lp = _layer(golden_data, suffix)
    root = golden_data
    if suffix == "_leveldb":  # leveldb rewrites files on open: read a copy
        writable_copy(golden_data / "train_leveldb", tmp_path / "train_leveldb")
        (tmp_path / "mean.binaryproto").write_bytes((golden_data / "mean.binaryproto").read_bytes())
        root = tmp_path
    want = np.load(golden_data / f"data_layer_test_batches{suffix}.npz")
    with open_source(lp, caffe_pb2.TEST, workers=workers, root=root) as src:
        c = 1 if suffix == "_gray" else 3
        assert src.top_shapes() == [(10, c, 28, 28), (10,)]
        for b in range(6):  # 60 reads of 48 records: batches 4 and 5 wrap around
            data, label = src.next()
            assert data.dtype == np.float32 or str(data.dtype) == "torch.float32"
            assert np.array_equal(data.numpy().view(np.uint32), want[f"data_{b}"].view(np.uint32)), b
            assert np.array_equal(label.numpy(), want[f"label_{b}"]), b


def test_relative_paths_follow_the_working_folder(golden_data, monkeypatch):
    monkeypatch.chdir(golden_data)
    want = np.load(golden_data / "data_layer_test_batches.npz")
    with open_source(_layer(golden_data), caffe_pb2.TEST, workers=1) as src:
        assert np.array_equal(src.next()[0].numpy(), want["data_0"])


def test_one_top_gives_no_label(golden_data):
    lp = _layer(golden_data)
    del lp.top[1:]
    with open_source(lp, caffe_pb2.TEST, root=golden_data) as src:
        assert src.top_shapes() == [(10, 3, 28, 28)]
        data, label = src.next()
        assert label is None and tuple(data.shape) == (10, 3, 28, 28)


def _records(golden_data):
    env = lmdb.open(str(golden_data / "train_lmdb"), readonly=True, lock=False)
    with env.begin() as txn:
        ds = [parse_datum(v) for _, v in txn.cursor()]
    env.close()
    return ([np.frombuffer(d.data, np.uint8).reshape(3, 32, 32) for d in ds],
            [float(d.label) for d in ds])


def _reference(golden_data, seed, n_batches, batch, crop, scale, mirror, phase):
    """Caffe's Transform written out per element: draws Rand(2) (mirror), then
    Rand(H-crop+1), Rand(W-crop+1) (TRAIN crop) from mt19937(seed), Rand(n) = u % n."""
    xs, labels = _records(golden_data)
    mean = load_blob(golden_data / "mean.binaryproto")[0]
    rng = CaffeRNG(seed)
    out, lab, offs = [], [], []
    for r in range(n_batches * batch):
        x = xs[r % len(xs)]
        m = bool(rng.uint32(1)[0] % 2) if mirror else False
        if phase == caffe_pb2.TRAIN:
            h0 = int(rng.uint32(1)[0] % (32 - crop + 1))
            w0 = int(rng.uint32(1)[0] % (32 - crop + 1))
        else:
            h0 = w0 = (32 - crop) // 2
        y = np.empty((3, crop, crop), np.float32)
        for h in range(crop):
            for w in range(crop):
                t = crop - 1 - w if m else w
                y[:, h, t] = (x[:, h0 + h, w0 + w].astype(np.float32)
                              - mean[:, h0 + h, w0 + w]) * np.float32(scale)
        out.append(y)
        lab.append(labels[r % len(xs)])
        offs.append((h0, w0, m))
    return np.stack(out).reshape(n_batches, batch, 3, crop, crop), np.array(lab, np.float32), offs


def _train_layer(golden_data, crop=20, mirror=True, scale=0.5, batch=16):
    lp = caffe_pb2.LayerParameter(name="data", type="Data", top=["data", "label"])
    lp.data_param.source = str(golden_data / "train_lmdb")
    lp.data_param.batch_size = batch
    lp.data_param.backend = caffe_pb2.DataParameter.LMDB
    tp = lp.transform_param
    tp.crop_size, tp.mirror, tp.scale = crop, mirror, scale
    tp.mean_file = str(golden_data / "mean.binaryproto")
    return lp


@pytest.mark.parametrize("phase", [caffe_pb2.TRAIN, caffe_pb2.TEST])
def test_random_crop_and_mirror_follow_caffes_draws(golden_data, phase):
    lp = _train_layer(golden_data)
    assert needs_rand(lp.transform_param, phase)
    want, want_lab, offs = _reference(golden_data, 1234, 4, 16, 20, 0.5, True, phase)
    # the reference really exercises both mirror states and several offsets
    assert {m for _, _, m in offs} == {False, True}
    if phase == caffe_pb2.TRAIN:
        assert len({(h, w) for h, w, _ in offs}) > 10
        assert all(0 <= h <= 12 and 0 <= w <= 12 for h, w, _ in offs)
    for workers in (1, 2):
        with open_source(lp, phase, rng_seed=1234, workers=workers) as src:
            for b in range(4):
                data, label = src.next()
                assert np.array_equal(data.numpy(), want[b]), (workers, b)
                assert np.array_equal(label.numpy(), want_lab[b * 16:(b + 1) * 16])


def test_seed_decides_the_batches(golden_data):
    lp = _train_layer(golden_data)

    def first(seed):
        with open_source(lp, caffe_pb2.TRAIN, rng_seed=seed, workers=2) as src:
            return src.next()[0].numpy()
    assert np.array_equal(first(7), first(7))
    assert not np.array_equal(first(7), first(8))


def test_no_mirror_no_crop_needs_no_random(golden_data):
    lp = _train_layer(golden_data, crop=0, mirror=False, scale=1.0)
    assert not needs_rand(lp.transform_param, caffe_pb2.TRAIN)
    xs, _ = _records(golden_data)
    mean = load_blob(golden_data / "mean.binaryproto")[0]
    with open_source(lp, caffe_pb2.TRAIN) as src:
        assert src.top_shapes()[0] == (16, 3, 32, 32)
        data, _ = src.next()
    assert np.array_equal(data.numpy(), np.stack([x.astype(np.float32) - mean for x in xs[:16]]))


def test_errors_name_the_layer_and_the_path(golden_data, tmp_path):
    lp = _train_layer(golden_data)
    lp.name = "mydata"
    lp.data_param.source = str(tmp_path / "missing_lmdb")
    with pytest.raises(DataSourceError, match=r"mydata.*missing_lmdb"):
        open_source(lp, caffe_pb2.TRAIN, rng_seed=1)
    # a db that does not hold Datums
    env = lmdb.open(str(tmp_path / "junk"))
    with env.begin(write=True) as txn:
        txn.put(b"a", b"\xff\xff\xff not a datum")
    env.close()
    lp.data_param.source = str(tmp_path / "junk")
    with pytest.raises(DataSourceError, match=r"mydata.*junk"):
        open_source(lp, caffe_pb2.TRAIN, rng_seed=1)
    # a mean image of another shape (grey mean for colour records)
    lp.data_param.source = str(golden_data / "train_lmdb")
    lp.transform_param.mean_file = str(golden_data / "mean_gray.binaryproto")
    with pytest.raises(DataSourceError, match=r"mydata.*mean_gray.*\(1, 32, 32\)"):
        open_source(lp, caffe_pb2.TRAIN, rng_seed=1)
    lp.transform_param.ClearField("mean_file")
    lp.transform_param.crop_size = 40
    with pytest.raises(DataSourceError, match=r"mydata.*crop_size 40"):
        open_source(lp, caffe_pb2.TRAIN, rng_seed=1)
