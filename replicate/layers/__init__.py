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
