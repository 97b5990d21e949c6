"""Data: Datum records from LMDB/LevelDB through Caffe's DataTransformer (replicate.data).

Caffe's RNG draws during setup are kept: the transformer's InitRand draws twice when it needs
randomness (the second seed is the one used) and the prefetch thread draws once.
"""
from __future__ import annotations

import torch

from .base import Layer


class Data(Layer):
    type = "Data"
    max_bottoms = 0

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        try:
            from .. import data as data_mod
        except ImportError as e:  # pragma: no cover - the package ships replicate.data
            raise self.error(f"the Data layer is not available: {e}") from None
        seed = None
        if data_mod.needs_rand(param.transform_param, param.phase):
            ctx.rng.rand()
            seed = ctx.rng.rand()
        ctx.rng.rand()  # StartInternalThread's seed
        self.source = data_mod.open_source(param, param.phase, rng_seed=seed, workers=ctx.data_workers)

    def forward(self, bottoms):
        if self.ctx.shape_only:
            shapes = self.source.top_shapes()[: self.n_tops]
            return [torch.empty(s, dtype=self.ctx.dtype, device="meta") for s in shapes]
        data, label = self.source.next()
        tops = [data.to(self.ctx.device, non_blocking=True)]
        if label is not None:
            tops.append(label.to(self.ctx.device, non_blocking=True))
        return tops

    def resume_state(self) -> dict:
        """The data source's position before the next batch (see DataSource.resume_state)."""
        return self.source.resume_state()

    def restore_state(self, state) -> None:
        self.source.restore_state(state)

    def close(self):
        self.source.close()


LAYER = Data
