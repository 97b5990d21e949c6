"""V0/V1 nets and old solvers upgrade to exactly what Caffe's tools wrote."""
import pytest

import prototxt_like as pl
from prototxt_like import caffe_pb2

NETS = ["half0A_imagenet_train", "half0A_imagenet_val", "transfer0A0B_1_3_imagenet_train", "v1_net"]
SOLVERS = ["half0A_imagenet_solver", "solver_type"]


def _input(formats, name):
    (path,) = [p for p in formats.glob(f"{name}.v*.prototxt")]
    return path


@pytest.mark.parametrize("name", NETS)
def test_net_upgrade_equals_caffe(formats, name):
    ours = pl.load_net(_input(formats, name))
    caffe = caffe_pb2.NetParameter()
    from google.protobuf import text_format
    text_format.Parse((formats / f"{name}.upgraded.prototxt").read_text(), caffe)
    assert ours == caffe


@pytest.mark.parametrize("name", NETS + SOLVERS)
def test_upgraded_text_is_byte_identical(formats, name):
    src = _input(formats, name)
    load = pl.load_solver if "solver" in name else pl.load_net
    assert pl.to_text(load(src)) == (formats / f"{name}.upgraded.prototxt").read_text()


@pytest.mark.parametrize("name", SOLVERS)
def test_solver_upgrade_equals_caffe(formats, name):
    ours = pl.load_solver(_input(formats, name))
    caffe = pl.load_solver(formats / f"{name}.upgraded.prototxt", upgrade=False)
    assert ours == caffe


def test_solver_details(formats):
    s = pl.load_solver(formats / "solver_type.v1.prototxt")
    assert s.type == "Nesterov" and not s.HasField("solver_type")
    s = pl.load_solver(formats / "half0A_imagenet_solver.v0.prototxt")
    assert s.solver_mode == caffe_pb2.SolverParameter.GPU  # written as `solver_mode: 1`


def test_v0_data_layer_fields_move(formats):
    net = pl.load_net(formats / "half0A_imagenet_train.v0.prototxt")
    data = net.layer[0]
    assert data.type == "Data"
    assert data.transform_param.crop_size == 227 and data.transform_param.mirror
    assert data.transform_param.mean_file == "imagenet_mean.binaryproto"
    assert data.data_param.batch_size == 256 and data.data_param.source == "imagenet_train_leveldb"
    assert data.data_param.backend == caffe_pb2.DataParameter.LEVELDB  # the default
    conv1 = net.layer[1]
    assert [(p.lr_mult, p.decay_mult) for p in conv1.param] == [(1, 1), (2, 0)]
    assert list(conv1.convolution_param.kernel_size) == [11]


def test_frozen_layers_keep_zero_lr(formats):
    net = pl.load_net(formats / "transfer0A0B_1_3_imagenet_train.v0.prototxt")
    frozen = [l.name for l in net.layer if l.param and l.param[0].lr_mult == 0]
    assert frozen, "transfer nets freeze their copied layers with blobs_lr: 0"


def test_text_round_trip(formats):
    net = pl.load_net(formats / "half0A_imagenet_train.v0.prototxt")
    assert pl.load_net(pl.to_text(net)) == net


def test_padding_layers_fold_into_next_conv():
    text = """
    name: "p"
    input: "data" input_dim: 1 input_dim: 3 input_dim: 9 input_dim: 9
    layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
    layers { layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 } bottom: "pad1" top: "conv1" }
    layers { layer { name: "pad2" type: "padding" pad: 1 } bottom: "conv1" top: "pad2" }
    layers { layer { name: "pool1" type: "pool" kernelsize: 2 stride: 2 } bottom: "pad2" top: "pool1" }
    """
    net = pl.load_net(text)
    assert [l.name for l in net.layer] == ["input", "conv1", "pool1"]
    inp, conv, pool = net.layer
    assert inp.type == "Input" and list(inp.top) == ["data"]
    assert list(inp.input_param.shape[0].dim) == [1, 3, 9, 9]
    assert list(conv.bottom) == ["data"] and list(conv.convolution_param.pad) == [2]
    assert list(pool.bottom) == ["conv1"] and pool.pooling_param.pad == 1


def test_input_shape_becomes_first_input_layer():
    net = pl.load_net('input: "a" input_shape { dim: 2 dim: 5 } '
                      'layer { name: "ip" type: "InnerProduct" bottom: "a" top: "b" '
                      'inner_product_param { num_output: 3 } }')
    assert [l.name for l in net.layer] == ["input", "ip"]
    assert list(net.layer[0].input_param.shape[0].dim) == [2, 5]
    assert not net.input and not net.input_shape


def test_v1_data_param_transform_fields_move():
    net = pl.load_net('layers { name: "d" type: DATA top: "x" '
                      'data_param { source: "s" batch_size: 4 scale: 0.5 crop_size: 3 mirror: true mean_file: "m" } }')
    d = net.layer[0]
    assert d.type == "Data"
    assert d.transform_param == caffe_pb2.TransformationParameter(scale=0.5, crop_size=3, mirror=True, mean_file="m")
    assert d.data_param == caffe_pb2.DataParameter(source="s", batch_size=4)


def test_v1_param_names_and_share_mode():
    net = pl.load_net('layers { name: "c" type: CONVOLUTION param: "w" param: "b" '
                      'blob_share_mode: PERMISSIVE blobs_lr: 3 weight_decay: 0 }')
    p = net.layer[0].param
    assert [x.name for x in p] == ["w", "b"]
    assert p[0].share_mode == caffe_pb2.ParamSpec.PERMISSIVE and not p[1].HasField("share_mode")
    assert p[0].lr_mult == 3 and p[0].decay_mult == 0 and not p[1].HasField("lr_mult")


def test_old_batchnorm_params_are_frozen():
    net = pl.load_net('layer { name: "bn" type: "BatchNorm" param { lr_mult: 1 } param { } param { decay_mult: 3 } }')
    assert all(p.lr_mult == 0 and p.decay_mult == 0 for p in net.layer[0].param)


def test_v0_fields_the_type_does_not_use_are_dropped_with_a_warning():
    text = 'layers { layer { name: "r" type: "relu" num_output: 3 } bottom: "x" top: "x" }'
    with pytest.warns(pl.UpgradeWarning, match="num_output"):
        net = pl.load_net("input: 'x'\n" + text)
    assert net.layer[0] == caffe_pb2.LayerParameter(name="r", type="ReLU", bottom=["x"], top=["x"])
    with pytest.raises(pl.UpgradeError, match="num_output"):
        pl.load_net("input: 'x'\n" + text, strict=True)


def test_upgrade_does_not_modify_its_argument(formats):
    raw = pl.load_net(formats / "v1_net.v1.prototxt", upgrade=False)
    before = raw.SerializeToString()
    pl.upgrade_net(raw)
    assert raw.SerializeToString() == before and len(raw.layers) > 0
