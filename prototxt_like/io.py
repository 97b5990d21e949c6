"""Reading and writing Caffe's files.

========================  ==================================================
file                      functions
========================  ==================================================
net ``.prototxt``         :func:`load_net`, :func:`save_net_text`
solver ``.prototxt``      :func:`load_solver`, :func:`save_solver_text`
``.caffemodel``           :func:`load_net_binary`, :func:`caffemodel_weights`,
                          :func:`save_caffemodel`
``.binaryproto``          :func:`load_blob` / :func:`save_blob` (a mean image),
                          :func:`load_blob_vector` / :func:`save_blob_vector`
``.solverstate``          :func:`load_solverstate`, :func:`save_solverstate`
========================  ==================================================

Every loader accepts a path; the text loaders also accept the text itself.
Nets are always returned upgraded to V2 (``layer { type: "..." }``), the way
Caffe upgrades them when it reads them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from . import caffe_pb2
from .blobs import (blob_to_numpy, check_blob, fit_to_shape,
                    has_legacy_shape, numpy_to_blob)
from .codec import (parse_binary, parse_text, read_binary_source,
                    read_text_source, serialize, to_text)
from .errors import BinaryFormatError, BlobError, CaffeFormatError
from .upgrade import check_layer_types, upgrade_net, upgrade_solver
from replicate.fileio import atomic_write

__all__ = [
    "load_net",
    "load_net_binary",
    "load_solver",
    "save_net_text",
    "save_solver_text",
    "to_text",
    "blob_to_numpy",
    "numpy_to_blob",
    "caffemodel_weights",
    "save_caffemodel",
    "load_blob",
    "load_mean",
    "save_blob",
    "load_blob_vector",
    "save_blob_vector",
    "load_solverstate",
    "save_solverstate",
]


# ---------------------------------------------------------------------------
# Nets and solvers (text)
# ---------------------------------------------------------------------------

def load_net(source, *, upgrade: bool = True, check_types: bool = True,
             strict: bool = False) -> caffe_pb2.NetParameter:
    """A net definition (path or prototxt text) as a V2 NetParameter.

    V0 and V1 nets are upgraded with Caffe's rules (``upgrade=False`` keeps
    the file as written).  ``check_types`` rejects layer types Caffe 1.0 does
    not know; ``strict`` turns Caffe's "unknown parameter ... (continuing)"
    upgrade messages into errors instead of warnings.
    """
    text, file = read_text_source(source)
    net = parse_text(text, caffe_pb2.NetParameter, file)
    if not upgrade:
        return net
    net = upgrade_net(net, file=file, strict=strict)
    if check_types:
        check_layer_types(net, file=file)
    return net


def load_solver(source, *, upgrade: bool = True,
                resolve_snapshot_prefix: bool = False) -> caffe_pb2.SolverParameter:
    """A solver definition (path or text) as an upgraded SolverParameter.

    ``solver_type: ENUM`` becomes ``type: "String"``; enum fields may be
    written as numbers (``solver_mode: 1``).  ``resolve_snapshot_prefix``
    also applies what ``caffe train`` does at run time: an unset
    ``snapshot_prefix`` becomes the solver path without extension, and a
    prefix naming a directory gets the solver file's stem appended.
    """
    text, file = read_text_source(source)
    solver = parse_text(text, caffe_pb2.SolverParameter, file)
    if upgrade:
        solver = upgrade_solver(solver, file=file)
    if resolve_snapshot_prefix:
        if file is None:
            raise CaffeFormatError("resolve_snapshot_prefix needs the solver's file path, not its text")
        if not solver.HasField("snapshot_prefix"):
            solver.snapshot_prefix = str(Path(file).with_suffix(""))
        elif os.path.isdir(solver.snapshot_prefix):
            solver.snapshot_prefix = os.path.join(solver.snapshot_prefix, Path(file).stem)
    return solver


def save_net_text(path, net: caffe_pb2.NetParameter) -> None:
    """Write ``net`` as text, byte for byte as Caffe's WriteProtoToTextFile."""
    atomic_write(path, to_text(net).encode("utf-8"))


save_solver_text = save_net_text


# ---------------------------------------------------------------------------
# Nets (binary) and weights
# ---------------------------------------------------------------------------

def load_net_binary(source, *, upgrade: bool = True, strict: bool = False,
                    allow_unknown: bool = False) -> caffe_pb2.NetParameter:
    """A binary NetParameter (e.g. ``.caffemodel``, path or bytes), upgraded
    to V2 (V1 ``layers`` and V0 nested ``layer`` included) and checked: every
    blob's data must fit its shape, strings must be UTF-8, and fields unknown
    to Caffe's schema are refused unless ``allow_unknown``."""
    data, file = read_binary_source(source)
    net = parse_binary(data, caffe_pb2.NetParameter, file, allow_unknown=allow_unknown)
    _check_net_blobs(net, file)
    if upgrade:
        net = upgrade_net(net, file=file, strict=strict)
    return net


def _check_net_blobs(net, file) -> None:
    def check(blobs, lname):
        for i, b in enumerate(blobs):
            try:
                check_blob(b, f"blob {i} of layer {lname!r}", from_file=True)
            except BlobError as e:
                raise BinaryFormatError(f"corrupt or truncated: {e.reason}", file=file) from None

    for l in net.layer:
        check(l.blobs, l.name)
    for l in net.layers:
        check(l.blobs, l.name or l.layer.name)
        check(l.layer.blobs, l.layer.name)


# Layer types whose legacy (V0/V1 era) parameter blobs have a known V2 shape.
_LEGACY_RESHAPE = {
    "Convolution": lambda i, s: s if i == 0 else (s[3],),
    "Deconvolution": lambda i, s: s if i == 0 else (s[3],),
    "InnerProduct": lambda i, s: (s[2], s[3]) if i == 0 else (s[3],),
}

# Layers that own parameter blobs, for the completeness check.
_PARAM_LAYER_TYPES = frozenset({"Convolution", "Deconvolution", "InnerProduct", "Embed",
                                "BatchNorm", "PReLU", "Parameter", "RNN", "LSTM"})


def caffemodel_weights(source, *, raw: bool = False, net=None,
                       allow_unknown: bool = False) -> dict[str, list[np.ndarray]]:
    """``{layer name: [blob arrays]}`` of a ``.caffemodel`` of any generation.

    Layers without blobs are left out.  Legacy 4-D blobs of Convolution,
    Deconvolution and InnerProduct layers get their V2 shape (bias ``(N,)``,
    inner-product weight ``(M, K)``) unless ``raw``; other legacy blobs stay
    4-D (see :func:`prototxt_like.blobs.fit_to_shape` for Caffe's rule).

    ``net`` (a NetParameter, path or text) asks for a completeness check:
    every parameterised layer of that net must be in the file, so that a file
    cut at a layer boundary, which protobuf cannot tell from a shorter valid
    file, is reported instead of loading partially.
    """
    model = load_net_binary(source, allow_unknown=allow_unknown)
    file = None if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)
    weights: dict[str, list[np.ndarray]] = {}
    for layer in model.layer:
        if not layer.blobs:
            continue
        if layer.name in weights:
            raise BinaryFormatError(f"two layers named {layer.name!r} hold blobs", file=file)
        arrays = []
        for i, b in enumerate(layer.blobs):
            a = blob_to_numpy(b, what=f"blob {i} of layer {layer.name!r}")
            if not raw and has_legacy_shape(b) and layer.type in _LEGACY_RESHAPE:
                shape = _LEGACY_RESHAPE[layer.type](i, a.shape)
                a = fit_to_shape(a, shape, legacy=True, what=f"blob {i} of layer {layer.name!r}")
            arrays.append(a)
        weights[layer.name] = arrays
    if net is not None:
        _check_complete(weights, net, file)
    return weights


def _check_complete(weights, net, file) -> None:
    if not isinstance(net, caffe_pb2.NetParameter):
        net = load_net(net)
    for layer in net.layer:
        wants = layer.type in _PARAM_LAYER_TYPES or (
            layer.type in ("Scale", "Bias") and len(layer.bottom) == 1)
        if wants and layer.name not in weights:
            raise BinaryFormatError(
                f"holds no weights for layer {layer.name!r} ({layer.type}) of net "
                f"{net.name!r}: truncated, or written for another net", file=file)


def save_caffemodel(path, net, weights: Mapping[str, Sequence[np.ndarray]], *,
                    phase: int | None = caffe_pb2.TEST) -> caffe_pb2.NetParameter:
    """Write ``weights`` as a V2 ``.caffemodel`` that Caffe's
    ``Net::CopyTrainedLayersFrom`` loads: every layer of ``net`` (a
    NetParameter, path or text; upgraded) with its blobs as float32
    ``shape`` + ``data``, and each layer's ``phase`` set unless it has one or
    ``phase`` is None.  Returns the message written.

    For a net without phase-specific layers and without blobs consumed by
    several layers this is byte for byte what pycaffe's ``Net.save`` writes
    (Caffe's own file would also drop the other phase's layers and list the
    Split layers it inserts; Caffe ignores such differences when loading).
    Every key of ``weights`` must name a layer of ``net``.
    """
    if not isinstance(net, caffe_pb2.NetParameter):
        net = load_net(net)
    else:
        net = upgrade_net(net)
    names = {l.name for l in net.layer}
    missing = sorted(set(weights) - names)
    if missing:
        raise CaffeFormatError(f"weights for layers not in net {net.name!r}: {', '.join(missing)}")
    out = caffe_pb2.NetParameter()
    if net.HasField("name"):
        out.name = net.name
    for layer in net.layer:
        dst = out.layer.add()
        dst.CopyFrom(layer)
        dst.ClearField("blobs")
        if phase is not None and not dst.HasField("phase"):
            dst.phase = phase
        for arr in weights.get(layer.name, ()):
            dst.blobs.add().CopyFrom(numpy_to_blob(np.asarray(arr, dtype=np.float32)))
    atomic_write(path, serialize(out))
    return out


# ---------------------------------------------------------------------------
# .binaryproto
# ---------------------------------------------------------------------------

def load_blob(source, *, allow_unknown: bool = False) -> np.ndarray:
    """The array of a ``.binaryproto`` BlobProto (e.g. a mean image: a
    ``compute_image_mean`` file gives float32 of shape (1, C, H, W))."""
    data, file = read_binary_source(source)
    blob = parse_binary(data, caffe_pb2.BlobProto, file, allow_unknown=allow_unknown)
    try:
        return blob_to_numpy(blob, from_file=True)
    except BlobError as e:
        raise BinaryFormatError(f"corrupt or truncated: {e.reason}", file=file) from None


def load_mean(source) -> np.ndarray:
    """A mean image ``.binaryproto`` as float32 C x H x W (the single image of
    the (1, C, H, W) blob that ``compute_image_mean`` writes), as Caffe's
    DataTransformer uses it."""
    mean = load_blob(source)
    if mean.ndim == 4 and mean.shape[0] == 1:
        mean = mean[0]
    if mean.ndim != 3:
        file = None if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)
        raise BlobError(f"a mean image must have shape (1, C, H, W), not {mean.shape}", file=file)
    return mean.astype(np.float32, copy=False)


def save_blob(path, arr, *, legacy_4d: bool = False) -> None:
    """Write ``arr`` as a ``.binaryproto``; ``legacy_4d=True`` uses the
    num/channels/height/width fields as ``compute_image_mean`` does."""
    atomic_write(path, serialize(numpy_to_blob(arr, legacy_4d=legacy_4d)))


def load_blob_vector(source, *, allow_unknown: bool = False) -> list[np.ndarray]:
    """The arrays of a serialised BlobProtoVector."""
    data, file = read_binary_source(source)
    vec = parse_binary(data, caffe_pb2.BlobProtoVector, file, allow_unknown=allow_unknown)
    try:
        return [blob_to_numpy(b, what=f"blob {i}", from_file=True) for i, b in enumerate(vec.blobs)]
    except BlobError as e:
        raise BinaryFormatError(f"corrupt or truncated: {e.reason}", file=file) from None


def save_blob_vector(path, arrays: Iterable) -> None:
    vec = caffe_pb2.BlobProtoVector()
    for a in arrays:
        vec.blobs.add().CopyFrom(numpy_to_blob(a))
    atomic_write(path, serialize(vec))


# ---------------------------------------------------------------------------
# .solverstate
# ---------------------------------------------------------------------------

def load_solverstate(source, *, allow_unknown: bool = False):
    """``(SolverState, [history arrays])`` of a binary ``.solverstate``."""
    data, file = read_binary_source(source)
    state = parse_binary(data, caffe_pb2.SolverState, file, allow_unknown=allow_unknown)
    # Caffe's SnapshotSolverStateToBinaryProto always writes these; current_step
    # comes last, so a file cut anywhere lacks it.
    unset = [f for f in ("iter", "learned_net", "current_step") if not state.HasField(f)]
    if unset:
        raise BinaryFormatError(f"truncated or not a SolverState: {', '.join(unset)} unset", file=file)
    try:
        history = [blob_to_numpy(b, what=f"history blob {i}", from_file=True)
                   for i, b in enumerate(state.history)]
    except BlobError as e:
        raise BinaryFormatError(f"corrupt or truncated: {e.reason}", file=file) from None
    return state, history


def save_solverstate(path, *, iter: int, history: Iterable, learned_net: str = "",
                     current_step: int = 0) -> caffe_pb2.SolverState:
    """Write a ``.solverstate`` as ``SGDSolver::SnapshotSolverStateToBinaryProto``:
    ``iter``, ``learned_net`` (the .caffemodel path), ``current_step`` and one
    history blob per learnable parameter, in the net's parameter order."""
    state = caffe_pb2.SolverState(iter=iter, learned_net=learned_net, current_step=current_step)
    for h in history:
        state.history.add().CopyFrom(numpy_to_blob(h))
    atomic_write(path, serialize(state))
    return state
