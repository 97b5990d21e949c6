"""Caffe 1.0's other solvers (src/caffe/solvers/*_solver.cpp at 9b89154): Nesterov, AdaGrad, RMSProp,
AdaDelta and Adam, as subclasses of :class:`replicate.solver.SGDSolver` that change only what Caffe's
subclasses change: ``ComputeUpdateValue`` (one op per solver in csrc/cpu/solver_updates.cpp, which also
does SGDSolver's Normalize/Regularize and Blob::Update on the same blob, as ``sgd_update`` does) and
the history layout.  Everything else (learning-rate policies, gradient clipping, tests, snapshots,
resume and its ``.resume`` sidecar) is SGDSolver's, as in Caffe.

History (``self.history``, saved in this order as the solverstate's ``history`` blobs):
  SGD, Nesterov      one set: the momentum
  AdaGrad            one set: the sum of squared gradients
  RMSProp            one set: the running mean square
  AdaDelta           two sets: the running mean of squared gradients, then that of squared updates
  Adam               two sets: m (first moment), then v (second moment)
A set holds one blob per learnable blob, in the net's order.

:func:`make_solver` picks the class from ``SolverParameter.type`` (the legacy ``solver_type`` enum is
upgraded first, as Caffe's UpgradeSolverAsNeeded) like Caffe's SolverRegistry.  CPU only: a CUDA device
raises :class:`SolverError`.
"""
from __future__ import annotations

import numpy as np
import torch

from prototxt_like import caffe_pb2
from prototxt_like.io import load_solver
from prototxt_like.upgrade import upgrade_solver

from . import ops as R
from .solver import SGDSolver, SolverError

f32 = np.float32
_ops = R.ops


class _CPUSolver(SGDSolver):
    """A solver whose update exists only as a CPU kernel; ``HISTORY_SETS`` history blobs per
    learnable blob (Caffe's ``*PreSolve`` appends the extra sets after SGDSolver's)."""

    HISTORY_SETS = 1

    def __init__(self, param, *, device="cpu", **kwargs):
        if torch.device(device).type != "cpu":
            raise SolverError(f"the {self.TYPE} solver is CPU-only here (device {device!r}); "
                              "run it with the CPU or use SGD on the GPU")
        super().__init__(param, device=device, **kwargs)
        try:
            self.sanity_check()
        except BaseException:
            self.close()
            raise
        base = list(self.history)
        for _ in range(self.HISTORY_SETS - 1):
            self.history.extend(torch.zeros_like(h) for h in base)

    def sanity_check(self) -> None:
        """Caffe's constructor_sanity_check (after Solver::Init, as in Caffe)."""

    def _n(self) -> int:
        return len(self.net.learnable)


class NesterovSolver(_CPUSolver):
    TYPE = "Nesterov"

    def update_blob(self, i, blob, local_rate, momentum, local_decay, reg, scale):
        _ops.nesterov_update(blob.data, blob.diff, self.history[i], float(local_rate), float(momentum),
                             float(local_decay), R.REGULARIZATION[reg], scale)


class AdaGradSolver(_CPUSolver):
    TYPE = "AdaGrad"

    def sanity_check(self):
        if f32(self.param.momentum) != 0:
            raise SolverError(f"Check failed: 0 == this->param_.momentum() (0 vs. {self.param.momentum:g}) "
                              "Momentum cannot be used with AdaGrad.")

    def update_blob(self, i, blob, local_rate, momentum, local_decay, reg, scale):
        _ops.adagrad_update(blob.data, blob.diff, self.history[i], float(local_rate), float(f32(self.param.delta)),
                            float(local_decay), R.REGULARIZATION[reg], scale)


class RMSPropSolver(_CPUSolver):
    TYPE = "RMSProp"

    def sanity_check(self):
        p = self.param
        if f32(p.momentum) != 0:
            raise SolverError(f"Check failed: 0 == this->param_.momentum() (0 vs. {p.momentum:g}) "
                              "Momentum cannot be used with RMSProp.")
        if not 0 <= f32(p.rms_decay) < 1:
            raise SolverError(f"rms_decay should lie between 0 and 1 (got {p.rms_decay:g}).")

    def update_blob(self, i, blob, local_rate, momentum, local_decay, reg, scale):
        p = self.param
        _ops.rmsprop_update(blob.data, blob.diff, self.history[i], float(local_rate), float(f32(p.rms_decay)),
                            float(f32(p.delta)), float(local_decay), R.REGULARIZATION[reg], scale)


class AdaDeltaSolver(_CPUSolver):
    """``momentum`` is the decay of both running means; ``delta`` guards both divisions; the step
    is still scaled by the learning rate (Caffe's examples use base_lr 1)."""

    TYPE = "AdaDelta"
    HISTORY_SETS = 2

    def update_blob(self, i, blob, local_rate, momentum, local_decay, reg, scale):
        _ops.adadelta_update(blob.data, blob.diff, self.history[i], self.history[self._n() + i], float(local_rate),
                             float(momentum), float(f32(self.param.delta)), float(local_decay),
                             R.REGULARIZATION[reg], scale)


class AdamSolver(_CPUSolver):
    """``momentum`` is beta1, ``momentum2`` beta2, ``delta`` epsilon; t = iter + 1."""

    TYPE = "Adam"
    HISTORY_SETS = 2

    def update_blob(self, i, blob, local_rate, momentum, local_decay, reg, scale):
        p = self.param
        _ops.adam_update(blob.data, blob.diff, self.history[i], self.history[self._n() + i], float(local_rate),
                         float(momentum), float(f32(p.momentum2)), float(f32(p.delta)), self.iter + 1,
                         float(local_decay), R.REGULARIZATION[reg], scale)


SOLVERS = {cls.TYPE: cls for cls in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver,
                                     AdamSolver)}


def solver_class(param: caffe_pb2.SolverParameter):
    """The class for ``param.type`` (Caffe's SolverRegistry::CreateSolver)."""
    kind = param.type or "SGD"
    try:
        return SOLVERS[kind]
    except KeyError:
        raise SolverError(f"Unknown solver type: {kind} (known types: {', '.join(sorted(SOLVERS))})") from None


def make_solver(param, **kwargs) -> SGDSolver:
    """A solver of ``param``'s type (a SolverParameter or a solver file/text); ``kwargs`` as
    :class:`SGDSolver`'s.  A legacy ``solver_type`` enum is upgraded to ``type`` first."""
    if not isinstance(param, caffe_pb2.SolverParameter):
        param = load_solver(param)
    elif param.HasField("solver_type"):
        param = upgrade_solver(param)
    return solver_class(param)(param, **kwargs)
