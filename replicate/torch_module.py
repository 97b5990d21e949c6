"""A Caffe net as a ``torch.nn.Module``, for fine-tuning a legacy model with torch's autograd and
optimisers::

    from replicate.torch_module import CaffeModule, TRAIN
    m = CaffeModule("train_val.prototxt", "model.caffemodel", phase=TRAIN)
    opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)
    out = m(data=x, label=y)            # {output blob: tensor}, Caffe's forward
    out["loss"].backward()              # Caffe's backward, layer by layer
    opt.step()

The module runs the net's own layers (:class:`replicate.net.Net`, Split layers included), each as one
``torch.autograd.Function`` whose forward is the layer's Caffe forward and whose backward is the
layer's Caffe backward.  So the outputs are Caffe's bits, and the gradients autograd delivers are
exactly the diffs ``Net.backward`` computes (same kernels, same order; each parameter's diff
accumulated into zeros, as after ``clear_param_diffs``).  Every layer type the package runs works,
whether or not its op has an autograd formula in :mod:`replicate.ops`.

* Parameters: one ``nn.Parameter`` per learnable blob, named ``<layer>.<i>`` (0 = weights,
  1 = bias), sharing memory with the layer's blob; a blob shared between layers (``param { name }``)
  is one Parameter, listed under each layer using it.  A layer name that contains ``.`` or clashes
  with a Module attribute is registered with ``.`` -> ``_`` and a ``_`` suffix (``param_name`` maps).
  ``requires_grad`` is False for blobs with ``lr_mult: 0`` (BatchNorm's statistics, frozen layers),
  as Caffe computes no diff for them; set it to True to get their gradients.
* ``forward(**inputs)``: the input blobs by name (tensors or arrays; missing ones keep the net's
  current values), returns an ``OrderedDict`` of the net's output blobs (Caffe's
  ``net.outputs``, sorted by name).  ``blobs`` (after a forward): every blob by name, detached.
  :meth:`loss` is Caffe's weighted total loss of an output dict.
* The phase (TRAIN: Dropout active, data layers in their TRAIN mode, BatchNorm updating its
  statistics) is fixed when the module is built, as a Caffe net's is; ``train()`` / ``eval()``
  do not change it.  Random draws (Dropout masks, fillers) come from Caffe's generator
  (:func:`replicate.pycaffe.set_random_seed`).
* Caffe's layers keep one pass's state (Dropout masks, pooling indices): backward must go through
  the latest forward; backward through an older one raises.  No double backward.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn

from prototxt_like import caffe_pb2

from .net import Net, _ReshapedParam

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST


class _Pass:
    """One forward pass: the blobs as the net holds them at its end (what Caffe's backward reads)."""

    def __init__(self, generation: int):
        self.generation = generation
        self.blobs: Dict[str, torch.Tensor] = {}


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


class _LayerFunction(torch.autograd.Function):
    """Layer ``lid`` of ``module``'s net: forward = the layer's forward, backward = its backward."""

    @staticmethod
    def forward(ctx, module, lid, pass_, n_bottoms, *inputs):
        net = module.net
        layer = net.layers[lid]
        bottoms = [t.detach() for t in inputs[:n_bottoms]]
        module._bind_params(lid, inputs[n_bottoms:])
        tops = layer.forward(bottoms)
        # outputs must be fresh tensors: a layer may hand on its bottom (Split, Reshape, Flatten)
        seen = {_storage(t) for t in inputs if t.numel()}
        out = []
        for t in tops:
            if t.numel() and _storage(t) in seen:
                t = t.clone()
            if t.numel():
                seen.add(_storage(t))
            out.append(t)
        ctx.module, ctx.lid, ctx.pass_, ctx.n_bottoms = module, lid, pass_, n_bottoms
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        module, lid, pass_ = ctx.module, ctx.lid, ctx.pass_
        if pass_.generation != module._generation:
            raise RuntimeError("CaffeModule: backward through an older forward pass; Caffe's layers keep only the "
                               "latest pass's state (Dropout masks, pooling indices): run forward again")
        net = module.net
        layer = net.layers[lid]
        nb = ctx.n_bottoms
        params = module._layer_params[lid]
        tops = [pass_.blobs[t] for t in net.tops[lid]]
        bottoms = [pass_.blobs[b] for b in net.bottoms[lid]]
        # Caffe's in-place layers may write their bottom diff into the top diff: give them copies
        top_diffs = [g.detach().clone().contiguous() for g in grads]
        propagate = [bool(ctx.needs_input_grad[4 + j]) and layer.allow_force_backward(j) for j in range(nb)]
        want = [bool(ctx.needs_input_grad[4 + nb + k]) for k in range(len(params))]
        saved_pd = list(layer.param_propagate_down)
        saved_diffs = []
        layer.param_propagate_down = [want[module._param_slot[lid][i]] for i in range(len(layer.params))]
        for p in layer.params:  # diffs accumulate into zeros, as after Net::ClearParamDiffs
            saved_diffs.append(p.diff)
            p.diff = torch.zeros(p.shape, dtype=p.data.dtype, device=p.data.device)
        try:
            module._bind_params(lid, params)
            if any(propagate) or any(want):
                diffs = layer.backward(tops, top_diffs, propagate, bottoms)
            else:
                diffs = [None] * nb
            param_grads: List[Optional[torch.Tensor]] = [None] * len(params)
            for i, p in enumerate(layer.params):
                k = module._param_slot[lid][i]
                if not layer.param_propagate_down[i]:
                    continue
                g = p.diff.reshape(params[k].shape)
                param_grads[k] = g if param_grads[k] is None else param_grads[k] + g
        finally:
            for p, d in zip(layer.params, saved_diffs):
                p.diff = d
            layer.param_propagate_down = saved_pd
        bottom_grads = [d if (need and d is not None) else None for need, d in zip(propagate, diffs)]
        return (None, None, None, None, *bottom_grads, *param_grads)


class CaffeModule(nn.Module):
    """``CaffeModule(prototxt, weights=None, phase=TEST)``: see the module docstring.

    ``weights``: a .caffemodel path (or a list of them, copied in order); ``level``/``stages``: the
    net state; ``device``: where it computes; ``rng``: a :class:`replicate.rng.CaffeRNG` (default:
    Caffe's process-wide generator of :mod:`replicate.pycaffe`)."""

    def __init__(self, prototxt, weights=None, phase: int = TEST, *, level: int = 0, stages=(), device="cpu",
                 rng=None):
        super().__init__()
        if rng is None:
            from .pycaffe import generator
            rng = generator()
        net = Net(prototxt, phase, level=level, stages=list(stages), rng=rng, device=device)
        for w in ([weights] if isinstance(weights, (str, bytes)) or hasattr(weights, "__fspath__")
                  else list(weights or ())):
            net.copy_trained_layers_from(w)
        object.__setattr__(self, "net", net)  # not a submodule
        self._generation = 0
        self._last: Optional[_Pass] = None
        owners = {}  # id(owner Param) -> nn.Parameter
        for k, p in enumerate(net.learnable):
            owners[id(p)] = nn.Parameter(p.data, requires_grad=bool(net.params_lr[k] != 0))
        self._owner_objs = list(net.learnable)
        self._layer_params: List[List[nn.Parameter]] = []  # per layer: the distinct Parameters it uses
        self._param_slot: List[List[int]] = []  # per layer: for each of its blobs, its index in the above
        self.param_name: Dict[str, str] = {}  # "<layer>/<i>" -> the Parameter's name here
        for lid, layer in enumerate(net.layers):
            used, slots = [], []
            for p in layer.params:
                owner = p.owner if isinstance(p, _ReshapedParam) else p
                P = owners[id(owner)]
                idx = next((j for j, q in enumerate(used) if q is P), None)
                if idx is None:
                    idx = len(used)
                    used.append(P)
                slots.append(idx)
            self._layer_params.append(used)
            self._param_slot.append(slots)
            if layer.params:
                plist = nn.ParameterList([owners[id(p.owner if isinstance(p, _ReshapedParam) else p)]
                                          for p in layer.params])
                name = layer.name
                if "." in name or not name or (hasattr(self, name) and name not in self._modules):
                    name = name.replace(".", "_") + "_"
                    while hasattr(self, name):
                        name += "_"
                self.add_module(name, plist)
                for i in range(len(layer.params)):
                    self.param_name[f"{layer.name}/{i}"] = f"{name}.{i}"

    # -- parameters -------------------------------------------------------------------------
    def _bind_params(self, lid: int, params) -> None:
        """The layer computes with the Parameters' current tensors (after ``.to()``, an optimiser
        step or ``load_state_dict`` alike)."""
        layer = self.net.layers[lid]
        for i, p in enumerate(layer.params):
            P = params[self._param_slot[lid][i]]
            owner = p.owner if isinstance(p, _ReshapedParam) else p
            t = P.detach()
            if owner.data is not t and (owner.data.data_ptr() != t.data_ptr() or owner.data.shape != t.shape):
                owner.data = t

    # -- running ----------------------------------------------------------------------------
    @property
    def input_names(self) -> List[str]:
        return list(self.net.input_names)

    @property
    def output_names(self) -> List[str]:
        return list(self.net.output_names)

    @property
    def blobs(self) -> Dict[str, torch.Tensor]:
        """Every blob of the latest forward, detached (in-place layers: the final value)."""
        return dict(self._last.blobs) if self._last is not None else {}

    def forward(self, **inputs) -> "OrderedDict[str, torch.Tensor]":
        net = self.net
        unknown = set(inputs) - set(net.input_names)
        if unknown:
            raise KeyError(f"{', '.join(sorted(unknown))}: not input blob(s) of net {net.name!r} "
                           f"(inputs: {', '.join(net.input_names) or 'none'})")
        dev, dtype = net.ctx.device, net.ctx.dtype
        values: Dict[str, torch.Tensor] = {}
        for name in net.input_names:
            if name in inputs:
                v = inputs[name]
                if not isinstance(v, torch.Tensor):
                    v = torch.from_numpy(np.array(v, dtype=np.float32, order="C"))
                if v.dtype != dtype or v.device != dev:
                    v = v.to(device=dev, dtype=dtype)
                values[name] = v
                net.blobs[name].data = v.detach()
            else:
                values[name] = net.blobs[name].data
        self._generation += 1
        pass_ = _Pass(self._generation)
        for lid, layer in enumerate(net.layers):
            if layer.type == "Input":
                continue
            bottoms = [values[b] for b in net.bottoms[lid]]
            tops = _LayerFunction.apply(self, lid, pass_, len(bottoms), *bottoms, *self._layer_params[lid])
            if not isinstance(tops, tuple):
                tops = (tops,)
            for t, v in zip(net.tops[lid], tops):
                values[t] = v
                net.blobs[t].data = v.detach()
        pass_.blobs = {name: v.detach() for name, v in values.items()}
        self._last = pass_
        return OrderedDict((name, values[name]) for name in net.output_names)

    def loss(self, outputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Caffe's net loss: the sum over loss outputs of ``loss_weight * sum(blob)``."""
        total = None
        for name, w in self.net.loss_weights.items():
            if name in outputs:
                term = outputs[name].sum() * w
                total = term if total is None else total + term
        if total is None:
            raise ValueError(f"net {self.net.name!r} has no loss output among {', '.join(outputs)}")
        return total

    def extra_repr(self) -> str:
        return (f"net={self.net.name!r}, phase={'TRAIN' if self.net.phase == TRAIN else 'TEST'}, "
                f"inputs={self.input_names}, outputs={self.output_names}")
