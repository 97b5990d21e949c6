"""Caffe layer types, one module each, looked up by Caffe's type string.

Adding a type: write ``replicate/layers/<name>.py`` with a :class:`~replicate.layers.base.Layer`
subclass and add one line to ``_MODULES`` below.
"""
from __future__ import annotations

import importlib
from typing import Dict, Type

from .base import Context, Layer, LayerError, Param

_MODULES = {
    "Input": "input", "MemoryData": "memory_data", "Data": "data",
    "Convolution": "convolution", "Pooling": "pooling", "LRN": "lrn", "ReLU": "relu",
    "Dropout": "dropout", "InnerProduct": "inner_product", "Softmax": "softmax",
    "SoftmaxWithLoss": "softmax_loss", "Accuracy": "accuracy", "Split": "split",
    "Concat": "concat", "Flatten": "flatten", "Eltwise": "eltwise",
    "Deconvolution": "deconvolution",
}

# Caffe 1.0's other layer types, one block per group
_MODULES.update({
    # group A: neurons and losses
    "AbsVal": "abs_val", "BNLL": "bnll", "ELU": "elu", "Exp": "exp", "Log": "log", "Power": "power",
    "PReLU": "prelu", "Sigmoid": "sigmoid", "TanH": "tanh", "Threshold": "threshold", "Clip": "clip",
    "Swish": "swish", "EuclideanLoss": "euclidean_loss", "HingeLoss": "hinge_loss",
    "SigmoidCrossEntropyLoss": "sigmoid_cross_entropy_loss", "MultinomialLogisticLoss": "multinomial_logistic_loss",
    "ContrastiveLoss": "contrastive_loss", "InfogainLoss": "infogain_loss", "Parameter": "parameter",
})
_MODULES.update({
    # group C: recurrent layers
    "LSTMUnit": "lstm_unit", "LSTM": "lstm", "RNN": "rnn",
})
_MODULES.update({
    # group B: shape, reduction and normalisation layers
    "Crop": "crop", "Slice": "slice", "Silence": "silence", "Tile": "tile", "Reshape": "reshape",
    "Reduction": "reduction", "ArgMax": "argmax", "Im2col": "im2col", "BatchNorm": "batch_norm", "Bias": "bias",
    "Scale": "scale", "MVN": "mvn", "SPP": "spp", "Embed": "embed", "BatchReindex": "batch_reindex",
    "Filter": "filter", "DummyData": "dummy_data",
})

_MODULES.update({
    # group D: data and I/O layers
    "ImageData": "image_data", "HDF5Data": "hdf5_data", "HDF5Output": "hdf5_output",
})

_cache: Dict[str, Type[Layer]] = {}


def layer_class(type_name: str) -> Type[Layer]:
    """The class for Caffe's ``type`` string; LayerError for types we do not implement."""
    if type_name not in _cache:
        if type_name not in _MODULES:
            raise LayerError(f"unknown layer type {type_name!r} (available: {', '.join(sorted(_MODULES))})")
        mod = importlib.import_module(f".{_MODULES[type_name]}", __name__)
        _cache[type_name] = mod.LAYER
    return _cache[type_name]


def available_types():
    return sorted(_MODULES)


__all__ = ["Context", "Layer", "LayerError", "Param", "layer_class", "available_types"]
