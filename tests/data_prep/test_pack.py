"""pack + mean on the golden images vs the databases and means Caffe's tools wrote."""
import numpy as np
import pytest

from data_prep.__main__ import main
from data_prep.mean import compute_mean, mean_blob_bytes
from data_prep.pack import caffe_shuffle, pack, read_caffe_list
from replicate.data.db import iter_records
from replicate.data.image import imdecode, imencode, resize_linear

from tests._shared import writable_copy

CASES = {  # golden db -> (keys file, pack options); all resized to 32x32 as the README's commands
    "train_lmdb": ("keys.txt", dict(backend="lmdb")),
    "train_leveldb": ("keys_leveldb.txt", dict(backend="leveldb")),
    "train_lmdb_encoded": ("keys_encoded.txt", dict(backend="lmdb", encoded=True, encode_type="png")),
    "train_gray_lmdb": ("keys_gray.txt", dict(backend="lmdb", gray=True)),
}


def _golden_records(golden_data, tmp_path, db, backend):
    folder = golden_data / db
    if backend == "leveldb":
        folder = writable_copy(folder, tmp_path / ("golden_" + db))
    return list(iter_records(folder, backend))


@pytest.mark.parametrize("db", list(CASES))
def test_pack_reproduces_every_record(golden_data, tmp_path, db):
    keys, opts = CASES[db]
    out = tmp_path / db
    n = pack(str(golden_data / "images") + "/", golden_data / "list.txt", out,
             resize_height=32, resize_width=32, keys_file=golden_data / keys,
             workers=2 if db == "train_lmdb" else 1, progress=False, log=lambda m: None, **opts)
    assert n == 48
    assert not (tmp_path / (db + ".partial")).exists()
    got = list(iter_records(out, opts["backend"]))
    want = _golden_records(golden_data, tmp_path, db, opts["backend"])
    assert [k for k, _ in got] == [k for k, _ in want]
    diff = [k for (k, a), (_, b) in zip(got, want) if a != b]
    assert diff == [], f"{len(diff)} records differ from Caffe's, e.g. {diff[:3]}"


def test_mean_matches_compute_image_mean(golden_data, tmp_path):
    for db, mean in (("train_lmdb", "mean.binaryproto"), ("train_gray_lmdb", "mean_gray.binaryproto")):
        assert mean_blob_bytes(compute_mean(golden_data / db, "lmdb")) == (golden_data / mean).read_bytes()
    # an encoded db is decoded first: the same images (in another order) give the same mean
    enc = compute_mean(golden_data / "train_lmdb_encoded", "lmdb")
    raw = compute_mean(golden_data / "train_lmdb", "lmdb")
    assert enc.shape == (3, 32, 32) and np.allclose(enc, raw, rtol=0, atol=1e-4)


def test_cli_pack_then_mean(golden_data, tmp_path, capsys):
    out = tmp_path / "db"
    assert main(["pack", "--resize_height=32", "--resize_width=32", "--keys",
                 str(golden_data / "keys.txt"), "--workers", "1", "--quiet",
                 str(golden_data / "images"), str(golden_data / "list.txt"), str(out)]) == 0
    assert main(["mean", str(out), str(tmp_path / "mean.binaryproto")]) == 0
    assert (tmp_path / "mean.binaryproto").read_bytes() == (golden_data / "mean.binaryproto").read_bytes()


def test_unfinished_db_never_looks_complete(golden_data, tmp_path):
    out = tmp_path / "db"
    with pytest.raises(ValueError, match="Incorrect data field size"):
        # no resize: the images differ in size and --check_size stops the run
        pack(str(golden_data / "images") + "/", golden_data / "list.txt", out, check_size=True,
             workers=1, progress=False, log=lambda m: None)
    assert not out.exists() and not (tmp_path / "db.partial").exists()
    out.mkdir()
    with pytest.raises(FileExistsError):
        pack(str(golden_data / "images") + "/", golden_data / "list.txt", out, progress=False)


def test_shuffle_is_seeded_and_keys_number_the_new_order(golden_data, tmp_path):
    lines = read_caffe_list(golden_data / "list.txt")
    a = caffe_shuffle(lines, 5)
    assert a == caffe_shuffle(lines, 5) and a != caffe_shuffle(lines, 6) and sorted(a) == sorted(lines)
    out = tmp_path / "db"
    pack(str(golden_data / "images") + "/", golden_data / "list.txt", out, shuffle=True, seed=5,
         resize_height=8, resize_width=8, workers=1, progress=False, log=lambda m: None)
    assert [k.decode() for k, _ in iter_records(out)] == [f"{i:08d}_{f}" for i, (f, _) in enumerate(a)]


def test_resize_special_cases():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 12, 3), dtype=np.uint8)
    assert np.array_equal(resize_linear(img, 16, 12), img)          # same size: a copy
    half = resize_linear(img, 8, 6)                                 # exact 2x shrink: 2x2 average
    s = img.astype(int)
    assert np.array_equal(half, (s[::2, ::2] + s[1::2, ::2] + s[::2, 1::2] + s[1::2, 1::2] + 2) >> 2)
    up = resize_linear(np.full((5, 7, 1), 77, np.uint8), 13, 9)     # a flat image stays flat
    assert (up == 77).all()


def test_png_roundtrip_and_gray_png_formula():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    png = imencode(".png", img)
    assert np.array_equal(imdecode(png, "color"), img)
    r, g, b = (img[..., i].astype(int) for i in (2, 1, 0))
    assert np.array_equal(imdecode(png, "gray")[..., 0], (9797 * r + 19234 * g + 3737 * b) >> 15)
    assert np.array_equal(imdecode(png, "unchanged"), img)
