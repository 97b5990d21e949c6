"""Layer types without a golden fixture (Concat, Flatten, Eltwise, MemoryData, Softmax) against
independent references of Caffe's definitions, through a Net; and Caffe's fillers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prototxt_like import caffe_pb2
from prototxt_like.codec import parse_text
from replicate.fillers import fill
from replicate.net import Net
from replicate.rng import CaffeRNG

TWO = """force_backward: true
layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 5 } } }
"""


def run(text, feeds, top, top_diff_seed=0):
    net = Net(parse_text(TWO + text, caffe_pb2.NetParameter), caffe_pb2.TEST, rng=CaffeRNG(0))
    for k, v in feeds.items():
        net.blobs[k].data = v
    net.forward()
    g = torch.Generator().manual_seed(top_diff_seed)
    td = torch.randn(net.blobs[top].data.shape, generator=g)
    net.blobs[top].diff = td
    net.backward()
    return net, td


def ab():
    g = torch.Generator().manual_seed(3)
    return torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 3, 4, 5, generator=g)


def test_concat_and_flatten():
    a, b = ab()
    net, td = run('layer { name: "c" type: "Concat" bottom: "a" bottom: "b" top: "c" concat_param { axis: 2 } }',
                  {"a": a, "b": b}, "c")
    assert torch.equal(net.blobs["c"].data, torch.cat([a, b], 2))
    assert torch.equal(net.blobs["a"].diff, td[:, :, :4]) and torch.equal(net.blobs["b"].diff, td[:, :, 4:])
    net, td = run('layer { name: "f" type: "Flatten" bottom: "a" top: "f" }', {"a": a, "b": b}, "f")
    assert net.blobs["f"].data.shape == (2, 60) and torch.equal(net.blobs["a"].diff, td.reshape(2, 3, 4, 5))
    net, _ = run('layer { name: "f" type: "Flatten" bottom: "a" top: "f" flatten_param { axis: 1 end_axis: 2 } }',
                 {"a": a, "b": b}, "f")
    assert net.blobs["f"].data.shape == (2, 12, 5)


def test_eltwise():
    a, b = ab()
    net, td = run('layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "e" '
                  'eltwise_param { operation: SUM coeff: 0.5 coeff: -2 } }', {"a": a, "b": b}, "e")
    torch.testing.assert_close(net.blobs["e"].data, 0.5 * a - 2 * b, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(net.blobs["b"].diff, -2 * td)
    net, td = run('layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "e" '
                  'eltwise_param { operation: PROD } }', {"a": a, "b": b}, "e")
    assert torch.equal(net.blobs["e"].data, a * b) and torch.equal(net.blobs["a"].diff, b * td)
    b2 = b.clone()
    b2[0, 0, 0, 0] = a[0, 0, 0, 0]  # a tie between bottoms 0 and 1: Caffe's `a > b ? a : b` picks bottom 1
    net, td = run('layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "e" '
                  'eltwise_param { operation: MAX } }', {"a": a, "b": b2}, "e")
    assert torch.equal(net.blobs["e"].data, torch.maximum(a, b2))
    assert net.blobs["b"].diff[0, 0, 0, 0] == td[0, 0, 0, 0] and net.blobs["a"].diff[0, 0, 0, 0] == 0
    assert torch.equal(net.blobs["a"].diff + net.blobs["b"].diff, td)
    # from the third bottom on, only a strictly greater value takes over (a tie stays earlier)
    three = TWO.replace('top: "a" top: "b"', 'top: "a" top: "b" top: "c"')
    net = Net(parse_text(three + 'layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "e" '
                         'eltwise_param { operation: MAX coeff: 1 coeff: 1 coeff: 1 } }', caffe_pb2.NetParameter),
              caffe_pb2.TEST)
    c = torch.maximum(a, b2).clone()
    net.blobs["a"].data, net.blobs["b"].data, net.blobs["c"].data = a, b2, c
    net.forward()
    net.blobs["e"].diff = td
    net.backward()
    assert not net.blobs["c"].diff.any() if net.blobs["c"].diff is not None else True
    assert torch.equal(net.blobs["a"].diff + net.blobs["b"].diff, td)


def test_softmax_layer():
    a, b = ab()
    net, td = run('layer { name: "s" type: "Softmax" bottom: "a" top: "s" softmax_param { axis: 2 } }',
                  {"a": a, "b": b}, "s")
    p = torch.softmax(a.double(), 2)
    torch.testing.assert_close(net.blobs["s"].data.double(), p, rtol=1e-6, atol=1e-7)
    ref = p * (td.double() - (td.double() * p).sum(2, keepdim=True))
    torch.testing.assert_close(net.blobs["a"].diff.double(), ref, rtol=1e-5, atol=1e-6)


def test_memory_data_wraps_in_order():
    text = 'layer { name: "m" type: "MemoryData" top: "d" top: "l" memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 } }'
    net = Net(parse_text(text, caffe_pb2.NetParameter), caffe_pb2.TEST)
    data = np.arange(24, dtype=np.float32).reshape(6, 1, 2, 2)
    net.set_input_arrays(data, np.arange(6))
    seen = []
    for _ in range(4):
        net.forward()
        seen.append(net.blobs["l"].data.tolist())
    assert seen == [[0, 1], [2, 3], [4, 5], [0, 1]]
    with pytest.raises(ValueError, match="multiple of batch_size"):
        net.set_input_arrays(data[:5], np.arange(5))


def F(**kw) -> caffe_pb2.FillerParameter:
    return caffe_pb2.FillerParameter(**kw)


def test_fillers():
    rng = CaffeRNG(5)
    raw = CaffeRNG(5).uint32(400).astype(np.float32)
    u = fill(F(type="uniform", min=-2, max=3), (20, 20), rng)
    # boost::uniform_real<float>(a, nextafter(b)) on mt19937: float(u32) / 2^32 * (max - min) + min
    hi = np.nextafter(np.float32(3), np.float32(np.inf))
    expect = raw / np.float32(4294967296.0) * (hi - np.float32(-2)) + np.float32(-2)
    assert np.array_equal(u.reshape(-1), expect.astype(np.float32))
    x = fill(F(type="xavier"), (64, 16, 3, 3), CaffeRNG(1))
    bound = math.sqrt(3 / (16 * 9))
    assert np.abs(x).max() <= bound and np.abs(x).max() > 0.95 * bound
    x = fill(F(type="xavier", variance_norm=caffe_pb2.FillerParameter.AVERAGE), (64, 16, 3, 3), CaffeRNG(1))
    assert np.abs(x).max() <= math.sqrt(3 / ((16 * 9 + 64 * 9) / 2))
    assert np.all(fill(F(type="constant", value=0.1), (3,), rng) == np.float32(0.1))
    g = fill(F(type="gaussian", std=0.01, mean=1.0), (200, 500), CaffeRNG(2))
    assert abs(g.mean() - 1.0) < 1e-3 and abs(g.std() - 0.01) < 2e-4
    s = fill(F(type="gaussian", std=1.0, sparse=20), (100, 50), CaffeRNG(3))
    assert abs((s != 0).mean() - 0.2) < 0.02
    m = fill(F(type="msra"), (64, 32, 3, 3), CaffeRNG(4))
    assert abs(m.std() - math.sqrt(2 / (32 * 9))) < 0.01
    pu = fill(F(type="positive_unitball"), (5, 7), CaffeRNG(6))
    assert np.allclose(pu.sum(1), 1, atol=1e-6) and (pu >= 0).all()
    with pytest.raises(ValueError, match="unknown filler type 'nope'"):
        fill(F(type="nope"), (2,), rng)
    assert not np.array_equal(fill(F(type="gaussian", std=1), (10,), CaffeRNG(1)),
                              fill(F(type="gaussian", std=1), (10,), CaffeRNG(2)))
