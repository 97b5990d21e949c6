"""OpenCV's image I/O as Caffe's tools call it: OpenCV itself (``opencv-python-headless``, pinned).

Images are uint8 ``H x W x C`` arrays in OpenCV's channel order (BGR for colour), like a
``cv::Mat``; a one-channel image keeps its channel axis (``H x W x 1``).

Caffe 1.0 was built against OpenCV 4.6 (Debian 12: libjpeg62-turbo 2.1.5, libpng 1.6.39).  The
OpenCV 4.6 wheels are built for numpy 1.x and do not load with this project's numpy 2; the pin is
the first wheel that does, 4.10.0.84 (libjpeg-turbo 3.0.3, libpng 1.6.43).  Measured against
Caffe's own output: it decodes and resizes every record of ``shared/golden/photos`` (baseline,
4:4:4, progressive, grey, CMYK, EXIF orientations 1/3/6/8, a PNG named ``.JPEG``; colour, grey,
resized and full size: 144 of 144 records) and of ``shared/golden/data`` byte for byte, and its
PNG encoder writes the bytes of Caffe's encoded database (48 of 48).

* :func:`imdecode` ``"color"`` / ``"gray"`` / ``"unchanged"``: ``cv::imdecode`` with
  ``IMREAD_COLOR`` / ``IMREAD_GRAYSCALE`` / ``IMREAD_UNCHANGED`` (the first two apply the EXIF
  orientation, as ``cv::imread`` does; the last does not, as OpenCV documents).
* :func:`resize_linear` is ``cv::resize(img, Size(width, height))`` (``INTER_LINEAR``).
* :func:`imencode` is ``cv::imencode(ext, img)`` with OpenCV's default parameters.
"""
from __future__ import annotations

import numpy as np

__all__ = ["imdecode", "imread", "resize_linear", "imencode", "hwc_to_chw", "chw_to_hwc", "opencv"]

_MODES = {"color": 1, "gray": 0, "unchanged": -1}  # IMREAD_COLOR, IMREAD_GRAYSCALE, IMREAD_UNCHANGED


def opencv():
    """The ``cv2`` module (imported on first use: the data layer needs it only for encoded Datums)."""
    import cv2 as _cv2
    return _cv2


def _hwc(img: np.ndarray) -> np.ndarray:
    return img[:, :, None] if img.ndim == 2 else img


def imdecode(data, mode: str = "color") -> np.ndarray:
    """``cv::imdecode`` of an image file's bytes: uint8 H x W x C.  Raises ``ValueError`` where
    OpenCV returns an empty image (not an image, truncated headers, empty data)."""
    if mode not in _MODES:
        raise ValueError(f"unknown decode mode {mode!r}")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ValueError("no image data (0 bytes)")
    img = opencv().imdecode(buf, _MODES[mode])
    if img is None:
        raise ValueError(f"OpenCV cannot decode these {buf.size} bytes as an image")
    return _hwc(img)


def imread(path, mode: str = "color") -> np.ndarray:
    """``cv::imread(path, flag)``: as :func:`imdecode` of the file's bytes, except for a JPEG cut
    short inside its pixel data, where libjpeg's file source stops elsewhere than OpenCV's memory
    source (the grey remainder differs)."""
    if mode not in _MODES:
        raise ValueError(f"unknown decode mode {mode!r}")
    img = opencv().imread(str(path), _MODES[mode])
    if img is None:
        raise ValueError(f"OpenCV cannot read {str(path)!r} as an image")
    return _hwc(img)


def resize_linear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """``cv::resize(img, cv::Size(width, height))`` (INTER_LINEAR) for uint8 H x W x C."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.dtype != np.uint8:
        raise ValueError(f"resize_linear needs uint8, not {img.dtype}")
    src = img[:, :, 0] if img.shape[2] == 1 else img
    return _hwc(opencv().resize(src, (int(width), int(height))))


def imencode(ext: str, img: np.ndarray) -> bytes:
    """``cv::imencode("." + ext, img)`` for uint8 H x W x C (BGR), OpenCV's default parameters
    (JPEG quality 95, PNG compression level 1)."""
    ext = "." + ext.lower().lstrip(".")
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    ok, buf = opencv().imencode(ext, img)
    if not ok:
        raise ValueError(f"OpenCV could not encode the image as {ext}")
    return buf.tobytes()


def hwc_to_chw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1))


def chw_to_hwc(arr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(arr).transpose(1, 2, 0))
