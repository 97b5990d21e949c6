"""Caffe's per-field V0 routing, the V1 type table and the solver types,
checked field by field (no golden file covers every one of them)."""
import warnings

import pytest

import prototxt_like as pl
from prototxt_like import caffe_pb2
from prototxt_like.upgrade import KNOWN_LAYER_TYPES, V0_LAYER_TYPES, V1_LAYER_TYPES

# (V0 type, V0 fields, V2 type, V2 fields the upgrade must produce)
V0_CASES = [
    ("conv", "num_output: 8 biasterm: false kernelsize: 3 stride: 2 pad: 1 group: 2 "
             "weight_filler { type: 'xavier' } bias_filler { value: 0.5 }",
     "Convolution", "convolution_param { num_output: 8 bias_term: false pad: 1 kernel_size: 3 "
                    "group: 2 stride: 2 weight_filler { type: 'xavier' } bias_filler { value: 0.5 } }"),
    ("innerproduct", "num_output: 5 biasterm: false weight_filler { std: 0.1 }",
     "InnerProduct", "inner_product_param { num_output: 5 bias_term: false weight_filler { std: 0.1 } }"),
    ("pool", "pool: AVE kernelsize: 3 stride: 2 pad: 1",
     "Pooling", "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }"),
    ("lrn", "local_size: 3 alpha: 0.5 beta: 0.25 k: 2",
     "LRN", "lrn_param { local_size: 3 alpha: 0.5 beta: 0.25 k: 2 }"),
    ("dropout", "dropout_ratio: 0.3", "Dropout", "dropout_param { dropout_ratio: 0.3 }"),
    ("data", "source: 's' batchsize: 4 rand_skip: 9 scale: 0.5 meanfile: 'm' cropsize: 3 mirror: true",
     "Data", "data_param { source: 's' batch_size: 4 rand_skip: 9 } "
             "transform_param { scale: 0.5 mean_file: 'm' crop_size: 3 mirror: true }"),
    ("images", "source: 'l' batchsize: 2 rand_skip: 1 shuffle_images: true new_height: 6 new_width: 7",
     "ImageData", "image_data_param { source: 'l' batch_size: 2 rand_skip: 1 shuffle: true "
                  "new_height: 6 new_width: 7 }"),
    ("window_data", "source: 'w' batchsize: 3 det_fg_threshold: 0.6 det_bg_threshold: 0.4 "
                    "det_fg_fraction: 0.2 det_context_pad: 16 det_crop_mode: 'square'",
     "WindowData", "window_data_param { source: 'w' batch_size: 3 fg_threshold: 0.6 bg_threshold: 0.4 "
                   "fg_fraction: 0.2 context_pad: 16 crop_mode: 'square' }"),
    ("hdf5_data", "source: 'h' batchsize: 5", "HDF5Data", "hdf5_data_param { source: 'h' batch_size: 5 }"),
    ("hdf5_output", "hdf5_output_param { file_name: 'o.h5' }",
     "HDF5Output", "hdf5_output_param { file_name: 'o.h5' }"),
    ("infogain_loss", "source: 'i'", "InfogainLoss", "infogain_loss_param { source: 'i' }"),
    ("concat", "concat_dim: 2", "Concat", "concat_param { concat_dim: 2 }"),
    ("softmax_loss", "", "SoftmaxWithLoss", ""),
    ("multinomial_logistic_loss", "", "MultinomialLogisticLoss", ""),
    ("euclidean_loss", "", "EuclideanLoss", ""),
]


@pytest.mark.parametrize("v0_type, v0_fields, v2_type, v2_fields", V0_CASES)
def test_v0_field_routing(v0_type, v0_fields, v2_type, v2_fields):
    text = (f"input: 'x' input: 'y' layers {{ layer {{ name: 'l' type: '{v0_type}' {v0_fields} "
            f"blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }} bottom: 'x' top: 'z' }}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = pl.load_net(text).layer[-1]
    expected = pl.load_net(f"layer {{ name: 'l' type: '{v2_type}' bottom: 'x' top: 'z' "
                           f"param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }} "
                           f"{v2_fields} }}").layer[0]
    assert layer == expected


def test_every_v0_type_is_known_in_v2():
    for v0, v1 in V0_LAYER_TYPES.items():
        assert V1_LAYER_TYPES[v1] in KNOWN_LAYER_TYPES, v0


def test_every_v1_type_maps_to_a_caffe_layer():
    names = caffe_pb2.V1LayerParameter.LayerType.keys()
    assert len(V1_LAYER_TYPES) == len(names)
    for name in names:
        value = caffe_pb2.V1LayerParameter.LayerType.Value(name)
        v2 = V1_LAYER_TYPES[value]
        assert (v2 == "") == (name == "NONE")
        if v2:
            assert v2 in KNOWN_LAYER_TYPES
            net = pl.load_net(f"layers {{ name: 'l' type: {name} }}")
            assert net.layer[0].type == v2


@pytest.mark.parametrize("old, new", [("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"),
                                      ("RMSPROP", "RMSProp"), ("ADADELTA", "AdaDelta"), ("ADAM", "Adam")])
def test_solver_types(old, new):
    s = pl.load_solver(f"base_lr: 0.01 solver_type: {old}")
    assert s == caffe_pb2.SolverParameter(base_lr=0.01, type=new)


def test_runtime_snapshot_prefix(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text("base_lr: 0.1\n")
    assert pl.load_solver(path, resolve_snapshot_prefix=True).snapshot_prefix == str(tmp_path / "solver")
    (tmp_path / "snaps").mkdir()
    path.write_text(f"snapshot_prefix: '{tmp_path / 'snaps'}'\n")
    got = pl.load_solver(path, resolve_snapshot_prefix=True).snapshot_prefix
    assert got == str(tmp_path / "snaps" / "solver")
    assert not pl.load_solver(path).snapshot_prefix.endswith("solver")
