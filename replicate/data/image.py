"""OpenCV's image I/O as Caffe's tools use it, re-done on numpy + Pillow.

Images are uint8 ``H x W x C`` arrays in OpenCV's channel order (BGR for
colour), like a ``cv::Mat``.  What is matched, and how it was checked (the
records in ``../shared/golden/data``, made with OpenCV 4.6):

* :func:`imdecode` ``"color"`` (``IMREAD_COLOR``): Pillow's ``convert("RGB")``
  reversed to BGR; equal to OpenCV for every golden JPEG and PNG.
* ``"gray"`` (``IMREAD_GRAYSCALE``): JPEG gives libjpeg's own luma (Pillow's
  ``draft("L")``); colour PNG gives libpng's ``(9797 R + 19234 G + 3737 B) >> 15``;
  other formats OpenCV's ``(4899 R + 9617 G + 1868 B + 8192) >> 14`` (not
  checked against OpenCV: no golden case).
* ``"unchanged"`` (``IMREAD_UNCHANGED``, ``DecodeDatumToCVMatNative``): the
  file's own channels: 1 (grey), 3 (BGR) or 4 (BGRA).
* :func:`resize_linear` is ``cv::resize(..., INTER_LINEAR)`` on uint8, fixed
  point with 11-bit weights, including OpenCV's switch to the 2x2 area average
  when both sides shrink by exactly 2 (that branch has no golden case).
* :func:`imencode` ``".png"`` is ``cv::imencode(".png")`` byte for byte
  (libpng via OpenCV's defaults: filter SUB on every row, zlib level 1 with
  ``Z_RLE``, libpng's reduced window for small images, 8 KiB IDAT chunks).
  JPEG encoding uses Pillow at OpenCV's default quality 95; its bytes are not
  checked against OpenCV.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np

__all__ = ["imdecode", "imread", "resize_linear", "imencode", "hwc_to_chw", "chw_to_hwc"]

_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


def _pil():
    from PIL import Image
    return Image


def imdecode(data: bytes, mode: str = "color") -> np.ndarray:
    """``cv::imdecode`` of an image file's bytes: uint8 H x W x C."""
    Image = _pil()
    with Image.open(io.BytesIO(data)) as im:
        fmt = im.format
        if mode == "gray":
            if fmt == "JPEG":
                im.draft("L", im.size)  # libjpeg's own luma, as OpenCV asks libjpeg for grey
                im.load()
                if im.mode == "L":
                    return np.asarray(im)[:, :, None].copy()
            im.load()
            if im.mode in ("L", "LA", "I;16", "I"):
                g = np.asarray(im.convert("L"))
                return g[:, :, None].copy()
            rgb = np.asarray(im.convert("RGB")).astype(np.int32)
            r, g_, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
            if fmt == "PNG":
                y = (9797 * r + 19234 * g_ + 3737 * b) >> 15
            else:
                y = (4899 * r + 9617 * g_ + 1868 * b + 8192) >> 14
            return y.astype(np.uint8)[:, :, None]
        im.load()
        if mode == "unchanged":
            if im.mode == "L":
                return np.asarray(im)[:, :, None].copy()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                a = np.asarray(im.convert("RGBA"))
                return np.ascontiguousarray(a[:, :, [2, 1, 0, 3]])
        elif mode != "color":
            raise ValueError(f"unknown decode mode {mode!r}")
        return np.ascontiguousarray(np.asarray(im.convert("RGB"))[:, :, ::-1])


def imread(path, mode: str = "color") -> np.ndarray:
    with open(path, "rb") as f:
        return imdecode(f.read(), mode)


def _coeffs(src: int, dst: int, clamp: bool):
    """Source indices and 11-bit weights of OpenCV's linear resize along one axis."""
    scale = 1.0 / (dst / src)
    d = np.arange(dst, dtype=np.float64)
    f = ((d + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if clamp:
        lo = s < 0
        s[lo] = 0
        f[lo] = 0
        hi = s >= src - 1
        s[hi] = src - 1
        f[hi] = 0
    a0 = np.rint((np.float32(1) - f).astype(np.float32) * np.float32(_COEF_SCALE)).astype(np.int64)
    a1 = np.rint(f * np.float32(_COEF_SCALE)).astype(np.int64)
    return s, a0, a1


def resize_linear(img: np.ndarray, height: int, width: int, *, vec_lanes: int = 16) -> np.ndarray:
    """``cv::resize(img, (width, height), INTER_LINEAR)`` for uint8 H x W x C.

    ``vec_lanes`` is the SIMD width of OpenCV's vertical pass (16 bytes for
    the SSE build; the last few elements of a row that do not fill a vector
    use the scalar rounding)."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.dtype != np.uint8:
        raise ValueError(f"resize_linear needs uint8, not {img.dtype}")
    sh, sw, cn = img.shape
    if (sh, sw) == (height, width):
        return img.copy()
    if sh == 2 * height and sw == 2 * width:
        # OpenCV turns INTER_LINEAR with an exact 2x shrink into INTER_AREA (resizeAreaFast).
        s = img.astype(np.int32)
        out = (s[0::2, 0::2] + s[0::2, 1::2] + s[1::2, 0::2] + s[1::2, 1::2] + 2) >> 2
        return out.astype(np.uint8)
    xs, xa0, xa1 = _coeffs(sw, width, clamp=True)
    ys, yb0, yb1 = _coeffs(sh, height, clamp=False)
    x1 = np.minimum(xs + 1, sw - 1)
    s = img.astype(np.int64)
    # horizontal pass, exact: T[row, dx, c]
    rows = np.unique(np.concatenate([np.clip(ys, 0, sh - 1), np.clip(ys + 1, 0, sh - 1)]))
    T = np.zeros((sh, width, cn), dtype=np.int64)
    T[rows] = s[rows][:, xs] * xa0[None, :, None] + s[rows][:, x1] * xa1[None, :, None]
    T0 = T[np.clip(ys, 0, sh - 1)].reshape(height, width * cn)
    T1 = T[np.clip(ys + 1, 0, sh - 1)].reshape(height, width * cn)
    b0 = yb0[:, None]
    b1 = yb1[:, None]
    # vertical pass: OpenCV's SIMD rounding ((T >> 4) * b >> 16 per term, then (v + 2) >> 2)
    v = (((T0 >> 4) * b0) >> 16) + (((T1 >> 4) * b1) >> 16)
    out = (v + 2) >> 2
    n = width * cn
    vec_end = (n // vec_lanes) * vec_lanes
    half = vec_lanes // 2
    if n - vec_end > half:
        vec_end += half
    if vec_end < n:  # scalar tail: FixedPtCast<int, uchar, 22>
        tail = (T0[:, vec_end:] * b0 + T1[:, vec_end:] * b1 + (1 << 21)) >> 22
        out[:, vec_end:] = tail
    return np.clip(out, 0, 255).astype(np.uint8).reshape(height, width, cn)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _encode_png(img: np.ndarray) -> bytes:
    h, w, cn = img.shape
    if cn == 3:
        pix, ctype = img[:, :, ::-1], 2          # png_set_bgr: file holds RGB
    elif cn == 4:
        pix, ctype = img[:, :, [2, 1, 0, 3]], 6
    elif cn == 1:
        pix, ctype = img, 0
    else:
        raise ValueError(f"cannot write a {cn}-channel PNG")
    rows = np.ascontiguousarray(pix).reshape(h, w * cn)
    filt = rows.copy()
    filt[:, cn:] = rows[:, cn:] - rows[:, :-cn]  # filter SUB (uint8 wrap-around)
    raw = np.concatenate([np.ones((h, 1), np.uint8), filt], axis=1).tobytes()
    # libpng shrinks zlib's window for small images (png_deflate_claim)
    wbits = 15
    if len(raw) <= 16384:
        half = 1 << (wbits - 1)
        while len(raw) + 262 <= half:
            half >>= 1
            wbits -= 1
    co = zlib.compressobj(1, zlib.DEFLATED, wbits, 8, zlib.Z_RLE)
    z = co.compress(raw) + co.flush()
    out = [b"\x89PNG\r\n\x1a\n",
           _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))]
    for i in range(0, len(z), 8192):
        out.append(_png_chunk(b"IDAT", z[i:i + 8192]))
    out.append(_png_chunk(b"IEND", b""))
    return b"".join(out)


def imencode(ext: str, img: np.ndarray) -> bytes:
    """``cv::imencode(ext, img)`` for uint8 H x W x C (BGR)."""
    ext = ext.lower().lstrip(".")
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[:, :, None]
    if ext == "png":
        return _encode_png(img)
    Image = _pil()
    if img.shape[2] == 1:
        pim = Image.fromarray(np.ascontiguousarray(img[:, :, 0]), mode="L")
    else:
        pim = Image.fromarray(np.ascontiguousarray(img[:, :, 2::-1]), mode="RGB")
    buf = io.BytesIO()
    if ext in ("jpg", "jpeg", "jpe"):
        pim.save(buf, format="JPEG", quality=95)
    else:
        pim.save(buf, format={"tif": "TIFF", "tiff": "TIFF"}.get(ext, ext.upper()))
    return buf.getvalue()


def hwc_to_chw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1))


def chw_to_hwc(arr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(arr).transpose(1, 2, 0))
