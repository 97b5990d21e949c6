"""ContrastiveLoss on pairs (a, b) with similarity y: ``d2 = |a - b|^2`` per pair (sdot); similar pairs
add ``d2``, dissimilar ones ``max(margin - sqrt(d2), 0)^2`` (``legacy_version``: ``max(margin - d2, 0)``);
the sum / N / 2.  Backward by axpby per pair (the non-legacy dissimilar scale divides by ``d + 1e-4``).
y never gets a diff (AllowForceBackward(2) is false; Caffe ignores propagate_down[2])."""
from __future__ import annotations

import torch

from .base import Layer
from .euclidean_loss import check_same_num
from .sigmoid import require_cpu


def _legacy(x, i: int) -> int:
    """Blob::LegacyShape: axes past the last count as 1."""
    return int(x.shape[i]) if i < x.dim() else 1


class ContrastiveLoss(Layer):
    type = "ContrastiveLoss"
    loss_layer = True
    min_bottoms = max_bottoms = 3

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.contrastive_loss_param
        self.margin, self.legacy = p.margin, bool(p.legacy_version)
        self.diff = self.dist_sq = None

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 2

    def setup(self, bottoms):
        a, b, y = bottoms
        ok = (_legacy(a, 1) == _legacy(b, 1) and all(_legacy(t, i) == 1 for t in (a, b) for i in (2, 3))
              and all(_legacy(y, i) == 1 for i in (1, 2, 3)) and max(a.dim(), b.dim(), y.dim()) <= 4)
        if not ok:
            raise self.error(f"the pairs must be N x C (x 1 x 1) with the same C and y N (x 1 x 1 x 1); got "
                             f"{tuple(a.shape)}, {tuple(b.shape)}, {tuple(y.shape)}")

    def forward(self, bottoms):
        require_cpu(self, bottoms)
        a, b, y = bottoms
        check_same_num(self, a, b)
        loss, self.diff, self.dist_sq = torch.ops.replicate.contrastive_loss_forward(a, b, y, self.margin,
                                                                                     self.legacy)
        return [loss]

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        out = []
        for i, sign in ((0, 1.0), (1, -1.0)):
            if not propagate_down[i]:
                out.append(None)
                continue
            d = torch.ops.replicate.contrastive_loss_backward(top_diffs[0], self.diff, self.dist_sq, bottoms[2],
                                                              self.margin, self.legacy, sign)
            out.append(d.reshape(bottoms[i].shape))
        return out + [None]


LAYER = ContrastiveLoss
