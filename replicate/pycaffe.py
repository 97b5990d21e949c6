"""A pycaffe-style API over :mod:`replicate` (Caffe 1.0's ``python/caffe``, commit 9b89154), so that
pycaffe scripts port with an import line::

    import replicate.pycaffe as caffe          # or: from replicate import caffe

    caffe.set_mode_cpu()
    net = caffe.Net("deploy.prototxt", caffe.TEST, weights="model.caffemodel")
    net.blobs["data"].data[...] = image
    out = net.forward()                        # {output blob: array}

What is here, and how it maps (see :class:`Net`, :class:`SGDSolver`, :class:`Transformer`):

* ``TRAIN``, ``TEST``; ``set_mode_cpu()``, ``set_mode_gpu()``, ``set_device(i)``: where nets and
  solvers built afterwards compute (GPU: a CUDA build of torch; not bit for bit, see the README);
  ``set_random_seed(s)``: Caffe's one process-wide generator (boost mt19937, the seed taken modulo
  2^32), reseeded in place, as ``Caffe::set_random_seed`` resets it: every net built through this
  module draws from it (fillers, Dropout masks, Data-layer crops and mirrors), including nets built
  before the call, and a solver with a ``random_seed`` reseeds it, as Caffe's Solver::Init does.
* ``Net(prototxt, phase, level=0, stages=None, weights=None)`` and the old
  ``Net(prototxt, weights, phase)``; ``net.blobs`` / ``net.params`` / ``net.layers`` /
  ``net._layer_names`` / ``net.inputs`` / ``net.outputs`` / ``top_names`` / ``bottom_names`` /
  ``blob_loss_weights`` / ``layer_dict``; ``forward``, ``backward``, ``forward_all``,
  ``forward_backward_all``, ``reshape``, ``clear_param_diffs``, ``copy_from``, ``share_with``,
  ``save``, ``set_input_arrays``.
* ``SGDSolver``, ``NesterovSolver``, ``AdaGradSolver``, ``RMSPropSolver``, ``AdaDeltaSolver``,
  ``AdamSolver`` (``(solver_prototxt)``) and ``get_solver(file)`` (the class from the file's
  ``type``): ``net``, ``test_nets``, ``iter``, ``param``, ``lr``, ``step(n)``, ``solve(resume=None)``,
  ``snapshot()``, ``restore(state)``, ``apply_update()``.
* ``io``: ``Transformer``, ``load_image``, ``resize_image``, ``oversample``, blob/datum converters.

Blob arrays are numpy *views* of the tensors the net computes with (on the CPU): writes through
``blob.data[...] = x`` go into the net.  Unlike Caffe's blobs, whose memory persists, a forward pass
puts a new tensor into each blob it computes: read ``blob.data`` again after ``forward`` (an array
taken before it still holds the old values; pycaffe scripts that keep results ``.copy()`` them
anyway).  A forward also drops the diffs of the blobs it recomputes (loss blobs keep their loss
weight): set top diffs after ``forward``, as pycaffe scripts do.

BLAS: the first net or solver built on the CPU switches the process to exact mode (Caffe's BLAS
calls on Debian's OpenBLAS 0.3.21, Caffe's bits) unless env ``REPLICATE_BLAS`` or
:func:`set_blas` chose a mode; when exact mode is unavailable it warns and computes in fast mode.
"""
from __future__ import annotations

import contextlib
import os
import sys
import types
import warnings
from collections import OrderedDict
from itertools import zip_longest
from typing import Optional

import numpy as np
import torch

from prototxt_like import caffe_pb2

from . import ops as R
from .rng import CaffeRNG, caffe_seed

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST

__all__ = ["TRAIN", "TEST", "set_mode_cpu", "set_mode_gpu", "set_device", "set_random_seed", "set_blas",
           "Net", "Blob", "Layer", "Solver", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
           "AdaDeltaSolver", "AdamSolver", "get_solver", "layer_type_list", "io", "Transformer", "load_image",
           "resize_image", "oversample"]

# ---------------------------------------------------------------------------------------------
# Caffe's process-wide state: mode, device, the random generator, the BLAS mode

_state = {"gpu": False, "device_id": 0, "blas_chosen": bool(os.environ.get("REPLICATE_BLAS"))}
_generator: Optional[CaffeRNG] = None


def set_mode_cpu() -> None:
    """``caffe.set_mode_cpu()``: nets and solvers built afterwards compute on the CPU."""
    _state["gpu"] = False


def set_mode_gpu() -> None:
    """``caffe.set_mode_gpu()``: nets and solvers built afterwards compute on CUDA device
    ``set_device``'s (0 by default).  Raises when torch has no CUDA device."""
    if not torch.cuda.is_available():
        raise RuntimeError("set_mode_gpu: no CUDA device is available to torch in this process "
                           "(a CPU-only build of torch, or no GPU)")
    _state["gpu"] = True


def set_device(device_id: int) -> None:
    """``caffe.set_device(i)``: the CUDA device of GPU mode."""
    _state["device_id"] = int(device_id)


def _device() -> str:
    return f"cuda:{_state['device_id']}" if _state["gpu"] else "cpu"


def generator() -> CaffeRNG:
    """Caffe's process-wide generator (``Caffe::rng_stream()``); seeded from the system until
    :func:`set_random_seed` is called, as Caffe's is."""
    global _generator
    if _generator is None:
        _generator = CaffeRNG(int.from_bytes(os.urandom(4), "little"))
    return _generator


def _reseed(rng: CaffeRNG, seed: int) -> None:
    rng.state.copy_(CaffeRNG(caffe_seed(seed)).state)


def set_random_seed(seed: int) -> None:
    """``caffe.set_random_seed(seed)``: ``Caffe::set_random_seed(unsigned int)``, the seed taken
    modulo 2^32.  The one generator is reseeded in place, so nets already built draw from the new
    sequence too (their Dropout masks, Data-layer crops and mirrors), as in Caffe."""
    _reseed(generator(), int(seed))


def set_blas(mode: str) -> None:
    """``"exact"`` (Caffe's bits) or ``"fast"``, for the whole process (:func:`replicate.ops.set_blas`)."""
    R.set_blas(mode)
    _state["blas_chosen"] = True


def _ensure_blas() -> None:
    if _state["blas_chosen"] or _state["gpu"]:
        return
    _state["blas_chosen"] = True
    try:
        R.set_blas("exact")
    except RuntimeError as e:
        warnings.warn(f"replicate.pycaffe: exact BLAS unavailable, computing in fast mode (not Caffe's bits): {e}",
                      RuntimeWarning, stacklevel=3)
        R.set_blas("fast")


def layer_type_list():
    """``caffe.layer_type_list()``: the layer types this package runs."""
    from .layers import _MODULES
    return sorted(_MODULES)


def _check_file(path) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):  # _caffe.cpp's CheckFile
        raise RuntimeError(f"Could not open file {path}")
    return path


def _as_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.device.type != "cpu":  # no shared memory with the GPU: a host copy
        return t.cpu().numpy()
    return t.numpy()


# ---------------------------------------------------------------------------------------------
# Blobs and layers

class Blob:
    """``caffe.Blob`` of a net: ``data`` and ``diff`` are numpy views (float32) of the net's tensors."""

    def __init__(self, net, name: str):
        self._net, self.name = net, name

    def _blob(self):
        return self._net.blobs[self.name]

    def _tensor(self) -> torch.Tensor:
        b = self._blob()
        if b.data is None:  # never computed yet (or freed): Caffe's blob exists with its shape, zeros
            b.data = torch.zeros(self._net._meta_shapes[self.name], dtype=self._net.ctx.dtype,
                                 device=self._net.ctx.device)
        return b.data

    @property
    def data(self) -> np.ndarray:
        return _as_numpy(self._tensor())

    @data.setter
    def data(self, value):  # not in pycaffe (its property is read-only): copies into the blob
        self.data[...] = value
        if self._tensor().device.type != "cpu":
            self._blob().data = torch.from_numpy(np.array(value, dtype=np.float32).reshape(self.shape)).to(
                self._tensor().device)

    @property
    def diff(self) -> np.ndarray:
        self._tensor()
        return _as_numpy(self._blob().diff_or_zeros())

    @diff.setter
    def diff(self, value):
        self.diff[...] = value
        b = self._blob()
        if b.data.device.type != "cpu":
            b.diff = torch.from_numpy(np.array(value, dtype=np.float32).reshape(self.shape)).to(b.data.device)

    @property
    def shape(self):
        return tuple(self._tensor().shape)

    @property
    def count(self) -> int:
        return int(self._tensor().numel())

    def _legacy(self, i: int) -> int:
        shape = self.shape
        if len(shape) > 4:
            raise ValueError(f"blob {self.name!r} has {len(shape)} axes; num/channels/height/width need <= 4")
        return int(shape[i]) if i < len(shape) else 1

    num = property(lambda self: self._legacy(0))
    channels = property(lambda self: self._legacy(1))
    height = property(lambda self: self._legacy(2))
    width = property(lambda self: self._legacy(3))

    def reshape(self, *shape) -> None:
        """``Blob::Reshape``: a count that fits keeps the leading values (Caffe reuses its memory),
        a larger one starts from zeros; the layers above follow at the next ``forward`` (or
        ``net.reshape()``)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"blob shape must be non-negative, got {shape}")
        b = self._blob()
        b.data = _resized(self._tensor(), shape)
        if b.diff is not None:
            b.diff = _resized(b.diff, shape)

    def __repr__(self):
        return f"<Blob {self.name!r} {self.shape}>"


def _resized(t: torch.Tensor, shape) -> torch.Tensor:
    if tuple(t.shape) == tuple(shape):
        return t
    n = int(np.prod(shape))
    if n <= t.numel():
        return t.detach().reshape(-1)[:n].clone().reshape(shape)
    return torch.zeros(shape, dtype=t.dtype, device=t.device)


class ParamBlob:
    """A learnable blob (``net.params[layer][i]``): ``data`` and ``diff`` are views of the layer's."""

    def __init__(self, layer, index: int):
        self._layer, self._i = layer, index

    @property
    def _p(self):
        return self._layer.params[self._i]

    data = property(lambda self: _as_numpy(self._p.data))
    diff = property(lambda self: _as_numpy(self._p.diff))

    @data.setter
    def data(self, value):
        with torch.no_grad():
            self._p.data.copy_(torch.as_tensor(np.asarray(value, dtype=np.float32)).reshape(self._p.data.shape))

    @diff.setter
    def diff(self, value):
        with torch.no_grad():
            self._p.diff.copy_(torch.as_tensor(np.asarray(value, dtype=np.float32)).reshape(self._p.diff.shape))

    shape = property(lambda self: tuple(self._p.data.shape))
    count = property(lambda self: int(self._p.data.numel()))
    num = property(lambda self: self.shape[0] if len(self.shape) > 0 else 1)
    channels = property(lambda self: self.shape[1] if len(self.shape) > 1 else 1)
    height = property(lambda self: self.shape[2] if len(self.shape) > 2 else 1)
    width = property(lambda self: self.shape[3] if len(self.shape) > 3 else 1)

    def __repr__(self):
        return f"<param {self._i} of layer {self._layer.name!r} {self.shape}>"


class Layer:
    """``net.layers[i]``: ``type``, ``name``, ``blobs`` (its learnable blobs), ``phase``."""

    def __init__(self, layer, phase: int):
        self._layer = layer
        self.type = layer.type
        self.name = layer.name
        self.phase = phase
        self.blobs = [ParamBlob(layer, i) for i in range(len(layer.params))]

    def __repr__(self):
        return f"<Layer {self.name!r} ({self.type})>"


# ---------------------------------------------------------------------------------------------
# Net

class Net:
    """``caffe.Net`` over :class:`replicate.net.Net` (``self.net``).

    ``Net(prototxt, phase, level=0, stages=None, weights=None)`` or the deprecated
    ``Net(prototxt, weights, phase)``.  ``device``: default the mode's (``set_mode_cpu/gpu``);
    ``rng``: default Caffe's process-wide generator (:func:`set_random_seed`)."""

    def __init__(self, network_file, *args, phase=None, level: int = 0, stages=None, weights=None,
                 device=None, rng: Optional[CaffeRNG] = None, **kwargs):
        from .net import Net as _Net
        if isinstance(network_file, _Net):  # wrap a net (a solver's)
            self.net = network_file
            return
        if len(args) == 2 and isinstance(args[0], (str, os.PathLike)):  # Net(file, weights, phase)
            weights, phase = args
            warnings.warn("DEPRECATION WARNING - deprecated use of Python interface; use "
                          f"Net({network_file!r}, {args[1]}, weights={os.fspath(args[0])!r})",
                          DeprecationWarning, stacklevel=2)
        elif len(args) >= 1:
            if phase is not None:
                raise TypeError("Net: phase given twice")
            phase, rest = args[0], args[1:]
            for name, v in zip(("level", "stages", "weights"), rest):
                if name == "level":
                    level = v
                elif name == "stages":
                    stages = v
                else:
                    weights = v
        if phase is None:
            raise TypeError("Net(network_file, phase, level=0, stages=None, weights=None): phase is required")
        if phase not in (TRAIN, TEST):
            raise ValueError(f"phase must be caffe.TRAIN ({TRAIN}) or caffe.TEST ({TEST}), got {phase!r}")
        path = _check_file(network_file)
        _ensure_blas()
        self.net = _Net(path, int(phase), level=int(level), stages=list(stages or ()),
                        rng=rng if rng is not None else generator(), device=device or _device(), **kwargs)
        if weights is not None:
            self.net.copy_trained_layers_from(_check_file(weights))

    # -- pycaffe's properties ----------------------------------------------------------------
    @property
    def _blob_names(self):
        return list(self.net.blob_order)

    @property
    def _layer_names(self):
        return self.net.layer_names

    @property
    def blobs(self) -> "OrderedDict[str, Blob]":
        if getattr(self, "_blobs_dict", None) is None or list(self._blobs_dict) != self.net.blob_order:
            self._blobs_dict = OrderedDict((n, Blob(self.net, n)) for n in self.net.blob_order)
        return self._blobs_dict

    @property
    def layers(self):
        if getattr(self, "_layers_list", None) is None:
            self._layers_list = [Layer(l, self.net.phase) for l in self.net.layers]
        return self._layers_list

    @property
    def layer_dict(self):
        return OrderedDict(zip(self._layer_names, self.layers))

    @property
    def params(self) -> "OrderedDict[str, list]":
        return OrderedDict((l.name, l.blobs) for l in self.layers if l.blobs)

    @property
    def blob_loss_weights(self):
        return OrderedDict((n, self.net.loss_weights.get(n, 0.0)) for n in self.net.blob_order)

    @property
    def _blob_loss_weights(self):
        return list(self.blob_loss_weights.values())

    @property
    def inputs(self):
        return list(self.net.input_names)

    @property
    def outputs(self):
        return list(self.net.output_names)

    @property
    def top_names(self):
        return OrderedDict(zip(self._layer_names, [list(t) for t in self.net.tops]))

    @property
    def bottom_names(self):
        return OrderedDict(zip(self._layer_names, [list(b) for b in self.net.bottoms]))

    @property
    def name(self):
        return self.net.name

    @property
    def phase(self):
        return self.net.phase

    # -- running -----------------------------------------------------------------------------
    def _index(self, layer_name: str) -> int:
        return list(self._layer_names).index(layer_name)  # pycaffe: ValueError for an unknown name

    def _forward(self, start: int, end: int) -> float:
        """``Net::ForwardFromTo(start, end)``; returns the loss."""
        return self.net.forward(start, end)

    def _backward(self, start: int, end: int) -> None:
        """``Net::BackwardFromTo(start, end)``."""
        self.net.backward(start, end)

    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """pycaffe's ``Net.forward``: ``kwargs`` fill the input blobs (all of them, batch-sized),
        layers ``start``..``end`` (names, inclusive) run; returns ``{blob: data}`` for the outputs
        (or ``end``'s tops) and ``blobs``."""
        blobs = list(blobs or [])
        start_ind = self._index(start) if start is not None else 0
        if end is not None:
            end_ind = self._index(end)
            outputs = set(self.top_names[end] + blobs)
        else:
            end_ind = len(self.net.layers) - 1
            outputs = set(self.outputs + blobs)
        if kwargs:
            if set(kwargs.keys()) != set(self.inputs):
                raise Exception('Input blob arguments do not match net inputs.')
            for in_, blob in kwargs.items():
                blob = np.asarray(blob)
                if blob.shape[0] != self.blobs[in_].shape[0]:
                    raise Exception('Input is not batch sized')
                self.blobs[in_].data[...] = blob
        self._forward(start_ind, end_ind)
        return {out: self.blobs[out].data for out in outputs}

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """pycaffe's ``Net.backward``: ``kwargs`` set the output blobs' diffs (all of them),
        layers ``start`` down to ``end`` run backward; returns ``{blob: diff}`` for the inputs (or
        ``end``'s bottoms) and ``diffs``."""
        diffs = list(diffs or [])
        start_ind = self._index(start) if start is not None else len(self.net.layers) - 1
        if end is not None:
            end_ind = self._index(end)
            outputs = set(self.bottom_names[end] + diffs)
        else:
            end_ind = 0
            outputs = set(self.inputs + diffs)
        if kwargs:
            if set(kwargs.keys()) != set(self.outputs):
                raise Exception('Top diff arguments do not match net outputs.')
            for top, diff in kwargs.items():
                diff = np.asarray(diff)
                if diff.shape[0] != self.blobs[top].shape[0]:
                    raise Exception('Diff is not batch sized')
                self.blobs[top].diff[...] = diff
        self._backward(start_ind, end_ind)
        return {out: self.blobs[out].diff for out in outputs}

    def forward_all(self, blobs=None, **kwargs):
        """pycaffe's ``forward_all``: forward in batches of the net's batch size (the last padded
        with zeros and the padding dropped from the outputs)."""
        all_outs = {out: [] for out in set(self.outputs + (blobs or []))}
        for batch in self._batch(kwargs):
            outs = self.forward(blobs=blobs, **batch)
            for out, out_blob in outs.items():
                all_outs[out].extend(out_blob.copy())
        for out in all_outs:
            all_outs[out] = np.asarray(all_outs[out])
        pad = len(next(iter(all_outs.values()))) - len(next(iter(kwargs.values())))
        if pad:
            for out in all_outs:
                all_outs[out] = all_outs[out][:-pad]
        return all_outs

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """pycaffe's ``forward_backward_all``."""
        all_outs = {out: [] for out in set(self.outputs + (blobs or []))}
        all_diffs = {diff: [] for diff in set(self.inputs + (diffs or []))}
        forward_batches = self._batch({in_: kwargs[in_] for in_ in self.inputs if in_ in kwargs})
        backward_batches = self._batch({out: kwargs[out] for out in self.outputs if out in kwargs})
        for fb, bb in zip_longest(forward_batches, backward_batches, fillvalue={}):
            batch_blobs = self.forward(blobs=blobs, **fb)
            batch_diffs = self.backward(diffs=diffs, **bb)
            for out, out_blobs in batch_blobs.items():
                all_outs[out].extend(out_blobs.copy())
            for diff, out_diffs in batch_diffs.items():
                all_diffs[diff].extend(out_diffs.copy())
        for out, diff in zip(all_outs, all_diffs):
            all_outs[out] = np.asarray(all_outs[out])
            all_diffs[diff] = np.asarray(all_diffs[diff])
        pad = len(next(iter(all_outs.values()))) - len(next(iter(kwargs.values())))
        if pad:
            for out, diff in zip(all_outs, all_diffs):
                all_outs[out] = all_outs[out][:-pad]
                all_diffs[diff] = all_diffs[diff][:-pad]
        return all_outs, all_diffs

    def _batch(self, blobs):
        num = len(next(iter(blobs.values())))
        batch_size = next(iter(self.blobs.values())).shape[0]
        remainder = num % batch_size
        for b in range(num // batch_size):
            i = b * batch_size
            yield {name: blobs[name][i:i + batch_size] for name in blobs}
        if remainder > 0:
            padded = {}
            for name in blobs:
                padding = np.zeros((batch_size - remainder,) + blobs[name].shape[1:])
                padded[name] = np.concatenate([blobs[name][-remainder:], padding])
            yield padded

    def reshape(self) -> None:
        """``Net::Reshape``: every layer's top shapes from the current input shapes (a shape-only
        pass); blobs whose shape changes are resized as :meth:`Blob.reshape` does."""
        from .net import _shape_pass
        net = self.net
        meta = {}
        for lid, layer in enumerate(net.layers):
            if layer.type == "Input":
                for t in net.tops[lid]:
                    meta[t] = torch.empty(Blob(net, t).shape, dtype=net.ctx.dtype, device="meta")
                continue
            bottoms = [meta[b] for b in net.bottoms[lid]]
            with _shape_pass(layer, net.ctx):
                tops = layer.forward(bottoms)
            for t, m in zip(net.tops[lid], tops):
                meta[t] = m
        for name, m in meta.items():
            b = net.blobs[name]
            shape = tuple(m.shape)
            net._meta_shapes[name] = shape
            if b.data is not None:
                b.data = _resized(b.data, shape)
            if b.diff is not None:
                b.diff = _resized(b.diff, shape)

    def clear_param_diffs(self) -> None:
        self.net.clear_param_diffs()

    def copy_from(self, path) -> None:
        """``Net::CopyTrainedLayersFrom`` a .caffemodel."""
        self.net.copy_trained_layers_from(_check_file(path))

    def share_with(self, other: "Net") -> None:
        """``Net::ShareTrainedLayersWith``."""
        self.net.share_trained_layers_with(other.net if isinstance(other, Net) else other)

    def save(self, path) -> None:
        """pycaffe's ``net.save``: ``ToProto(write_diff=false)`` as a binary .caffemodel."""
        self.net.save(os.fspath(path), write_diff=False)

    def save_hdf5(self, path):
        raise NotImplementedError("Net.save_hdf5: HDF5 weights are not supported; use save() (.caffemodel)")

    def load_hdf5(self, path):
        raise NotImplementedError("Net.load_hdf5: HDF5 weights are not supported; use copy_from() (.caffemodel)")

    def set_input_arrays(self, data, labels):
        """pycaffe's ``set_input_arrays`` for a net whose first layer is MemoryData."""
        labels = np.asarray(labels)
        if labels.ndim == 1:
            labels = np.ascontiguousarray(labels[:, np.newaxis, np.newaxis, np.newaxis])
        if not self.net.layers or self.net.layers[0].type != "MemoryData":
            raise RuntimeError("set_input_arrays may only be called if the first layer is a MemoryDataLayer")
        return self.net.set_input_arrays(data, labels, self.net.layers[0].name)

    def __repr__(self):
        return f"<pycaffe Net {self.net.name!r}: {len(self.net.layers)} layers, phase {'TRAIN' if self.phase == TRAIN else 'TEST'}>"


# ---------------------------------------------------------------------------------------------
# Solvers

def _solver_subclass(cls):
    """``cls`` (a replicate solver class) as pycaffe's solvers behave: the nets draw from Caffe's
    process-wide generator, which a ``random_seed`` >= 0 reseeds (Solver::Init's
    ``Caffe::set_random_seed``), and no signal handlers are installed (Python keeps Ctrl-C)."""

    class PyCaffeSolver(cls):
        def _train_net(self):
            g = generator()
            if self.param.random_seed >= 0:
                _reseed(g, self.param.random_seed)
            self.rng = g
            return super()._train_net()

        def _signals(self):
            return contextlib.nullcontext()

    PyCaffeSolver.__name__ = PyCaffeSolver.__qualname__ = f"PyCaffe{cls.__name__}"
    return PyCaffeSolver


class Solver:
    """pycaffe's solver over a :mod:`replicate` solver (``self.solver``).  ``TYPE``: the solver
    type this class builds whatever the file's ``type`` says (as ``caffe.AdamSolver(file)`` builds
    an Adam solver); None (``get_solver``): the file's ``type``.  ``log``: a
    :class:`replicate.log.CaffeLog` (default: glog lines on stderr)."""

    TYPE: Optional[str] = None

    def __init__(self, solver_file, *, log=None, **kwargs):
        from prototxt_like.io import load_solver
        from prototxt_like.upgrade import upgrade_solver
        from .solvers import solver_class
        if isinstance(solver_file, caffe_pb2.SolverParameter):
            param = caffe_pb2.SolverParameter()
            param.CopyFrom(solver_file)
        else:  # ReadSolverParamsFromTextFileOrDie: upgrade, snapshot_prefix beside the file
            param = load_solver(_check_file(solver_file), resolve_snapshot_prefix=True)
        if param.HasField("solver_type"):
            param = upgrade_solver(param)
        if self.TYPE is not None:
            param.type = self.TYPE
        _ensure_blas()
        device = kwargs.pop("device", None)
        if device is None:
            device = _device()
            if param.HasField("solver_mode") and param.solver_mode == param.GPU and torch.cuda.is_available() \
                    and _state["gpu"]:
                device = f"cuda:{param.device_id}"
        cls = _solver_subclass(solver_class(param))
        self.solver = cls(param, log=log, device=device, **kwargs)
        self.solver.net.release_after_backward = False  # pycaffe reads any blob between steps
        self._net = Net(self.solver.net)
        self._test_nets = [Net(n) for n in self.solver.test_nets]

    net = property(lambda self: self._net)
    test_nets = property(lambda self: self._test_nets)
    param = property(lambda self: self.solver.param)

    @property
    def iter(self) -> int:
        return self.solver.iter

    @property
    def lr(self) -> float:
        """``SGDSolver::GetLearningRate()`` at the current iteration."""
        return float(self.solver.learning_rate())

    def step(self, iters: int) -> None:
        """``Solver::Step(iters)``: tests, displays and snapshots as configured."""
        self.solver.step(int(iters))

    def solve(self, resume_file=None) -> None:
        """``Solver::Solve(resume_file)``: to ``max_iter``, then the final snapshot/display/test."""
        self.solver.solve(os.fspath(resume_file) if resume_file is not None else None)

    def restore(self, state_file) -> None:
        self.solver.restore(_check_file(state_file))

    def snapshot(self) -> None:
        self.solver.snapshot()

    def apply_update(self) -> None:
        """``ApplyUpdate``: the update from the current parameter diffs; ``iter`` advances."""
        self.solver.apply_update(False)

    def share_weights(self, net: Net) -> None:
        """pycaffe's ``share_weights(solver, net)``: ``net`` uses the train net's weights."""
        net.share_with(self._net)

    def add_callback(self, *args, **kwargs):
        raise NotImplementedError("Solver.add_callback is not supported; call step(1) in a loop and act between "
                                  "steps")

    def close(self) -> None:
        self.solver.close()


def _typed(name: str, kind: str):
    return type(name, (Solver,), {"TYPE": kind, "__doc__": f"``caffe.{name}(solver_prototxt)``: a {kind} solver."})


SGDSolver = _typed("SGDSolver", "SGD")
NesterovSolver = _typed("NesterovSolver", "Nesterov")
AdaGradSolver = _typed("AdaGradSolver", "AdaGrad")
RMSPropSolver = _typed("RMSPropSolver", "RMSProp")
AdaDeltaSolver = _typed("AdaDeltaSolver", "AdaDelta")
AdamSolver = _typed("AdamSolver", "Adam")


def get_solver(solver_file, **kwargs) -> Solver:
    """``caffe.get_solver(file)``: the solver of the file's ``type`` (SolverRegistry)."""
    return Solver(solver_file, **kwargs)


# ---------------------------------------------------------------------------------------------
# caffe.io (python/caffe/io.py): conversions, Transformer, image loading

def blobproto_to_array(blob, return_diff=False):
    data = np.array(blob.diff) if return_diff else np.array(blob.data)
    if blob.HasField('num') or blob.HasField('channels') or blob.HasField('height') or blob.HasField('width'):
        return data.reshape(blob.num, blob.channels, blob.height, blob.width)
    return data.reshape(blob.shape.dim)


def array_to_blobproto(arr, diff=None):
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(arr.shape)
    blob.data.extend(arr.astype(float).flat)
    if diff is not None:
        blob.diff.extend(diff.astype(float).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist):
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend([array_to_blobproto(arr) for arr in arraylist])
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(s):
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(s)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr, label=None):
    if arr.ndim != 3:
        raise ValueError('Incorrect array shape.')
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = label
    return datum


def datum_to_array(datum):
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(datum.channels, datum.height, datum.width)
    return np.array(datum.float_data).astype(float).reshape(datum.channels, datum.height, datum.width)


class Transformer:
    """``caffe.io.Transformer``: formats H x W x K images for a net's input blobs and back, step for
    step as python/caffe/io.py (float32 throughout; ``resize_image`` when the size differs)."""

    def __init__(self, inputs):
        self.inputs = inputs
        self.transpose = {}
        self.channel_swap = {}
        self.raw_scale = {}
        self.mean = {}
        self.input_scale = {}

    def __check_input(self, in_):
        if in_ not in self.inputs:
            raise Exception('{} is not one of the net inputs: {}'.format(in_, self.inputs))

    def preprocess(self, in_, data):
        self.__check_input(in_)
        caffe_in = data.astype(np.float32, copy=False)
        transpose = self.transpose.get(in_)
        channel_swap = self.channel_swap.get(in_)
        raw_scale = self.raw_scale.get(in_)
        mean = self.mean.get(in_)
        input_scale = self.input_scale.get(in_)
        in_dims = tuple(self.inputs[in_][2:])
        if caffe_in.shape[:2] != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if transpose is not None:
            caffe_in = caffe_in.transpose(transpose)
        if channel_swap is not None:
            caffe_in = caffe_in[channel_swap, :, :]
        if raw_scale is not None:
            caffe_in *= raw_scale
        if mean is not None:
            caffe_in -= mean
        if input_scale is not None:
            caffe_in *= input_scale
        return caffe_in

    def deprocess(self, in_, data):
        self.__check_input(in_)
        decaf_in = data.copy().squeeze()
        transpose = self.transpose.get(in_)
        channel_swap = self.channel_swap.get(in_)
        raw_scale = self.raw_scale.get(in_)
        mean = self.mean.get(in_)
        input_scale = self.input_scale.get(in_)
        if input_scale is not None:
            decaf_in /= input_scale
        if mean is not None:
            decaf_in += mean
        if raw_scale is not None:
            decaf_in /= raw_scale
        if channel_swap is not None:
            decaf_in = decaf_in[np.argsort(channel_swap), :, :]
        if transpose is not None:
            decaf_in = decaf_in.transpose(np.argsort(transpose))
        return decaf_in

    def set_transpose(self, in_, order):
        self.__check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise Exception('Transpose order needs to have the same number of dimensions as the input.')
        self.transpose[in_] = order

    def set_channel_swap(self, in_, order):
        self.__check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise Exception('Channel swap needs to have the same number of dimensions as the input channels.')
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_, scale):
        self.__check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        self.__check_input(in_)
        ms = mean.shape
        if mean.ndim == 1:
            if ms[0] != self.inputs[in_][1]:
                raise ValueError('Mean channels incompatible with input.')
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if len(ms) == 2:
                ms = (1,) + ms
            if len(ms) != 3:
                raise ValueError('Mean shape invalid')
            if ms != tuple(self.inputs[in_][1:]):
                in_shape = self.inputs[in_][1:]
                m_min, m_max = mean.min(), mean.max()
                normal_mean = (mean - m_min) / (m_max - m_min)
                mean = resize_image(normal_mean.transpose((1, 2, 0)), in_shape[1:]).transpose((2, 0, 1)) * \
                    (m_max - m_min) + m_min
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        self.__check_input(in_)
        self.input_scale[in_] = scale


def load_image(filename, color=True):
    """``caffe.io.load_image``: an H x W x 3 (RGB) or H x W x 1 float32 image in [0, 1].

    Decoded with Pillow instead of skimage.io: 8-bit images give pycaffe's values exactly
    (``uint8 / 255`` in double, then float32, as skimage's ``img_as_float``).  16-bit images are
    scaled by 1/65535 as skimage does.  Grey from colour (``color=False`` on an RGB file) uses
    skimage's ``rgb2gray`` weights 0.2125 R + 0.7154 G + 0.0721 B in double; skimage versions
    differ in the order of that sum, so the last bit may differ from a given skimage."""
    from PIL import Image
    with Image.open(filename) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im).astype(np.float64) / 65535.0
        else:
            if im.mode not in ("L", "RGB", "RGBA", "LA"):
                im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
            arr = np.asarray(im).astype(np.float64) / 255.0
    if not color and arr.ndim == 3:
        rgb = arr[..., :3] if arr.shape[2] >= 3 else np.repeat(arr[..., :1], 3, axis=2)
        arr = rgb[..., 0] * 0.2125 + rgb[..., 1] * 0.7154 + rgb[..., 2] * 0.0721
    if arr.ndim == 3 and arr.shape[2] == 2:  # grey + alpha
        arr = arr[..., 0]
    img = arr.astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return img


def _bilinear_constant(im: np.ndarray, new_dims) -> np.ndarray:
    """skimage.transform.resize(order=1, mode='constant', cval=0, clip=True, no anti-aliasing) of
    an H x W x K image in double: output pixel (r, c) samples the input at
    ``((r + .5) * H / H' - .5, (c + .5) * W / W' - .5)`` bilinearly, neighbours outside the image
    counting as 0, then clipped to the input's range (with 0)."""
    im = np.asarray(im, dtype=np.float64)
    h, w = im.shape[:2]
    oh, ow = int(new_dims[0]), int(new_dims[1])
    r = (np.arange(oh) + 0.5) * (h / oh) - 0.5
    c = (np.arange(ow) + 0.5) * (w / ow) - 0.5

    def taps(x, n):
        lo = np.floor(x).astype(np.int64)
        d = x - lo
        hi = lo + 1
        return lo, hi, d, (lo >= 0) & (lo < n), (hi >= 0) & (hi < n)

    r0, r1, dr, vr0, vr1 = taps(r, h)
    c0, c1, dc, vc0, vc1 = taps(c, w)

    def px(ri, vr, ci, vc):
        out = im[np.clip(ri, 0, h - 1)][:, np.clip(ci, 0, w - 1)]
        mask = (vr[:, None] & vc[None, :])
        return out * mask[..., None]

    tl, tr = px(r0, vr0, c0, vc0), px(r0, vr0, c1, vc1)
    bl, br = px(r1, vr1, c0, vc0), px(r1, vr1, c1, vc1)
    dc_ = dc[None, :, None]
    dr_ = dr[:, None, None]
    top = (1 - dc_) * tl + dc_ * tr
    bottom = (1 - dc_) * bl + dc_ * br
    out = (1 - dr_) * top + dr_ * bottom
    lo, hi = min(im.min(), 0.0), max(im.max(), 0.0)
    return np.clip(out, lo, hi)


def _zoom_linear(im: np.ndarray, new_dims) -> np.ndarray:
    """scipy.ndimage.zoom(order=1) over the two spatial axes: output index o samples the input at
    ``o * (n - 1) / (n' - 1)`` (corners aligned), bilinearly."""
    im = np.asarray(im, dtype=np.float64)
    h, w = im.shape[:2]
    oh, ow = int(new_dims[0]), int(new_dims[1])
    r = np.arange(oh) * ((h - 1) / (oh - 1)) if oh > 1 else np.zeros(1)
    c = np.arange(ow) * ((w - 1) / (ow - 1)) if ow > 1 else np.zeros(1)
    r0 = np.clip(np.floor(r).astype(np.int64), 0, h - 1)
    c0 = np.clip(np.floor(c).astype(np.int64), 0, w - 1)
    r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
    dr, dc = (r - r0)[:, None, None], (c - c0)[None, :, None]
    a, b = im[r0][:, c0], im[r0][:, c1]
    cc, d = im[r1][:, c0], im[r1][:, c1]
    return (1 - dr) * ((1 - dc) * a + dc * b) + dr * ((1 - dc) * cc + dc * d)


def resize_image(im, new_dims, interp_order=1):
    """``caffe.io.resize_image``: an H x W x K image resized to ``new_dims`` (float32).

    pycaffe calls skimage's ``resize(order=1, mode='constant')`` for K in {1, 3} (on the image
    normalised to [0, 1]) and scipy's ``zoom`` otherwise; neither is installed here, so both are
    written out in numpy (:func:`_bilinear_constant`, :func:`_zoom_linear`), the same formulas in
    double: equal to within rounding (skimage builds its coordinate map by a least-squares affine
    fit, which can move a coordinate by an ulp), and without the anti-aliasing newer skimage
    versions (0.15+) add by default when shrinking.  Only ``interp_order`` 1 is implemented."""
    if interp_order != 1:
        raise NotImplementedError("resize_image: only interp_order=1 (pycaffe's default) is implemented")
    im = np.asarray(im)
    if im.shape[-1] == 1 or im.shape[-1] == 3:
        im_min, im_max = im.min(), im.max()
        if im_max > im_min:
            im_std = (im - im_min) / (im_max - im_min)
            resized_std = _bilinear_constant(im_std, new_dims)
            resized_im = resized_std * (im_max - im_min) + im_min
        else:
            ret = np.empty((new_dims[0], new_dims[1], im.shape[-1]), dtype=np.float32)
            ret.fill(im_min)
            return ret
    else:
        resized_im = _zoom_linear(im, new_dims)
    return resized_im.astype(np.float32)


def oversample(images, crop_dims):
    """``caffe.io.oversample``: the 4 corner and centre crops and their mirrors (10 per image)."""
    im_shape = np.array(images[0].shape)
    crop_dims = np.array(crop_dims)
    im_center = im_shape[:2] / 2.0
    h_indices = (0, im_shape[0] - crop_dims[0])
    w_indices = (0, im_shape[1] - crop_dims[1])
    crops_ix = np.empty((5, 4), dtype=int)
    curr = 0
    for i in h_indices:
        for j in w_indices:
            crops_ix[curr] = (i, j, i + crop_dims[0], j + crop_dims[1])
            curr += 1
    crops_ix[4] = np.tile(im_center, (1, 2)) + np.concatenate([-crop_dims / 2.0, crop_dims / 2.0])
    crops_ix = np.tile(crops_ix, (2, 1))
    crops = np.empty((10 * len(images), crop_dims[0], crop_dims[1], im_shape[-1]), dtype=np.float32)
    ix = 0
    for im in images:
        for crop in crops_ix:
            crops[ix] = im[crop[0]:crop[2], crop[1]:crop[3], :]
            ix += 1
        crops[ix - 5:ix] = crops[ix - 5:ix, :, ::-1, :]
    return crops


# ``caffe.io`` as a module object: ``caffe.io.Transformer`` and ``from replicate.pycaffe.io import ...``
io = types.ModuleType(__name__ + ".io", "caffe.io: conversions, Transformer, load_image, resize_image, oversample")
for _name in ("blobproto_to_array", "array_to_blobproto", "arraylist_to_blobprotovector_str",
              "blobprotovector_str_to_arraylist", "array_to_datum", "datum_to_array", "Transformer", "load_image",
              "resize_image", "oversample"):
    setattr(io, _name, globals()[_name])
io.caffe_pb2 = caffe_pb2
sys.modules.setdefault(io.__name__, io)
del _name
