"""Caffe's upgrade rules for old nets (V0 -> V1 -> V2) and old solvers.

The order and the semantics are those of Caffe 1.0's ``UpgradeNetAsNeeded``
and ``UpgradeSolverAsNeeded``:

1. V0 -> V1 (nets whose ``layers`` hold a nested ``layer``): padding layers
   are folded into the convolution or pooling they feed, then each V0 layer's
   flat fields move into the per-type parameter message (``kernelsize`` ->
   ``convolution_param.kernel_size``, ``meanfile/cropsize/mirror/scale`` ->
   ``transform_param``, ``batchsize/source`` -> ``data_param`` ...).  Only
   ``name``, ``layers``, ``input``, ``input_dim`` and ``force_backward``
   survive at the net level, as in Caffe.
2. V1 data layers: ``scale/mean_file/crop_size/mirror`` move from
   ``data_param``/``image_data_param``/``window_data_param`` to
   ``transform_param``.
3. V1 -> V2: ``layers { type: ENUM }`` -> ``layer { type: "String" }``;
   ``blobs_lr``/``weight_decay``/``param``/``blob_share_mode`` ->
   ``param { lr_mult decay_mult name share_mode }``.
4. ``input``/``input_dim``/``input_shape`` -> an ``Input`` layer named
   ``"input"`` placed first.
5. BatchNorm layers with three ``param`` get ``lr_mult: 0 decay_mult: 0``.

Where Caffe aborts (unknown layer type, padding into a non-conv layer, ...)
we raise :class:`~prototxt_like.errors.UpgradeError`.  Where Caffe logs an
error and goes on (a V0 field the layer type does not use), we drop the field
just as Caffe does and emit an :class:`~prototxt_like.errors.UpgradeWarning`,
or raise with ``strict=True``.
"""
from __future__ import annotations

from . import caffe_pb2
from .errors import UnknownLayerTypeError, UpgradeError, warn_upgrade

__all__ = [
    "net_needs_upgrade",
    "upgrade_net",
    "solver_needs_upgrade",
    "upgrade_solver",
    "check_layer_types",
    "V0_LAYER_TYPES",
    "V1_LAYER_TYPES",
    "KNOWN_LAYER_TYPES",
]

V1 = caffe_pb2.V1LayerParameter

# V0 type string -> V1 enum (Caffe's UpgradeV0LayerType).
V0_LAYER_TYPES = {
    "accuracy": V1.ACCURACY,
    "bnll": V1.BNLL,
    "concat": V1.CONCAT,
    "conv": V1.CONVOLUTION,
    "data": V1.DATA,
    "dropout": V1.DROPOUT,
    "euclidean_loss": V1.EUCLIDEAN_LOSS,
    "flatten": V1.FLATTEN,
    "hdf5_data": V1.HDF5_DATA,
    "hdf5_output": V1.HDF5_OUTPUT,
    "im2col": V1.IM2COL,
    "images": V1.IMAGE_DATA,
    "infogain_loss": V1.INFOGAIN_LOSS,
    "innerproduct": V1.INNER_PRODUCT,
    "lrn": V1.LRN,
    "multinomial_logistic_loss": V1.MULTINOMIAL_LOGISTIC_LOSS,
    "pool": V1.POOLING,
    "relu": V1.RELU,
    "sigmoid": V1.SIGMOID,
    "softmax": V1.SOFTMAX,
    "softmax_loss": V1.SOFTMAX_LOSS,
    "split": V1.SPLIT,
    "tanh": V1.TANH,
    "window_data": V1.WINDOW_DATA,
}

# V1 enum -> V2 type string (Caffe's UpgradeV1LayerType).
V1_LAYER_TYPES = {
    V1.NONE: "",
    V1.ABSVAL: "AbsVal",
    V1.ACCURACY: "Accuracy",
    V1.ARGMAX: "ArgMax",
    V1.BNLL: "BNLL",
    V1.CONCAT: "Concat",
    V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    V1.CONVOLUTION: "Convolution",
    V1.DECONVOLUTION: "Deconvolution",
    V1.DATA: "Data",
    V1.DROPOUT: "Dropout",
    V1.DUMMY_DATA: "DummyData",
    V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    V1.ELTWISE: "Eltwise",
    V1.EXP: "Exp",
    V1.FLATTEN: "Flatten",
    V1.HDF5_DATA: "HDF5Data",
    V1.HDF5_OUTPUT: "HDF5Output",
    V1.HINGE_LOSS: "HingeLoss",
    V1.IM2COL: "Im2col",
    V1.IMAGE_DATA: "ImageData",
    V1.INFOGAIN_LOSS: "InfogainLoss",
    V1.INNER_PRODUCT: "InnerProduct",
    V1.LRN: "LRN",
    V1.MEMORY_DATA: "MemoryData",
    V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss",
    V1.MVN: "MVN",
    V1.POOLING: "Pooling",
    V1.POWER: "Power",
    V1.RELU: "ReLU",
    V1.SIGMOID: "Sigmoid",
    V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss",
    V1.SILENCE: "Silence",
    V1.SOFTMAX: "Softmax",
    V1.SOFTMAX_LOSS: "SoftmaxWithLoss",
    V1.SPLIT: "Split",
    V1.SLICE: "Slice",
    V1.TANH: "TanH",
    V1.WINDOW_DATA: "WindowData",
    V1.THRESHOLD: "Threshold",
}

# Layer types registered in Caffe 1.0's layer factory (Python needs
# WITH_PYTHON_LAYER but is listed: it is a legitimate type name).
KNOWN_LAYER_TYPES = frozenset("""
AbsVal Accuracy ArgMax BNLL BatchNorm BatchReindex Bias Clip Concat
ContrastiveLoss Convolution Crop Data Deconvolution Dropout DummyData ELU
Eltwise Embed EuclideanLoss Exp Filter Flatten HDF5Data HDF5Output HingeLoss
Im2col ImageData InfogainLoss InnerProduct Input LRN LSTM LSTMUnit Log MVN
MemoryData MultinomialLogisticLoss PReLU Parameter Pooling Power Python RNN
ReLU Reduction Reshape SPP Scale Sigmoid SigmoidCrossEntropyLoss Silence Slice
Softmax SoftmaxWithLoss Split Swish TanH Threshold Tile WindowData
""".split())

SOLVER_TYPES = {
    caffe_pb2.SolverParameter.SGD: "SGD",
    caffe_pb2.SolverParameter.NESTEROV: "Nesterov",
    caffe_pb2.SolverParameter.ADAGRAD: "AdaGrad",
    caffe_pb2.SolverParameter.RMSPROP: "RMSProp",
    caffe_pb2.SolverParameter.ADADELTA: "AdaDelta",
    caffe_pb2.SolverParameter.ADAM: "Adam",
}

# ---------------------------------------------------------------------------
# V0 field routing: V0 field -> {V0 type: (V1 sub-message, field)}.
# "*" routes the field for every type.  Fields Caffe does not carry over
# (new_num, new_channels, ...) are absent and silently dropped, as in Caffe.
# ---------------------------------------------------------------------------
_CONV, _IP, _POOL = "convolution_param", "inner_product_param", "pooling_param"
_V0_FIELDS = {
    "num_output": {"conv": (_CONV, "num_output"), "innerproduct": (_IP, "num_output")},
    "biasterm": {"conv": (_CONV, "bias_term"), "innerproduct": (_IP, "bias_term")},
    "weight_filler": {"conv": (_CONV, "weight_filler"), "innerproduct": (_IP, "weight_filler")},
    "bias_filler": {"conv": (_CONV, "bias_filler"), "innerproduct": (_IP, "bias_filler")},
    "pad": {"conv": (_CONV, "pad"), "pool": (_POOL, "pad")},
    "kernelsize": {"conv": (_CONV, "kernel_size"), "pool": (_POOL, "kernel_size")},
    "group": {"conv": (_CONV, "group")},
    "stride": {"conv": (_CONV, "stride"), "pool": (_POOL, "stride")},
    "pool": {"pool": (_POOL, "pool")},
    "dropout_ratio": {"dropout": ("dropout_param", "dropout_ratio")},
    "local_size": {"lrn": ("lrn_param", "local_size")},
    "alpha": {"lrn": ("lrn_param", "alpha")},
    "beta": {"lrn": ("lrn_param", "beta")},
    "k": {"lrn": ("lrn_param", "k")},
    "source": {
        "data": ("data_param", "source"),
        "hdf5_data": ("hdf5_data_param", "source"),
        "images": ("image_data_param", "source"),
        "window_data": ("window_data_param", "source"),
        "infogain_loss": ("infogain_loss_param", "source"),
    },
    "scale": {"*": ("transform_param", "scale")},
    "meanfile": {"*": ("transform_param", "mean_file")},
    "batchsize": {
        "data": ("data_param", "batch_size"),
        "hdf5_data": ("hdf5_data_param", "batch_size"),
        "images": ("image_data_param", "batch_size"),
        "window_data": ("window_data_param", "batch_size"),
    },
    "cropsize": {"*": ("transform_param", "crop_size")},
    "mirror": {"*": ("transform_param", "mirror")},
    "rand_skip": {"data": ("data_param", "rand_skip"), "images": ("image_data_param", "rand_skip")},
    "shuffle_images": {"images": ("image_data_param", "shuffle")},
    "new_height": {"images": ("image_data_param", "new_height")},
    "new_width": {"images": ("image_data_param", "new_width")},
    "concat_dim": {"concat": ("concat_param", "concat_dim")},
    "det_fg_threshold": {"window_data": ("window_data_param", "fg_threshold")},
    "det_bg_threshold": {"window_data": ("window_data_param", "bg_threshold")},
    "det_fg_fraction": {"window_data": ("window_data_param", "fg_fraction")},
    "det_context_pad": {"window_data": ("window_data_param", "context_pad")},
    "det_crop_mode": {"window_data": ("window_data_param", "crop_mode")},
    "hdf5_output_param": {"hdf5_output": ("hdf5_output_param", None)},
}

_DATA_PARAMS = {V1.DATA: "data_param", V1.IMAGE_DATA: "image_data_param",
                V1.WINDOW_DATA: "window_data_param"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


class _Context:
    """Where we are (for messages) and what to do with Caffe's soft errors."""

    def __init__(self, file: str | None, strict: bool):
        self.file, self.strict = file, strict
        self.problems: list[str] = []

    def soft_error(self, message: str, layer: str | None = None) -> None:
        """Caffe logs an error and continues: warn, or raise when strict."""
        where = f"layer {layer!r}: " if layer else ""
        self.problems.append(where + message)
        if self.strict:
            raise UpgradeError(message, file=self.file, layer=layer)
        warn_upgrade(f"{self.file or '<net>'}: {where}{message}")

    def error(self, message: str, layer: str | None = None) -> UpgradeError:
        return UpgradeError(message, file=self.file, layer=layer)


# ---------------------------------------------------------------------------
# Nets
# ---------------------------------------------------------------------------

def _needs_v0(net) -> bool:
    return any(l.HasField("layer") for l in net.layers)


def _needs_data(net) -> bool:
    for l in net.layers:
        name = _DATA_PARAMS.get(l.type)
        if name and l.HasField(name):
            sub = getattr(l, name)
            if any(sub.HasField(f) for f in _TRANSFORM_FIELDS):
                return True
    return False


def _needs_batchnorm(net) -> bool:
    return any(l.type == "BatchNorm" and len(l.param) == 3 for l in net.layer)


def net_needs_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """Caffe's ``NetNeedsUpgrade``: V0 or V1 layers, old data-layer transform
    fields, input fields, or old-style BatchNorm params."""
    return (_needs_v0(net) or len(net.layers) > 0 or _needs_data(net)
            or len(net.input) > 0 or _needs_batchnorm(net))


def upgrade_net(net: caffe_pb2.NetParameter, *, file: str | None = None,
                strict: bool = False) -> caffe_pb2.NetParameter:
    """A new NetParameter: ``net`` upgraded to V2 as ``UpgradeNetAsNeeded``.

    ``file`` only names the source in messages.  With ``strict`` a field that
    Caffe would drop with a logged error raises UpgradeError instead.
    """
    ctx = _Context(file, strict)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    if _needs_v0(out):
        out = _upgrade_v0_net(out, ctx)
    if _needs_data(out):
        _upgrade_data_transformation(out)
    if len(out.layers) > 0:
        out = _upgrade_v1_net(out, ctx)
    if len(out.input) > 0:
        _upgrade_input(out, ctx)
    if _needs_batchnorm(out):
        for l in out.layer:
            if l.type == "BatchNorm" and len(l.param) == 3:
                for p in l.param:
                    p.lr_mult = 0.0
                    p.decay_mult = 0.0
    return out


def _fold_padding_layers(net, ctx: _Context):
    """Caffe's UpgradeV0PaddingLayers: drop V0 ``padding`` layers, moving
    their ``pad`` into the conv/pool layer they feed."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layers[:]
    last_producer: dict[str, int] = {name: -1 for name in net.input}
    for i, conn in enumerate(net.layers):
        v0 = conn.layer
        name = v0.name or f"#{i}"
        if v0.type != "padding":
            out.layers.add().CopyFrom(conn)
        for j, blob in enumerate(conn.bottom):
            if blob not in last_producer:
                raise ctx.error(f"unknown bottom blob {blob!r} (no earlier layer or input produces it)",
                                layer=name)
            src = last_producer[blob]
            if src == -1:
                continue
            source = net.layers[src]
            if source.layer.type != "padding":
                continue
            if v0.type not in ("conv", "pool"):
                raise ctx.error(f"padding layer {source.layer.name!r} feeds a layer of type "
                                f"{v0.type!r}; only conv and pool layers can absorb padding",
                                layer=name)
            if len(conn.bottom) != 1:
                raise ctx.error("a layer fed by a padding layer must take a single bottom blob",
                                layer=name)
            if len(source.bottom) != 1 or len(source.top) != 1:
                raise ctx.error("a padding layer must take one bottom and produce one top",
                                layer=source.layer.name)
            target = out.layers[len(out.layers) - 1]
            target.layer.pad = source.layer.pad
            target.bottom[j] = source.bottom[0]
        for blob in conn.top:
            last_producer[blob] = i
    return out


def _upgrade_v0_net(net, ctx: _Context):
    padded = _fold_padding_layers(net, ctx)
    out = caffe_pb2.NetParameter()
    if padded.HasField("name"):
        out.name = padded.name
    for i, conn in enumerate(padded.layers):
        _upgrade_v0_layer(conn, out.layers.add(), ctx, i)
    out.input.extend(padded.input)
    out.input_dim.extend(padded.input_dim)
    if padded.HasField("force_backward"):
        out.force_backward = padded.force_backward
    return out


def _upgrade_v0_layer(conn, layer, ctx: _Context, index: int) -> None:
    layer.bottom.extend(conn.bottom)
    layer.top.extend(conn.top)
    if not conn.HasField("layer"):
        return
    v0 = conn.layer
    lname = v0.name or f"#{index}"
    if v0.HasField("name"):
        layer.name = v0.name
    vtype = v0.type
    if v0.HasField("type"):
        if vtype not in V0_LAYER_TYPES:
            raise UnknownLayerTypeError(vtype, file=ctx.file, layer=lname, known=V0_LAYER_TYPES)
        layer.type = V0_LAYER_TYPES[vtype]
    for b in v0.blobs:
        layer.blobs.add().CopyFrom(b)
    layer.blobs_lr.extend(v0.blobs_lr)
    layer.weight_decay.extend(v0.weight_decay)
    for field, routes in _V0_FIELDS.items():
        if not v0.HasField(field):
            continue
        route = routes.get(vtype) or routes.get("*")
        if route is None:
            shown = "shuffle" if field == "shuffle_images" else field
            ctx.soft_error(f"unknown parameter {shown} for layer type {vtype!r} (dropped, as Caffe does)",
                           layer=lname)
            continue
        sub_name, target = route
        sub = getattr(layer, sub_name)
        value = getattr(v0, field)
        if target is None:
            sub.CopyFrom(value)
            continue
        dest = sub.DESCRIPTOR.fields_by_name[target]
        if dest.is_repeated:
            getattr(sub, target).append(value)
        elif dest.type == dest.TYPE_MESSAGE:
            getattr(sub, target).CopyFrom(value)
        else:
            setattr(sub, target, value)


def _upgrade_data_transformation(net) -> None:
    for l in net.layers:
        name = _DATA_PARAMS.get(l.type)
        if name is None:
            continue
        sub = getattr(l, name)
        for f in _TRANSFORM_FIELDS:
            if sub.HasField(f):
                setattr(l.transform_param, f, getattr(sub, f))
                sub.ClearField(f)


def _upgrade_v1_net(net, ctx: _Context):
    if len(net.layer) > 0:
        raise ctx.error("the net has both V2 'layer' and V1 'layers' fields; Caffe refuses to "
                        "upgrade such a net: write every layer as layer { type: \"Type\" ... }")
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layers[:]
    for i, v1 in enumerate(net.layers):
        _upgrade_v1_layer(v1, out.layer.add(), ctx, i)
    return out


_V1_PARAM_FIELDS = tuple(f.name for f in V1.DESCRIPTOR.fields
                         if f.name.endswith("_param") and f.name != "param")


def _upgrade_v1_layer(v1, layer, ctx: _Context, index: int) -> None:
    lname = v1.name or f"#{index}"
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("name"):
        layer.name = v1.name
    for rule in v1.include:
        layer.include.add().CopyFrom(rule)
    for rule in v1.exclude:
        layer.exclude.add().CopyFrom(rule)
    if v1.HasField("type"):
        if v1.type not in V1_LAYER_TYPES:
            raise UnknownLayerTypeError(str(v1.type), file=ctx.file, layer=lname)
        layer.type = V1_LAYER_TYPES[v1.type]
    for b in v1.blobs:
        layer.blobs.add().CopyFrom(b)

    def spec(i):
        while len(layer.param) <= i:
            layer.param.add()
        return layer.param[i]

    for i, name in enumerate(v1.param):
        spec(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        spec(i).share_mode = mode  # same numbering: STRICT 0, PERMISSIVE 1
    for i, lr in enumerate(v1.blobs_lr):
        spec(i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        spec(i).decay_mult = decay
    layer.loss_weight.extend(v1.loss_weight)
    for name in _V1_PARAM_FIELDS:
        if v1.HasField(name):
            getattr(layer, name).CopyFrom(getattr(v1, name))
    if v1.HasField("layer"):
        ctx.soft_error("V1 layer still holds a V0 'layer' (ignored, as Caffe does)", layer=lname)


def _upgrade_input(net, ctx: _Context) -> None:
    """Caffe's UpgradeNetInput: input fields -> an Input layer named "input"."""
    has_shape, has_dim = len(net.input_shape) > 0, len(net.input_dim) > 0
    if has_shape or has_dim:
        n = len(net.input)
        if has_shape and len(net.input_shape) < n:
            raise ctx.error(f"{n} inputs but only {len(net.input_shape)} input_shape entries")
        if not has_shape and len(net.input_dim) < 4 * n:
            raise ctx.error(f"{n} inputs need {4 * n} input_dim values, found {len(net.input_dim)}")
        layer = caffe_pb2.LayerParameter(name="input", type="Input")
        for i, blob in enumerate(net.input):
            layer.top.append(blob)
            shape = layer.input_param.shape.add()
            if has_shape:
                shape.CopyFrom(net.input_shape[i])
            else:
                shape.dim.extend(net.input_dim[4 * i:4 * i + 4])
        # Caffe appends the layer, then swaps it to the front.
        rest = list(_copies(net.layer))
        del net.layer[:]
        net.layer.add().CopyFrom(layer)
        for l in rest:
            net.layer.add().CopyFrom(l)
    net.ClearField("input")
    net.ClearField("input_shape")
    net.ClearField("input_dim")


def _copies(layers):
    for l in layers:
        c = caffe_pb2.LayerParameter()
        c.CopyFrom(l)
        yield c


def check_layer_types(net: caffe_pb2.NetParameter, *, file: str | None = None,
                      known=KNOWN_LAYER_TYPES) -> None:
    """Raise UnknownLayerTypeError for a V2 layer whose type Caffe 1.0's
    layer factory does not register (Caffe fails the same way in Net::Init)."""
    for i, layer in enumerate(net.layer):
        if layer.type not in known:
            raise UnknownLayerTypeError(layer.type, file=file, layer=layer.name or f"#{i}",
                                        known=known)


# ---------------------------------------------------------------------------
# Solvers
# ---------------------------------------------------------------------------

def solver_needs_upgrade(solver: caffe_pb2.SolverParameter) -> bool:
    """Caffe's ``SolverNeedsTypeUpgrade``: the old ``solver_type`` enum is set."""
    return solver.HasField("solver_type")


def upgrade_solver(solver: caffe_pb2.SolverParameter, *, file: str | None = None
                   ) -> caffe_pb2.SolverParameter:
    """A new SolverParameter with ``solver_type: ENUM`` turned into
    ``type: "String"`` (``UpgradeSolverAsNeeded``)."""
    out = caffe_pb2.SolverParameter()
    out.CopyFrom(solver)
    if out.HasField("solver_type"):
        if out.HasField("type"):
            raise UpgradeError("old solver_type field (enum) and new type field (string) cannot "
                               "both be specified", file=file)
        out.type = SOLVER_TYPES[out.solver_type]
        out.ClearField("solver_type")
    return out
