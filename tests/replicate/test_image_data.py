"""ImageData (Caffe 1.0's ImageDataLayer) from Caffe's source semantics; no golden exists for it.

* ``CaffeRNG.uniform_int`` and ``caffe::shuffle`` against Boost 1.74 itself (a small program
  compiled here against the system's headers, as test_rng_boost.py does);
* an ImageData layer over PNGs equals a Data layer over an LMDB packed from the same images
  (``data_prep`` pack) with the same seed: both run Caffe's DataTransformer, so the batches agree
  bit for bit once the set-up draws line up.  ImageData draws (InitRand, [shuffle seed],
  [rand_skip], InitRand, thread seed), Data draws (InitRand, InitRand, thread seed): without
  shuffle/rand_skip the counts agree; with shuffle the Data layer's generator is advanced by one
  draw first, and its database packed in the order the shuffle gives;
* TEST phase with resize and grey; list parsing; resume; errors.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from prototxt_like import caffe_pb2
from prototxt_like.codec import parse_text
from replicate.layers.image_data import caffe_shuffle_inplace, read_image_list
from replicate.net import Net, NetError
from replicate.rng import CaffeRNG

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST

BOOST_PROGRAM = r"""
#include <boost/random/mersenne_twister.hpp>
#include <boost/random/uniform_int.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <vector>
// caffe::shuffle of include/caffe/util/rng.hpp (Caffe 1.0), re-typed here
template <class It, class Gen> void caffe_shuffle(It begin, It end, Gen* gen) {
  typedef typename std::iterator_traits<It>::difference_type D;
  D length = std::distance(begin, end);
  if (length <= 0) return;
  for (D i = length - 1; i > 0; --i) {
    boost::uniform_int<D> dist(0, i);
    std::iter_swap(begin + i, begin + dist(*gen));
  }
}
int main(int argc, char** argv) {
  unsigned seed = strtoul(argv[2], 0, 10);
  boost::mt19937 rng(seed);
  if (argv[1][0] == 'u') {  // u SEED LO HI N: N draws of uniform_int<long>(LO, HI), then the next raw word
    long lo = strtol(argv[3], 0, 10), hi = strtol(argv[4], 0, 10);
    int n = atoi(argv[5]);
    for (int i = 0; i < n; ++i) { boost::uniform_int<long> d(lo, hi); printf("%ld\n", d(rng)); }
  } else {  // s SEED N: caffe::shuffle of 0..N-1 twice, then the next raw word
    int n = atoi(argv[3]);
    std::vector<int> v(n);
    for (int i = 0; i < n; ++i) v[i] = i;
    for (int r = 0; r < 2; ++r) { caffe_shuffle(v.begin(), v.end(), &rng); for (int x : v) printf("%d\n", x); }
  }
  printf("%u\n", (unsigned)rng());
  return 0;
}
"""


@pytest.fixture(scope="module")
def boost_prog(tmp_path_factory):
    gxx = shutil.which("g++")
    if gxx is None or not Path("/usr/include/boost/random/uniform_int.hpp").exists():
        pytest.skip("needs g++ and Boost 1.74's headers (Debian's libboost1.74-dev)")
    d = tmp_path_factory.mktemp("boost_uniform_int")
    (d / "u.cpp").write_text(BOOST_PROGRAM)
    subprocess.run([gxx, "-O2", "-std=c++14", str(d / "u.cpp"), "-o", str(d / "u")], check=True)
    return d / "u"


def _run(exe, *args):
    return [int(x) for x in subprocess.run([str(exe), *map(str, args)], check=True, capture_output=True,
                                           text=True).stdout.split()]


@pytest.mark.parametrize("lo,hi", [(0, 1), (0, 2), (0, 6), (-5, 5), (0, 1000), (0, 2**31), (0, 2**32 - 2),
                                   (0, 2**32 - 1), (0, 2**32), (7, 2**33 + 5), (0, 3 * 2**32 - 1),
                                   (-(2**62), 2**62), (-(2**63), 2**63 - 1)])
def test_uniform_int_is_boosts(boost_prog, lo, hi):
    n = 300
    want = _run(boost_prog, "u", 1234, lo, hi, n)
    rng = CaffeRNG(1234)
    got = [rng.uniform_int(lo, hi) for _ in range(n)]
    assert got == want[:n]
    assert rng.rand() == want[n]  # the same number of engine calls


@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 1000])
def test_caffe_shuffle_is_boosts(boost_prog, n):
    want = _run(boost_prog, "s", 99, n)
    items = list(range(n))
    rng = CaffeRNG(99)
    caffe_shuffle_inplace(items, rng)
    first = list(items)
    caffe_shuffle_inplace(items, rng)
    assert first + items == want[:2 * n]
    assert rng.rand() == want[2 * n]
    # the one-value method agrees
    ref, r2 = list(range(n)), CaffeRNG(99)
    for i in range(n - 1, 0, -1):
        j = r2.uniform_int(0, i)
        ref[i], ref[j] = ref[j], ref[i]
    assert ref == first


# --- images, lists and databases ----------------------------------------------------------------
SIZES = [(12, 10), (9, 11), (10, 10), (16, 9), (8, 8), (13, 12), (11, 15)]


def _write_images(folder: Path, gray_too=False):
    from replicate.data.image import imencode
    rs = np.random.RandomState(5)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, (h, w) in enumerate(SIZES):
        img = rs.randint(0, 256, (h, w, 3), dtype=np.uint8)
        name = f"im {i}.png" if i == 3 else f"im{i}.png"  # a space in a name: the label is after the last one
        (folder / name).write_bytes(imencode("png", img))
        names.append((name, (i * 7) % 5))
    return names


def _write_list(path: Path, entries):
    path.write_text("".join(f"{n} {lab}\n" for n, lab in entries))


def _pack(root: Path, list_file: Path, out: Path, **kw):
    from data_prep.pack import pack
    pack(str(root) + "/", str(list_file), str(out), backend="lmdb", progress=False, workers=1,
         log=lambda m: None, **kw)
    return out


TRANSFORM = "transform_param { crop_size: 8 mirror: true scale: 0.5 mean_value: 100 mean_value: 110 mean_value: 120 }"


def _image_data_net(list_file, root, batch, extra="", transform=TRANSFORM):
    return parse_text(f"""
layer {{ name: "img" type: "ImageData" top: "data" top: "label" {transform}
  image_data_param {{ source: "{list_file}" root_folder: "{root}/" batch_size: {batch} {extra} }} }}
""", caffe_pb2.NetParameter)


def _data_net(db, batch, transform=TRANSFORM):
    return parse_text(f"""
layer {{ name: "d" type: "Data" top: "data" top: "label" {transform}
  data_param {{ source: "{db}" backend: LMDB batch_size: {batch} }} }}
""", caffe_pb2.NetParameter)


def _batches(net, n):
    out = []
    for _ in range(n):
        net.forward()
        out.append((net.blobs["data"].data.clone().numpy(), net.blobs["label"].data.clone().numpy()))
    return out


def _assert_same(a, b):
    assert len(a) == len(b)
    for (d1, l1), (d2, l2) in zip(a, b):
        assert d1.shape == d2.shape
        np.testing.assert_array_equal(d1.view(np.uint32), d2.view(np.uint32))
        np.testing.assert_array_equal(l1, l2)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imagedata")
    entries = _write_images(d / "img")
    _write_list(d / "list.txt", entries)
    db = _pack(d / "img", d / "list.txt", d / "lmdb")
    return d, entries, db


@pytest.mark.parametrize("seed", [1, 77])
def test_train_crop_mirror_equals_data_layer(images, seed):
    d, entries, db = images
    a = Net(_image_data_net(d / "list.txt", d / "img", 3), TRAIN, rng=CaffeRNG(seed), data_workers=2)
    b = Net(_data_net(db, 3), TRAIN, rng=CaffeRNG(seed), data_workers=1)
    try:
        got, want = _batches(a, 6), _batches(b, 6)  # 18 images: more than two passes over 7
        _assert_same(got, want)
        assert a.ctx.rng.rand() == b.ctx.rng.rand()  # both drew 3 at set-up
        assert [lab for _, lab in got[0:1]][0].tolist() == [float(e[1]) for e in entries[:3]]
    finally:
        a.close()
        b.close()


def test_shuffle_and_rand_skip_draws(images, tmp_path):
    d, entries, _ = images
    from data_prep.pack import caffe_shuffle
    seed = 4242
    # ImageData's set-up draws: InitRand, shuffle seed, rand_skip, InitRand (the transformer's), thread
    draws = CaffeRNG(seed).uint32(6).tolist()
    order = caffe_shuffle(list(range(len(entries))), draws[1])  # data_prep's own implementation
    skip = draws[2] % 3
    shuffled = [entries[i] for i in order]
    # the first pass reads shuffled[skip:]; a database of just those, read by a Data layer whose
    # set-up draws (InitRand, InitRand, thread) are draws 2, 3, 4: its generator advanced by two
    _write_list(tmp_path / "first_pass.txt", shuffled[skip:])
    db = _pack(d / "img", tmp_path / "first_pass.txt", tmp_path / "lmdb")
    a = Net(_image_data_net(d / "list.txt", d / "img", 1, "shuffle: true rand_skip: 3"), TRAIN,
            rng=CaffeRNG(seed), data_workers=1)
    rb = CaffeRNG(seed)
    rb.uint32(2)
    b = Net(_data_net(db, 1), TRAIN, rng=rb, data_workers=1)
    try:
        n1 = len(entries) - skip
        _assert_same(_batches(a, n1), _batches(b, n1))
        assert a.ctx.rng.rand() == b.ctx.rng.rand() == draws[5]
        # the second pass: the list reshuffled by the same prefetch generator, continued
        prng = CaffeRNG(draws[1])
        perm = list(range(len(entries)))
        caffe_shuffle_inplace(perm, prng)
        assert [entries[i] for i in perm] == shuffled
        caffe_shuffle_inplace(perm, prng)
        second = _batches(a, len(entries))
        assert [float(lab[0]) for _, lab in second] == [float(entries[i][1]) for i in perm]
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("gray", [False, True])
def test_test_phase_resize_and_gray_equal_data_layer(images, tmp_path, gray):
    d, entries, _ = images
    # convert_imageset's resize and grey are ReadImageToCVMat's, as ImageData's
    db = _pack(d / "img", d / "list.txt", tmp_path / "lmdb", resize_height=11, resize_width=9, gray=gray)
    transform = "transform_param { crop_size: 7 scale: 0.25 mean_value: 3 }"
    extra = "new_height: 11 new_width: 9" + (" is_color: false" if gray else "")
    a = Net(_image_data_net(d / "list.txt", d / "img", 4, extra, transform), TEST, rng=CaffeRNG(3))
    b = Net(_data_net(db, 4, transform), TEST, rng=CaffeRNG(3))
    try:
        got, want = _batches(a, 3), _batches(b, 3)
        _assert_same(got, want)
        assert got[0][0].shape == (4, 1 if gray else 3, 7, 7)
        assert a.ctx.rng.rand() == b.ctx.rng.rand()  # TEST without mirror: only the thread's draw
    finally:
        a.close()
        b.close()


def test_list_parsing_is_getline_and_last_space(tmp_path):
    p = tmp_path / "l.txt"
    p.write_bytes(b"a b.png 3\nc.png -2\r\n\nnolabel\nd.png 12x\ne.png 99999999999")
    assert read_image_list(p) == [(b"a b.png", 3), (b"c.png", -2), (b"", 0), (b"nolabel", 0), (b"d.png", 12),
                                  (b"e.png", 1215752191)]  # (int) strtol: the low 32 bits


def test_top_shapes_and_varying_sizes_without_crop(images, tmp_path):
    d, entries, _ = images
    # no crop, no resize: each batch takes its first image's shape; images of one batch must agree
    _write_list(tmp_path / "two.txt", [entries[2], entries[2], entries[4]])
    net = Net(_image_data_net(tmp_path / "two.txt", d / "img", 1, transform=""), TEST, rng=CaffeRNG(1))
    try:
        assert net._meta_shapes["data"] == (1, 3, 10, 10) and net._meta_shapes["label"] == (1,)
        shapes = [x.shape for x, _ in _batches(net, 3)]
        assert shapes == [(1, 3, 10, 10), (1, 3, 10, 10), (1, 3, 8, 8)]
    finally:
        net.close()
    net = Net(_image_data_net(tmp_path / "two.txt", d / "img", 3, transform=""), TEST, rng=CaffeRNG(1))
    try:
        with pytest.raises(Exception, match="does not fit"):
            net.forward()
    finally:
        net.close()


def test_resume_state_continues_exactly(images):
    d, entries, _ = images
    text = _image_data_net(d / "list.txt", d / "img", 2, "shuffle: true")
    a = Net(text, TRAIN, rng=CaffeRNG(11), data_workers=1)
    try:
        _batches(a, 3)
        state = a.layers[0].resume_state()
        want = _batches(a, 6)
    finally:
        a.close()
    b = Net(text, TRAIN, rng=CaffeRNG(12), data_workers=2)
    try:
        _batches(b, 1)
        b.layers[0].restore_state(state)
        _assert_same(_batches(b, 6), want)
    finally:
        b.close()


@pytest.mark.parametrize("extra,top2,message", [
    ("new_height: 5", True, "new_height and new_width"),
    ("", False, "2 top blobs"),
    ("rand_skip: 1 batch_size: 0", True, "Positive batch size"),
])
def test_errors(images, extra, top2, message):
    d, _, _ = images
    text = f"""layer {{ name: "img" type: "ImageData" top: "data" {'top: "label"' if top2 else ''}
      image_data_param {{ source: "{d}/list.txt" root_folder: "{d}/img/" {extra} }} }}"""
    with pytest.raises(NetError, match=message):
        Net(parse_text(text, caffe_pb2.NetParameter), TEST, rng=CaffeRNG(1))


def test_missing_list_and_image(tmp_path):
    with pytest.raises(NetError, match="File is empty"):
        Net(_image_data_net(tmp_path / "none.txt", tmp_path, 1), TEST, rng=CaffeRNG(1))
    (tmp_path / "l.txt").write_text("missing.png 1\n")
    with pytest.raises(NetError, match="Could not load 'missing.png'"):
        Net(_image_data_net(tmp_path / "l.txt", tmp_path, 1), TEST, rng=CaffeRNG(1))
