"""The layer interface the Net drives, as Caffe's ``Layer<Dtype>``.

A layer gets its (upgraded, V2) ``LayerParameter`` and the net's context, creates its parameter
blobs in :meth:`Layer.setup` from the bottom shapes (Caffe's LayerSetUp), computes its tops in
:meth:`Layer.forward` and, in :meth:`Layer.backward`, returns the bottom diffs it was asked for
and *accumulates* into its parameter diffs (Caffe never clears them itself; the solver does).
Backward reads the bottoms and tops as they are at backward time (an in-place layer after it may
have overwritten them), exactly as Caffe's layers read their blobs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from prototxt_like import caffe_pb2
from .. import ops as _ops  # noqa: F401  (loads the extension: every layer calls torch.ops.replicate.*)


class LayerError(ValueError):
    """A layer that cannot be built or run; the message names the layer."""


class Param:
    """A learnable blob: ``data`` and the ``diff`` the backward pass accumulates into."""

    __slots__ = ("data", "_diff", "zeroed")

    def __init__(self, data: Tensor):
        self.data = data.contiguous()
        self.diff = torch.zeros_like(self.data)

    # ``zeroed``: the diff is known to hold zeros (set by the solver's Net.clear_param_diffs, reset by
    # every read or assignment of ``diff``: whoever holds the tensor may write into it, as Bias, Scale
    # and Embed do with a blob they share): a backward may then start from fresh zeros, not a copy.
    @property
    def diff(self):
        self.zeroed = False
        return self._diff

    @diff.setter
    def diff(self, v):
        self._diff = v
        self.zeroed = False

    def release_zeroed_diff(self) -> bool:
        """When the diff is known to be zero, drop it (the layer's op then accumulates into fresh
        zeros and assigns ``diff``, holding one buffer where a copy would hold two) and say so."""
        if not self.zeroed:
            return False
        self.diff = None
        return True

    @property
    def shape(self):
        return tuple(self.data.shape)


@dataclass
class Context:
    """What every layer of one net shares: phase, the Caffe RNG, device and dtype."""

    phase: int
    rng: object  # replicate.rng.CaffeRNG
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    data_workers: Optional[int] = None
    shape_only: bool = False  # set while the Net learns top shapes on meta tensors


class Layer:
    type: str = ""
    loss_layer = False       # Caffe's LossLayer: top 0 has loss_weight 1 by default
    min_bottoms = 0
    max_bottoms: Optional[int] = None

    def __init__(self, param: caffe_pb2.LayerParameter, ctx: Context):
        self.param = param
        self.name = param.name
        self.ctx = ctx
        self.params: List[Param] = []
        self.n_tops = len(param.top)  # the Net adds Caffe's "(automatic)" tops of loss layers
        # set by the Net (Caffe's set_param_propagate_down)
        self.param_propagate_down: List[bool] = []

    # --- Caffe's hooks -------------------------------------------------------------------
    def setup(self, bottoms: Sequence[Tensor]) -> None:
        """Create parameter blobs (fillers) from the bottom shapes."""

    def forward(self, bottoms: Sequence[Tensor]) -> List[Tensor]:
        raise NotImplementedError

    def backward(self, tops: Sequence[Tensor], top_diffs: Sequence[Tensor], propagate_down: Sequence[bool],
                 bottoms: Sequence[Tensor]) -> List[Optional[Tensor]]:
        if any(propagate_down):
            raise LayerError(f"layer {self.name!r} ({self.type}) has no backward (Caffe: NOT_IMPLEMENTED)")
        return [None] * len(bottoms)

    def allow_force_backward(self, bottom_index: int) -> bool:
        return not (self.loss_layer and bottom_index == 1)

    # --- helpers -------------------------------------------------------------------------
    def error(self, message: str) -> LayerError:
        return LayerError(f"layer {self.name!r} ({self.type}): {message}")

    def make_params(self, specs, *, check_shapes: bool = True) -> List[Param]:
        """Caffe's LayerSetUp for learnable blobs ``specs = [(shape, filler, what), ...]`` in order:
        blobs given in the LayerParameter (Layer's constructor loads them) are used as they are and
        no filler runs, so nothing is drawn ("Skipping parameter initialization"); otherwise each
        blob is filled in order, the weights before the bias.  ``check_shapes``: the given blobs'
        count and shapes must be the layer's (Convolution checks them).  Without it (InnerProduct,
        which checks nothing) only the element counts must fit, and each blob keeps the shape
        ``Blob::FromProto`` gives it (a legacy 1 x 1 x N x K stays 4-D, as Caffe saves it); the layer
        views it in its own shape."""
        given = list(self.param.blobs)
        if not given:
            return [self.new_param(shape, filler, what) for shape, filler, what in specs]
        from prototxt_like.blobs import blob_to_numpy
        if len(given) != len(specs):
            raise self.error(f"Incorrect number of weight blobs: the layer parameter gives {len(given)}, "
                             f"the layer has {len(specs)}")
        out = []
        for i, ((shape, _, what), blob) in enumerate(zip(specs, given)):
            try:
                arr = blob_to_numpy(blob, what=f"blob {i} of layer {self.name!r}")
            except Exception as e:  # noqa: BLE001 - a malformed blob: name it
                raise self.error(f"blob {i} ({what}) given in the layer parameter: {e}") from None
            shape = tuple(int(d) for d in shape)
            if (tuple(arr.shape) != shape) if check_shapes else (arr.size != math.prod(shape)):
                raise self.error(f"Incorrect {what} shape: expected shape {' '.join(map(str, shape))} "
                                 f"({math.prod(shape)}); instead, shape was "
                                 f"{' '.join(map(str, arr.shape))} ({arr.size})")
            t = torch.from_numpy(np.ascontiguousarray(arr))
            out.append(Param(t.to(device=self.ctx.device, dtype=self.ctx.dtype)))
        return out

    def new_param(self, shape, filler: caffe_pb2.FillerParameter, what: str) -> Param:
        from ..fillers import fill
        dtype = np.float64 if self.ctx.dtype == torch.float64 else np.float32  # Net<Dtype>'s fillers
        arr = fill(filler, shape, self.ctx.rng, where=f"layer {self.name!r} {what}", dtype=dtype)
        return Param(torch.from_numpy(arr).to(device=self.ctx.device, dtype=self.ctx.dtype))

    def check_bottoms(self, bottoms: Sequence[Tensor]) -> None:
        n = len(bottoms)
        if n < self.min_bottoms or (self.max_bottoms is not None and n > self.max_bottoms):
            want = (f"{self.min_bottoms}" if self.max_bottoms == self.min_bottoms
                    else f"{self.min_bottoms}..{self.max_bottoms if self.max_bottoms is not None else 'n'}")
            raise self.error(f"takes {want} bottom blob(s), got {n}")


def axis_index(axis: int, ndim: int, layer: Layer, what: str = "axis") -> int:
    """Caffe's Blob::CanonicalAxisIndex, with an error naming the layer."""
    if not -ndim <= axis < ndim:
        raise layer.error(f"{what} {axis} out of range for a {ndim}-axis blob")
    return axis % ndim


def pair_param(p, name: str, layer: Layer, default: int):
    """Caffe's 2-D kernel/stride/pad rule: ``<name>_h`` and ``<name>_w``, or the plain field
    (repeated in ConvolutionParameter: one value for both axes or one per axis)."""
    stem = name[: -len("_size")] if name.endswith("_size") else name
    h_field, w_field = f"{stem}_h", f"{stem}_w"
    v = getattr(p, name)
    repeated = not isinstance(v, int)
    given = len(v) > 0 if repeated else p.HasField(name)
    if p.HasField(h_field) or p.HasField(w_field):
        if not (p.HasField(h_field) and p.HasField(w_field)):
            raise layer.error(f"{h_field} and {w_field} must be given together")
        if given:
            raise layer.error(f"either {name} or {h_field}/{w_field}, not both")
        return int(getattr(p, h_field)), int(getattr(p, w_field))
    if not given:
        return default, default
    vals = list(v) if repeated else [v]
    if len(vals) == 1:
        return int(vals[0]), int(vals[0])
    if len(vals) == 2:
        return int(vals[0]), int(vals[1])
    raise layer.error(f"{name} has {len(vals)} values; only 2-D is supported")
