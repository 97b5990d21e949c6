"""Net construction as Caffe's Net::Init: state rules, Split insertion, backward pruning, loss
weights, parameter sharing, weight copying, and the errors Caffe gives (naming layer and blob)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prototxt_like import caffe_pb2, save_caffemodel
from prototxt_like.codec import parse_text
from replicate.net import Net, NetError, filter_net, insert_splits
from replicate.rng import CaffeRNG

BASE = """
name: "t"
layer { name: "in" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 3 dim: 5 dim: 5 } shape { dim: 4 } } }
"""

IP = """
layer { name: "%s" type: "InnerProduct" bottom: "%s" top: "%s" %s
        inner_product_param { num_output: %d weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.1 } } }
"""


def netp(text: str) -> caffe_pb2.NetParameter:
    return parse_text(text, caffe_pb2.NetParameter)


def build(text: str, phase=caffe_pb2.TEST, **kw) -> Net:
    return Net(netp(text), phase, rng=CaffeRNG(1), **kw)


def names(net, splits=False):
    return [l.name for l in net.layers if splits or l.type != "Split"]


def test_state_rules():
    text = BASE + """
layer { name: "train_only" type: "ReLU" bottom: "data" top: "a" include { phase: TRAIN } }
layer { name: "test_only" type: "ReLU" bottom: "data" top: "a" include { phase: TEST } }
layer { name: "staged" type: "ReLU" bottom: "data" top: "b" include { stage: "deploy" } }
layer { name: "not_staged" type: "ReLU" bottom: "data" top: "b2" include { not_stage: "deploy" } }
layer { name: "leveled" type: "ReLU" bottom: "data" top: "c" include { min_level: 1 max_level: 2 } }
layer { name: "excluded_in_test" type: "ReLU" bottom: "data" top: "d" exclude { phase: TEST } }
"""
    assert names(build(text)) == ["in", "test_only", "not_staged"]
    assert names(build(text, caffe_pb2.TRAIN)) == ["in", "train_only", "not_staged", "excluded_in_test"]
    assert names(build(text, stages=["deploy"], level=1)) == ["in", "test_only", "staged", "leveled"]
    with pytest.raises(NetError, match="'x' specifies both include and exclude"):
        filter_net(netp(BASE + 'layer { name: "x" type: "ReLU" bottom: "data" top: "y" '
                               'include { phase: TEST } exclude { phase: TRAIN } }'))


def test_splits_follow_caffes_names_and_loss_weights():
    text = BASE + IP % ("fc", "data", "fc", "", 3) + """
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "fc" bottom: "label" top: "acc" }
layer { name: "scaled" type: "Eltwise" bottom: "loss" bottom: "loss" top: "l2" eltwise_param { operation: SUM } }
"""
    split = insert_splits(netp(text))
    layers = {l.name: l for l in split.layer}
    assert list(layers["fc_fc_0_split"].top) == ["fc_fc_0_split_0", "fc_fc_0_split_1"]
    assert list(layers["label_in_1_split"].top) == ["label_in_1_split_0", "label_in_1_split_1"]
    assert list(layers["acc"].bottom) == ["fc_fc_0_split_1", "label_in_1_split_1"]
    # without an explicit loss_weight, the loss top is used twice only by the Eltwise: its split
    # gets no loss weights (the LossLayer default is applied later, inside the layer)
    assert list(layers["loss_loss_0_split"].top) == ["loss_loss_0_split_0", "loss_loss_0_split_1"]
    explicit = netp(text.replace('top: "loss" }', 'top: "loss" loss_weight: 2 }'))
    s2 = {l.name: l for l in insert_splits(explicit).layer}
    assert list(s2["loss_loss_0_split"].loss_weight) == [2.0, 0.0, 0.0]
    assert len(s2["loss"].loss_weight) == 0
    assert list(s2["scaled"].bottom) == ["loss_loss_0_split_1", "loss_loss_0_split_2"]


def test_backward_pruning_and_propagate_down():
    text = BASE + IP % ("fc1", "data", "fc1", 'param { lr_mult: 0 } param { lr_mult: 0 }', 6) + \
        IP % ("fc2", "fc1", "fc2", "", 3) + """
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "fc2" bottom: "label" top: "acc" }
"""
    net = build(text, caffe_pb2.TRAIN)
    need = dict(zip(names(net, True), net.layer_need_backward))
    assert need == {"in": False, "fc1": False, "fc2": True, "fc2_fc2_0_split": True, "label_in_1_split": False,
                    "loss": True, "acc": False}
    net.forward()
    net.backward()
    assert not net.layer("fc1").params[0].diff.any(), "a frozen layer on the data gets no gradient"
    assert net.layer("fc2").params[0].diff.abs().sum() > 0
    # propagate_down: false stops the diff at fc2's bottom, so fc1 (trainable now) gets nothing
    text2 = text.replace('param { lr_mult: 0 } param { lr_mult: 0 }', '').replace(
        'bottom: "fc1" top: "fc2"', 'bottom: "fc1" top: "fc2" propagate_down: false')
    net2 = build(text2, caffe_pb2.TRAIN)
    net2.forward()
    net2.backward()
    assert not dict(zip(names(net2, True), net2.layer_need_backward))["fc1"]
    assert not net2.layer("fc1").params[0].diff.any()


def test_force_backward_reaches_the_data():
    net = build("force_backward: true\n" + BASE + IP % ("fc", "data", "fc", "", 2) +
                'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }',
                caffe_pb2.TRAIN)
    net.blobs["data"].data = torch.randn(4, 3, 5, 5)
    net.forward()
    net.backward()
    assert net.blobs["data"].diff is not None and net.blobs["data"].diff.abs().sum() > 0
    assert net.blobs["label"].diff is None or not net.blobs["label"].diff.any()


def test_loss_layer_defaults_and_automatic_top():
    text = BASE + IP % ("fc", "data", "fc", "", 3) + \
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" }'
    net = build(text, caffe_pb2.TRAIN)
    assert net.tops[-1] == ["(automatic)"] and net.output_names == []
    net.blobs["label"].data = torch.tensor([0.0, 1.0, 2.0, 1.0])
    loss = net.forward()
    assert loss == pytest.approx(float(net.blobs["(automatic)"].data), rel=0)
    assert list(net.to_proto().layer[-1].loss_weight) == [1.0], "Caffe writes the LossLayer default into the param"
    assert all(l.phase == caffe_pb2.TRAIN for l in net.to_proto().layer)
    weighted = build(text.replace('bottom: "label" }', 'bottom: "label" top: "l" loss_weight: 0.5 }'),
                     caffe_pb2.TRAIN)
    weighted.blobs["label"].data = torch.tensor([0.0, 1.0, 2.0, 1.0])
    weighted.copy_trained_layers_from(net.to_proto())
    assert weighted.forward() == pytest.approx(0.5 * loss, rel=1e-6)


@pytest.mark.parametrize("text,message", [
    (BASE + 'layer { name: "r" type: "ReLU" bottom: "nope" top: "r" }', "Unknown bottom blob 'nope' \\(layer 'r'"),
    (BASE + 'layer { name: "r" type: "ReLU" bottom: "data" top: "label" }', "Top blob 'label' produced by multiple"),
    (BASE + 'layer { name: "w" type: "Warp" bottom: "data" top: "w" }', "unknown layer type 'Warp'"),
    (BASE + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 4 } }',
     "layer 'c' \\(Convolution\\): kernel_size"),
    (BASE + 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: STOCHASTIC kernel_size: 2 } }',
     "layer 'p' \\(Pooling\\): only MAX and AVE"),
    (BASE + 'layer { name: "r" type: "ReLU" bottom: "data" bottom: "label" top: "r" }', "layer 'r' \\(ReLU\\): takes 1"),
])
def test_errors_name_the_layer(text, message):
    with pytest.raises(NetError, match=message):
        build(text)


def test_copy_trained_layers(tmp_path):
    text = BASE + IP % ("fc1", "data", "fc1", "", 6) + IP % ("fc2", "fc1", "fc2", "", 3)
    net = build(text)
    fc2_before = net.layer("fc2").params[0].data.clone()
    w = np.arange(6 * 75, dtype=np.float32).reshape(6, 75)
    model = tmp_path / "m.caffemodel"
    other = netp(BASE + IP % ("fc1", "data", "fc1", "", 6) + IP % ("extra", "fc1", "e", "", 2))
    save_caffemodel(model, other, {"fc1": [w, np.ones(6, np.float32)], "extra": [np.zeros((2, 6), np.float32),
                                                                                 np.zeros(2, np.float32)]})
    net.copy_trained_layers_from(str(model))
    assert np.array_equal(net.layer("fc1").params[0].data.numpy(), w)
    assert torch.equal(net.layer("fc2").params[0].data, fc2_before), "absent layers keep their initialisation"
    bad = tmp_path / "bad.caffemodel"
    save_caffemodel(bad, netp(BASE + IP % ("fc1", "data", "fc1", "", 5)),
                    {"fc1": [np.zeros((5, 75), np.float32), np.zeros(5, np.float32)]})
    with pytest.raises(NetError, match=r"layer 'fc1'.*bad.caffemodel.*Source param shape is 5 75 \(375\); "
                                       r"target param shape is 6 75 \(450\)"):
        net.copy_trained_layers_from(str(bad))


def test_shared_parameters_accumulate_into_one_blob():
    text = BASE + IP % ("a", "data", "a", 'param { name: "w" } param { name: "b" }', 4) + \
        IP % ("b", "data", "b", 'param { name: "w" } param { name: "b" }', 4) + """
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "s" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "s" bottom: "label" top: "loss" }"""
    net = build(text, caffe_pb2.TRAIN)
    assert len(net.learnable) == 2
    assert net.layer("a").params[0] is net.layer("b").params[0]
    net.blobs["data"].data = torch.randn(4, 3, 5, 5)
    net.forward()
    assert torch.equal(net.blobs["a"].data, net.blobs["b"].data)
    net.backward()
    single = build(text.replace('param { name: "w" } param { name: "b" }', ""), caffe_pb2.TRAIN)
    single.copy_trained_layers_from(net.to_proto())
    single.blobs["data"].data = net.blobs["data"].data
    single.forward()
    single.backward()
    expect = single.layer("a").params[0].diff + single.layer("b").params[0].diff
    torch.testing.assert_close(net.layer("a").params[0].diff, expect, rtol=1e-6, atol=1e-7)


def test_permissive_sharing_views_the_owner():
    """share_mode PERMISSIVE: the same count in another shape; the sharer computes with a view of
    the owner's blob, and a shape or count mismatch is an error naming the parameter."""
    text = BASE + """
layer { name: "a" type: "InnerProduct" bottom: "data" top: "a" param { name: "w" }
        inner_product_param { num_output: 5 bias_term: false weight_filler { type: "xavier" } } }
layer { name: "t" type: "InnerProduct" bottom: "data" top: "t" param { name: "w" share_mode: PERMISSIVE }
        inner_product_param { num_output: 5 transpose: true bias_term: false } }
"""
    net = build(text)
    assert len(net.learnable) == 1
    w = net.layer("a").params[0].data
    assert net.layer("t").params[0].shape == (75, 5)
    assert torch.equal(net.layer("t").params[0].data, w.reshape(75, 5))
    x = torch.randn(4, 3, 5, 5)
    net.blobs["data"].data = x
    net.forward()
    torch.testing.assert_close(net.blobs["t"].data, x.reshape(4, 75) @ w.reshape(75, 5), rtol=1e-5, atol=1e-6)
    with pytest.raises(NetError, match="Cannot share param 'w'.*shape mismatch"):
        build(text.replace(" share_mode: PERMISSIVE", ""))
    with pytest.raises(NetError, match="Cannot share param 'w'"):
        build(text.replace("num_output: 5 transpose", "num_output: 4 transpose"))
