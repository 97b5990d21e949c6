"""A Caffe ``Net`` built from a V2 NetParameter: Caffe's filtering, Split insertion, in-place
blobs, backward pruning, loss weights, parameter sharing and weight copying (net.cpp).

The net is a plain list of layers over named blobs; forward and backward walk it exactly as
``Net::ForwardFromTo`` / ``Net::BackwardFromTo`` do, calling the layers' Caffe kernels.  Blob
diffs persist between passes and start at zero, as Caffe's do; parameter diffs accumulate until
:meth:`Net.clear_param_diffs`.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from prototxt_like import caffe_pb2
from prototxt_like.blobs import blob_to_numpy, has_legacy_shape, fit_to_shape
from prototxt_like.codec import serialize
from prototxt_like.errors import BlobError
from prototxt_like.io import load_net, load_net_binary

from .fileio import atomic_write
from .layers import Context, LayerError, Param, layer_class
from .layers.engine import log_engines
from .rng import CaffeRNG

log = logging.getLogger("replicate.net")


class NetError(ValueError):
    """A net that Caffe would refuse; the message names the layer or blob."""


# ---------------------------------------------------------------------------------------------
# NetParameter transformations (FilterNet, InsertSplits)

def _meets_rule(state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule) -> bool:
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(s not in stages for s in rule.stage):
        return False
    if any(s in stages for s in rule.not_stage):
        return False
    return True


def filter_net(param: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """Caffe's Net::FilterNet: keep the layers whose include/exclude rules admit ``param.state``."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    out.ClearField("layer")
    for lp in param.layer:
        if lp.include and lp.exclude:
            raise NetError(f"layer {lp.name!r} specifies both include and exclude; only one may be given "
                           "(Caffe: Specify either include rules or exclude rules; not both.)")
        included = not lp.include
        if any(_meets_rule(param.state, r) for r in lp.exclude):
            included = False
        if not included and any(_meets_rule(param.state, r) for r in lp.include):
            included = True
        if included:
            out.layer.add().CopyFrom(lp)
    return out


def _split_blob(layer: str, blob: str, idx: int, k: int) -> str:
    return f"{blob}_{layer}_{idx}_split_{k}"


def insert_splits(param: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """Caffe's InsertSplits: a top consumed more than once (a loss use counts) is fanned out through
    a Split layer named ``<blob>_<layer>_<i>_split`` with tops ``..._split_<j>``."""
    last_top: Dict[str, tuple] = {}
    source_of: Dict[tuple, tuple] = {}
    count: Dict[tuple, int] = {}
    loss_w: Dict[tuple, float] = {}
    for i, lp in enumerate(param.layer):
        for j, b in enumerate(lp.bottom):
            if b not in last_top:
                raise NetError(f"Unknown bottom blob '{b}' (layer '{lp.name}', bottom index {j})")
            source_of[(i, j)] = last_top[b]
            count[last_top[b]] = count.get(last_top[b], 0) + 1
        for j, t in enumerate(lp.top):
            last_top[t] = (i, j)
        for j in range(min(len(lp.loss_weight), len(lp.top))):
            idx = last_top[lp.top[j]]
            loss_w[idx] = lp.loss_weight[j]
            if loss_w[idx]:
                count[idx] = count.get(idx, 0) + 1
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    out.ClearField("layer")
    split_idx: Dict[tuple, int] = {}
    for i, lp in enumerate(param.layer):
        dst = out.layer.add()
        dst.CopyFrom(lp)
        for j in range(len(dst.bottom)):
            src = source_of[(i, j)]
            if count.get(src, 0) > 1:
                k = split_idx.get(src, 0)
                dst.bottom[j] = _split_blob(param.layer[src[0]].name, dst.bottom[j], src[1], k)
                split_idx[src] = k + 1
        for j, t in enumerate(list(dst.top)):
            n = count.get((i, j), 0)
            if n > 1:
                w = loss_w.get((i, j), 0.0)
                sp = out.layer.add()
                sp.name = f"{t}_{lp.name}_{j}_split"
                sp.type = "Split"
                sp.bottom.append(t)
                for k in range(n):
                    sp.top.append(_split_blob(lp.name, t, j, k))
                    if w:
                        sp.loss_weight.append(w if k == 0 else 0.0)
                if w:
                    dst.ClearField("loss_weight")
                    split_idx[(i, j)] = split_idx.get((i, j), 0) + 1
    return out


# ---------------------------------------------------------------------------------------------

class Blob:
    """A named blob: ``data`` and ``diff`` (None until first written: reads as zeros)."""

    __slots__ = ("name", "data", "diff")

    def __init__(self, name: str):
        self.name = name
        self.data: Optional[Tensor] = None
        self.diff: Optional[Tensor] = None

    def diff_or_zeros(self) -> Tensor:
        if self.diff is None or self.diff.shape != self.data.shape:
            self.diff = torch.zeros_like(self.data)
        return self.diff


class Net:
    """Caffe's Net for one phase.

    ``param``: a V2 NetParameter (``prototxt_like.load_net`` gives one from any generation) or a
    path.  ``phase``/``stages``/``level`` override ``param.state`` as ``caffe.Net(..., phase)``.
    ``rng``: the Caffe RNG that fillers, data layers and dropout draw from (seeded by the solver's
    ``random_seed``); a fresh unseeded one when omitted.
    """

    def __init__(self, param, phase: Optional[int] = None, *, stages: Sequence[str] = (), level: Optional[int] = None,
                 rng: Optional[CaffeRNG] = None, device="cpu", data_workers: Optional[int] = None,
                 state: Optional[caffe_pb2.NetState] = None, layer_classes: Optional[Dict[str, type]] = None):
        # layer_classes: per-type replacements of the registry's classes (replicate.caffe2014)
        if not isinstance(param, caffe_pb2.NetParameter):
            param = load_net(param)
        param_copy = caffe_pb2.NetParameter()
        param_copy.CopyFrom(param)
        if state is not None:
            param_copy.state.CopyFrom(state)
        if phase is not None:
            param_copy.state.phase = phase
        if stages:  # Net(file, phase, level, stages) adds them to the file's own
            param_copy.state.stage.extend(stages)
        if level is not None:
            param_copy.state.level = level
        self.phase = param_copy.state.phase
        self.name = param_copy.name
        if rng is None:
            rng = CaffeRNG(int.from_bytes(os.urandom(4), "little"))
        self.ctx = Context(phase=self.phase, rng=rng, device=torch.device(device), data_workers=data_workers)
        net = insert_splits(filter_net(param_copy))
        self.layer_params: List[caffe_pb2.LayerParameter] = []
        self.layers = []
        self.blobs: Dict[str, Blob] = {}
        self.blob_order: List[str] = []
        self.bottoms: List[List[str]] = []
        self.tops: List[List[str]] = []
        self.bottom_need_backward: List[List[bool]] = []
        self.layer_need_backward: List[bool] = []
        self.loss_weights: Dict[str, float] = {}
        self.learnable: List[Param] = []
        self.learnable_names: List[str] = []  # "<layer>/<i>" of each learnable blob, in net order
        self.params_lr: List[float] = []
        self.params_decay: List[float] = []
        self._has_lr: List[bool] = []
        self._has_decay: List[bool] = []
        self._param_names: Dict[str, tuple] = {}
        self.input_names: List[str] = []
        blob_need_backward: Dict[str, bool] = {}
        available = set()
        meta: Dict[str, Tensor] = {}
        try:
            for lp_in in net.layer:
                lp = caffe_pb2.LayerParameter()
                lp.CopyFrom(lp_in)
                if not lp.HasField("phase"):
                    lp.phase = self.phase
                if lp.propagate_down and len(lp.propagate_down) != len(lp.bottom):
                    raise NetError(f"layer {lp.name!r}: propagate_down param must be specified either 0 or "
                                   "bottom_size times")
                # Net::Init decides need-backward from the net's own ParamSpecs, read before a layer
                # may add some to its copy (BatchNorm's lr_mult 0); AppendParam, and so the solver,
                # reads the layer's copy afterwards
                net_specs = [caffe_pb2.ParamSpec(lr_mult=s.lr_mult) for s in lp.param]
                layer = ((layer_classes or {}).get(lp.type) or layer_class(lp.type))(lp, self.ctx)
                need_backward = False
                bnames, bneed = [], []
                for j, b in enumerate(lp.bottom):
                    if b not in available:
                        raise NetError(f"Unknown bottom blob '{b}' (layer '{lp.name}', bottom index {j})")
                    available.discard(b)
                    bnames.append(b)
                    nb = blob_need_backward.get(b, False)
                    if lp.propagate_down:
                        nb = bool(lp.propagate_down[j])
                    bneed.append(nb)
                    need_backward |= blob_need_backward.get(b, False)
                tnames = []
                for j, t in enumerate(lp.top):
                    in_place = j < len(lp.bottom) and lp.bottom[j] == t
                    if not in_place and t in self.blobs:
                        raise NetError(f"Top blob '{t}' produced by multiple sources (layer '{lp.name}')")
                    if not in_place:
                        self.blobs[t] = Blob(t)
                        self.blob_order.append(t)
                        blob_need_backward[t] = False
                    tnames.append(t)
                    available.add(t)
                    if lp.type == "Input":
                        self.input_names.append(t)
                if layer.loss_layer and not tnames:  # AutoTopBlobs: an anonymous loss blob
                    t = "(automatic)" if "(automatic)" not in self.blobs else f"(automatic)_{len(self.blobs)}"
                    self.blobs[t] = Blob(t)
                    self.blob_order.append(t)
                    blob_need_backward[t] = False
                    tnames.append(t)
                layer.n_tops = len(tnames)
                layer.check_bottoms(bnames)
                # LayerSetUp: parameters from the bottom shapes, then top shapes from a shape-only pass
                bottoms_meta = [meta[b] for b in bnames]
                layer.setup(bottoms_meta)
                with _shape_pass(layer, self.ctx):
                    tops_meta = layer.forward(bottoms_meta)
                if len(tops_meta) != len(tnames):
                    raise NetError(f"layer {lp.name!r} ({lp.type}) makes {len(tops_meta)} top(s), "
                                   f"the net names {len(tnames)}")
                for t, tm in zip(tnames, tops_meta):
                    meta[t] = tm
                # loss weights (LossLayer's default 1 is written into its param, as Caffe does)
                if layer.loss_layer and not lp.loss_weight:
                    lp.loss_weight.append(1.0)
                if lp.loss_weight and len(lp.loss_weight) != len(tnames):
                    raise NetError(f"layer {lp.name!r}: loss_weight must be unspecified or specified once per "
                                   "top blob")
                for t, w in zip(tnames, lp.loss_weight):
                    if w:
                        self.loss_weights[t] = float(np.float32(w))
                # parameters: propagate-down flags, sharing, multipliers
                n_params = len(layer.params)
                if len(lp.param) > n_params:
                    raise NetError(f"layer {lp.name!r}: too many params specified ({len(lp.param)}) for a layer "
                                   f"with {n_params} parameter blobs")
                specs = [lp.param[i] if i < len(lp.param) else caffe_pb2.ParamSpec() for i in range(n_params)]
                if len(net_specs) > n_params:
                    raise NetError(f"layer {lp.name!r}: too many params specified ({len(net_specs)}) for a layer "
                                   f"with {n_params} parameter blobs")
                layer.param_propagate_down = [(net_specs[i].lr_mult if i < len(net_specs) else 1.0) != 0
                                              for i in range(n_params)]
                need_backward |= any(layer.param_propagate_down)
                for i, spec in enumerate(specs):
                    self._append_param(layer, i, spec)
                self.layer_params.append(lp)
                self.layers.append(layer)
                self.bottoms.append(bnames)
                self.tops.append(tnames)
                self.bottom_need_backward.append(bneed)
                self.layer_need_backward.append(need_backward)
                if need_backward:
                    for t in tnames:
                        blob_need_backward[t] = True
        except (LayerError, BlobError) as e:
            raise NetError(str(e)) from None
        self._prune_backward(net.force_backward)
        log_engines(self.layers, self.ctx.device)  # once per net: the layers whose `engine` matters here
        self.blob_need_backward = blob_need_backward
        self.output_names = sorted(available)
        self._outputs = set(available)
        # Caffe keeps every blob's data and diff; a training loop that only reads the outputs can
        # free each layer's tops once its backward has run (the solver's train net does)
        self.release_after_backward = False
        for name in self.input_names:
            self.blobs[name].data = torch.zeros(meta[name].shape, dtype=self.ctx.dtype, device=self.ctx.device)
        self._meta_shapes = {k: tuple(v.shape) for k, v in meta.items()}
        self._plan_fusion()

    # -- construction helpers ------------------------------------------------------------
    def _plan_fusion(self) -> None:
        """A ReLU working in place on a Convolution's only top, right after it, runs inside the
        convolution on CPU (csrc/cpu/convolution.cpp): each image's output is rectified while in
        cache, and in backward the ReLU's derivative is written over the top diff (the one blob, as
        Caffe's in-place ReLU writes it; ``_diff_owned``), or, where another blob's diff shares that
        memory, applied by the convolution to its own copy.  Caffe's ReLU expressions element by
        element, so the bits equal the two layers run apart (exact mode's goldens run through it);
        fewer passes over memory.  Only when a call's range holds both layers (forward(end=conv)
        still leaves the conv's own output), and in backward only with ``release_after_backward``
        (the solver's train net), where nothing reads the in-place blob's diff afterwards.
        ``self._fused``: conv index -> ReLU index; ``self._fused_into``: the reverse."""
        self._fused: Dict[int, int] = {}
        self._fused_into: Dict[int, int] = {}
        if self.ctx.device.type != "cpu" or os.environ.get("REPLICATE_FUSE_RELU", "1") == "0":
            return
        for lid in range(len(self.layers) - 1):
            conv, relu = self.layers[lid], self.layers[lid + 1]
            # the classes themselves, not their type names: a replacement class computes its own way
            if not (type(conv).__dict__.get("fuses_relu") and type(relu).__dict__.get("fusable_into_conv")):
                continue
            top = self.tops[lid]
            if (len(top) != 1 or len(self.bottoms[lid]) != 1 or self.bottoms[lid + 1] != top
                    or self.tops[lid + 1] != top or top[0] in self.loss_weights
                    or self.layer_params[lid + 1].propagate_down
                    or self.layer_need_backward[lid + 1] != self.layer_need_backward[lid]):
                continue
            self._fused[lid] = lid + 1
            self._fused_into[lid + 1] = lid

    def fused_layers(self) -> List[tuple]:
        """(convolution, ReLU) layer names whose ReLU runs inside the convolution."""
        return [(self.layers[c].name, self.layers[r].name) for c, r in sorted(self._fused.items())]

    def _append_param(self, layer, i: int, spec: caffe_pb2.ParamSpec) -> None:
        name = spec.name
        if name and name in self._param_names:
            owner_layer, owner_i, lid = self._param_names[name]
            owner = owner_layer.params[owner_i]
            mine = layer.params[i]
            head = f"Cannot share param '{name}' owned by layer '{owner_layer.name}' with layer '{layer.name}'; "
            if spec.share_mode == caffe_pb2.ParamSpec.PERMISSIVE:  # counts only
                if owner.data.numel() != mine.data.numel():
                    raise NetError(head + f"count mismatch.  Owner layer param shape is {_shape_str(owner.shape)}; "
                                          f"sharing layer shape is {_shape_str(mine.shape)}")
            elif owner.shape != mine.shape:
                raise NetError(head + f"shape mismatch.  Owner layer param shape is {_shape_str(owner.shape)}; "
                                      f"sharing layer expects shape {_shape_str(mine.shape)}")
            layer.params[i] = owner if owner.shape == mine.shape else _ReshapedParam(owner, mine.shape)
            for has, vals, field, what in ((self._has_lr, self.params_lr, "lr_mult", "lr_mult"),
                                           (self._has_decay, self.params_decay, "decay_mult", "decay_mult")):
                if spec.HasField(field):
                    if has[lid]:
                        if getattr(spec, field) != vals[lid]:
                            raise NetError(f"Shared param '{name}' has mismatched {what}.")
                    else:
                        has[lid] = True
                        vals[lid] = getattr(spec, field)
            return
        lid = len(self.learnable)
        if name:
            self._param_names[name] = (layer, i, lid)
        self.learnable.append(layer.params[i])
        self.learnable_names.append(f"{layer.name}/{i}")
        self._has_lr.append(spec.HasField("lr_mult"))
        self._has_decay.append(spec.HasField("decay_mult"))
        self.params_lr.append(spec.lr_mult)
        self.params_decay.append(spec.decay_mult)

    def _prune_backward(self, force_backward: bool) -> None:
        under_loss, skip = set(), set()
        for lid in range(len(self.layers) - 1, -1, -1):
            contributes, skip_pd = False, True
            for t in self.tops[lid]:
                if t in self.loss_weights and self._top_loss(lid, t) or t in under_loss:
                    contributes = True
                if t not in skip:
                    skip_pd = False
                if contributes and not skip_pd:
                    break
            if self.layer_need_backward[lid] and skip_pd:
                self.layer_need_backward[lid] = False
                self.bottom_need_backward[lid] = [False] * len(self.bottoms[lid])
            if not contributes:
                self.layer_need_backward[lid] = False
            for j, b in enumerate(self.bottoms[lid]):
                if contributes:
                    under_loss.add(b)
                else:
                    self.bottom_need_backward[lid][j] = False
                if not self.bottom_need_backward[lid][j]:
                    skip.add(b)
        if force_backward:
            for lid, layer in enumerate(self.layers):
                self.layer_need_backward[lid] = True
                self.bottom_need_backward[lid] = [nb or layer.allow_force_backward(j)
                                                  for j, nb in enumerate(self.bottom_need_backward[lid])]
                layer.param_propagate_down = [True] * len(layer.params)
        for lid in range(len(self.layers)):
            log.debug("%s %s backward computation.", self.layers[lid].name,
                      "needs" if self.layer_need_backward[lid] else "does not need")

    def _top_loss(self, lid: int, top: str) -> bool:
        lp = self.layer_params[lid]
        j = self.tops[lid].index(top)
        return j < len(lp.loss_weight) and lp.loss_weight[j] != 0

    # -- running -------------------------------------------------------------------------
    @property
    def layer_names(self) -> List[str]:
        return [l.name for l in self.layers]

    def layer(self, name: str):
        for l in self.layers:
            if l.name == name:
                return l
        raise KeyError(f"net {self.name!r} has no layer {name!r}")

    def blob(self, name: str) -> Blob:
        try:
            return self.blobs[name]
        except KeyError:
            raise KeyError(f"net {self.name!r} has no blob {name!r}") from None

    def forward(self, start: int = 0, end: Optional[int] = None) -> float:
        """Net::ForwardFromTo; returns the summed weighted loss (float32 arithmetic)."""
        end = len(self.layers) - 1 if end is None else end
        if start < 0 or end >= len(self.layers):  # ForwardFromTo's CHECK_GE(start, 0), CHECK_LT(end, size)
            raise NetError(f"forward from layer {start} to {end}: the net has layers 0..{len(self.layers) - 1}")
        loss = np.float32(0)
        fused_relu = None
        for lid in range(start, end + 1):
            layer = self.layers[lid]
            if layer.type == "Input":  # the caller fills input blobs; Caffe's Forward does nothing
                continue
            if lid == fused_relu:  # ran inside the convolution: its top (the same blob) is rectified
                continue
            bottoms = [self.blobs[b].data for b in self.bottoms[lid]]
            try:
                relu = self._fused.get(lid)
                if relu is not None and relu <= end:
                    tops = layer.forward(bottoms, relu_slope=self.layers[relu].param.relu_param.negative_slope)
                    fused_relu = relu
                else:
                    tops = layer.forward(bottoms)
            except RuntimeError as e:
                raise NetError(f"layer {layer.name!r} ({layer.type}) failed in forward: {e}") from e
            layer_loss = np.float32(0)
            for t, data in zip(self.tops[lid], tops):
                blob = self.blobs[t]
                blob.data = data
                # the diff is rewritten by this pass's backward before anything reads it (or reads as
                # Caffe's never-written zeros): drop last pass's now, so it does not sit in memory
                if blob.diff is not None and not self._top_loss(lid, t):
                    blob.diff = None
                w = self.loss_weights.get(t) if self._top_loss(lid, t) else None
                if w:
                    diff = blob.diff
                    if diff is None or diff.shape != data.shape:
                        blob.diff = diff = torch.full_like(data, w)
                    layer_loss += np.float32(_dot(data, diff))
            loss += layer_loss
        return float(loss)

    def backward(self, start: Optional[int] = None, end: int = 0) -> None:
        """Net::BackwardFromTo from layer ``start`` (default: the last) down to ``end``."""
        start = len(self.layers) - 1 if start is None else start
        if end < 0 or start >= len(self.layers):  # BackwardFromTo's CHECK_GE(end, 0), CHECK_LT(start, size)
            raise NetError(f"backward from layer {start} to {end}: the net has layers 0..{len(self.layers) - 1}")
        fused_relu = None
        for lid in range(start, end - 1, -1):
            if not self.layer_need_backward[lid]:
                continue
            layer = self.layers[lid]
            # the convolution below applies the ReLU's derivative; only in a training loop that
            # frees the diffs (the blob's diff then stays the ReLU's top diff, which nobody reads)
            if self.release_after_backward and self._fused_into.get(lid, -1) >= end:
                fused_relu = lid
                continue
            tops = [self.blobs[t].data for t in self.tops[lid]]
            top_diffs = [self.blobs[t].diff_or_zeros() for t in self.tops[lid]]
            bottoms = [self.blobs[b].data for b in self.bottoms[lid]]
            pd = self.bottom_need_backward[lid]
            try:
                if fused_relu is not None and self._fused.get(lid) == fused_relu:
                    diffs = layer.backward(tops, top_diffs, pd, bottoms,
                                           relu_slope=self.layers[fused_relu].param.relu_param.negative_slope,
                                           relu_in_place=self._diff_owned(self.tops[lid][0]))
                else:
                    diffs = layer.backward(tops, top_diffs, pd, bottoms)
            except RuntimeError as e:
                raise NetError(f"layer {layer.name!r} ({layer.type}) failed in backward: {e}") from e
            for b, need, d in zip(self.bottoms[lid], pd, diffs):
                if need and d is not None:
                    self.blobs[b].diff = d
            if self.release_after_backward:
                self._release(lid)

    def _diff_owned(self, name: str) -> bool:
        """Whether blob ``name``'s diff is contiguous and shares its memory with no other blob's diff,
        so that a fused ReLU may write its bottom diff over it, as Caffe's in-place ReLU does (a
        layer above may have handed down a view of its own top's diff, e.g. Flatten)."""
        d = self.blobs[name].diff
        if d is None or not d.is_contiguous():
            return False
        ptr = d.untyped_storage().data_ptr()
        return not any(b.diff is not None and b.diff.untyped_storage().data_ptr() == ptr
                       for n, b in self.blobs.items() if n != name)

    def _release(self, lid: int) -> None:
        """Training mode: once layer ``lid`` has run backward, nothing lower reads its tops (unless
        in place): free their data and diffs (net outputs and loss diffs stay)."""
        for t in self.tops[lid]:
            if t in self.bottoms[lid] or t in self._outputs:
                continue
            blob = self.blobs[t]
            blob.data = None
            if not self._top_loss(lid, t):
                blob.diff = None

    def forward_backward(self) -> float:
        loss = self.forward()
        self.backward()
        return loss

    def clear_param_diffs(self) -> None:
        # In the solver's train net nothing writes a diff in place between this clear and the
        # backward, so the layers may take the zeros as known (Param.release_zeroed_diff).
        for p in self.learnable:
            p.diff.zero_()
            p.zeroed = self.release_after_backward

    def set_input_arrays(self, data, labels, layer: Optional[str] = None) -> None:
        """MemoryDataLayer::Reset on the first (or the named) MemoryData layer."""
        for l in self.layers:
            if l.type == "MemoryData" and (layer is None or l.name == layer):
                l.reset(data, labels)
                return
        raise NetError(f"net {self.name!r} has no MemoryData layer" + (f" named {layer!r}" if layer else ""))

    def close(self) -> None:
        for l in self.layers:
            if hasattr(l, "close"):
                l.close()

    # -- weights -------------------------------------------------------------------------
    def params_of(self, name: str) -> List[Param]:
        return self.layer(name).params

    def copy_trained_layers_from(self, source) -> None:
        """Net::CopyTrainedLayersFrom a ``.caffemodel`` path, bytes or NetParameter: layers matched by
        name (first match), absent ones keep their values; blob count and shape must match."""
        file = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
        model = source if isinstance(source, caffe_pb2.NetParameter) else load_net_binary(source)
        where = f" in {file}" if file else ""
        for src in model.layer:
            target = next((l for l in self.layers if l.name == src.name), None)
            if target is None:
                log.info("Ignoring source layer %s", src.name)
                continue
            if len(target.params) != len(src.blobs):
                raise NetError(f"Incompatible number of blobs for layer {src.name}{where}: the file has "
                               f"{len(src.blobs)}, the net's layer {len(target.params)}")
            for j, (p, b) in enumerate(zip(target.params, src.blobs)):
                arr = blob_to_numpy(b, what=f"blob {j} of layer {src.name!r}")
                try:
                    arr = fit_to_shape(arr, p.shape, legacy=has_legacy_shape(b),
                                       what=f"param {j} of layer {src.name!r}")
                except BlobError:
                    raise NetError(f"Cannot copy param {j} weights from layer '{src.name}'{where}; shape mismatch. "
                                   f"Source param shape is {_shape_str(arr.shape)}; target param shape is "
                                   f"{_shape_str(p.shape)}. To learn this layer's parameters from scratch rather "
                                   "than copying from a saved net, rename the layer.") from None
                with torch.no_grad():
                    p.data.copy_(torch.from_numpy(np.array(arr, dtype=np.float32, order="C")))

    def share_trained_layers_with(self, other: "Net") -> None:
        """Net::ShareTrainedLayersWith: this net's layers use ``other``'s parameter data (by name)."""
        for src in other.layers:
            target = next((l for l in self.layers if l.name == src.name), None)
            if target is None:
                log.info("Ignoring source layer %s", src.name)
                continue
            # CHECK_EQ for every same-named layer, parameterless ones included
            if len(target.params) != len(src.params):
                raise NetError(f"Incompatible number of blobs for layer {src.name}: the source net's layer has "
                               f"{len(src.params)}, this net's {len(target.params)}")
            for j, (p, q) in enumerate(zip(target.params, src.params)):
                if p.shape != q.shape:
                    raise NetError(f"Cannot share param {j} weights from layer '{src.name}'; shape mismatch. "
                                   f"Source param shape is {_shape_str(q.shape)}; target param shape is "
                                   f"{_shape_str(p.shape)}")
                p.data = q.data

    def to_proto(self, write_diff: bool = False) -> caffe_pb2.NetParameter:
        """Net::ToProto: the net's name and every layer's parameter (phase set, Split layers
        included) with its blobs in ``shape`` form."""
        out = caffe_pb2.NetParameter()
        out.name = self.name
        for lp, layer in zip(self.layer_params, self.layers):
            dst = out.layer.add()
            dst.CopyFrom(lp)
            dst.ClearField("blobs")
            for p in layer.params:
                b = dst.blobs.add()
                b.shape.dim.extend(p.shape)
                b.data.extend(p.data.detach().cpu().reshape(-1).tolist())
                if write_diff:
                    b.diff.extend(p.diff.detach().cpu().reshape(-1).tolist())
        return out

    def save(self, path, write_diff: bool = False) -> None:
        """WriteProtoToBinaryFile(ToProto()), atomically (a temporary file renamed into place)."""
        atomic_write(path, _serialize_net(self, write_diff))

    def weights(self) -> Dict[str, List[np.ndarray]]:
        return {l.name: [p.data.detach().cpu().numpy().copy() for p in l.params] for l in self.layers if l.params}


def _serialize_net(net: Net, write_diff: bool) -> bytes:
    return serialize(net.to_proto(write_diff))


def _shape_str(shape) -> str:
    return " ".join(str(int(d)) for d in shape) + f" ({int(np.prod(shape))})"


def _dot(a: Tensor, b: Tensor) -> float:
    from . import ops as R
    if a.numel() == 1:
        return float(np.float32(a.reshape(()).item()) * np.float32(b.reshape(()).item()))
    return float(R.dot(a.contiguous(), b.contiguous()))


class _ReshapedParam(Param):
    """A permissive share (same count, other shape): a view of the owner's blob."""

    def __init__(self, owner: Param, shape):
        self.owner, self._shape = owner, tuple(shape)

    @property
    def data(self):
        return self.owner.data.view(self._shape)

    @data.setter
    def data(self, v):
        self.owner.data = v.reshape(self.owner.shape)

    @property
    def diff(self):
        return self.owner.diff.view(self._shape)

    @diff.setter
    def diff(self, v):
        self.owner.diff = v.reshape(self.owner.shape)

    @property
    def zeroed(self):
        return False  # a view is never released (its owner may be)

    @zeroed.setter
    def zeroed(self, v):
        pass

    def release_zeroed_diff(self) -> bool:
        return False

    @property
    def shape(self):
        return self._shape


@contextlib.contextmanager
def _shape_pass(layer, ctx: Context):
    """Run a layer's forward on meta tensors to learn its top shapes (Caffe's Reshape)."""
    originals = []
    for p in layer.params:
        if isinstance(p, _ReshapedParam):
            originals.append(None)
            continue
        originals.append(p.data)
        p.data = torch.empty_like(p.data, device="meta")
    ctx.shape_only = True
    try:
        yield
    finally:
        ctx.shape_only = False
        for p, d in zip(layer.params, originals):
            if d is not None:
                p.data = d
