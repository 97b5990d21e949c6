"""Loading the single-layer golden cases of ../shared/golden/layers and reading their Caffe
layer parameters the way Caffe's layers read them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch

import prototxt_like
from replicate import ops as R
from tests._shared import require, require_exact_blas


@dataclass
class Case:
    name: str
    path: Path
    net: object
    inputs: Dict[str, np.ndarray]
    forward: Dict[str, np.ndarray]
    backward: Dict[str, np.ndarray]
    weights: Dict[str, list] = field(default_factory=dict)

    def layer(self, name):
        for l in self.net.layer:
            if l.name == name:
                return l
        raise KeyError(name)

    def t(self, arr) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arr))


def load_case(name: str) -> Case:
    path = require("golden", "layers", name)
    npz = lambda f: dict(np.load(path / f)) if (path / f).exists() else {}
    weights = {}
    if (path / "weights.caffemodel").exists():
        weights = prototxt_like.caffemodel_weights(str(path / "weights.caffemodel"))
    return Case(name, path, prototxt_like.load_net(str(path / "net.prototxt")), npz("inputs.npz"),
                npz("forward.npz"), npz("backward.npz"), weights)


def bits_equal(ours, theirs) -> bool:
    a = ours.detach().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    b = np.asarray(theirs)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def assert_bits(ours, theirs, what: str):
    a = ours.detach().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    b = np.asarray(theirs, dtype=np.float32)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != Caffe's {b.shape}"
    diff = a.view(np.uint32) != b.view(np.uint32)
    assert not diff.any(), (f"{what}: {int(diff.sum())} of {diff.size} values differ from Caffe's bits, "
                            f"max |diff| {np.abs(a.astype(np.float64) - b).max():.3g}")


def assert_close(ours, theirs, what: str, rel: float = 1e-5):
    """Fast-mode tolerance: max |ours - Caffe| <= rel * max |Caffe| over the array."""
    a = (ours.detach().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)).astype(np.float64)
    b = np.asarray(theirs, dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != Caffe's {b.shape}"
    scale = max(np.abs(b).max(), np.finfo(np.float32).tiny)
    err = np.abs(a - b).max() / scale
    assert err <= rel, f"{what}: relative error {err:.3g} > {rel}"


# Skips (fails in CI) unless exact mode loads the CBLAS the fixtures were made with: tests/_shared.py.
exact_blas_ready = require_exact_blas


# ---- Caffe's parameter rules ---------------------------------------------------------------

def conv_args(p):
    """ConvolutionParameter -> (kernel, pad, stride, dilation) as BaseConvolutionLayer reads it."""
    def hw(repeated, h, w, has_h, default):
        if has_h:
            return (h, w)
        vals = list(repeated)
        if not vals:
            return (default, default)
        return (vals[0], vals[0]) if len(vals) == 1 else (vals[0], vals[1])
    kernel = hw(p.kernel_size, p.kernel_h, p.kernel_w, p.HasField("kernel_h"), None)
    pad = hw(p.pad, p.pad_h, p.pad_w, p.HasField("pad_h"), 0)
    stride = hw(p.stride, p.stride_h, p.stride_w, p.HasField("stride_h"), 1)
    dilation = hw(p.dilation, 0, 0, False, 1)
    return kernel, pad, stride, dilation


def pool_args(p):
    kernel = (p.kernel_h, p.kernel_w) if p.HasField("kernel_h") else (p.kernel_size, p.kernel_size)
    pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad, p.pad)
    stride = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride, p.stride)
    return kernel, pad, stride
