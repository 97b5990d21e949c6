"""MemoryData: batches from arrays handed to the net (Caffe's MemoryDataLayer::Reset), in order,
wrapping around; no transformation on this path, as in Caffe (but its transformer's InitRand draw
is taken, as Caffe's BaseDataLayer takes it)."""
from __future__ import annotations

import numpy as np
import torch

from .base import Layer


class MemoryData(Layer):
    type = "MemoryData"
    max_bottoms = 0

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.memory_data_param
        self.batch_size = int(p.batch_size)
        self.item_shape = (int(p.channels), int(p.height), int(p.width))
        if self.batch_size <= 0:
            raise self.error("memory_data_param.batch_size must be positive")
        # BaseDataLayer::LayerSetUp -> DataTransformer::InitRand: one caffe_rng_rand() when the
        # transformer is random (mirror, or a crop in TRAIN), although Reset's arrays are never
        # transformed; the draw moves the net's generator all the same
        from ..data.transformer import needs_rand
        if needs_rand(param.transform_param, param.phase):
            ctx.rng.rand()
        self.data = self.labels = None
        self.pos = 0
        self._resume_pos = None

    def reset(self, data, labels) -> None:
        data = torch.as_tensor(data, dtype=self.ctx.dtype, device=self.ctx.device)
        labels = torch.as_tensor(labels, dtype=self.ctx.dtype, device=self.ctx.device).reshape(-1)
        if tuple(data.shape[1:]) != self.item_shape:
            raise self.error(f"arrays of shape {tuple(data.shape[1:])} given, the layer holds {self.item_shape}")
        if data.shape[0] != labels.shape[0] or data.shape[0] % self.batch_size:
            raise self.error(f"{data.shape[0]} items and {labels.shape[0]} labels: need equal counts, "
                             f"a multiple of batch_size {self.batch_size}")
        self.data, self.labels, self.pos = data, labels, 0
        if self._resume_pos is not None:
            self._apply_resume_pos()

    def forward(self, bottoms):
        if self.ctx.shape_only:
            shapes = [(self.batch_size, *self.item_shape), (self.batch_size,)][: self.n_tops]
            return [torch.empty(s, dtype=self.ctx.dtype, device="meta") for s in shapes]
        if self.data is None:
            raise self.error("no data: call Net.set_input_arrays first")
        b = self.batch_size
        tops = [self.data[self.pos:self.pos + b], self.labels[self.pos:self.pos + b]]
        self.pos = (self.pos + b) % self.data.shape[0]
        return tops[: self.n_tops]

    def resume_state(self) -> dict:
        """The position of the next batch in the arrays (Reset's arrays are not saved)."""
        return {"pos": np.int64(self.pos)}

    def restore_state(self, state) -> None:
        """Continue at the saved position: of the arrays already given, else of the next
        :meth:`reset`'s."""
        self._resume_pos = int(state["pos"])
        if self.data is not None:
            self._apply_resume_pos()

    def _apply_resume_pos(self) -> None:
        pos, n = self._resume_pos, self.data.shape[0]
        self._resume_pos = None
        if pos >= n or pos % self.batch_size:
            raise self.error(f"saved position {pos} does not fit the {n} items given")
        self.pos = pos


LAYER = MemoryData
