"""DummyData: tops of the given shapes (``shape``, or the legacy num/channels/height/width, once or
once per top) filled by ``data_filler`` (none: constant 0; one: shared by every top; or one per
top) from the net's Caffe RNG, as Caffe's DummyDataLayer: at set-up only the *constant* fillers fill
(drawing nothing), and every forward refills only the tops whose filler is not constant, top by
top in order (a shared filler fills each top in turn).  A never-filled top reads as zeros."""
from __future__ import annotations

import numpy as np
import torch

from prototxt_like import caffe_pb2

from .base import Layer


class DummyData(Layer):
    type = "DummyData"
    max_bottoms = 0

    def _shapes(self):
        p = self.param.dummy_data_param
        n = self.n_tops
        legacy = bool(len(p.num) or len(p.channels) or len(p.height) or len(p.width))
        if legacy:
            if len(p.shape):
                raise self.error("Both shape and legacy fields were specified")
            fields = []
            for name in ("num", "channels", "height", "width"):
                vals = list(getattr(p, name))
                if len(vals) not in (1, n):
                    raise self.error(f"Must specify '{name}' once, or once per top blob ({n}); specified {len(vals)}.")
                fields.append(vals)
            return [tuple(int(f[0] if len(f) == 1 else f[i]) for f in fields) for i in range(n)]
        if len(p.shape) not in (1, n):
            raise self.error(f"Must specify 'shape' once, or once per top blob ({n}); specified {len(p.shape)}.")
        return [tuple(int(d) for d in p.shape[0 if len(p.shape) == 1 else i].dim) for i in range(n)]

    def setup(self, bottoms):
        p = self.param.dummy_data_param
        n = self.n_tops
        nf = len(p.data_filler)
        if nf not in (0, 1, n):
            raise self.error(f"Number of data fillers must be 0, 1 or equal to the number of tops: {n}; you "
                             f"specified {nf} data fillers.")
        if nf == 0:
            self.fillers = [caffe_pb2.FillerParameter(type="constant", value=0.0)]
        else:
            self.fillers = [f for f in p.data_filler]
        self.refill = [f.type != "constant" for f in self.fillers]
        self.shapes = self._shapes()
        self.data = [torch.zeros(s, dtype=self.ctx.dtype, device=self.ctx.device) for s in self.shapes]
        # Caffe's set-up Forward with refill_ inverted: only the constant fillers fill (no draws)
        for i in range(n):
            fid = i if len(self.fillers) > 1 else 0
            if not self.refill[fid]:
                self.data[i] = self._fill(fid, i)

    def _fill(self, fid: int, i: int) -> torch.Tensor:
        from ..fillers import fill
        dtype = np.float64 if self.ctx.dtype == torch.float64 else np.float32
        arr = fill(self.fillers[fid], self.shapes[i], self.ctx.rng, where=f"layer {self.name!r} top {i}", dtype=dtype)
        return torch.from_numpy(np.ascontiguousarray(arr)).to(device=self.ctx.device, dtype=self.ctx.dtype)

    def forward(self, bottoms):
        if self.ctx.shape_only:
            return [torch.empty(s, dtype=self.ctx.dtype, device="meta") for s in self.shapes]
        for i in range(self.n_tops):
            fid = i if len(self.fillers) > 1 else 0
            if self.refill[fid]:
                self.data[i] = self._fill(fid, i)
        return list(self.data)


LAYER = DummyData
