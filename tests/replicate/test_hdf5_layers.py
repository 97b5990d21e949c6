"""HDF5Data and HDF5Output (Caffe 1.0's HDF5DataLayer / HDF5OutputLayer) on files written here with
h5py.  The shuffle is Caffe's ``std::random_shuffle`` on the C library's unseeded ``rand()``: checked
against a program compiled here that runs libstdc++'s random_shuffle and glibc's rand() through
the same sequence of file and row permutations as HDF5DataLayer's LayerSetUp / Next."""
from __future__ import annotations

import shutil
import subprocess

import h5py
import numpy as np
import pytest

from prototxt_like import caffe_pb2
from prototxt_like.codec import parse_text
from replicate.layers import hdf5_data
from replicate.layers.hdf5_data import GlibcRand, random_shuffle
from replicate.net import Net, NetError
from replicate.rng import CaffeRNG

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST

# HDF5DataLayer's row order, re-typed from hdf5_data_layer.cpp's logic with the real
# std::random_shuffle and rand(): prints "file row" for N rows given the files' row counts
PROGRAM = r"""
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>
int main(int argc, char** argv) {
  int shuffle = atoi(argv[1]), n = atoi(argv[2]);
  std::vector<int> rows;
  for (int i = 3; i < argc; ++i) rows.push_back(atoi(argv[i]));
  int nf = rows.size();
  std::vector<int> fperm(nf), dperm;
  for (int i = 0; i < nf; ++i) fperm[i] = i;
  if (shuffle) std::random_shuffle(fperm.begin(), fperm.end());
  int cf = 0, cr = 0;
  auto load = [&]() {
    dperm.resize(rows[fperm[cf]]);
    for (int i = 0; i < (int)dperm.size(); ++i) dperm[i] = i;
    if (shuffle) std::random_shuffle(dperm.begin(), dperm.end());
  };
  load();
  for (int k = 0; k < n; ++k) {
    printf("%d %d\n", fperm[cf], dperm[cr]);
    if (++cr == (int)dperm.size()) {
      if (nf > 1) {
        if (++cf == nf) { cf = 0; if (shuffle) std::random_shuffle(fperm.begin(), fperm.end()); }
        load();
      }
      cr = 0;
      if (shuffle) std::random_shuffle(dperm.begin(), dperm.end());
    }
  }
  printf("%d\n", rand());
  return 0;
}
"""


@pytest.fixture(scope="module")
def caffe_order(tmp_path_factory):
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("needs g++ (libstdc++'s random_shuffle and glibc's rand())")
    d = tmp_path_factory.mktemp("hdf5order")
    (d / "p.cpp").write_text(PROGRAM)
    subprocess.run([gxx, "-O2", "-std=c++11", "-w", str(d / "p.cpp"), "-o", str(d / "p")], check=True)

    def run(shuffle, n, rows):
        out = subprocess.run([str(d / "p"), str(int(shuffle)), str(n), *map(str, rows)], check=True,
                             capture_output=True, text=True).stdout.split("\n")
        picks = [tuple(map(int, l.split())) for l in out[:n]]
        return picks, int(out[n])
    return run


@pytest.fixture(autouse=True)
def fresh_libc_rand():
    """Each test starts as a fresh Caffe process: rand() unseeded (seed 1)."""
    hdf5_data.libc_rand().seed(1)
    yield


def test_glibc_rand_is_libc():
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    for seed in (1, 7, 2**31 + 5, 0):
        libc.srand(ctypes.c_uint(seed))
        want = [libc.rand() for _ in range(2000)]
        g = GlibcRand(seed)
        assert [g.rand() for _ in range(2000)] == want
    libc.srand(1)


def _write(folder, rows, seed=0, dtype=np.float32, label_dtype=np.int32):
    rs = np.random.RandomState(seed)
    files = []
    for k, n in enumerate(rows):
        p = folder / f"f{k}.h5"
        with h5py.File(p, "w") as f:
            f["data"] = (rs.randn(n, 2, 3) * 10).astype(dtype) + 1000 * k
            f["label"] = (np.arange(n) + 100 * k).astype(label_dtype)
        files.append(p)
    (folder / "list.txt").write_text("  ".join(map(str, files[:1])) + "\n" + "\n".join(map(str, files[1:])) + "\n")
    return folder / "list.txt", files


def _net(source, batch, shuffle=False, tops=("data", "label"), extra=""):
    t = " ".join(f'top: "{x}"' for x in tops)
    return Net(parse_text(f"""layer {{ name: "h" type: "HDF5Data" {t} {extra}
        hdf5_data_param {{ source: "{source}" batch_size: {batch} shuffle: {str(shuffle).lower()} }} }}""",
                          caffe_pb2.NetParameter), TRAIN, rng=CaffeRNG(1))


def _expected(files, picks, dtype=np.float32):
    with_data = []
    for p in files:
        with h5py.File(p, "r") as f:
            with_data.append((f["data"][()].astype(dtype), f["label"][()].astype(dtype)))
    return [(with_data[fi][0][r], with_data[fi][1][r]) for fi, r in picks]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("rows", [[5], [3, 4, 2], [1, 6]])
def test_rows_in_caffes_order(tmp_path, caffe_order, rows, shuffle):
    source, files = _write(tmp_path, rows)
    batch, nb = 3, 9
    picks, next_rand = caffe_order(shuffle, batch * nb, rows)
    want = _expected(files, picks)
    net = _net(source, batch, shuffle)
    try:
        assert net._meta_shapes["data"] == (batch, 2, 3) and net._meta_shapes["label"] == (batch,)
        for b in range(nb):
            net.forward()
            d, l = net.blobs["data"].data.numpy(), net.blobs["label"].data.numpy()
            for i in range(batch):
                wd, wl = want[b * batch + i]
                np.testing.assert_array_equal(d[i].view(np.uint32), wd.view(np.uint32))
                assert l[i] == wl
        assert hdf5_data.libc_rand().rand() == next_rand  # the same number of rand() calls
    finally:
        net.close()


def test_double_data_is_converted_by_hdf5(tmp_path):
    p = tmp_path / "d.h5"
    vals = np.array([[0.1, 1e-50, 3.4e38, 1 / 3], [2.5, -0.0, 16777217.0, 1e39]], dtype=np.float64)
    with h5py.File(p, "w") as f:
        f["x"] = vals
    (tmp_path / "l.txt").write_text(f"{p}\n")
    net = _net(tmp_path / "l.txt", 2, tops=("x",))
    try:
        net.forward()
        got = net.blobs["x"].data.numpy()
        with h5py.File(p, "r") as f:
            want = f["x"].astype(np.float32)[()]  # HDF5's own double -> float conversion
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        np.testing.assert_array_equal(got[:, :3], vals[:, :3].astype(np.float32))
    finally:
        net.close()


def test_resume_state(tmp_path):
    source, _ = _write(tmp_path, [3, 4, 2])
    a = _net(source, 2, True)
    try:
        for _ in range(3):
            a.forward()
        st = a.layers[0].resume_state()
        want = []
        for _ in range(6):
            a.forward()
            want.append(a.blobs["data"].data.clone().numpy())
    finally:
        a.close()
    hdf5_data.libc_rand().seed(1)
    b = _net(source, 2, True)
    try:
        b.layers[0].restore_state(st)
        for w in want:
            b.forward()
            np.testing.assert_array_equal(b.blobs["data"].data.numpy(), w)
    finally:
        b.close()


@pytest.mark.parametrize("case,message", [
    ("transform", "does not transform data"),
    ("missing_dataset", "Failed to find HDF5 dataset"),
    ("rows", "rows"),
    ("no_source", "Failed to open source file"),
    ("empty_source", "at least 1 HDF5 filename"),
    ("string", "Unsupported datatype"),
])
def test_errors(tmp_path, case, message):
    source, files = _write(tmp_path, [3, 2])
    tops, extra = ("data", "label"), ""
    if case == "transform":
        extra = "transform_param { scale: 2 }"
    elif case == "missing_dataset":
        tops = ("data", "nope")
    elif case == "rows":
        with h5py.File(files[0], "a") as f:
            del f["label"]
            f["label"] = np.arange(4, dtype=np.float32)
    elif case == "no_source":
        source = tmp_path / "none.txt"
    elif case == "empty_source":
        source.write_text("\n \n")
    elif case == "string":
        with h5py.File(files[0], "a") as f:
            f["s"] = np.array([b"a", b"b", b"c"])
        tops = ("data", "s")
    with pytest.raises(NetError, match=message):
        _net(source, 2, tops=tops, extra=extra)


def test_hdf5_output_writes_one_batch(tmp_path):
    out = tmp_path / "out.h5"
    text = f"""
layer {{ name: "in" type: "Input" top: "x" top: "y" input_param {{ shape {{ dim: 3 dim: 2 dim: 5 }} shape {{ dim: 3 }} }} }}
layer {{ name: "out" type: "HDF5Output" bottom: "x" bottom: "y" hdf5_output_param {{ file_name: "{out}" }} }}
"""
    out.write_bytes(b"old contents")
    net = Net(parse_text(text, caffe_pb2.NetParameter), TEST, rng=CaffeRNG(1))
    try:
        x = np.random.RandomState(0).randn(3, 2, 5).astype(np.float32)
        net.blobs["x"].data.copy_(__import__("torch").from_numpy(x))
        net.blobs["y"].data.copy_(__import__("torch").tensor([1.0, 2.0, 3.0]))
        net.forward()
        with h5py.File(out, "r") as f:
            assert sorted(f) == ["data", "label"]
            assert f["data"].dtype == np.float32 and f["data"].shape == (3, 2, 5, 1)
            assert f["label"].shape == (3, 1, 1, 1)
            np.testing.assert_array_equal(f["data"][()].reshape(3, 2, 5), x)
            np.testing.assert_array_equal(f["label"][()].ravel(), [1, 2, 3])
        with pytest.raises(Exception, match="Failed to make float dataset data"):
            net.forward()  # as Caffe: the datasets exist already
    finally:
        net.close()
    # HDF5Output's file read back by HDF5Data (4-D rows)
    (tmp_path / "l.txt").write_text(f"{out}\n")
    back = _net(tmp_path / "l.txt", 3)
    try:
        back.forward()
        np.testing.assert_array_equal(back.blobs["data"].data.numpy().reshape(3, 2, 5), x)
    finally:
        back.close()
