"""``--caffe 2014``: the paper's own Caffe (BVLC ``584abd3``, 2014-04-02) on the CPU, as a thin layer
over the Caffe 1.0 code.

Every difference from Caffe 1.0 is named in :data:`DIFFERENCES`, with the ``584abd3`` source line it
comes from (read with ``git show 584abd3:<path>``), and implemented at one place below: the solver
(:class:`Solver2014`, a subclass of :class:`replicate.solver.SGDSolver`), the random generator
(:class:`CopiedGenerator`) and a handful of layer subclasses handed to :class:`replicate.net.Net`
through ``layer_classes`` (:func:`layer_classes`).  Everything else (convolution, ReLU, inner
product, softmax and its loss, LRN's arithmetic, the BLAS calls) is the 1.0 code unchanged, which
computes the same bits.  The reference runs are ``../shared/golden/caffe2014``.

Two things are not Caffe's own but the way its runs were made reproducible (see the golden README):
the solver's ``random_seed`` (a backport of ``9dd3f45``; unset, the generator is seeded from the
system as in 2014) and prefetch threads that run to completion when started (``CAFFE2014_SYNC_PREFETCH``).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Dict, List, Optional

import numpy as np
import torch

from prototxt_like import caffe_pb2
from prototxt_like.codec import serialize
from prototxt_like.codec import parse_text
from prototxt_like.io import load_net, load_solverstate, read_text_source

from . import ops as R
from .fileio import atomic_write
from .layers.accuracy import Accuracy
from .layers.base import Layer
from .layers.convolution import Convolution
from .layers.data import Data
from .layers.hdf5_data import GlibcRand
from .layers.inner_product import InnerProduct
from .layers.lrn import LRN
from .layers.pooling import Pooling
from .log import CaffeLog, g
from .net import Net
from .rng import CaffeRNG, caffe_seed
from .solver import SGDSolver, SolverError

f32 = np.float32
TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST
MODES = ("1.0", "2014")

# The named differences: (name, 584abd3 source, what 2014 does, does it change results?)
DIFFERENCES = [
    ("sgd_update", "src/caffe/solver.cpp:228-240 (SGDSolver::ComputeUpdateValue)",
     "history = local_rate*diff + momentum*history (caffe_cpu_axpby), then history += "
     "(local_decay*local_rate)*w (caffe_axpy) if the decay is non-zero; diff = history; w -= diff. "
     "1.0 adds decay*w to the gradient before the axpby", "rounding"),
    ("one_based_iter", "src/caffe/solver.cpp:69 (while (iter_++ < max_iter)), :180 (step: iter_ / stepsize)",
     "the lr policies see the 1-based iteration: a step policy drops the rate one iteration earlier; "
     "there is no test at iteration 0, the test and snapshot after an update use its 1-based number",
     "results"),
    ("copied_generator", "src/caffe/util/math_functions.cpp:284-296, 305-316, 330-340 "
     "(variate_generator<rng_t, ...>(caffe_rng(), ...))",
     "the fillers and Dropout draw from a copy of the global mt19937, which never advances: every "
     "filler and every dropout mask restarts from the seeded state", "results"),
    ("legacy_blob_shapes", "include/caffe/filler.hpp:114 (XavierFiller: fan_in = count / num); "
     "src/caffe/layers/inner_product_layer.cpp (weights 1 x 1 x N x K, bias 1 x 1 x 1 x N)",
     "fillers see the 4-D legacy blob: xavier's fan_in of an inner-product weight is out*in", "results"),
    ("data_rand", "src/caffe/layers/data_layer.cpp:52-62",
     "TRAIN crops h0 = rand() % (H - crop), then w0 = rand() % (W - crop) (no +1), then, if mirror, "
     "rand() % 2, from glibc's unseeded rand() shared by the train and test prefetch threads; the "
     "thread reads the global phase, so the test net's first batch (prefetched in Solver::Init) is "
     "cropped at random", "results"),
    ("pooling", "src/caffe/layers/pooling_layer.cpp:26-29 (ceil((H-k)/s)+1, no pad), :146 (MAX backward)",
     "no padding; MAX backward adds the top gradient to every bottom element equal to the maximum", "results"),
    ("lrn_k", "src/caffe/layers/lrn_layer.cpp:38", "the scale starts at 1 (k fixed at 1)", "none for k = 1"),
    ("accuracy", "src/caffe/layers/loss_layer.cpp:170-203",
     "one top of 2 values: accuracy (first maximum wins) and -log(max(p, 1e-20)) averaged over the batch",
     "test outputs"),
    ("test_scores", "src/caffe/solver.cpp:94-127 (Solver::Test)",
     "each output element summed over test_iter batches and divided by test_iter, logged "
     "`Test score #k: v`", "log only"),
    ("log_and_snapshots", "src/caffe/solver.cpp:75, 97, 124, 131-148, 218",
     "`Iteration N, lr = X` before `Iteration N, loss = X` (the forward loss, unsmoothed); snapshots "
     "<prefix>_iter_N (NetParameter, V1 `layers`, legacy 4-D blobs) and <prefix>_iter_N.solverstate; "
     "a final snapshot always (twice when max_iter is a multiple of snapshot)", "files"),
]

# glog locations of pristine 584abd3 (the release's logs print each one less, the golden logs 3 more)
WHERE = {"lr": "solver.cpp:218", "loss": "solver.cpp:75", "testing": "solver.cpp:97",
         "score": "solver.cpp:124", "snapshot": "solver.cpp:140", "snapshot_state": "solver.cpp:147",
         "done": "solver.cpp:91", "solving": "solver.cpp:57", "restoring": "solver.cpp:62",
         "restore": "solver.cpp:284", "train_net": "solver.cpp:38", "test_net": "solver.cpp:41",
         "scaffold": "solver.cpp:46", "finetune": "finetune_net.cpp:26"}


# -- copied_generator ---------------------------------------------------------------------------
class CopiedGenerator(CaffeRNG):
    """``caffe_rng()`` as the 2014 distributions use it: each draw works on a copy of the seeded
    engine (math_functions.cpp:290, 313, 337), so every call starts from the same state."""

    def __init__(self, seed: int):
        self._seeded = CaffeRNG(seed).state

    @property
    def state(self):
        return self._seeded.clone()

    def set_state(self, key, pos: int) -> None:
        tmp = CaffeRNG(0)
        tmp.set_state(key, pos)
        self._seeded = tmp.state

    def copy(self) -> "CopiedGenerator":
        other = CopiedGenerator.__new__(CopiedGenerator)
        other._seeded = self._seeded.clone()
        return other


# -- the process: glibc rand() and the global phase ----------------------------------------------
class Process:
    """What a 2014 Caffe process shares: glibc's ``rand()`` (never seeded: seed 1) and the global
    phase ``Caffe::phase()`` (TRAIN until the solver's first test, common.cpp:25)."""

    def __init__(self):
        self.rand = GlibcRand(1)
        self.phase = TRAIN
        self.draws: List[dict] = []  # every prefetch: net, phase read, [record, h0, w0, mirror] per item


# -- legacy_blob_shapes ---------------------------------------------------------------------------
def _legacy(shape) -> tuple:
    shape = tuple(int(d) for d in shape)
    return (1,) * (4 - len(shape)) + shape if len(shape) < 4 else shape


def _new_param_2014(self, shape, filler, what):
    """Fill the 2014 blob (num x channels x height x width, filler.hpp) and view it in 1.0's shape."""
    p = Layer.new_param(self, _legacy(shape), filler, what)
    p.data = p.data.reshape(tuple(shape)).contiguous()
    p.diff = torch.zeros_like(p.data)
    return p


class Convolution2014(Convolution):
    new_param = _new_param_2014
    fuses_relu = True  # 1.0's arithmetic: only the filling differs


class InnerProduct2014(InnerProduct):
    new_param = _new_param_2014


# -- lrn_k ----------------------------------------------------------------------------------------
class LRN2014(LRN):
    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        if self.region != caffe_pb2.LRNParameter.ACROSS_CHANNELS:
            raise self.error("the 2014 LRN is across channels only")
        self.k = 1.0  # lrn_layer.cpp:38: scale_data[i] = 1.


# -- pooling --------------------------------------------------------------------------------------
class Pooling2014(Pooling):
    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        self.pad = (0, 0)  # the 2014 PoolingLayer has no padding
        self.ceil_mode = True

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0] or self.method != caffe_pb2.PoolingParameter.MAX:
            return super().backward(tops, top_diffs, propagate_down, bottoms)
        x, top, dy = bottoms[0], tops[0], top_diffs[0]
        dx = torch.zeros_like(x)
        (kh, kw), (sh, sw) = self.kernel_used, self.stride
        H, W = x.shape[2:]
        for ph in range(top.shape[2]):
            h0, h1 = ph * sh, min(ph * sh + kh, H)
            for pw in range(top.shape[3]):
                w0, w1 = pw * sw, min(pw * sw + kw, W)
                t = top[:, :, ph:ph + 1, pw:pw + 1]
                dx[:, :, h0:h1, w0:w1] += dy[:, :, ph:ph + 1, pw:pw + 1] * (x[:, :, h0:h1, w0:w1] == t).to(x.dtype)
        return [dx]


# -- accuracy -------------------------------------------------------------------------------------
_libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
_libm.logf.restype = ctypes.c_float
_libm.logf.argtypes = [ctypes.c_float]


class Accuracy2014(Accuracy):
    def forward(self, bottoms):
        x, label = bottoms
        if self.ctx.shape_only:
            return [torch.empty((1, 2, 1, 1), dtype=x.dtype, device="meta")]
        num = x.shape[0]
        xs = x.detach().reshape(num, -1).cpu().numpy().astype(f32)
        labels = label.detach().reshape(-1).cpu().numpy()
        acc, logprob = f32(0), f32(0)
        for i in range(num):
            lab = int(labels[i])
            if int(np.argmax(xs[i])) == lab:  # the first maximum (strict >)
                acc = f32(acc + f32(1))
            logprob = f32(logprob - f32(_libm.logf(float(max(xs[i, lab], f32(1e-20))))))
        out = torch.tensor([acc / f32(num), logprob / f32(num)], dtype=x.dtype)
        return [out.reshape(1, 2, 1, 1).to(x.device)]


# -- softmax ------------------------------------------------------------------------------------
_libm.logf.restype = ctypes.c_float


def softmax_2014(x: torch.Tensor) -> torch.Tensor:
    """SoftmaxLayer::Forward_cpu of 2014 (softmax_layer.cpp:31-58) on num x dim: subtract the row
    maximum, caffe_exp, sum all rows with one gemv, then scale each row by 1 / sum (Caffe 1.0 divides
    by the sum, channel by channel)."""
    num = x.shape[0]
    t = x.detach().reshape(num, -1).to(torch.float32).contiguous()
    dim = t.shape[1]
    t = t - t.max(dim=1, keepdim=True).values  # the gemm with K = 1: one rounding
    t = torch.ops.replicate.exp_forward(t, -1.0, 1.0, 0.0).contiguous()  # caffe_exp (glibc expf)
    sums = torch.zeros(num, dtype=torch.float32)
    R.gemv(False, num, dim, 1.0, t, torch.ones(dim, dtype=torch.float32), 0.0, sums)
    inv = (torch.ones(num, dtype=torch.float32) / sums).reshape(num, 1)  # Dtype(1.) / scale_data[i]
    return (t * inv).contiguous()


class Softmax2014(Layer):
    type = "Softmax"
    min_bottoms = max_bottoms = 1

    def forward(self, bottoms):
        x = bottoms[0]
        if self.ctx.shape_only:
            return [torch.empty(x.shape, dtype=x.dtype, device="meta")]
        return [softmax_2014(x).reshape(x.shape).to(x.device)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None]
        y, dy = tops[0].reshape(tops[0].shape[0], -1), top_diffs[0].reshape(tops[0].shape[0], -1)
        dots = torch.stack([R.dot(dy[i].contiguous(), y[i].contiguous()) for i in range(y.shape[0])])
        return [((dy - dots.reshape(-1, 1)) * y).reshape(bottoms[0].shape)]


class SoftmaxWithLoss2014(Layer):
    """softmax_loss_layer.cpp:27-60: the loss sum(-log(max(p, FLT_MIN))) / num and the diff
    (p - 1{label}) * (1 / num); the loss weight is not applied (2014 has none)."""
    type = "SoftmaxWithLoss"
    loss_layer = True
    min_bottoms = max_bottoms = 2

    def forward(self, bottoms):
        x, label = bottoms
        if self.ctx.shape_only:
            return [torch.empty((), dtype=x.dtype, device="meta")]
        self.prob = softmax_2014(x)
        p = self.prob.numpy()
        labels = label.detach().reshape(-1).cpu().numpy()
        loss = f32(0)
        tiny = f32(np.finfo(np.float32).tiny)
        for i in range(p.shape[0]):
            loss = f32(loss + f32(-_libm.logf(float(max(p[i, int(labels[i])], tiny)))))
        return [torch.tensor(loss / f32(p.shape[0]), dtype=x.dtype, device=x.device)]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if not propagate_down[0]:
            return [None, None]
        x, label = bottoms
        d = self.prob.clone()
        num = d.shape[0]
        idx = label.detach().reshape(-1).cpu().long()
        d[torch.arange(num), idx] -= 1
        d *= float(f32(1) / f32(num))
        return [d.reshape(x.shape).to(x.device), None]


# -- data_rand ------------------------------------------------------------------------------------
class Data2014(Data):
    """The 2014 Data layer with its prefetch run to completion when started: the first batch while
    the net is built, each next one right after a forward, reading the process's phase then."""

    process: Process = None  # set by layer_classes()
    tag = "net"

    def __init__(self, param, ctx):
        from .data.db import Cursor
        from .data.transformer import DataTransformer
        super(Data, self).__init__(param, ctx)  # Layer.__init__: no 1.0 source, no draws
        t = param.transform_param
        self.crop, self.mirror = int(t.crop_size), bool(t.mirror)
        if self.mirror and not self.crop:
            raise self.error("Current implementation requires mirror and crop_size to be set at the same time.")
        self.batch = int(param.data_param.batch_size)
        self.transformer = DataTransformer(t, TRAIN, layer=param.name)
        self.transformer.offsets = lambda shape, draws: draws  # the offsets come from rand() below
        self._copy = _private_leveldb(param.data_param.source)
        self.cursor = Cursor(self._copy, "leveldb")
        self.record = 0
        datum = self.transformer.parse(self.cursor.value())
        self.shape = tuple(self.transformer.decode(datum).shape)
        if self.crop and (self.shape[1] <= self.crop or self.shape[2] <= self.crop) and self.crop != self.shape[1]:
            raise self.error(f"crop_size {self.crop} does not fit {self.shape}")
        self.out_shape = (self.shape[0], self.crop, self.crop) if self.crop else self.shape
        self.prefetched = self._prefetch()

    def _prefetch(self):
        p = self.process
        phase = p.phase
        data = np.empty((self.batch,) + self.out_shape, dtype=f32)
        label = np.empty(self.batch, dtype=f32)
        items = []
        _, H, W = self.shape
        for i in range(self.batch):
            datum = self.transformer.parse(self.cursor.value())
            x = self.transformer.decode(datum)
            h0 = w0 = 0
            mirror = False
            if self.crop:
                if phase == TRAIN:
                    if H == self.crop or W == self.crop:
                        raise self.error("rand() % 0: crop_size equals the image size (a division by zero in 2014)")
                    h0 = p.rand.rand() % (H - self.crop)
                    w0 = p.rand.rand() % (W - self.crop)
                else:
                    h0, w0 = (H - self.crop) // 2, (W - self.crop) // 2
                mirror = bool(self.mirror and p.rand.rand() % 2)
            self.transformer.transform(x, data[i], (h0, w0, mirror))
            label[i] = f32(datum.label)
            items.append([self.record % max(1, self._count()), h0, w0, int(mirror)])
            self.cursor.next()
            self.record += 1
        p.draws.append({"net": self.tag, "phase": "TRAIN" if phase == TRAIN else "TEST", "items": items})
        return torch.from_numpy(data), torch.from_numpy(label)

    def _count(self):
        if not hasattr(self, "_n"):
            self._n = self.cursor.db.count()
        return self._n

    def forward(self, bottoms):
        if self.ctx.shape_only:
            shapes = [(self.batch,) + self.out_shape, (self.batch,)]
            return [torch.empty(s, dtype=self.ctx.dtype, device="meta") for s in shapes[: self.n_tops]]
        data, label = self.prefetched
        self.prefetched = self._prefetch()  # CreatePrefetchThread at the end of Forward_cpu
        tops = [data.to(self.ctx.device)]
        if self.n_tops > 1:
            tops.append(label.to(self.ctx.device))
        return tops

    def resume_state(self) -> dict:
        return {}

    def restore_state(self, state) -> None:
        pass

    def close(self):
        self.cursor.close()
        import shutil
        shutil.rmtree(os.path.dirname(self._copy), ignore_errors=True)


def _private_leveldb(path: str) -> str:
    """A private copy of the LevelDB at ``path`` (table files hard-linked, the rest copied), removed
    at close or exit.  LevelDB lets one process open a folder, and each of the release's networks
    read its own ``imagenet_train_leveldb``; the grid's networks share one per half, so trainers
    running side by side (``sweep --workers 2``) each open a copy.  Not a 2014 difference: the same
    records in the same order."""
    import atexit
    import shutil
    import tempfile
    src = os.path.abspath(path)
    if not os.path.isfile(os.path.join(src, "CURRENT")):
        return path  # let the Cursor name the problem
    tmp = tempfile.mkdtemp(prefix="caffe2014-leveldb-")
    atexit.register(shutil.rmtree, tmp, True)
    dst = os.path.join(tmp, os.path.basename(src.rstrip("/")) or "db")
    os.mkdir(dst)
    for name in os.listdir(src):
        if name == "LOCK":
            continue
        f = os.path.join(src, name)
        if name.endswith((".ldb", ".sst")):  # immutable tables
            try:
                os.link(f, os.path.join(dst, name))
                continue
            except OSError:
                pass
        shutil.copy2(f, os.path.join(dst, name))
    return dst


def layer_classes(process: Process, tag: str = "net") -> Dict[str, type]:
    data = type("Data2014", (Data2014,), {"process": process, "tag": tag})
    return {"Data": data, "Convolution": Convolution2014, "InnerProduct": InnerProduct2014, "LRN": LRN2014,
            "Pooling": Pooling2014, "Accuracy": Accuracy2014, "Softmax": Softmax2014,
            "SoftmaxWithLoss": SoftmaxWithLoss2014}


# -- nets as written (V0/V1) ----------------------------------------------------------------------
def load_net_v1(path) -> caffe_pb2.NetParameter:
    """The net file as this Caffe holds it: V0 upgraded to V1 ``layers`` (upgrade_proto.cpp); a V1
    file as it is.  V2 ``layer`` nets did not exist in 2014."""
    from prototxt_like.upgrade import _Context, _needs_v0, _upgrade_v0_net
    text, file = read_text_source(path)
    net = parse_text(text, caffe_pb2.NetParameter, file)
    if len(net.layer):
        raise SolverError(f"{path}: a V2 net (`layer`); the 2014 Caffe reads V0/V1 nets (`layers`)")
    if _needs_v0(net):
        net = _upgrade_v0_net(net, _Context(file, False))
    for l in net.layers:  # 2014's V1 DataParameter holds scale, mean_file, crop_size and mirror
        if l.type == caffe_pb2.V1LayerParameter.DATA and l.HasField("transform_param"):
            t = l.transform_param
            for f in ("scale", "mean_file", "crop_size", "mirror"):
                if t.HasField(f):
                    setattr(l.data_param, f, getattr(t, f))
            l.ClearField("transform_param")
    return net


def to_proto_2014(net: Net, v1: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """Net::ToProto of 2014: the name, then every layer's V1 parameter (Split layers included) with
    its blobs as legacy num/channels/height/width."""
    by_name = {l.name: l for l in v1.layers}
    out = caffe_pb2.NetParameter()
    out.name = net.name
    out.input.extend(v1.input)
    out.input_dim.extend(v1.input_dim)
    for lp, layer in zip(net.layer_params, net.layers):
        dst = out.layers.add()
        if lp.name in by_name:
            dst.CopyFrom(by_name[lp.name])
            dst.ClearField("blobs")
        else:  # an inserted Split layer
            dst.name = lp.name
            dst.type = caffe_pb2.V1LayerParameter.SPLIT
        del dst.bottom[:]
        del dst.top[:]
        dst.bottom.extend(lp.bottom)
        dst.top.extend([t for t in lp.top])
        for p in layer.params:
            _blob(dst.blobs.add(), p.data)
    return out


def _blob(b, t) -> None:
    b.num, b.channels, b.height, b.width = _legacy(t.shape)
    b.data.extend(t.detach().cpu().reshape(-1).tolist())


# -- the solver -----------------------------------------------------------------------------------
class Solver2014(SGDSolver):
    """Solver<float>/SGDSolver<float> of 584abd3 (train_net.bin, finetune_net.bin)."""

    POLICIES = ("fixed", "step", "exp", "inv")

    def __init__(self, param, *, log: Optional[CaffeLog] = None, weights=(), device="cpu", **_):
        from prototxt_like.io import load_solver
        if not isinstance(param, caffe_pb2.SolverParameter):
            param = load_solver(param)
        self.param = param
        self.log = log if log is not None else CaffeLog()
        seed = caffe_seed(param.random_seed) if param.random_seed >= 0 else int.from_bytes(os.urandom(4), "little")
        self.rng = CopiedGenerator(seed)
        self.process = Process()
        self.device = device
        self.weights = list(weights)
        if not param.HasField("train_net"):
            raise SolverError("the 2014 solver needs train_net (a file)")
        self.log(WHERE["train_net"], "Creating training net.")
        self.v1 = load_net_v1(param.train_net)
        self.net = self._make_net(param.train_net, TRAIN, "train")
        self.test_nets = []
        if param.test_net:
            if len(param.test_net) > 1:
                raise SolverError("the 2014 solver has one test_net")
            self.log(WHERE["test_net"], "Creating testing net.")
            self.test_nets = [self._make_net(param.test_net[0], TEST, "val")]
            if not param.test_iter or param.test_iter[0] <= 0 or param.test_interval <= 0:
                raise SolverError("test_iter and test_interval must be positive with a test_net")
        self.log(WHERE["scaffold"], "Solver scaffolding done.")
        for w in self.weights:  # finetune_net.bin: CopyTrainedLayersFrom into the train net
            self.log(WHERE["finetune"], f"Finetuning from {w}")
            self.net.copy_trained_layers_from(w)
        self.iter = 0
        self.current_step = 0
        self.history = [torch.zeros_like(p.data) for p in self.net.learnable]
        self.requested_early_exit = False
        self._pending = []
        self.signal_effects = {}

    def _make_net(self, path, phase, tag) -> Net:
        param = load_net(path)
        return Net(param, state=caffe_pb2.NetState(phase=phase), rng=self.rng, device=self.device,
                   layer_classes=layer_classes(self.process, tag))

    # one_based_iter: self.iter is 2014's iter_ while an update is computed
    def learning_rate(self):
        if self.param.lr_policy not in self.POLICIES:
            raise SolverError(f"Unknown learning rate policy: {self.param.lr_policy}")
        return super().learning_rate()

    def update_2014(self) -> None:
        """ComputeUpdateValue (sgd_update) and Net::Update."""
        rate = self.learning_rate()
        p = self.param
        if p.display and self.iter % p.display == 0:
            self.log(WHERE["lr"], f"Iteration {self.iter}, lr = {g(rate)}")
        momentum, wd = f32(p.momentum), f32(p.weight_decay)
        for i, blob in enumerate(self.net.learnable):
            local_rate = f32(rate * f32(self.net.params_lr[i]))
            local_decay = f32(wd * f32(self.net.params_decay[i]))
            h = self.history[i]
            R.axpby(float(local_rate), blob.diff, float(momentum), h)
            if local_decay:
                R.axpy(float(f32(local_decay * local_rate)), blob.data, h)
            blob.diff.copy_(h)
            R.axpy(-1.0, blob.diff, blob.data)

    def solve(self, resume_file: Optional[str] = None, progress=None) -> None:
        p = self.param
        self.process.phase = TRAIN
        self.log(WHERE["solving"], f"Solving {self.net.name}")
        self.iter = 0
        if resume_file:
            self.log(WHERE["restoring"], f"Restoring previous solver status from {resume_file}")
            self.restore(resume_file)
        while self.iter < p.max_iter:
            self.iter += 1
            self.net.clear_param_diffs()
            loss = f32(self.net.forward_backward())
            self.update_2014()
            if p.display and self.iter % p.display == 0:
                self.log(WHERE["loss"], f"Iteration {self.iter}, loss = {g(loss)}")
            if p.test_interval and self.test_nets and self.iter % p.test_interval == 0:
                self.process.phase = TEST
                self.test(0)
                self.process.phase = TRAIN
            if p.snapshot and self.iter % p.snapshot == 0:
                self.snapshot()
            if progress is not None:
                progress(self.iter, float(loss))
        self.snapshot()  # iter_-- then Snapshot(): always, with the last iteration's number
        self.log(WHERE["done"], "Optimization Done.")

    def test(self, i: int = 0) -> dict:
        self.log(WHERE["testing"], f"Iteration {self.iter}, Testing net")
        net = self.test_nets[i]
        net.share_trained_layers_with(self.net)
        n = self.param.test_iter[i]
        score = None
        for _ in range(n):
            net.forward()
            vals = np.concatenate([net.blobs[name].data.detach().reshape(-1).cpu().numpy().astype(f32)
                                   for name in net.output_names]) if net.output_names else np.zeros(0, f32)
            score = vals.copy() if score is None else (score + vals).astype(f32)
        means = (score / f32(n)).astype(f32) if score is not None else np.zeros(0, f32)
        for k, v in enumerate(means):
            self.log(WHERE["score"], f"Test score #{k}: {g(v)}")
        return {"scores": means}

    def snapshot_filename(self, ext: str = "") -> str:
        return f"{self.param.snapshot_prefix}_iter_{self.iter}{ext}"

    def snapshot(self) -> str:
        model = self.snapshot_filename()
        self.log(WHERE["snapshot"], f"Snapshotting to {model}")
        atomic_write(model, serialize(to_proto_2014(self.net, self.v1)))
        state = caffe_pb2.SolverState(iter=self.iter, learned_net=model)
        for h in self.history:
            _blob(state.history.add(), h)
        path = model + ".solverstate"
        self.log(WHERE["snapshot_state"], f"Snapshotting solver state to {path}")
        atomic_write(path, serialize(state))
        return path

    def restore(self, state_file: str) -> None:
        state, history = load_solverstate_2014(state_file)
        if state.learned_net:
            self.net.copy_trained_layers_from(state.learned_net)
        self.iter = state.iter
        self.log(WHERE["restore"], "SGDSolver: restoring history")
        if len(history) != len(self.history):
            raise SolverError(f"{state_file}: {len(history)} history blobs, the net has {len(self.history)}")
        for i, h in enumerate(history):
            self.history[i] = torch.from_numpy(np.ascontiguousarray(h, dtype=f32).reshape(
                tuple(self.history[i].shape))).to(self.device)


def load_solverstate_2014(source):
    """``(SolverState, [history arrays])`` of a 2014 ``.solverstate`` (``iter``, ``learned_net``,
    ``history``: the 2014 SolverState has no ``current_step``, which 1.0's reader requires)."""
    from prototxt_like.codec import parse_binary
    from prototxt_like.io import BinaryFormatError, blob_to_numpy, read_binary_source
    data, file = read_binary_source(source)
    state = parse_binary(data, caffe_pb2.SolverState, file)
    unset = [f for f in ("iter", "learned_net") if not state.HasField(f)]
    if unset:
        raise BinaryFormatError(f"truncated or not a SolverState: {', '.join(unset)} unset", file=file)
    return state, [blob_to_numpy(b, what=f"history blob {i}", from_file=True) for i, b in enumerate(state.history)]


# -- the tools ------------------------------------------------------------------------------------
def net_2014(model, phase, seed=None, device="cpu") -> Net:
    """A net as the 2014 tools build it (test_net.bin, net_speed_benchmark.bin): the global phase set
    first, the fillers on a copied generator (seeded from the system unless ``seed``)."""
    process = Process()
    process.phase = phase
    seed = caffe_seed(seed) if seed is not None else int.from_bytes(os.urandom(4), "little")
    return Net(load_net(model), state=caffe_pb2.NetState(phase=phase), rng=CopiedGenerator(seed), device=device,
               layer_classes=layer_classes(process, "test" if phase == TEST else "train"))


def cmd_train(args, log, device) -> int:
    """``train_net.bin SOLVER [RESUME]`` (-snapshot) and ``finetune_net.bin SOLVER WEIGHTS`` (-weights)."""
    from prototxt_like.io import load_solver
    if args.snapshot and args.weights:
        raise SystemExit("Give a snapshot to resume training or weights to finetune but not both.")
    param = load_solver(args.solver)
    if args.random_seed is not None:
        param.random_seed = args.random_seed
    weights = [w.strip() for w in args.weights.split(",")] if args.weights else []
    solver = Solver2014(param, log=log, weights=weights, device=device)
    try:
        solver.solve(args.snapshot)
    finally:
        solver.close()
    return 0
