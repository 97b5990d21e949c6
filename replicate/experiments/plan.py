"""``python -m replicate plan``: the release's networks as Caffe V2 prototxts, one folder each.

Every network is CaffeNet (the template below) plus its rules from :mod:`.names`:

* learned layers 1..``frozen`` get ``param { lr_mult: 0 decay_mult: 0 }`` twice (the release's
  ``blobs_lr: 0`` / ``weight_decay: 0``); the others keep lr 1/2, decay 1/0;
* a network that loads a base renames its learned layers above ``copied`` (and their output
  blobs) to ``<name>-new``; the ReLU/Dropout/Pooling layers keep their names;
* ``reduced-*``: base_lr x 1.25, max_iter x 4/9, stepsize x 0.64 (0.0125, 200000, 64000);
* the validation net has no ``param`` or fillers and ends in Softmax ``prob`` + Accuracy.

``netbase``'s release files use separate V0 ``padding`` layers; Caffe's V0 upgrade folds them
into the convolutions, so it is the same net.  Data paths are absolute:
``DATA_ROOT/<train_set>_train_<backend>``, ``DATA_ROOT/<val_set>_valid_<backend>`` and
``DATA_ROOT/<train_set>_mean.binaryproto`` for both nets.  :class:`Scale` resizes all networks
alike; the default (``paper``) reproduces the release.
"""
from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Optional

from prototxt_like import caffe_pb2, to_text

from ..fileio import atomic_write
from .names import LEARNED, Network, classify, release_names

__all__ = ["Scale", "PRESETS", "PlanError", "select", "network_files", "write_plan", "main"]

FILES = ("imagenet_solver.prototxt", "imagenet_train.prototxt", "imagenet_val.prototxt")
SNAPSHOT_PREFIX = "caffe_imagenet_train"
SNAPSHOT_SUFFIXES = (".caffemodel", ".solverstate", ".caffemodel.h5", ".solverstate.h5")

# The release's solver ratios: stepsize / max_iter of the full runs, and the reduced runs' numbers
# relative to them (0.0125 / 0.01, 200000 / 450000, 64000 / 100000).
STEP_RATIO = Fraction(100000, 450000)
REDUCED_LR = Fraction(5, 4)
REDUCED_ITER = Fraction(4, 9)
REDUCED_STEP = Fraction(16, 25)

# CaffeNet's learned layers: num_output, kernel, stride, pad, group, weight std, bias value.
_LEARNED = {
    "conv1": (96, 11, 4, 0, 1, 0.01, 0.0),
    "conv2": (256, 5, 1, 2, 2, 0.01, 1.0),
    "conv3": (384, 3, 1, 1, 1, 0.01, 0.0),
    "conv4": (384, 3, 1, 1, 2, 0.01, 1.0),
    "conv5": (256, 3, 1, 1, 2, 0.01, 1.0),
    "fc6": (4096, None, None, None, None, 0.005, 1.0),
    "fc7": (4096, None, None, None, None, 0.005, 1.0),
    "fc8": (1000, None, None, None, None, 0.01, 0.0),
}
# Layers after each learned layer (in place or not): (type, name).
_AFTER = {
    "conv1": (("ReLU", "relu1"), ("Pooling", "pool1"), ("LRN", "norm1")),
    "conv2": (("ReLU", "relu2"), ("Pooling", "pool2"), ("LRN", "norm2")),
    "conv3": (("ReLU", "relu3"),),
    "conv4": (("ReLU", "relu4"),),
    "conv5": (("ReLU", "relu5"), ("Pooling", "pool5")),
    "fc6": (("ReLU", "relu6"), ("Dropout", "drop6")),
    "fc7": (("ReLU", "relu7"), ("Dropout", "drop7")),
    "fc8": (),
}


class PlanError(ValueError):
    """A plan that cannot be written; the message names the network, option or path."""


class PlanConflict(PlanError):
    """--out holds networks planned or trained with other settings (snapshots made from other files,
    or a plan.json of another data root or scale): refused unless --force, so that a folder never
    mixes two plans' results."""


@dataclass(frozen=True)
class Scale:
    """Numbers applied to every network alike.  ``stepsize=None``: max_iter x ``step_fraction``, or
    x 2/9 as the release when that is 0; ``fan_in_std``: see :meth:`filler_std`;
    ``random_seed=None``: no solver random_seed (as the release), else network i of
    :func:`release_names` gets ``random_seed + i``."""
    preset: str = "paper"
    max_iter: int = 450000
    stepsize: Optional[int] = None
    base_lr: float = 0.01
    batch_size: int = 256
    test_batch_size: int = 50
    test_iter: int = 1000
    test_interval: int = 1000
    snapshot: int = 10000
    display: int = 20
    random_seed: Optional[int] = None
    width: float = 1.0
    num_classes: int = 1000
    crop_size: int = 227
    conv1_kernel: int = 11
    conv1_stride: int = 4
    fan_in_std: int = 0
    step_fraction: float = 0.0
    base_iter_multiple: int = 1

    BASE_KINDS = ("base", "natman_base", "full_imagenet_base")

    def resolved_stepsize(self) -> int:
        if self.stepsize is not None:
            return self.stepsize
        ratio = Fraction(repr(float(self.step_fraction))) if self.step_fraction else STEP_RATIO
        return _round(self.max_iter * ratio)

    def solver_numbers(self, net: Network) -> tuple[float, int, int]:
        """(base_lr, max_iter, stepsize) of ``net``."""
        if net.kind == "reduced":
            lr = float(Fraction(repr(float(self.base_lr))) * REDUCED_LR)
            return lr, _round(self.max_iter * REDUCED_ITER), _round(self.resolved_stepsize() * REDUCED_STEP)
        if net.kind in self.BASE_KINDS and self.base_iter_multiple != 1:  # bases run to their plateau
            m = int(self.base_iter_multiple)
            return float(self.base_lr), self.max_iter * m, self.resolved_stepsize() * m
        return float(self.base_lr), self.max_iter, self.resolved_stepsize()

    def outputs(self) -> dict[str, int]:
        """num_output of each learned layer."""
        out = {name: max(1, _round(Fraction(repr(float(self.width))) * spec[0]))
               for name, spec in _LEARNED.items() if name != "fc8"}
        out["fc8"] = self.num_classes
        return out

    def check(self) -> None:
        """PlanError for numbers Caffe would refuse or that give an empty blob."""
        for f in ("max_iter", "batch_size", "test_batch_size", "test_iter", "num_classes", "crop_size",
                  "conv1_kernel", "conv1_stride"):
            if int(getattr(self, f)) < 1:
                raise PlanError(f"--{f.replace('_', '-')} must be at least 1, not {getattr(self, f)}")
        for f in ("test_interval", "snapshot", "display"):  # 0: never, as in Caffe
            if int(getattr(self, f)) < 0:
                raise PlanError(f"--{f.replace('_', '-')} must not be negative, not {getattr(self, f)}")
        if not (math.isfinite(self.step_fraction) and 0 <= self.step_fraction <= 1):
            raise PlanError(f"--step-fraction must be in (0, 1] (0: the release's 2/9), not {self.step_fraction}")
        if int(self.base_iter_multiple) < 1:
            raise PlanError(f"--base-iter-multiple must be at least 1, not {self.base_iter_multiple}")
        if self.stepsize is not None and self.stepsize < 1:
            raise PlanError(f"--stepsize must be at least 1, not {self.stepsize}")
        if self.random_seed is not None and self.random_seed < 0:
            raise PlanError(f"--random-seed must not be negative (Caffe reads that as unset), not {self.random_seed}")
        if not (math.isfinite(self.width) and self.width > 0):
            raise PlanError(f"--width must be a positive number, not {self.width}")
        if not (math.isfinite(self.base_lr) and self.base_lr > 0):
            raise PlanError(f"--base-lr must be a positive number, not {self.base_lr}")
        if self.resolved_stepsize() < 1:
            raise PlanError(f"--max-iter {self.max_iter} gives a stepsize of 0 (max_iter x step fraction); "
                            "give --stepsize or a larger --max-iter")
        reduced = classify("reduced-0001")
        _, r_iter, r_step = self.solver_numbers(reduced)
        if r_iter < 1 or r_step < 1:
            raise PlanError(f"--max-iter {self.max_iter} gives the reduced-* networks max_iter {r_iter}, "
                            f"stepsize {r_step} (4/9 and 16/25 of the others'); use a larger --max-iter")
        out = self.outputs()
        prev = {"conv2": "conv1", "conv4": "conv3", "conv5": "conv4"}
        for name, below in prev.items():
            g = _LEARNED[name][4]
            for what, n in ((f"{name} num_output", out[name]), (f"{name}'s input ({below} num_output)", out[below])):
                if n % g:
                    raise PlanError(f"--width {self.width}: {what} is {n}, not divisible by {name}'s group {g}; "
                                    f"choose a width that keeps conv1..conv5 multiples of 2")
        for name, size, new in self.spatial_sizes():
            if new < 1:
                raise PlanError(f"--crop-size {self.crop_size} with conv1 kernel {self.conv1_kernel} stride "
                                f"{self.conv1_stride}: the input of {name} is {size}x{size}, too small")

    def conv_geometry(self, name: str) -> tuple[int, int, int, int]:
        """(kernel, stride, pad, group) of convolution ``name``; conv1's kernel and stride are scale options."""
        _, k, s, p, g, _, _ = _LEARNED[name]
        if name == "conv1":
            k, s = self.conv1_kernel, self.conv1_stride
        return k, s, p, g

    def spatial_sizes(self) -> list[tuple[str, int, int]]:
        """(layer, input side, output side) of conv1, pool1, conv2, pool2, conv3, conv4, conv5, pool5;
        the output side is 0 where the input is too small for the layer."""
        sizes, size = [], self.crop_size
        for name in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5"):
            if name.startswith("conv"):
                k, s, p, _ = self.conv_geometry(name)
                new = (size + 2 * p - k) // s + 1 if size + 2 * p >= k else 0
            else:
                new = _pool_size(size, 3, 2) if size >= 3 else 0
            sizes.append((name, size, new))
            size = new
        return sizes

    def fan_ins(self) -> dict[str, int]:
        """Inputs per output unit of each learned layer (channels / group x kernel area)."""
        out, below, fan = self.outputs(), 3, {}
        pool5 = self.spatial_sizes()[-1][2]
        for name in LEARNED:
            if name.startswith("conv"):
                k, _, _, g = self.conv_geometry(name)
                fan[name] = below // g * k * k
            else:
                fan[name] = below * (pool5 * pool5 if name == "fc6" else 1)
            below = out[name]
        return fan

    def filler_std(self, name: str) -> float:
        """``name``'s Gaussian weight std: CaffeNet's, or with ``fan_in_std`` CaffeNet's times
        sqrt(CaffeNet's fan-in / this net's), so each layer starts with CaffeNet's signal gain."""
        std = _LEARNED[name][5]
        if not self.fan_in_std:
            return std
        ratio = Fraction(_PAPER_FAN_IN[name], self.fan_ins()[name])
        return float(f"{std * math.sqrt(ratio):.4g}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["stepsize"] = self.resolved_stepsize()
        return d


PRESETS = {
    "paper": Scale(),
    # A miniature CaffeNet for 32 px images (crop 28 -> pool5 3x3), a few thousand images, 2 CPU cores,
    # tuned on `python -m data_prep synth` (README, make demo): 1/8 width, fillers keeping CaffeNet's
    # per-layer gain, the release's step policy (x0.1) with one step at 2/3 of the run, at lr 0.005:
    # the release's 0.01 was set for batches of 256, and at 32 a batch it gives SGD 8x the gradient
    # noise (lr / batch); half0A at 2,400 iterations: 0.826 at lr 0.01, 0.903 at 0.005 (README).
    "mini": Scale(preset="mini", max_iter=1200, step_fraction=2 / 3, base_lr=0.005, batch_size=32, test_batch_size=50,
                  test_iter=10, test_interval=60, snapshot=600, display=20, random_seed=0, width=0.125,
                  num_classes=40, crop_size=28, conv1_kernel=3, conv1_stride=1, fan_in_std=1),
}


def _round(x) -> int:
    """Round half up (exact for Fractions)."""
    return math.floor(Fraction(x) + Fraction(1, 2))


def _pool_size(size: int, k: int, s: int) -> int:
    """Caffe's pooled size (ceil mode, no pad)."""
    return -(-(size - k) // s) + 1


_PAPER_FAN_IN = Scale().fan_ins()


# ---------------------------------------------------------------------------------------------
# Nets and solvers

@dataclass(frozen=True)
class DataPaths:
    train: str
    valid: str
    mean: str


def data_paths(net: Network, data_root, backend: str) -> DataPaths:
    root = os.path.abspath(os.fspath(data_root))
    return DataPaths(os.path.join(root, f"{net.train_set}_train_{backend}"),
                     os.path.join(root, f"{net.val_set}_valid_{backend}"),
                     os.path.join(root, f"{net.train_set}_mean.binaryproto"))


def build_net(net: Network, scale: Scale, paths: DataPaths, backend: str, *, train: bool) -> caffe_pb2.NetParameter:
    """``net``'s train or validation NetParameter (V2)."""
    p = caffe_pb2.NetParameter()
    p.name = "CaffeNet"
    data = p.layer.add(name="data", type="Data", top=["data", "label"])
    data.transform_param.mirror = train
    data.transform_param.crop_size = scale.crop_size
    data.transform_param.mean_file = paths.mean
    data.data_param.source = paths.train if train else paths.valid
    data.data_param.batch_size = scale.batch_size if train else scale.test_batch_size
    data.data_param.backend = caffe_pb2.DataParameter.LMDB if backend == "lmdb" else caffe_pb2.DataParameter.LEVELDB
    outputs = scale.outputs()
    blob = "data"
    for i, name in enumerate(LEARNED):
        bias = _LEARNED[name][6]
        lname = name if (net.base is None or i < net.copied) else f"{name}-new"
        conv = name.startswith("conv")
        l = p.layer.add(name=lname, type="Convolution" if conv else "InnerProduct", bottom=[blob], top=[lname])
        blob = lname
        if train:
            frozen = i < net.frozen
            l.param.add(lr_mult=0 if frozen else 1, decay_mult=0 if frozen else 1)
            l.param.add(lr_mult=0 if frozen else 2, decay_mult=0)
        q = l.convolution_param if conv else l.inner_product_param
        q.num_output = outputs[name]
        if conv:
            k, s, pad, group = scale.conv_geometry(name)
            if pad:
                q.pad.append(pad)
            q.kernel_size.append(k)
            if group != 1:
                q.group = group
            if s != 1:
                q.stride.append(s)
        if train:
            q.weight_filler.type = "gaussian"
            q.weight_filler.std = scale.filler_std(name)
            q.bias_filler.type = "constant"
            q.bias_filler.value = bias
        for typ, aname in _AFTER[name]:
            if typ in ("ReLU", "Dropout"):
                a = p.layer.add(name=aname, type=typ, bottom=[blob], top=[blob])
                if typ == "Dropout":
                    a.dropout_param.dropout_ratio = 0.5
            elif typ == "Pooling":
                a = p.layer.add(name=aname, type=typ, bottom=[blob], top=[aname])
                a.pooling_param.pool = caffe_pb2.PoolingParameter.MAX
                a.pooling_param.kernel_size = 3
                a.pooling_param.stride = 2
                blob = aname
            else:
                a = p.layer.add(name=aname, type=typ, bottom=[blob], top=[aname])
                a.lrn_param.local_size = 5
                a.lrn_param.alpha = 0.0001
                a.lrn_param.beta = 0.75
                blob = aname
    if train:
        p.layer.add(name="loss", type="SoftmaxWithLoss", bottom=[blob, "label"])
    else:
        p.layer.add(name="prob", type="Softmax", bottom=[blob], top=["prob"])
        p.layer.add(name="accuracy", type="Accuracy", bottom=["prob", "label"], top=["accuracy"])
    return p


def build_solver(net: Network, scale: Scale) -> caffe_pb2.SolverParameter:
    base_lr, max_iter, stepsize = scale.solver_numbers(net)
    s = caffe_pb2.SolverParameter()
    s.train_net = "imagenet_train.prototxt"
    s.test_net.append("imagenet_val.prototxt")
    s.test_iter.append(scale.test_iter)
    s.test_interval = scale.test_interval
    s.base_lr = base_lr
    s.display = scale.display
    s.max_iter = max_iter
    s.lr_policy = "step"
    s.gamma = 0.1
    s.momentum = 0.9
    s.weight_decay = 0.0005
    s.stepsize = stepsize
    s.snapshot = scale.snapshot
    s.snapshot_prefix = SNAPSHOT_PREFIX
    s.solver_mode = caffe_pb2.SolverParameter.GPU
    seed = network_seed(net, scale)
    if seed is not None:
        s.random_seed = seed
    return s


_INDEX = {name: i for i, name in enumerate(release_names())}


def network_seed(net: Network, scale: Scale) -> Optional[int]:
    return None if scale.random_seed is None else scale.random_seed + _INDEX[net.name]


def network_files(net: Network, scale: Scale, data_root, backend: str = "lmdb",
                  caffe: str = "1.0") -> dict[str, str]:
    """The text of each file of ``net``'s folder (``basenet.txt`` only when it loads a base).
    ``caffe="2014"``: the release's own formats (V0 nets, the 2014 solver; see :func:`to_v0`)."""
    paths = data_paths(net, data_root, backend)
    if caffe == "2014":
        solver = to_text(build_solver(net, scale)).replace("solver_mode: GPU", "solver_mode: 1")
        files = {"imagenet_solver.prototxt": solver,
                 "imagenet_train.prototxt": to_text(to_v0(build_net(net, scale, paths, backend, train=True),
                                                          padding_layers=net.name == "netbase")),
                 "imagenet_val.prototxt": to_text(to_v0(build_net(net, scale, paths, backend, train=False),
                                                        padding_layers=net.name == "netbase"))}
    else:
        files = {"imagenet_solver.prototxt": to_text(build_solver(net, scale)),
                 "imagenet_train.prototxt": to_text(build_net(net, scale, paths, backend, train=True)),
                 "imagenet_val.prototxt": to_text(build_net(net, scale, paths, backend, train=False))}
    if net.base:
        files["basenet.txt"] = f"../{net.base}"  # as the release: no newline
    return files


def final_snapshot(net: Network, scale: Scale, caffe: str = "1.0") -> str:
    """The final weights' file name: ``<prefix>_iter_N.caffemodel``; the 2014 Caffe's ``<prefix>_iter_N``."""
    return f"{SNAPSHOT_PREFIX}_iter_{scale.solver_numbers(net)[1]}" + ("" if caffe == "2014" else ".caffemodel")


# ---------------------------------------------------------------------------------------------
# The release's own format: V0 nets for the 2014 Caffe (584abd3)

_V0_TYPES = {"Data": "data", "Convolution": "conv", "ReLU": "relu", "Pooling": "pool", "LRN": "lrn",
             "InnerProduct": "innerproduct", "Dropout": "dropout", "SoftmaxWithLoss": "softmax_loss",
             "Softmax": "softmax", "Accuracy": "accuracy"}


def to_v0(v2: caffe_pb2.NetParameter, *, padding_layers: bool = False) -> caffe_pb2.NetParameter:
    """``v2`` (a net of :func:`build_net`) as the release writes it: V0 ``layers { layer { ... } }``
    with the V0 field names (``kernelsize``, ``blobs_lr``, ``meanfile``, ...).  ``padding_layers``:
    as ``netbase``'s files, a ``padding`` layer ``pad<k>`` before each padded convolution instead of
    the convolution's ``pad`` (Caffe's V0 upgrade folds them back)."""
    out = caffe_pb2.NetParameter()
    out.name = v2.name
    for l in v2.layer:
        if l.type not in _V0_TYPES:
            raise PlanError(f"layer {l.name}: type {l.type} has no V0 form")
        bottoms = list(l.bottom)
        q = None
        if l.type == "Convolution" and padding_layers and l.convolution_param.pad:
            k = l.name.split("-")[0][len("conv"):]
            pad = out.layers.add()
            pad.layer.name, pad.layer.type = f"pad{k}", "padding"
            pad.layer.pad = l.convolution_param.pad[0]
            pad.bottom.extend(bottoms)
            pad.top.append(f"pad{k}")
            bottoms = [f"pad{k}"]
        w = out.layers.add()
        v = w.layer
        v.name, v.type = l.name, _V0_TYPES[l.type]
        if l.type == "Data":
            v.source = l.data_param.source
            v.meanfile = l.transform_param.mean_file
            v.batchsize = l.data_param.batch_size
            v.cropsize = l.transform_param.crop_size
            v.mirror = l.transform_param.mirror
        elif l.type in ("Convolution", "InnerProduct"):
            q = l.convolution_param if l.type == "Convolution" else l.inner_product_param
            v.num_output = q.num_output
            if l.type == "Convolution":
                if q.group != 1:
                    v.group = q.group
                v.kernelsize = q.kernel_size[0]
                if q.pad and not padding_layers:
                    v.pad = q.pad[0]
                if q.stride:
                    v.stride = q.stride[0]
            if q.HasField("weight_filler"):
                v.weight_filler.CopyFrom(q.weight_filler)
            if q.HasField("bias_filler"):
                v.bias_filler.CopyFrom(q.bias_filler)
            v.blobs_lr.extend(p.lr_mult for p in l.param)
            v.weight_decay.extend(p.decay_mult for p in l.param)
        elif l.type == "Pooling":
            v.pool = caffe_pb2.V0LayerParameter.PoolMethod.Value(
                caffe_pb2.PoolingParameter.PoolMethod.Name(l.pooling_param.pool))
            v.kernelsize = l.pooling_param.kernel_size
            v.stride = l.pooling_param.stride
        elif l.type == "LRN":
            v.local_size = l.lrn_param.local_size
            v.alpha = l.lrn_param.alpha
            v.beta = l.lrn_param.beta
        elif l.type == "Dropout":
            v.dropout_ratio = l.dropout_param.dropout_ratio
        w.bottom.extend(bottoms)
        w.top.extend(l.top)
    return out


# ---------------------------------------------------------------------------------------------
# Selection and writing

def select(patterns: Optional[Iterable[str]] = None) -> tuple[list[Network], list[str]]:
    """The networks matching fnmatch ``patterns`` (all when None) plus the bases they load, in
    dependency order, and the names of the bases added."""
    names = list(release_names())
    if patterns is None:
        return [classify(n) for n in names], []
    if isinstance(patterns, str):
        patterns = patterns.split(",")
    patterns = [p.strip() for p in patterns if p.strip()]
    if not patterns:
        raise PlanError("--nets: no pattern given")
    chosen = set()
    for pat in patterns:
        hit = fnmatch.filter(names, pat)
        if not hit:
            raise PlanError(f"--nets: {pat!r} matches no network of the release "
                            "(e.g. half0A, transfer0A0B_1_*, transfer-ft*, nolearn_1_*, reduced-*)")
        chosen.update(hit)
    added = sorted({classify(n).base for n in chosen if classify(n).base} - chosen, key=names.index)
    chosen.update(added)
    return [classify(n) for n in names if n in chosen], added


def _snapshots(d: Path) -> list[str]:
    """Snapshot files in ``d``, oldest iteration first."""
    if not d.is_dir():
        return []

    def key(name: str):
        m = re.search(r"_iter_(\d+)(\.|$)", name)
        return (int(m.group(1)) if m else -1, name)
    return sorted((p.name for p in d.iterdir()
                   if p.name.endswith(SNAPSHOT_SUFFIXES) or re.search(r"_iter_\d+$", p.name)), key=key)


# What an earlier run left in a network's folder: moved aside when --force re-plans it.
_RUN_FILES = re.compile(r".*_iter_\d+(\.(caffemodel|solverstate|resume)(\.h5)?)?$|^DONE$|^logs$")


def _supersede(d: Path, log: Callable[[str], None]) -> None:
    """Move an earlier run's snapshots, logs and DONE into ``d/superseded-<time>/`` (nothing is
    deleted; the sweep and the report no longer see them)."""
    old = [p for p in d.iterdir() if _RUN_FILES.match(p.name)]
    if not old:
        return
    dest = d / f"superseded-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    dest.mkdir()
    for p in old:
        os.replace(p, dest / p.name)
    log(f"{d.name}: moved the earlier run's {len(old)} file(s) to {dest.name}/")


def _write(path: Path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"))


def write_plan(out, data_root, *, nets: Optional[Iterable[str]] = None, scale: Scale = Scale(),
               backend: Optional[str] = None, check_data: bool = False, force: bool = False,
               log: Callable[[str], None] = lambda m: None, caffe: str = "1.0") -> Path:
    """Write one folder per selected network and ``plan.json`` under ``out``; returns ``out``.

    ``nets``: fnmatch patterns or one comma-separated string (all 170 when None).  A folder holding
    snapshots is rewritten only when its files would not change (else PlanError naming the networks)
    or with ``force``.  Missing data paths are logged, or a PlanError when ``check_data``.
    ``caffe="2014"``: the files in the release's own formats for ``train --caffe 2014`` (V0 nets,
    LevelDB data, the default backend then), recorded in plan.json with its snapshot names."""
    if caffe not in ("1.0", "2014"):
        raise PlanError(f"--caffe must be 1.0 or 2014, not {caffe!r}")
    if backend is None:
        backend = "leveldb" if caffe == "2014" else "lmdb"
    if caffe == "2014" and backend != "leveldb":
        raise PlanError("--caffe 2014 reads LevelDB only (the 2014 data layer has no backend field); "
                        "use --backend leveldb")
    if backend not in ("lmdb", "leveldb"):
        raise PlanError(f"--backend must be lmdb or leveldb, not {backend!r}")
    scale.check()
    out = Path(os.path.abspath(os.fspath(out)))
    data_root = os.path.abspath(os.fspath(data_root))
    selected, added = select(nets)
    if added:
        log(f"also planning the base network(s) the selection loads: {', '.join(added)}")

    missing: list[str] = []
    for net in selected:
        for path in asdict(data_paths(net, data_root, backend)).values():
            if not os.path.exists(path) and path not in missing:
                missing.append(path)
    if missing and check_data:
        raise PlanError(f"data path {missing[0]} does not exist"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if missing:
        log(f"warning: {len(missing)} data path(s) do not exist yet, e.g. {missing[0]}")

    planned = [(net, network_files(net, scale, data_root, backend, caffe)) for net in selected]
    conflicts, superseded = [], []
    for net, files in planned:
        d = out / net.name
        snaps = _snapshots(d)
        if not snaps:
            continue
        present = {f: (d / f).read_text(encoding="utf-8") for f in (*FILES, "basenet.txt") if (d / f).exists()}
        if present != files:
            changed = sorted(f for f in set(present) | set(files) if present.get(f) != files.get(f))
            conflicts.append(f"{net.name} (has {snaps[-1]}; would change {', '.join(changed)})")
            superseded.append(d)
    if conflicts and not force:
        raise PlanConflict("refusing to rewrite networks that already have snapshots: " + "; ".join(conflicts)
                        + " (use --force, or plan into another folder)")
    if out.exists() and not out.is_dir():
        raise PlanError(f"--out {out} exists and is not a directory")
    for d in superseded:  # --force: the earlier run's results no longer match its files
        _supersede(d, log)

    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for net, files in planned:
        d = out / net.name
        d.mkdir(exist_ok=True)
        for f, text in files.items():
            if not (d / f).exists() or (d / f).read_text(encoding="utf-8") != text:
                _write(d / f, text)
        if not net.base and (d / "basenet.txt").exists():
            (d / "basenet.txt").unlink()
        base_lr, max_iter, stepsize = scale.solver_numbers(net)
        base = classify(net.base) if net.base else None
        entries.append({
            "name": net.name, "kind": net.kind, "n": net.n, "base": net.base,
            "weights": f"../{base.name}/{final_snapshot(base, scale, caffe)}" if base else None,
            "max_iter": max_iter, "snapshot_prefix": SNAPSHOT_PREFIX, "solver": FILES[0],
            "final_snapshot": final_snapshot(net, scale, caffe), "caffe": caffe,
            "train_set": net.train_set, "val_set": net.val_set, "frozen": net.frozen, "copied": net.copied,
            "fine_tune": net.fine_tune, "base_lr": base_lr, "stepsize": stepsize,
            "random_seed": network_seed(net, scale),
        })
    plan = {"version": 1, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "data_root": data_root, "backend": backend, "caffe": caffe, "scale": scale.as_dict(),
            "networks": entries}
    kept = _earlier_entries(out / "plan.json", plan, force, log)
    if kept:
        plan["networks"] = sorted(entries + kept, key=lambda e: _INDEX[e["name"]])
        log(f"plan.json keeps {len(kept)} network(s) planned earlier with the same data and scale")
    _write(out / "plan.json", json.dumps(plan, indent=1) + "\n")
    log(f"wrote {len(entries)} network(s) and plan.json under {out}")
    return out


def _earlier_entries(path: Path, plan: dict, force: bool, log: Callable[[str], None]) -> list:
    """Entries of an existing plan.json that this run does not re-plan, so that planning a grid in
    pieces into one folder keeps every piece; PlanError when the earlier plan used other data, backend
    or scale (its folders would not match this plan.json), unless ``force`` (then they are dropped)."""
    if not path.exists():
        return []
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PlanError(f"{path}: not a readable plan.json ({e}); remove it or plan into another folder")
    if not (isinstance(old, dict) and isinstance(old.get("networks", []), list)
            and all(isinstance(e, dict) and e.get("name") in _INDEX for e in old.get("networks", []))):
        raise PlanError(f"{path}: not a plan.json written by plan; remove it or plan into another folder")
    new_names = {e["name"] for e in plan["networks"]}
    rest = [e for e in old["networks"] if e["name"] not in new_names]
    if not rest:
        return []

    def numbers(p: dict) -> dict:  # the preset's name does not matter, its numbers do
        sc = p.get("scale")
        return {k: v for k, v in sc.items() if k != "preset"} if isinstance(sc, dict) else sc
    old.setdefault("caffe", "1.0")  # plans from before --caffe
    same = all(old.get(k) == plan[k] for k in ("data_root", "backend", "caffe")) and numbers(old) == numbers(plan)
    if same:
        return rest
    if force:
        log(f"warning: --force: plan.json drops {len(rest)} network(s) planned earlier with other data or scale")
        return []
    diff = [k for k in ("data_root", "backend", "caffe") if old.get(k) != plan[k]] + \
        (["scale"] if numbers(old) != numbers(plan) else [])
    raise PlanConflict(f"{path} already plans {len(rest)} other network(s) (e.g. {rest[0]['name']}) with another "
                    f"{' and '.join(diff)}; plan into another folder, or --force to drop them from plan.json")


# ---------------------------------------------------------------------------------------------
# CLI

def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m replicate plan",
        description="Write the release's networks (Caffe V2 solver/train/val prototxts, basenet.txt) one folder "
                    "each under --out, and plan.json, in dependency order.  Scale options apply to every network "
                    "alike; the paper preset reproduces the release.")
    ap.add_argument("--data-root", required=True,
                    help="folder of <set>_train_<backend>, <set>_valid_<backend>, <set>_mean.binaryproto")
    ap.add_argument("--out", required=True, help="plan folder")
    ap.add_argument("--nets", help="comma-separated fnmatch patterns (default: all 170); the bases they load are "
                                   "added")
    ap.add_argument("--backend", choices=("lmdb", "leveldb"), default=None,
                    help="default lmdb; leveldb with --caffe 2014 (the only one it reads)")
    ap.add_argument("--caffe", choices=("1.0", "2014"), default="1.0",
                    help="2014: the release's own files (V0 nets, 2014 solver) for train --caffe 2014; the sweep "
                         "trains them so and names snapshots <prefix>_iter_N (default 1.0: V2 files)")
    ap.add_argument("--check-data", action="store_true", help="a missing data path is an error")
    ap.add_argument("--force", action="store_true", help="rewrite folders that already hold snapshots")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="paper", help="scale defaults (default paper)")
    g = ap.add_argument_group("scale (default: the preset's)")
    helps = {"stepsize": "default: max-iter x step-fraction (reduced-*: x 0.64)",
             "step_fraction": "stepsize / max_iter when --stepsize is not given (paper: 2/9, the release's "
                              "100000 / 450000; mini: 2/3)",
             "random_seed": "solver random_seed of the first network; network i of the release gets seed + i "
                            "(paper: unset)",
             "width": "multiplier of conv1..conv5, fc6, fc7 num_output (rounded half up)",
             "num_classes": "fc8 num_output (the release: 1000, even for 500-class halves)",
             "base_iter_multiple": "the bases (half*, halfnatman*, netbase) run max-iter and stepsize times this, "
                                   "so they reach their plateau (paper and mini: 1)",
             "fan_in_std": "1: each weight filler's std times sqrt(CaffeNet's fan-in / this net's), so a narrow "
                           "net starts with CaffeNet's per-layer signal gain (paper: 0)"}
    for f in fields(Scale):
        if f.name != "preset":
            g.add_argument("--" + f.name.replace("_", "-"),
                           type=float if f.name in ("base_lr", "width", "step_fraction") else int,
                           default=None, help=helps.get(f.name))
    return ap


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in fields(Scale)
                 if f.name != "preset" and getattr(args, f.name) is not None}
    scale = replace(PRESETS[args.preset], **overrides)
    nets = args.nets.split(",") if args.nets is not None else None

    def log(m):
        print(f"plan: {m}", file=sys.stderr)
    try:
        write_plan(args.out, args.data_root, nets=nets, scale=scale, backend=args.backend,
                   check_data=args.check_data, force=args.force, log=log, caffe=args.caffe)
    except PlanError as e:
        print(f"plan: error: {e}", file=sys.stderr)
        return 1
    return 0
