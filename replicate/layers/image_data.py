"""ImageData: images named in a list file, through Caffe's DataTransformer (Caffe 1.0's
``ImageDataLayer``, ``src/caffe/layers/image_data_layer.cpp``).

The list (``image_data_param.source``) is read as Caffe reads it: ``std::getline`` lines (an empty
line counts), the name everything before the last space, the label ``atoi`` of the rest.  Each
image is ``root_folder + name`` (plain concatenation, as Caffe does), read by OpenCV (``cv::imread``,
colour or grey by ``is_color``) and resized with ``cv::resize`` (bilinear) when ``new_height`` and
``new_width`` are set; it is then transformed as Caffe transforms a ``cv::Mat``, which is the same
arithmetic and the same draws as for a Datum (:class:`replicate.data.DataTransformer`).  A batch
takes its shape from its first image; labels are the list's integers as floats.

Caffe's draws on the net's generator at set-up, in order (BasePrefetchingDataLayer::LayerSetUp):

1. the transformer's ``InitRand`` (one ``caffe_rng_rand()`` when it needs randomness: ``mirror``,
   or ``crop_size`` in TRAIN), a seed that is replaced below;
2. with ``shuffle``, the seed of the layer's own ``prefetch_rng_`` (which shuffles the list at once
   with ``caffe::shuffle``, Fisher-Yates with ``boost::uniform_int<long>``, and again each time
   the list is exhausted);
3. with ``rand_skip``, ``caffe_rng_rand() % rand_skip`` first lines skipped (once, at set-up);
4. ``InitRand`` again: the transformer's seed that is used (mirror, then crop offsets per image);
5. ``StartInternalThread``'s seed of the prefetch thread (which this layer never uses).

A Data layer draws 1, 4 and 5 only, so an ImageData layer with ``shuffle`` draws one more than a
Data layer with the same transform, and one more again with ``rand_skip``.

Batches are made ahead by a reader thread (list order, shuffles and draws, strictly in Caffe's
order) and worker threads (decode, resize, transform); the batches do not depend on the number of
workers.  The transform is computed in float (a double net gets it converted, not computed in
double as Caffe's ``ImageDataLayer<double>`` would).  ``resume_state`` / ``restore_state`` keep the list order, the position and both
generators, for the solver's exact resume.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from .base import Layer

__all__ = ["ImageData", "caffe_shuffle_inplace", "read_image_list"]


def read_image_list(path) -> list:
    """``(name bytes, label)`` per ``std::getline`` line of ``path`` (ImageDataLayer's parsing)."""
    from data_prep.pack import parse_line
    with open(path, "rb") as f:
        return [parse_line(raw[:-1] if raw.endswith(b"\n") else raw) for raw in f]


def caffe_shuffle_inplace(items: list, rng) -> None:
    """``caffe::shuffle(begin, end, rng)`` (include/caffe/util/rng.hpp) on a list, in place: for
    ``i = n-1 .. 1`` swap item ``i`` with item ``boost::uniform_int<long>(0, i)(rng)``.  Draws in
    blocks from a copy of ``rng`` and then advances ``rng`` by exactly the draws Boost made (the
    same result as :meth:`CaffeRNG.uniform_int` value by value)."""
    n = len(items)
    if n <= 1:
        return
    if n - 1 >= 0xFFFFFFFF:  # never in practice: the exact (slow) path
        for i in range(n - 1, 0, -1):
            j = rng.uniform_int(0, i)
            items[i], items[j] = items[j], items[i]
        return
    trial = rng.copy()
    br = 0xFFFFFFFF
    pool: list = []
    k = used = 0
    for i in range(n - 1, 0, -1):
        bucket = br // (i + 1) + (1 if br % (i + 1) == i else 0)
        while True:
            if k == len(pool):
                pool = trial.uint32(min(1 << 16, 2 * i + 16)).tolist()
                k = 0
            j = pool[k] // bucket
            k += 1
            used += 1
            if j <= i:
                break
        items[i], items[j] = items[j], items[i]
    rng.uint32(used)


class ImageData(Layer):
    type = "ImageData"
    max_bottoms = 0

    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        from ..data import DataTransformer, needs_rand
        from ..rng import CaffeRNG
        p = param.image_data_param
        if len(param.top) != 2:
            raise self.error(f"ImageData Layer takes 2 top blobs, got {len(param.top)}")
        self.new_height, self.new_width = int(p.new_height), int(p.new_width)
        if not ((self.new_height == 0 and self.new_width == 0) or (self.new_height > 0 and self.new_width > 0)):
            raise self.error("Current implementation requires new_height and new_width to be set at the same time.")
        self.is_color = bool(p.is_color)
        self.root = os.fsencode(p.root_folder)
        self.batch_size = int(p.batch_size)
        self.shuffle = bool(p.shuffle)
        rand = needs_rand(param.transform_param, param.phase)
        if rand:
            ctx.rng.rand()  # BaseDataLayer::LayerSetUp's InitRand (replaced below)
        try:
            self.lines = read_image_list(p.source)
        except OSError:
            self.lines = []  # an unreadable list reads as empty in Caffe (std::ifstream)
        if not self.lines:
            raise self.error(f"File is empty: {p.source!r}")
        self.order = list(range(len(self.lines)))
        self.prefetch_rng = None
        if self.shuffle:
            self.prefetch_rng = CaffeRNG(ctx.rng.rand())
            caffe_shuffle_inplace(self.order, self.prefetch_rng)
        self.pos = 0
        if p.rand_skip:
            skip = ctx.rng.rand() % int(p.rand_skip)
            if not len(self.lines) > skip:
                raise self.error(f"Not enough points to skip ({skip} of {len(self.lines)} lines)")
            self.pos = skip
        self.trng = CaffeRNG(ctx.rng.rand()) if rand else None  # BasePrefetchingDataLayer's InitRand
        ctx.rng.rand()  # StartInternalThread's seed
        self.transformer = DataTransformer(param.transform_param, param.phase, layer=self.name)
        self.k = self.transformer.draws_per_item
        first = self._read(self.order[self.pos])
        self.item_shape = self.transformer.output_shape(first.shape)
        if self.batch_size <= 0:
            raise self.error("Positive batch size required")
        self._workers = ctx.data_workers
        self._depth = int(param.data_param.prefetch) or 4
        self._state = self._position()
        self._prefetcher = None

    # --- reading ---------------------------------------------------------------------------
    def _read(self, idx: int) -> np.ndarray:
        """ReadImageToCVMat(root_folder + name, new_height, new_width, is_color), as C x H x W."""
        from ..data.image import imread, resize_linear
        name = self.root + self.lines[idx][0]
        try:
            img = imread(os.fsdecode(name), "color" if self.is_color else "gray")
        except Exception as e:  # noqa: BLE001 - Caffe: "Could not load <name>"
            raise self.error(f"Could not load {os.fsdecode(self.lines[idx][0])!r}: {e}") from None
        if self.new_height > 0 and self.new_width > 0:
            img = resize_linear(img, self.new_height, self.new_width)
        return img.transpose(2, 0, 1)

    def _position(self):
        return (self.order, self.pos, self.prefetch_rng.get_state() if self.prefetch_rng else None,
                self.trng.get_state() if self.trng else None)

    # reader thread: the list's order, its reshuffles and the transformer's draws, in Caffe's order
    def _read_batch(self):
        idx = []
        n = len(self.lines)
        for _ in range(self.batch_size):
            idx.append(self.order[self.pos])
            self.pos += 1
            if self.pos >= n:
                self.pos = 0
                if self.shuffle:
                    self.order = list(self.order)  # earlier positions keep their own order
                    caffe_shuffle_inplace(self.order, self.prefetch_rng)
        draws = self.trng.uint32(self.batch_size * self.k) if self.k else None
        return idx, draws, self._position()

    # worker threads
    def _make_batch(self, job):
        idx, draws, after = job
        t, k = self.transformer, self.k
        data = None
        label = np.empty(len(idx), dtype=np.float32)
        try:
            for i, j in enumerate(idx):
                x = self._read(j)
                if data is None:  # the batch's first image fixes its shape
                    data = np.empty((len(idx),) + t.output_shape(x.shape), dtype=np.float32)
                t.transform(x, data[i], draws[i * k:(i + 1) * k] if k else ())
                label[i] = self.lines[j][1]
        except Exception as e:  # noqa: BLE001 - name the layer
            if self.name in str(e):
                raise
            raise self.error(str(e)) from None
        return torch.from_numpy(data), torch.from_numpy(label), after

    def _start(self):
        from ..data import default_workers
        from ..data.prefetch import Prefetcher
        workers = default_workers() if self._workers is None else max(1, int(self._workers))
        return Prefetcher(self._read_batch, self._make_batch, workers=workers, depth=self._depth,
                          name=f"imagedata:{self.name}")

    # --- Caffe's hooks -----------------------------------------------------------------------
    def forward(self, bottoms):
        if self.ctx.shape_only:
            shapes = [(self.batch_size,) + tuple(self.item_shape), (self.batch_size,)]
            return [torch.empty(s, dtype=self.ctx.dtype, device="meta") for s in shapes]
        if self._prefetcher is None:
            self._prefetcher = self._start()
        data, label, self._state = self._prefetcher.next()
        return [data.to(self.ctx.device, self.ctx.dtype), label.to(self.ctx.device, self.ctx.dtype)]

    def _stop(self):
        if self._prefetcher is not None:
            self._prefetcher.close()
            self._prefetcher.wait_reader()
            self._prefetcher = None

    def resume_state(self) -> dict:
        """The list order, the position and both generators before the next batch."""
        order, pos, prng, trng = self._state
        out = {"order": np.asarray(order, dtype=np.int64), "pos": np.int64(pos)}
        if prng is not None:
            out["prefetch_rng_key"], out["prefetch_rng_pos"] = prng[0], np.int64(prng[1])
        if trng is not None:
            out["rng_key"], out["rng_pos"] = trng[0], np.int64(trng[1])
        return out

    def restore_state(self, state) -> None:
        order = [int(i) for i in np.asarray(state["order"])]
        if sorted(order) != list(range(len(self.lines))):
            raise self.error(f"the saved state has an order of {len(order)} lines, the list has {len(self.lines)}")
        if ("rng_key" in state) != (self.trng is not None) or ("prefetch_rng_key" in state) != self.shuffle:
            raise self.error("the saved state does not match the layer's shuffle / random transform")
        self._stop()
        self.order, self.pos = order, int(state["pos"])
        if self.trng is not None:
            self.trng.set_state(state["rng_key"], int(state["rng_pos"]))
        if self.prefetch_rng is not None:
            self.prefetch_rng.set_state(state["prefetch_rng_key"], int(state["prefetch_rng_pos"]))
        self._state = self._position()

    def close(self):
        self._stop()


LAYER = ImageData
