"""Caffe 1.0's SGD solver (solver.cpp + sgd_solver.cpp), step for step.

* learning rate: fixed, step, exp, inv, multistep, poly, sigmoid, in Caffe's float/double mix
  (``pow(float, int)`` is a double pow; ``pow(float, float)`` and ``exp(float)`` are glibc's
  powf/expf, called here through ctypes);
* update per learnable blob: iter_size normalisation, L2/L1 weight decay, momentum
  (``history = rate * diff + momentum * history``, ``diff = history``, ``w -= diff``) through the
  BLAS seam (``replicate.ops.sgd_update``), clip_gradients;
* test every ``test_interval`` (test_initialization, test_compute_loss), smoothed display loss
  (average_loss) in float32, snapshots ``<prefix>_iter_<N>.caffemodel`` + ``.solverstate``
  written atomically, resume from a solverstate, SIGINT/SIGTERM stop (then snapshot, as Caffe's
  ``snapshot_after_train``) and SIGHUP snapshot;
* exact resume (not Caffe's): each snapshot also writes ``<prefix>_iter_<N>.resume``, the global
  RNG state and every Data/MemoryData layer's position before its next batch; restoring it makes a
  resumed run continue bit for bit as the uninterrupted one (Caffe restarts both from the seed and
  the first record; ``caffe_resume=True`` or a missing sidecar does that).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import io
import json
import math
import os
import signal
import time
from typing import List, Optional, Sequence

import numpy as np
import torch

from prototxt_like import caffe_pb2
from prototxt_like.codec import serialize
from prototxt_like.io import load_net, load_solver, load_solverstate

from . import ops as R
from .log import CaffeLog, g
from .fileio import atomic_write, check_writable
from .net import Net
from .rng import CaffeRNG, caffe_seed
from .timing import mark

f32 = np.float32


def _load_libm():
    """glibc's libm, already mapped into this process by Python and torch.  Its soname first:
    ``ctypes.util.find_library`` runs ``ldconfig -p`` in a subprocess (a fork of this large
    process) and on glibc returns this same name; it is the fallback elsewhere."""
    try:
        return ctypes.CDLL("libm.so.6")
    except OSError:
        return ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")


_libm = _load_libm()
_libm.powf.restype = ctypes.c_float
_libm.powf.argtypes = [ctypes.c_float, ctypes.c_float]
_libm.expf.restype = ctypes.c_float
_libm.expf.argtypes = [ctypes.c_float]


def powf(a, b) -> np.float32:
    return f32(_libm.powf(float(a), float(b)))


def expf(a) -> np.float32:
    return f32(_libm.expf(float(a)))


class SolverError(ValueError):
    pass


RESUME_FORMAT = 1
RESUME_LOG = "solver.py:0"  # glog location of the resume-kind line (no Caffe counterpart)


def resume_path(state_file: str) -> str:
    """``X.resume`` beside ``X.solverstate``: the exact-resume sidecar."""
    stem = state_file[: -len(".solverstate")] if state_file.endswith(".solverstate") else state_file
    return stem + ".resume"


class Action:
    NONE, STOP, SNAPSHOT = 0, 1, 2


class SGDSolver:
    """``param``: a SolverParameter or path.  ``log``: a :class:`CaffeLog` (default: stderr)."""

    TYPE = "SGD"  # the SolverParameter.type this class implements (others: replicate/solvers.py)

    def __init__(self, param, *, log: Optional[CaffeLog] = None, weights: Sequence[str] = (),
                 device="cpu", data_workers: Optional[int] = None, caffe_resume: bool = False):
        if not isinstance(param, caffe_pb2.SolverParameter):
            param = load_solver(param)
        self.param = param
        self.log = log if log is not None else CaffeLog()
        if param.type and param.type != self.TYPE:
            raise SolverError(f"solver type {param.type!r} is not {type(self).__name__}'s "
                              f"{self.TYPE!r}; replicate.solvers.make_solver picks the class")
        if param.snapshot_format == caffe_pb2.SolverParameter.HDF5:
            raise SolverError("snapshot_format HDF5 is not supported; use BINARYPROTO")
        self.log("solver_init", "Initializing solver from parameters: \n" + _text(param).rstrip("\n"))
        if param.average_loss < 1:
            raise SolverError("average_loss should be non-negative.")
        # CheckSnapshotWritePermissions, after the average_loss check as in Solver::Init
        if param.snapshot and not param.HasField("snapshot_prefix"):
            raise SolverError("In solver params, snapshot is specified but snapshot_prefix is not")
        if param.snapshot:
            probe = f"{param.snapshot_prefix}_iter_0.tempfile"  # Caffe's CheckSnapshotWritePermissions
            try:
                check_writable(probe)  # exclusive, beside the prefix, never through a link
            except OSError as e:
                raise SolverError(f"Cannot write to snapshot prefix '{param.snapshot_prefix}'.  Make sure that the "
                                  f"directory exists and is writable. ({e})") from None
        # Caffe::set_random_seed(unsigned int): a random_seed above 32 bits is taken modulo 2^32;
        # a negative one leaves Caffe's generator seeded from the system (cluster_seedgen)
        seed = caffe_seed(param.random_seed) if param.random_seed >= 0 else int.from_bytes(os.urandom(4), "little")
        self.rng = CaffeRNG(seed)
        self.device = device
        self.data_workers = data_workers
        self.caffe_resume = bool(caffe_resume)  # restore() ignores the .resume sidecar
        self._test_from = None  # (iter, test-net layer states) as the latest test_all began
        # caffe train: -weights replaces the solver's `weights` (and -snapshot clears them)
        self.weights = list(weights) if weights else list(param.weights)
        self.net = self._train_net()
        self.test_nets = self._test_nets()
        self.iter = 0
        self.current_step = 0
        self.history = [torch.zeros_like(p.data) for p in self.net.learnable]
        self.losses: List[np.float32] = []
        self.smoothed_loss = f32(0)
        self.requested_early_exit = False
        self._pending: List[int] = []
        self.signal_effects = {"SIGINT": Action.STOP, "SIGTERM": Action.STOP, "SIGHUP": Action.SNAPSHOT}
        self.log("scaffold", "Solver scaffolding done.")

    # -- nets --------------------------------------------------------------------------------
    def _net_param(self):
        """The train net's NetParameter and Caffe's words for where it came from."""
        p = self.param
        sources = [(p.HasField("train_net_param"), lambda: p.train_net_param, "train_net_param",
                    "Creating training net specified in train_net_param."),
                   (p.HasField("train_net"), lambda: load_net(p.train_net), "train_net_file",
                    f"Creating training net from train_net file: {p.train_net}"),
                   (p.HasField("net_param"), lambda: p.net_param, "net_param",
                    "Creating training net specified in net_param."),
                   (p.HasField("net"), lambda: load_net(p.net), "net_file",
                    f"Creating training net from net file: {p.net}")]
        given = [src for src in sources if src[0]]
        fields = "net, net_param, train_net, train_net_param"
        if not given:  # Solver::InitTrainNet's CHECK_GE / CHECK_LE
            raise SolverError(f"SolverParameter must specify a train net using one of these fields: {fields}")
        if len(given) > 1:
            raise SolverError("SolverParameter must not contain more than one of these fields specifying a "
                              f"train_net: {fields}")
        _, load, key, message = given[0]
        return load(), key, message

    def _load_weights(self, net: Net) -> None:
        for w in self.weights:
            for f in w.split(","):
                f = f.strip()
                self.log("finetune", f"Finetuning from {f}")
                net.copy_trained_layers_from(f)

    @staticmethod
    def _state(phase: int, net_state, extra=None) -> caffe_pb2.NetState:
        """Caffe's order: the phase first, then the net's own state, then the solver's."""
        state = caffe_pb2.NetState(phase=phase)
        state.MergeFrom(net_state)
        if extra is not None:
            state.MergeFrom(extra)
        return state

    def _train_net(self) -> Net:
        param, key, message = self._net_param()
        self.log(key, message)
        state = self._state(caffe_pb2.TRAIN, param.state, self.param.train_state)
        net = Net(param, state=state, rng=self.rng, device=self.device, data_workers=self.data_workers)
        net.release_after_backward = True  # only the outputs are read between passes
        self._load_weights(net)
        return net

    def _test_nets(self) -> List[Net]:
        p = self.param
        specs = [(tp, "test_net_param") for tp in p.test_net_param]
        specs += [(load_net(tf), f"test_net file: {tf}") for tf in p.test_net]
        generic = p.HasField("net") or p.HasField("net_param")
        if (len(p.test_iter) < len(specs)) if generic else (len(p.test_iter) != len(specs)):
            raise SolverError("test_iter must be specified for each test network.")
        if generic and len(p.test_iter) > len(specs):
            base = p.net_param if p.HasField("net_param") else load_net(p.net)
            what = "net_param" if p.HasField("net_param") else f"net file: {p.net}"
            specs += [(base, what)] * (len(p.test_iter) - len(specs))
        if p.test_state and len(p.test_state) != len(specs):
            raise SolverError("test_state must be unspecified or specified once per test net.")
        if specs and p.test_interval <= 0:
            raise SolverError(f"test_interval must be positive when there are test nets ({len(specs)} here; "
                              "Caffe: CHECK_GT(test_interval, 0))")
        nets = []
        for i, (param, what) in enumerate(specs):
            self.log("test_net", f"Creating test net (#{i}) specified by {what}")
            state = self._state(caffe_pb2.TEST, param.state, p.test_state[i] if p.test_state else None)
            net = Net(param, state=state, rng=self.rng, device=self.device, data_workers=self.data_workers)
            self._load_weights(net)
            nets.append(net)
        return nets

    def close(self) -> None:
        for n in [self.net, *self.test_nets]:
            n.close()

    # -- learning rate -----------------------------------------------------------------------
    def learning_rate(self) -> np.float32:
        p = self.param
        policy = p.lr_policy
        base = f32(p.base_lr)
        gamma = f32(p.gamma)
        if policy in ("exp", "inv", "multistep", "sigmoid") and gamma < 0:
            raise SolverError(f"lr_policy {policy} needs gamma >= 0, got {p.gamma}")
        if policy == "fixed":
            return base
        if policy == "step":  # Caffe checks stepsize before gamma here
            if p.stepsize <= 0:
                raise SolverError("lr_policy step needs stepsize > 0")
            if gamma < 0:
                raise SolverError(f"lr_policy {policy} needs gamma >= 0, got {p.gamma}")
            self.current_step = self.iter // p.stepsize
            return f32(float(base) * math.pow(float(gamma), self.current_step))
        if policy == "exp":
            return f32(float(base) * math.pow(float(gamma), self.iter))
        if policy == "inv":
            return f32(base * powf(f32(1) + f32(gamma * f32(self.iter)), -f32(p.power)))
        if policy == "multistep":
            if self.current_step < len(p.stepvalue) and self.iter >= p.stepvalue[self.current_step]:
                self.current_step += 1
                self.log("multistep", f"MultiStep Status: Iteration {self.iter}, step = {self.current_step}")
            return f32(float(base) * math.pow(float(gamma), self.current_step))
        if policy == "poly":
            return f32(base * powf(f32(1) - f32(f32(self.iter) / f32(p.max_iter)), f32(p.power)))
        if policy == "sigmoid":
            if p.stepsize <= 0:
                raise SolverError("lr_policy sigmoid needs stepsize > 0")
            e = expf(f32(-gamma * f32(f32(self.iter) - f32(p.stepsize))))
            return f32(base * f32(f32(1) / f32(f32(1) + e)))
        raise SolverError(f"Unknown learning rate policy: {policy}")

    # -- one update --------------------------------------------------------------------------
    def apply_update(self, display: bool) -> None:
        rate = self.learning_rate()
        if display:
            self.log("lr", f"Iteration {self.iter}, lr = {g(rate)}")
        self._clip_gradients()
        p = self.param
        scale = 1.0 if p.iter_size == 1 else float(f32(1) / f32(p.iter_size))
        momentum = f32(p.momentum)
        wd = f32(p.weight_decay)
        reg = p.regularization_type
        for i, blob in enumerate(self.net.learnable):
            local_rate = f32(rate * f32(self.net.params_lr[i]))
            local_decay = f32(wd * f32(self.net.params_decay[i]))
            if local_decay and reg not in ("L1", "L2"):  # Caffe checks inside Regularize only
                raise SolverError(f"Unknown regularization type: {reg}")
            self.update_blob(i, blob, local_rate, momentum, local_decay, reg, scale)
        self.iter += 1

    def update_blob(self, i: int, blob, local_rate, momentum, local_decay, reg: str, scale: float) -> None:
        """Normalize, Regularize, ComputeUpdateValue and Blob::Update of learnable blob ``i``
        (the other solvers override it)."""
        R.sgd_update(blob.data, blob.diff, self.history[i], float(local_rate), float(momentum),
                     float(local_decay), reg, scale)

    def _clip_gradients(self) -> None:
        clip = f32(self.param.clip_gradients)
        if clip < 0:
            return
        sumsq = f32(0)
        for blob in self.net.learnable:
            sumsq += f32(R.dot(blob.diff, blob.diff).item())
        l2 = f32(np.sqrt(sumsq))
        if l2 > clip:
            factor = f32(clip / l2)
            self.log("clip", f"Gradient clipping: scaling down gradients (L2 norm {g(l2)} > {g(clip)}) "
                             f"by scale factor {g(factor)}")
            for blob in self.net.learnable:
                R.scal(float(factor), blob.diff)

    # -- loop --------------------------------------------------------------------------------
    def _update_smoothed_loss(self, loss, start_iter: int, average_loss: int) -> None:
        loss = f32(loss)
        if len(self.losses) < average_loss:
            self.losses.append(loss)
            size = len(self.losses)
            self.smoothed_loss = f32(f32(self.smoothed_loss * f32(size - 1) + loss) / f32(size))
        else:
            idx = (self.iter - start_iter) % average_loss
            self.smoothed_loss = f32(self.smoothed_loss + f32(f32(loss - self.losses[idx]) / f32(average_loss)))
            self.losses[idx] = loss

    def _requested_action(self) -> int:
        return self._pending.pop(0) if self._pending else Action.NONE

    def step(self, iters: int, progress=None) -> None:
        p = self.param
        start_iter = self.iter
        stop_iter = self.iter + iters
        average_loss = p.average_loss
        self.losses = []
        self.smoothed_loss = f32(0)
        timer = time.perf_counter()
        iterations_last = self.iter
        first = True  # the start-up trace's marks (timing.mark; a no-op unless traced)
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            if p.test_interval and self.iter % p.test_interval == 0 and (self.iter > 0 or p.test_initialization):
                self.test_all()
                if self.requested_early_exit:
                    break
            display = bool(p.display) and self.iter % p.display == 0
            if first:
                mark("first_iteration")
            loss = f32(0)
            for _ in range(p.iter_size):
                loss = f32(loss + f32(self.net.forward_backward()))
            loss = f32(loss / f32(p.iter_size))
            self._update_smoothed_loss(loss, start_iter, average_loss)
            if display:
                lapse = time.perf_counter() - timer
                per_s = (self.iter - iterations_last) / (lapse if lapse else 1)
                self.log("iteration", f"Iteration {self.iter} ({g(per_s)} iter/s, {g(lapse)}s/{p.display} iters), "
                                      f"loss = {g(self.smoothed_loss)}")
                timer = time.perf_counter()
                iterations_last = self.iter
                self._log_outputs(self.net, "train_output", "Train net output")
            self.apply_update(display)
            if first:
                mark("first_iteration_done")
                first = False
            if progress is not None:
                progress(self.iter, float(self.smoothed_loss))
            request = self._requested_action()
            if (p.snapshot and self.iter % p.snapshot == 0) or request == Action.SNAPSHOT:
                self.snapshot()
            if request == Action.STOP:
                self.requested_early_exit = True
                break

    def _log_outputs(self, net: Net, key: str, label: str, values=None) -> None:
        idx = 0
        for name in net.output_names:
            data = net.blobs[name].data.detach().reshape(-1).cpu().numpy() if values is None else values[name]
            w = net.loss_weights.get(name, 0.0)
            for v in data:
                msg = f" (* {g(w)} = {g(f32(w) * f32(v))} loss)" if w else ""
                self.log(key, f"    {label} #{idx}: {name} = {g(v)}{msg}")
                idx += 1

    def solve(self, resume_file: Optional[str] = None, progress=None) -> None:
        self.log("solving", f"Solving {self.net.name}")
        self.log("policy", f"Learning Rate Policy: {self.param.lr_policy}")
        self.requested_early_exit = False
        if resume_file:
            self.log("restoring", f"Restoring previous solver status from {resume_file}")
            self.restore(resume_file)
        start_iter = self.iter
        with self._signals():
            self.step(self.param.max_iter - self.iter, progress)
        p = self.param
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if self.requested_early_exit:
            self.log("stopped", "Optimization stopped early.")
            return
        if p.display and self.iter % p.display == 0:
            loss = self.net.forward()
            self._update_smoothed_loss(loss, start_iter, p.average_loss)
            self.log("final_loss", f"Iteration {self.iter}, loss = {g(self.smoothed_loss)}")
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        self.log("done", "Optimization Done.")

    # -- testing -----------------------------------------------------------------------------
    def test_all(self) -> List[dict]:
        # a snapshot taken during or after this test but at this iteration resumes into a rerun of
        # it, so it saves the test nets' positions from before it
        self._test_from = (self.iter, {(tag, lid): layer.resume_state()
                                       for tag, lid, layer in self._stateful_layers() if tag != "train"})
        results = []
        for i in range(len(self.test_nets)):
            if self.requested_early_exit:
                break
            results.append(self.test(i))
        return results

    def test(self, i: int) -> dict:
        p = self.param
        self.log("testing", f"Iteration {self.iter}, Testing net (#{i})")
        net = self.test_nets[i]
        net.share_trained_layers_with(self.net)
        scores = None
        loss = f32(0)
        n = p.test_iter[i]
        for k in range(n):
            request = self._requested_action()
            while request != Action.NONE:
                if request == Action.SNAPSHOT:
                    self.snapshot()
                elif request == Action.STOP:
                    self.requested_early_exit = True
                request = self._requested_action()
            if self.requested_early_exit:
                break
            iter_loss = f32(net.forward())
            if p.test_compute_loss:
                loss = f32(loss + iter_loss)
            vals = {name: net.blobs[name].data.detach().reshape(-1).cpu().numpy().astype(np.float32)
                    for name in net.output_names}
            if scores is None:
                scores = {k2: v.copy() for k2, v in vals.items()}
            else:
                for k2 in scores:
                    scores[k2] = (scores[k2] + vals[k2]).astype(np.float32)
        if self.requested_early_exit:
            self.log("test_interrupted", "Test interrupted.")
            return {}
        if p.test_compute_loss:
            loss = f32(loss / f32(n))
            self.log("test_loss", f"Test loss: {g(loss)}")
        means = {k2: (v / f32(n)).astype(np.float32) for k2, v in (scores or {}).items()}
        if scores is not None:  # test_iter 0: Caffe's test_score is empty and nothing is logged
            self._log_outputs(net, "test_output", "Test net output", means)
        return means

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot_filename(self, ext: str) -> str:
        return f"{self.param.snapshot_prefix}_iter_{self.iter}{ext}"

    def snapshot(self) -> str:
        model = self.snapshot_filename(".caffemodel")
        self.log("snapshot_model", f"Snapshotting to binary proto file {model}")
        self.net.save(model, write_diff=self.param.snapshot_diff)
        state = caffe_pb2.SolverState(iter=self.iter, learned_net=model, current_step=self.current_step)
        for h in self.history:
            b = state.history.add()
            b.shape.dim.extend(h.shape)
            b.data.extend(h.detach().cpu().reshape(-1).tolist())
        path = self.snapshot_filename(".solverstate")
        self.log("snapshot_state", f"Snapshotting solver state to binary proto file {path}")
        data = serialize(state)
        with open(model, "rb") as f:  # the sidecar names both files' hashes: a torn one is found on resume
            model_sha = hashlib.file_digest(f, "sha256").hexdigest()
        atomic_write(resume_path(path), self._resume_bytes(hashlib.sha256(data).hexdigest(),
                                                           model, model_sha))  # first
        atomic_write(path, data)
        return path

    # -- exact resume (the .resume sidecar) --------------------------------------------------
    def _tagged_nets(self):
        """``(tag, net)``: ``train`` and ``test0``, ``test1``, ..."""
        return [("train", self.net)] + [(f"test{i}", n) for i, n in enumerate(self.test_nets)]

    def _stateful_layers(self):
        """``(net tag, layer index, layer)`` of every layer with a data position."""
        for tag, net in self._tagged_nets():
            for lid, layer in enumerate(net.layers):
                if hasattr(layer, "resume_state"):
                    yield tag, lid, layer

    def _fingerprint(self) -> str:
        """The nets' structure: layers, blobs, parameter shapes, batch sizes and random transforms."""
        h = hashlib.sha256()
        for tag, net in self._tagged_nets():
            for lp, layer in zip(net.layer_params, net.layers):
                t = lp.transform_param
                h.update(repr((tag, lp.name, lp.type, list(lp.bottom), list(lp.top),
                               [tuple(p.data.shape) for p in layer.params], lp.data_param.batch_size,
                               lp.memory_data_param.batch_size, t.crop_size, t.mirror)).encode())
        return h.hexdigest()

    def _resume_bytes(self, state_sha256: str, model: str = "", model_sha256: str = "") -> bytes:
        key, pos = self.rng.get_state()
        arrays = {"rng_key": key, "rng_pos": np.int64(pos)}
        layers = []
        test_from = self._test_from[1] if self._test_from and self._test_from[0] == self.iter else {}
        for tag, lid, layer in self._stateful_layers():
            st = test_from.get((tag, lid))
            if st is None:
                st = layer.resume_state()
            for k, v in st.items():
                arrays[f"{tag}/{lid}/{k}"] = np.asarray(v)
            layers.append([tag, lid, layer.name, layer.type])
        meta = {"format": RESUME_FORMAT, "iter": self.iter, "solverstate_sha256": state_sha256,
                "fingerprint": self._fingerprint(), "layers": layers}
        if model:
            meta.update(caffemodel=os.path.basename(model), caffemodel_sha256=model_sha256)
        buf = io.BytesIO()
        np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
        return buf.getvalue()

    def _restore_resume(self, state_file: str) -> None:
        """Restore the sidecar of ``state_file`` when it matches; log which kind of resume it is."""
        path = resume_path(state_file)
        caffe = "the random generator and the data layers restart from the seed and the first record"
        if self.caffe_resume:
            self.log(RESUME_LOG, f"Caffe resume (--caffe-resume): {caffe}")
            return
        if not os.path.exists(path):
            self.log(RESUME_LOG, f"Caffe resume (no {path}): {caffe}")
            return
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(str(arrays.pop("meta")))
        except Exception as e:
            raise SolverError(f"{path}: not a resume sidecar ({e}); --caffe-resume ignores it") from None
        with open(state_file, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        why = ("format" if meta.get("format") != RESUME_FORMAT else
               f"iteration {meta.get('iter')}, the solverstate's {self.iter}" if meta.get("iter") != self.iter else
               "another solverstate" if meta.get("solverstate_sha256") != sha else
               "another net" if meta.get("fingerprint") != self._fingerprint() else None)
        if why:
            self.log(RESUME_LOG, f"Caffe resume ({path} does not match: {why}): {caffe}", "W")
            return
        n = 0
        try:
            self.rng.set_state(arrays["rng_key"], int(arrays["rng_pos"]))
            for tag, lid, layer in self._stateful_layers():
                prefix = f"{tag}/{lid}/"
                layer.restore_state({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
                n += 1
        except Exception as e:  # DataSourceError (a key not in the database), LayerError, ...
            raise SolverError(f"{path}: cannot restore it ({e}); --caffe-resume ignores it") from None
        self.log(RESUME_LOG, f"Exact resume from {path}: random generator and {n} data layer position(s) "
                             "restored")

    def restore(self, state_file: str) -> None:
        if state_file.endswith(".h5"):
            raise SolverError(f"{state_file}: HDF5 solver states are not supported")
        state, history = load_solverstate(state_file)
        self.iter = state.iter
        if state.learned_net:
            if not os.path.exists(state.learned_net):
                raise SolverError(f"{state_file} names learned_net {state.learned_net!r}, which does not exist "
                                  f"(relative paths resolve against the working directory {os.getcwd()})")
            self.net.copy_trained_layers_from(state.learned_net)
        self.current_step = state.current_step
        if len(history) != len(self.history):
            raise SolverError(f"{state_file}: Incorrect length of history blobs ({len(history)} stored, "
                              f"the net has {len(self.history)} learnable blobs)")
        self.log("restore", "SGDSolver: restoring history")
        for i, h in enumerate(history):
            shape = tuple(self.history[i].shape)
            if h.size != self.history[i].numel():
                raise SolverError(f"{state_file}: history blob {i} ({self.net.learnable_names[i]}) has "
                                  f"{h.size} values, the net's blob {shape}")
            # Blob::FromProto reshapes (legacy 4-D history blobs included)
            self.history[i] = torch.from_numpy(np.ascontiguousarray(h, dtype=np.float32).reshape(shape)).to(
                self.device)
        self._restore_resume(state_file)

    # -- signals -----------------------------------------------------------------------------
    def request(self, action: int) -> None:
        self._pending.append(action)

    def _signals(self):
        solver = self

        class _Ctx:
            def __enter__(self):
                self.old = {}
                for name, effect in solver.signal_effects.items():
                    sig = getattr(signal, name, None)
                    if sig is None:
                        continue
                    handler = signal.SIG_IGN if effect == Action.NONE else (
                        lambda s, f, e=effect: solver.request(e))
                    try:
                        self.old[sig] = signal.signal(sig, handler)
                    except ValueError:  # not the main thread
                        pass
                return self

            def __exit__(self, *exc):
                for sig, old in self.old.items():
                    signal.signal(sig, old)

        return _Ctx()


def _text(param) -> str:
    from prototxt_like.codec import to_text
    return to_text(param)
