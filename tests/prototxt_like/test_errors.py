"""Every failure is a CaffeFormatError that says where and what."""
import pytest

import prototxt_like as pl
from prototxt_like import caffe_pb2


def test_unknown_field_names_file_line_column_token(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "n"\nlayer {\n  name: "c"\n  kernelsize: 3\n}\n')
    with pytest.raises(pl.TextFormatError) as info:
        pl.load_net(path)
    e = info.value
    assert (e.file, e.line, e.column, e.token) == (str(path), 4, 3, "kernelsize")
    assert str(e).startswith(f"{path}:4:3: ") and "kernelsize" in str(e)
    assert isinstance(e, pl.CaffeFormatError) and isinstance(e, ValueError)


@pytest.mark.parametrize("text, line, token", [
    ('name: "n"\nforce_backward: maybe\n', 2, "maybe"),
    ('layer {\n  name: "x"\n', 3, "<end of file>"),
    ('layer { name: "x" } }\n', 1, "}"),
    ('input_dim: 99999999999\n', 1, "99999999999"),
    ('name: "unterminated\n', 1, '"unterminated'),
    ('layer { type: "ReLU" phase: TRAINING }', 1, "TRAINING"),
])
def test_malformed_text(text, line, token):
    with pytest.raises(pl.TextFormatError) as info:
        pl.load_net(text)
    assert info.value.line == line and info.value.token == token and info.value.file is None


def test_solver_text_errors_are_located():
    with pytest.raises(pl.TextFormatError) as info:
        pl.load_solver('base_lr: 0.1\nsolver_type: NOPE\n')
    assert info.value.line == 2 and info.value.token == "NOPE"


def test_invalid_utf8_text(tmp_path):
    path = tmp_path / "x.prototxt"
    path.write_bytes(b'name: "a"\nname2: "\xff"\n')
    with pytest.raises(pl.TextFormatError) as info:
        pl.load_net(path)
    assert info.value.line == 2


def test_missing_file():
    with pytest.raises(pl.CaffeFormatError, match="cannot read file"):
        pl.load_net("no/such/net.prototxt")


def test_unknown_v0_layer_type():
    with pytest.raises(pl.UnknownLayerTypeError) as info:
        pl.load_net('layers { layer { name: "w" type: "warp" } }')
    assert info.value.layer == "w" and info.value.layer_type == "warp"


def test_unknown_v2_layer_type_is_named():
    with pytest.raises(pl.UnknownLayerTypeError, match="'Convolutoin'") as info:
        pl.load_net('layer { name: "c1" type: "Convolutoin" }')
    assert info.value.layer == "c1"
    assert pl.load_net('layer { name: "c1" type: "Convolutoin" }', check_types=False).layer[0].name == "c1"


def test_padding_into_non_conv_layer():
    text = ('input: "d" layers { layer { name: "p" type: "padding" pad: 1 } bottom: "d" top: "p" } '
            'layers { layer { name: "r" type: "relu" } bottom: "p" top: "r" }')
    with pytest.raises(pl.UpgradeError, match="padding layer 'p' feeds"):
        pl.load_net(text)


def test_unknown_bottom_in_v0_net():
    with pytest.raises(pl.UpgradeError, match="unknown bottom blob 'ghost'"):
        pl.load_net('layers { layer { name: "r" type: "relu" } bottom: "ghost" top: "r" }')


def test_both_layer_and_layers():
    with pytest.raises(pl.UpgradeError, match="both"):
        pl.load_net('layer { name: "a" type: "ReLU" } layers { name: "b" type: RELU }')


def test_input_dim_count_mismatch():
    with pytest.raises(pl.UpgradeError, match="input_dim"):
        pl.load_net('input: "a" input_dim: 1 input_dim: 2')


def test_solver_with_both_type_fields():
    with pytest.raises(pl.UpgradeError, match="both"):
        pl.load_solver('solver_type: ADAM type: "Adam"')


@pytest.mark.parametrize("data", [b"\x0a\x05abc", b"\xff\xff\xff", b"\x0a\x02\xff\xfe",
                                  b"\xa2\x06\x05\x0a\x03abc\x10"])
def test_bad_binary(data):
    with pytest.raises(pl.BinaryFormatError):
        pl.load_net_binary(data)


def test_truncated_caffemodel(formats, tmp_path):
    data = (formats / "small.caffemodel").read_bytes()
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data[:1000])
    with pytest.raises(pl.BinaryFormatError) as info:
        pl.caffemodel_weights(path)
    assert str(path) in str(info.value) and "truncated or corrupt" in str(info.value)


def test_wrong_message_type(formats):
    # a mean image is no net: its fields are unknown to NetParameter
    with pytest.raises(pl.BinaryFormatError, match="unknown to the schema"):
        pl.load_net_binary(formats / "mean.binaryproto")


def test_blob_data_count_mismatch_in_model():
    net = caffe_pb2.NetParameter()
    layer = net.layer.add(name="fc", type="InnerProduct")
    layer.blobs.add(shape=caffe_pb2.BlobShape(dim=[2, 2]), data=[1, 2, 3])
    with pytest.raises(pl.BinaryFormatError, match="needs 4 values but holds 3"):
        pl.load_net_binary(net.SerializeToString())
