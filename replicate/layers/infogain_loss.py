"""InfogainLoss (Caffe 9b89154: on raw scores, through its own Softmax along ``infogain_loss_param.axis``):
``-sum_l H[label, l] * log(max(p_l, 1e-20))`` over the non-ignored labels / normaliser (default VALID).
H is the third bottom or the BlobProto file ``infogain_loss_param.source``.  Backward
``(p_l * rowsum(H)[label] - H[label, l]) * w / normaliser``; no diff to the labels or H (Caffe aborts if
asked).  Optional second top: the softmax probabilities."""
from __future__ import annotations

import numpy as np
import torch

from .base import Layer, axis_index
from .sigmoid import require_cpu


class InfogainLoss(Layer):
    type = "InfogainLoss"
    loss_layer = True
    min_bottoms, max_bottoms = 2, 3

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        lp = param.loss_param
        if lp.HasField("normalize"):
            raise self.error('normalize is deprecated. use "normalization"')
        self.normalization = lp.normalization
        self.ignore_label = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.prob = None
        self.infogain = None

    def setup(self, bottoms):
        if len(bottoms) < 3:
            ip = self.param.infogain_loss_param
            if not ip.HasField("source"):
                raise self.error("Infogain matrix source must be specified.")
            from prototxt_like import load_blob
            try:
                arr = load_blob(ip.source)
            except Exception as e:  # noqa: BLE001 - unreadable file or malformed blob: name it
                raise self.error(f"cannot read the infogain matrix {ip.source!r}: {e}") from None
            self.infogain = torch.from_numpy(np.ascontiguousarray(arr)).to(device=self.ctx.device,
                                                                          dtype=self.ctx.dtype)

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        x, label = bottoms[0], bottoms[1]
        H = bottoms[2] if len(bottoms) > 2 else self.infogain
        if x.device.type == "meta":  # the Net's shape pass
            H = H.to("meta")
        axis = axis_index(self.param.infogain_loss_param.axis, x.dim(), self)
        if label.dim() == 0 or x.shape[0] != label.shape[0]:
            raise self.error(f"The data and label should have the same first dimension ({tuple(x.shape)} and "
                             f"{tuple(label.shape)})")
        k = x.shape[axis]
        if label.numel() != x.numel() // k:
            raise self.error(f"Number of labels must match number of predictions: {label.numel()} labels for "
                             f"scores {tuple(x.shape)} with the class axis {axis}")
        if H.numel() != k * k:
            raise self.error(f"the infogain matrix has {H.numel()} values; it must be {k}x{k}")
        self.prob = torch.ops.replicate.softmax_forward(x, axis)
        loss = torch.ops.replicate.infogain_loss_forward(self.prob, label, H, axis, self.normalization,
                                                         self.ignore_label)
        self.axis = axis
        return [loss, self.prob][: self.n_tops]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if propagate_down[1]:
            raise self.error("InfogainLoss Layer cannot backpropagate to label inputs.")
        if len(propagate_down) > 2 and propagate_down[2]:
            raise self.error("InfogainLoss Layer cannot backpropagate to infogain inputs.")
        if not propagate_down[0]:
            return [None] * len(bottoms)
        H = bottoms[2] if len(bottoms) > 2 else self.infogain
        d = torch.ops.replicate.infogain_loss_backward(top_diffs[0], self.prob, bottoms[1], H, self.axis,
                                                       self.normalization, self.ignore_label)
        return [d.reshape(bottoms[0].shape)] + [None] * (len(bottoms) - 1)


LAYER = InfogainLoss
