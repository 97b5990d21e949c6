"""Caffe 1.0's DataTransformer for Datums (``src/caffe/data_transformer.cpp``).

For record r, channel c and output pixel (h, w), in float32::

    out[c, h, w'] = (float(x[c, h + h0, w + w0]) - mean) * scale

with ``w' = crop - 1 - w`` when the record is mirrored, ``mean`` either the
mean image at the *same* (uncropped) position ``[c, h + h0, w + w0]`` or
``mean_value[c]`` (one value is repeated for every channel), or no mean.
The crop offset is the centre ``((H - crop) // 2, (W - crop) // 2)`` in TEST
and random in TRAIN.  Random numbers come from the transformer's own
``mt19937`` (``InitRand`` seeds it with one ``caffe_rng_rand()``), drawn per
record in this order: ``Rand(2)`` for the mirror decision when ``mirror`` is
set (in either phase, as Caffe does), then ``Rand(H - crop + 1)`` and
``Rand(W - crop + 1)`` when cropping in TRAIN; ``Rand(n) = rng() % n``.

The draws of a record do not depend on its pixels, only their reduction
``% n`` does, so a batch's raw draws can be taken in record order by one
thread and the batch transformed anywhere (see :mod:`replicate.data.prefetch`).
"""
from __future__ import annotations

import os

import numpy as np

from prototxt_like import caffe_pb2
from prototxt_like.datum import parse_datum

from .db import DataSourceError
from .image import imdecode

__all__ = ["DataTransformer", "needs_rand", "decode_datum"]

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def needs_rand(transform_param, phase) -> bool:
    """Whether Caffe's ``InitRand`` creates (and seeds, with one
    ``caffe_rng_rand()`` draw) the transformer's generator."""
    return bool(transform_param.mirror) or (phase == TRAIN and transform_param.crop_size > 0)


def decode_datum(datum, *, force_color: bool = False, force_gray: bool = False) -> np.ndarray:
    """A Datum's pixels as C x H x W: uint8 for ``data`` (raw or encoded),
    float32 for ``float_data``.  Encoded images decode natively (their own
    channels, BGR) unless ``force_color`` / ``force_gray``."""
    if datum.encoded:
        if force_color and force_gray:
            raise DataSourceError("cannot set both force_color and force_gray")
        mode = "color" if force_color else "gray" if force_gray else "unchanged"
        try:
            img = imdecode(datum.data, mode)
        except Exception as e:
            raise DataSourceError(f"cannot decode an encoded Datum ({len(datum.data)} bytes): {e}") from None
        return img.transpose(2, 0, 1)
    shape = (datum.channels, datum.height, datum.width)
    count = shape[0] * shape[1] * shape[2]
    if shape[0] <= 0 or count <= 0:
        raise DataSourceError(f"Datum has no pixels (channels/height/width {shape})")
    if datum.data:
        if len(datum.data) != count:
            raise DataSourceError(f"Datum of shape {shape} holds {len(datum.data)} bytes, not {count}")
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    if len(datum.float_data) != count:
        raise DataSourceError(f"Datum of shape {shape} holds {len(datum.float_data)} floats, not {count}")
    return np.asarray(datum.float_data, dtype=np.float32).reshape(shape)


class DataTransformer:
    """Caffe's DataTransformer for one layer and phase.

    ``root`` resolves a relative ``mean_file`` (default: the working folder,
    as Caffe does).  ``layer`` names the layer in error messages."""

    def __init__(self, transform_param, phase, *, root=None, layer: str = ""):
        p = transform_param
        self.phase = int(phase)
        self.layer = layer
        self.crop = int(p.crop_size)
        self.scale = np.float32(p.scale)
        self.mirror = bool(p.mirror)
        self.force_color = bool(p.force_color)
        self.force_gray = bool(p.force_gray)
        if self.force_color and self.force_gray:
            raise self._err("cannot set both force_color and force_gray")
        self.mean = None
        self.mean_values = None
        if p.HasField("mean_file"):
            if len(p.mean_value):
                raise self._err("cannot specify mean_file and mean_value at the same time")
            path = p.mean_file
            if root is not None and not os.path.isabs(path):
                path = os.path.join(os.fspath(root), path)
            self.mean_path = path
            if not os.path.exists(path):
                raise self._err(f"mean file {path!r} does not exist")
            from prototxt_like.io import load_blob
            try:
                m = load_blob(path)
            except Exception as e:
                raise self._err(f"cannot read mean file {path!r}: {e}") from None
            # Blob::FromProto gives (num, channels, height, width); the transformer
            # uses channels/height/width and the first image.
            if m.ndim != 4:
                m = m.reshape((1,) * (4 - m.ndim) + m.shape) if m.ndim < 4 else m
            self.mean = np.ascontiguousarray(m[0], dtype=np.float32)
        elif len(p.mean_value):
            self.mean_values = np.asarray(p.mean_value, dtype=np.float32)
        self.draws_per_item = int(self.mirror) + (2 if (self.phase == TRAIN and self.crop) else 0)

    def _err(self, msg):
        where = f"Data layer {self.layer!r}: " if self.layer else ""
        return DataSourceError(where + msg)

    @property
    def needs_rand(self) -> bool:
        return self.draws_per_item > 0

    def decode(self, datum) -> np.ndarray:
        return decode_datum(datum, force_color=self.force_color, force_gray=self.force_gray)

    def output_shape(self, shape) -> tuple[int, int, int]:
        """``InferBlobShape`` for a C x H x W record (without the batch axis)."""
        c, h, w = shape
        if c <= 0:
            raise self._err(f"a record has {c} channels")
        if h < self.crop or w < self.crop:
            raise self._err(f"crop_size {self.crop} is larger than a {h}x{w} record")
        if self.crop:
            return (c, self.crop, self.crop)
        return (c, h, w)

    def check(self, shape) -> None:
        """The checks Caffe makes of a record against the mean."""
        c, h, w = shape
        if self.mean is not None and self.mean.shape != (c, h, w):
            raise self._err(f"mean file {self.mean_path!r} has shape {self.mean.shape}, "
                            f"the records {tuple(shape)}")
        if self.mean_values is not None and len(self.mean_values) not in (1, c):
            raise self._err(f"specify either 1 mean_value or as many as channels: {c} "
                            f"(got {len(self.mean_values)})")

    def offsets(self, shape, draws) -> tuple[int, int, bool]:
        """``(h0, w0, mirror)`` of one record from its raw uint32 draws."""
        _, h, w = shape
        k = 0
        mirror = False
        if self.mirror:
            mirror = bool(int(draws[0]) % 2)
            k = 1
        if not self.crop:
            return 0, 0, mirror
        if self.phase == TRAIN:
            return int(draws[k]) % (h - self.crop + 1), int(draws[k + 1]) % (w - self.crop + 1), mirror
        return (h - self.crop) // 2, (w - self.crop) // 2, mirror

    def transform(self, x: np.ndarray, out: np.ndarray, draws=()) -> None:
        """Write the transform of record ``x`` (C x H x W, uint8 or float32)
        into ``out`` (float32, C x crop x crop)."""
        c, h, w = x.shape
        self.check(x.shape)
        oc, oh, ow = out.shape
        if oc != c or (not self.crop and (oh, ow) != (h, w)):
            raise self._err(f"a record of shape {x.shape} does not fit the batch's {out.shape} "
                            "(records of one batch must agree unless cropped)")
        h0, w0, mirror = self.offsets(x.shape, draws)
        src = x[:, h0:h0 + oh, w0:w0 + ow]
        mean = None
        if self.mean is not None:
            mean = self.mean[:, h0:h0 + oh, w0:w0 + ow]
        elif self.mean_values is not None:
            mv = self.mean_values
            if len(mv) == 1:
                mv = np.repeat(mv, c)
            mean = mv[:, None, None]
        if mirror:
            src = src[:, :, ::-1]
            if self.mean is not None:
                mean = mean[:, :, ::-1]
        if mean is None:
            np.copyto(out, src, casting="unsafe")
        else:
            np.subtract(src, mean, out=out, dtype=np.float32)
        if self.scale != 1:
            np.multiply(out, self.scale, out=out)

    def parse(self, value: bytes):
        try:
            return parse_datum(value)
        except Exception as e:
            raise self._err(f"a record is not a Datum: {e}") from None
