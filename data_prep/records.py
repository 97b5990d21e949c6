"""One list line -> one Datum record, as Caffe 1.0's ``ReadImageToDatum`` makes it.

``cv::imread(file, IMREAD_COLOR or IMREAD_GRAYSCALE)`` (``cv2.imread``: EXIF orientation applied,
CMYK converted, grey taken from libjpeg), then
``cv::resize(..., Size(width, height))`` (INTER_LINEAR) when both sides are given, then either
``CVMatToDatum`` (raw C x H x W bytes, channels B, G, R) or, with an encoding, the file itself
(``ReadFileToDatum``: no resize, extension matches) or ``cv::imencode``.

The Datum is serialised by hand, in the field order protobuf writes it (``channels``, ``height``,
``width``, ``data``, ``label``, ``encoded``; ``encoded`` set, as ``CVMatToDatum`` and
``ReadFileToDatum`` set it): the pixels go straight from OpenCV's image into the output buffer
(a worker's shared-memory slot) with one copy.  ``tests/data_prep`` checks the bytes against
protobuf's ``SerializeToString`` and against Caffe's records.
"""
from __future__ import annotations

import numpy as np

from replicate.data.image import opencv

__all__ = ["Unreadable", "Abort", "RecordMaker", "varint", "atoi", "match_ext", "guess_encoding"]


class Unreadable(Exception):
    """``cv::imread`` would return an empty image: Caffe logs "Could not open or find file" and
    skips the line (its line number is still used)."""


class Abort(ValueError):
    """What makes convert_imageset abort (a failed CHECK, an uncaught ``cv::Exception``): pack
    stops and removes the unfinished database."""


def varint(n: int) -> bytes:
    """Protobuf varint of an int32/uint value (negative: 10 bytes, two's complement)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def atoi(s: bytes) -> int:
    """C's ``atoi`` (glibc: ``(int) strtol(s, NULL, 10)``): leading white space, a sign, digits;
    0 when there are none."""
    i, n = 0, len(s)
    while i < n and s[i] in b" \t\n\v\f\r":
        i += 1
    neg = False
    if i < n and s[i] in b"+-":
        neg = s[i] == 0x2D
        i += 1
    v = 0
    while i < n and 0x30 <= s[i] <= 0x39:
        v = v * 10 + s[i] - 0x30
        i += 1
    v = -v if neg else v
    v = max(-(1 << 63), min((1 << 63) - 1, v))      # strtol saturates at LONG_MIN/LONG_MAX ...
    v &= 0xFFFFFFFF                                # ... and the cast to int keeps the low 32 bits
    return v - (1 << 32) if v >= 1 << 31 else v


def match_ext(filename: bytes, enc: str) -> bool:
    """io.cpp's ``matchExt``: the file name's extension (after the last dot of the whole path)
    equals the encoding, case-insensitively, ``jpg`` also matching ``jpeg``."""
    p = filename.rfind(b".")
    ext = (filename[p + 1:] if p >= 0 else filename).decode("utf-8", "surrogateescape").lower()
    enc = enc.lower()
    return ext == enc or (enc == "jpg" and ext == "jpeg")


def guess_encoding(name: bytes) -> str:
    """convert_imageset with ``--encoded`` and no ``--encode_type``: the text after the file name's
    last dot, lower-cased (the whole name when it has no dot: ``substr(npos + 1)``)."""
    p = name.rfind(b".")
    return name[p + 1:].decode("utf-8", "surrogateescape").lower()


def _truncated_jpeg(raw: bytes) -> bool:
    """A JPEG whose last scan has no end-of-image marker after it: libjpeg warns ("Premature end
    of JPEG file") and OpenCV returns the image with the missing part grey, which Caffe packs."""
    if raw[:2] != b"\xff\xd8":
        return False
    sos = raw.rfind(b"\xff\xda")
    return sos >= 0 and raw.find(b"\xff\xd9", sos) < 0


def _truncated_jpeg_file(path: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\xff\xd8":
                return False
            f.seek(-2, 2)
            if f.read(2) == b"\xff\xd9":
                return False
            f.seek(0)
            return _truncated_jpeg(f.read())
    except OSError:
        return False


def _why_unreadable(path: bytes) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(1)
    except OSError as e:
        return e.strerror or type(e).__name__
    return "empty file" if not head else "not an image OpenCV can decode"


_TRUNCATED = ("JPEG data ends before its end marker (truncated): packed as OpenCV decodes it, the "
              "missing part grey, as Caffe does")


class RecordMaker:
    """``ReadImageToDatum(root + name, label, resize_height, resize_width, !gray, enc)`` +
    ``SerializeToString``, for one set of convert_imageset flags."""

    def __init__(self, *, resize_height: int = 0, resize_width: int = 0, is_color: bool = True,
                 encoded: bool = False, encode_type: str = ""):
        self.height = max(0, int(resize_height))
        self.width = max(0, int(resize_width))
        self.is_color = bool(is_color)
        self.encode_type = encode_type or ""
        self.encoded = bool(encoded) or bool(self.encode_type)
        self.flag = 1 if self.is_color else 0   # IMREAD_COLOR / IMREAD_GRAYSCALE
        self.cv2 = opencv()

    def encoding_for(self, name: bytes) -> str:
        if not self.encoded:
            return ""
        return self.encode_type or guess_encoding(name)

    def decode(self, path: bytes):
        """(image, warning or None); raises :class:`Unreadable`.

        ``cv2.imread`` on the path, as Caffe calls ``cv::imread``: for a JPEG cut short inside its
        pixel data, libjpeg's file source (imread) and OpenCV's memory source (imdecode) stop at
        different places, so the grey part differs; every other case decodes the same either way.
        A path that is not UTF-8 (which cv2 cannot pass to OpenCV) is read here and imdecoded."""
        try:
            spath = path.decode("utf-8")
        except UnicodeDecodeError:
            spath = None
        if spath is not None:
            img = self.cv2.imread(spath, self.flag)
        else:
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except OSError:
                raw = b""
            img = self.cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), self.flag) if raw else None
        if img is None:
            raise Unreadable(_why_unreadable(path))
        warning = _TRUNCATED if _truncated_jpeg_file(path) else None
        if self.height > 0 and self.width > 0:
            img = self.cv2.resize(img, (self.width, self.height))
        return img, warning

    def make(self, path: bytes, name: bytes, label: int, out=None):
        """The serialised Datum, written into ``out`` (a writable buffer) when it fits.

        Returns ``(result, sizes, warning)``: ``result`` is the number of bytes written to ``out``
        or the record as ``bytes``; ``sizes`` is ``(channels * height * width, len(data))`` for
        ``--check_size``.  Raises :class:`Unreadable` for a line Caffe skips."""
        img, warning = self.decode(path)
        enc = self.encoding_for(name)
        tail = b"\x28" + varint(label) + b"\x38" + (b"\x01" if enc else b"\x00")
        if enc:
            channels = 1 if img.ndim == 2 else img.shape[2]
            if (channels == 3) == self.is_color and not self.height and not self.width \
                    and match_ext(path, enc):
                with open(path, "rb") as f:                  # ReadFileToDatum
                    data = f.read()
            else:
                try:
                    ok, buf = self.cv2.imencode("." + enc, img)
                except self.cv2.error as e:                  # Caffe: an uncaught cv::Exception
                    raise Abort(f"cv::imencode('.{enc}') fails for {path!r}: {e}") from None
                if not ok:
                    raise Abort(f"cv::imencode('.{enc}') fails for {path!r}")
                data = buf.tobytes()
            head = b"\x22" + varint(len(data))
            rec = b"".join((head, data, tail))
            if out is not None and len(rec) <= len(out):
                out[:len(rec)] = rec
                return len(rec), (0, len(data)), warning
            return rec, (0, len(data)), warning
        h, w = img.shape[:2]
        c = 1 if img.ndim == 2 else img.shape[2]
        size = c * h * w
        head = b"\x08" + varint(c) + b"\x10" + varint(h) + b"\x18" + varint(w) + b"\x22" + varint(size)
        n = len(head) + size + len(tail)
        fits = out is not None and n <= len(out)
        target = out if fits else bytearray(n)
        target[:len(head)] = head
        dst = np.frombuffer(target, dtype=np.uint8, count=size, offset=len(head)).reshape(c, h, w)
        if c == 1:
            np.copyto(dst[0], img.reshape(h, w))
        else:                                                # C x H x W, B G R: cv::split
            planes = list(dst)
            got = self.cv2.split(img, planes)
            if any(g.ctypes.data != p.ctypes.data for g, p in zip(got, planes)):
                np.copyto(dst, img.transpose(2, 0, 1))       # OpenCV allocated instead: copy
        target[len(head) + size:n] = tail
        return (n if fits else bytes(target)), (size, size), warning
