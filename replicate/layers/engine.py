"""Caffe's ``engine`` field: which implementation a layer asks for (README, "The engine field").

The field exists in ConvolutionParameter (Convolution, Deconvolution), PoolingParameter, LRNParameter,
ReLUParameter, SigmoidParameter, TanHParameter, SoftmaxParameter (Softmax, and SoftmaxWithLoss's
inner softmax) and SPPParameter, with the values DEFAULT, CAFFE and CUDNN; prototxt_like parses it
(an unknown value is a parse error naming file and line; on a parameter message without the field,
e.g. ``inner_product_param { engine: CAFFE }``, the parser reports that the message has no field
``engine``, as Caffe's does).

What Caffe does (src/caffe/layer_factory.cpp at 9b89154): DEFAULT means CUDNN in a build with cuDNN
(CAFFE without), except where the factory falls back to Caffe's own layer -- a dilated convolution,
max pooling or a pooling layer with a second top, an across-channels LRN wider than cuDNN's 16 --,
CUDNN on a dilated convolution is a fatal error, and CUDNN in a build without cuDNN is "unknown
engine".  A CuDNN layer in CPU mode runs Caffe's CPU code (the CuDNN classes inherit Forward_cpu
and Backward_cpu).  SPPLayer never reads its engine (its inner pooling layers get DEFAULT).

Here :func:`resolve` applies that factory as a build with cuDNN (the build Caffe's GPU users had),
and the two modes read the result:

* exact mode computes Caffe's CPU arithmetic for every engine (as Caffe with cuDNN does in CPU
  mode), so exact bits never depend on the engine; :func:`log_engines` says so once per net for the
  layers that ask for CUDNN.
* fast mode computes a layer whose engine resolves to CUDNN by the fast kernels, and a layer whose
  engine resolves to CAFFE in Caffe's kernel order (``csrc/blas.h``: ``caffe_order``), on the BLAS
  library fast mode loaded: Caffe's bits only when that library is exact mode's.  Today the
  convolutions are the kernels with a fast-mode order (CPU: several images per GEMM, parameter
  diffs in blocks of 16 images; CUDA: batched matmuls); with CAFFE they make Caffe's calls image by
  image, the parameter diffs accumulated in image order.  The other layers with an engine compute
  Caffe's order in both modes.

A layer class opts in with :func:`honours_engine`: its construction resolves the engine (raising
Caffe's errors) and its forward and backward run with this thread's Caffe-order request set when
the engine is CAFFE.
"""
from __future__ import annotations

import functools
import logging
from typing import Iterable, Optional, Tuple

from prototxt_like import caffe_pb2

from .. import _C

log = logging.getLogger("replicate.net")

# layer type -> its parameter message with an ``engine`` field
ENGINE_PARAM = {
    "Convolution": "convolution_param", "Deconvolution": "convolution_param", "Pooling": "pooling_param",
    "LRN": "lrn_param", "ReLU": "relu_param", "Sigmoid": "sigmoid_param", "TanH": "tanh_param",
    "Softmax": "softmax_param", "SoftmaxWithLoss": "softmax_param", "SPP": "spp_param",
}
ENGINES = ("DEFAULT", "CAFFE", "CUDNN")
CUDNN_LRN_MAX_N = 16  # cudnn.h; layer_factory.cpp keeps Caffe's LRN above it


def requested(param: caffe_pb2.LayerParameter, type_name: Optional[str] = None) -> str:
    """The engine the layer parameter asks for: ``"DEFAULT"``, ``"CAFFE"`` or ``"CUDNN"`` (``"DEFAULT"``
    for a type without the field).  ``type_name``: the layer's type (default: ``param.type``)."""
    field = ENGINE_PARAM.get(type_name or param.type)
    if field is None:
        return "DEFAULT"
    return ENGINES[getattr(param, field).engine]


def resolve(param: caffe_pb2.LayerParameter, type_name: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """Caffe's layer factory, as built with cuDNN: ``("CAFFE" | "CUDNN", note)`` where ``note`` is
    the INFO line Caffe prints (or None).  Raises ValueError with Caffe's message where Caffe stops.
    SPP (whose engine Caffe never reads) and the types without the field resolve to CAFFE."""
    t = type_name or param.type
    want = requested(param, t)
    if t == "SPP" or t not in ENGINE_PARAM:
        return "CAFFE", None
    if t in ("Convolution", "Deconvolution"):
        dilated = any(d > 1 for d in param.convolution_param.dilation)
        if want == "CUDNN" and dilated:
            what = "convolution" if t == "Convolution" else "deconvolution"
            raise ValueError(f"CuDNN doesn't support the dilated {what} at Layer {param.name}")
        return ("CAFFE" if want == "CAFFE" or dilated else "CUDNN"), None
    if want == "CAFFE":
        return "CAFFE", None
    if t == "Pooling":
        if len(param.top) > 1:
            return "CAFFE", "cuDNN does not support multiple tops. Using Caffe's own pooling layer."
        if param.pooling_param.pool == caffe_pb2.PoolingParameter.MAX:
            return "CAFFE", None
        return "CUDNN", None
    if t == "LRN":
        p = param.lrn_param
        if p.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS and p.local_size > CUDNN_LRN_MAX_N:
            return "CAFFE", None
        return "CUDNN", None
    return "CUDNN", None  # ReLU, Sigmoid, TanH, Softmax, SoftmaxWithLoss's softmax


class caffe_order:
    """Context manager: ops called from this thread compute in Caffe's kernel order (fast mode's
    library).  ``with caffe_order(False)`` lifts an outer request."""

    __slots__ = ("wanted", "prev")

    def __init__(self, wanted: bool = True):
        self.wanted, self.prev = wanted, None

    def __enter__(self):
        self.prev = _C.set_thread_caffe_order(self.wanted)
        return self

    def __exit__(self, *exc):
        _C.set_thread_caffe_order(self.prev)


def in_caffe_order() -> bool:
    """Whether ops called from this thread now compute in Caffe's order (exact mode, or asked for)."""
    return _C.caffe_order()


def _run_in_order(fn):
    @functools.wraps(fn)
    def run(self, *args, **kwargs):
        if self.engine != "CAFFE":
            return fn(self, *args, **kwargs)
        prev = _C.set_thread_caffe_order(True)
        try:
            return fn(self, *args, **kwargs)
        finally:
            _C.set_thread_caffe_order(prev)
    run._honours_engine = True
    return run


def honours_engine(cls):
    """Class decorator for a layer type with an ``engine``: after ``__init__`` the layer has
    ``engine_requested`` (the field) and ``engine`` (:func:`resolve`'s ``"CAFFE"`` or ``"CUDNN"``;
    Caffe's errors raised as the layer's), and its forward and backward run in Caffe's order when
    ``engine`` is CAFFE.  Subclasses inherit this; one that overrides forward or backward is wrapped
    again only when decorated itself."""
    init = cls.__init__
    if not getattr(init, "_honours_engine", False):
        @functools.wraps(init)
        def __init__(self, param, ctx, *args, **kwargs):
            init(self, param, ctx, *args, **kwargs)
            self.engine_requested = requested(param, self.type)
            try:
                self.engine, note = resolve(param, self.type)
            except ValueError as e:
                raise self.error(str(e)) from None
            if note:
                log.info("%s", note)
        __init__._honours_engine = True
        cls.__init__ = __init__
    for name in ("forward", "backward"):
        fn = getattr(cls, name)
        if not getattr(fn, "_honours_engine", False):
            setattr(cls, name, _run_in_order(fn))
    return cls


def engine_summary(layers: Iterable, device=None, mode: Optional[str] = None) -> Optional[str]:
    """The once-per-net line about the layers whose engine matters in the current mode (None when
    none does): in exact mode the layers that ask for CUDNN (they run Caffe's code); in fast mode the
    layers whose engine resolves to CAFFE (they run in Caffe's order on fast mode's library)."""
    if mode is None:
        mode = _C.get_blas()
    on_cuda = device is not None and getattr(device, "type", str(device)) == "cuda"
    if mode == "exact":
        names = [l.name for l in layers if getattr(l, "engine_requested", "DEFAULT") == "CUDNN"]
        if not names:
            return None
        where = ("on CUDA they run Caffe's own calls (exact mode), not cuDNN" if on_cuda else
                 "on CPU they run Caffe's CPU code, as Caffe built with cuDNN does in CPU mode")
        return (f"Layers asking for engine CUDNN: {', '.join(names)}; {where}: exact bits do not depend on "
                f"the engine")
    names = [l.name for l in layers if getattr(l, "engine", None) == "CAFFE"
             and (l.engine_requested == "CAFFE" or l.type in ("Convolution", "Deconvolution"))]
    if not names:
        return None
    return (f"Layers with engine CAFFE: {', '.join(names)}; fast mode runs them in Caffe's kernel order on "
            f"its own BLAS library (Caffe's bits only with exact mode's library)")


def log_engines(layers: Iterable, device=None) -> Optional[str]:
    """Log :func:`engine_summary` at INFO (``replicate.net``) and return it; the Net calls this once."""
    line = engine_summary(list(layers), device)
    if line:
        log.info("%s", line)
    return line
