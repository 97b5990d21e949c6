"""The committed caffe_pb2.py is generated from caffe.proto, and the schema
holds the messages and field numbers of Caffe's file format."""
from pathlib import Path

import pytest

from prototxt_like import caffe_pb2

PKG = Path(caffe_pb2.__file__).parent


def test_generated_module_is_up_to_date(tmp_path):
    protoc = pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools regenerates caffe_pb2.py")
    from google.protobuf import descriptor_pb2
    out = tmp_path / "set.pb"
    assert protoc.main(["protoc", f"-I{PKG}", f"--descriptor_set_out={out}", "caffe.proto"]) == 0
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    committed = descriptor_pb2.FileDescriptorProto.FromString(_embedded_descriptor())
    for fd in (fresh, committed):  # protoc adds json_name only to descriptor sets
        _drop_json_names(fd.message_type)
    assert fresh == committed


def _embedded_descriptor() -> bytes:
    """The serialized descriptor literal inside caffe_pb2.py (the runtime's
    DESCRIPTOR.serialized_pb may re-print float defaults)."""
    import ast
    tree = ast.parse((PKG / "caffe_pb2.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile":
            return node.args[0].value
    raise AssertionError("no AddSerializedFile call in caffe_pb2.py")


def _drop_json_names(messages):
    for m in messages:
        for f in m.field:
            f.ClearField("json_name")
        _drop_json_names(m.nested_type)


@pytest.mark.parametrize("message, fields", [
    ("NetParameter", {"name": 1, "layers": 2, "input": 3, "input_dim": 4, "force_backward": 5,
                      "state": 6, "debug_info": 7, "input_shape": 8, "layer": 100}),
    ("BlobProto", {"num": 1, "channels": 2, "height": 3, "width": 4, "data": 5, "diff": 6,
                   "shape": 7, "double_data": 8, "double_diff": 9}),
    ("Datum", {"channels": 1, "height": 2, "width": 3, "data": 4, "label": 5, "float_data": 6,
               "encoded": 7}),
    ("V1LayerParameter", {"layer": 1, "bottom": 2, "top": 3, "name": 4, "type": 5, "blobs": 6,
                          "blobs_lr": 7, "weight_decay": 8, "param": 1001, "blob_share_mode": 1002}),
    ("V0LayerParameter", {"kernelsize": 8, "meanfile": 18, "batchsize": 19, "cropsize": 20,
                          "blobs": 50, "blobs_lr": 51, "weight_decay": 52, "hdf5_output_param": 1001}),
    ("SolverParameter", {"solver_mode": 17, "solver_type": 30, "type": 40, "weights": 42}),
    ("SolverState", {"iter": 1, "learned_net": 2, "history": 3, "current_step": 4}),
    ("LayerParameter", {"param": 6, "blobs": 7, "include": 8, "phase": 10, "transform_param": 100,
                        "convolution_param": 106, "data_param": 107, "input_param": 143,
                        "clip_param": 148}),
])
def test_field_numbers(message, fields):
    desc = getattr(caffe_pb2, message).DESCRIPTOR
    assert {name: desc.fields_by_name[name].number for name in fields} == fields


def test_packed_blob_fields():
    for name in ("data", "diff", "double_data", "double_diff"):
        assert caffe_pb2.BlobProto.DESCRIPTOR.fields_by_name[name].is_packed
    assert not caffe_pb2.Datum.DESCRIPTOR.fields_by_name["float_data"].is_packed
