"""Datum (one record of a Caffe LMDB/LevelDB) to and from numpy.

Caffe stores an image in one of three ways:

* raw pixels: ``data`` holds uint8 in C x H x W order, channels BGR (as
  OpenCV reads them), with ``channels/height/width`` set and ``encoded``
  explicitly false (``CVMatToDatum``);
* floats: ``float_data`` in C x H x W order;
* an encoded image file (JPEG, PNG, ...) in ``data`` with ``encoded: true``
  (``ReadFileToDatum``), decoded at load time by ``cv::imdecode``.

Decoding encoded images needs Pillow (imported only when needed).  PNG and
other lossless formats decode to exactly OpenCV's pixels; JPEG decoders may
differ from the libjpeg build inside OpenCV in the last bit of some pixels.
"""
from __future__ import annotations

import io as _io

import numpy as np

from . import caffe_pb2
from .codec import parse_binary, serialize
from .errors import BlobError, CaffeFormatError

__all__ = ["datum_to_array", "array_to_datum", "encoded_datum", "decode_image",
           "encode_image", "parse_datum", "serialize_datum"]


def parse_datum(data: bytes) -> caffe_pb2.Datum:
    """A Datum from its serialised bytes (an LMDB value)."""
    return parse_binary(bytes(data), caffe_pb2.Datum)


def serialize_datum(datum: caffe_pb2.Datum) -> bytes:
    return serialize(datum)


def datum_to_array(datum: caffe_pb2.Datum, *, is_color: bool = True):
    """``(array, label)``: uint8 C x H x W (BGR) for raw or encoded data,
    float32 C x H x W for ``float_data``.  ``label`` is None when unset.
    ``is_color`` chooses colour or grey decoding of encoded images, as the
    ``is_color`` / ``force_color`` / ``force_gray`` settings do in Caffe."""
    label = datum.label if datum.HasField("label") else None
    if datum.encoded:
        return decode_image(datum.data, is_color=is_color), label
    shape = (datum.channels, datum.height, datum.width)
    count = datum.channels * datum.height * datum.width
    if any(d < 0 for d in shape):
        raise BlobError(f"Datum has a negative dimension {shape}")
    if datum.data:
        if len(datum.data) != count:
            raise BlobError(f"Datum of shape {shape} needs {count} bytes of data, holds {len(datum.data)}")
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape).copy(), label
    if len(datum.float_data) != count:
        raise BlobError(f"Datum of shape {shape} needs {count} float_data values, "
                        f"holds {len(datum.float_data)}")
    return np.array(datum.float_data, dtype=np.float32).reshape(shape), label


def array_to_datum(arr, label: int | None = None) -> caffe_pb2.Datum:
    """A Datum holding a C x H x W array: uint8 goes to ``data`` (as
    ``CVMatToDatum`` writes it), any other real dtype to float32
    ``float_data``.  A 2-D array is taken as one channel."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise BlobError(f"a Datum holds a C x H x W array, not shape {a.shape}")
    datum = caffe_pb2.Datum(channels=a.shape[0], height=a.shape[1], width=a.shape[2])
    if a.dtype == np.uint8:
        datum.encoded = False
        datum.data = np.ascontiguousarray(a).tobytes()
    elif a.dtype.kind in "fiu":
        datum.float_data.extend(a.astype(np.float32).reshape(-1).tolist())
    else:
        raise BlobError(f"cannot store an array of dtype {a.dtype} in a Datum")
    if label is not None:
        datum.label = int(label)
    return datum


def encoded_datum(image_bytes: bytes, label: int | None = None) -> caffe_pb2.Datum:
    """A Datum holding an image file's bytes as is (``ReadFileToDatum``)."""
    datum = caffe_pb2.Datum(data=bytes(image_bytes))
    if label is not None:
        datum.label = int(label)
    datum.encoded = True
    return datum


def _pil():
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise CaffeFormatError("decoding or encoding images needs Pillow (pip install pillow)") from e
    return Image


def decode_image(data: bytes, *, is_color: bool = True) -> np.ndarray:
    """An image file's pixels as uint8 C x H x W, BGR (3 channels) when
    ``is_color`` else grey (1 channel), like ``cv::imdecode``."""
    Image = _pil()
    try:
        with Image.open(_io.BytesIO(data)) as img:
            img.load()
            if is_color:
                hwc = np.asarray(img.convert("RGB"))[:, :, ::-1]
            else:
                hwc = np.asarray(img.convert("L"))[:, :, None]
    except Exception as e:  # Pillow raises many types for bad data
        raise CaffeFormatError(f"cannot decode the encoded image ({len(data)} bytes): {e}") from e
    return np.ascontiguousarray(hwc.transpose(2, 0, 1))


def encode_image(arr, fmt: str = "png") -> bytes:
    """Encode a uint8 C x H x W BGR (or 1-channel) array as an image file
    (``png``, ``jpg``/``jpeg``, ``bmp``) with Pillow."""
    Image = _pil()
    a = np.asarray(arr)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[0] not in (1, 3):
        raise BlobError(f"can only encode uint8 1- or 3-channel C x H x W arrays, not {a.dtype} {a.shape}")
    if a.shape[0] == 1:
        img = Image.fromarray(np.ascontiguousarray(a[0]), mode="L")
    else:
        img = Image.fromarray(np.ascontiguousarray(a.transpose(1, 2, 0)[:, :, ::-1]), mode="RGB")
    fmt = {"jpg": "JPEG", "jpeg": "JPEG"}.get(fmt.lower(), fmt.upper())
    buf = _io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()
