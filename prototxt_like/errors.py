"""The one error type of prototxt_like, and its specialisations.

Everything that goes wrong while reading, upgrading or writing a Caffe file
raises :class:`CaffeFormatError` (a ``ValueError``), never a bare protobuf,
numpy or Unicode exception.  The subclasses say which stage failed and carry
the location: file, line, column and offending token for text, file and byte
size for binaries, file and layer for upgrades.
"""
from __future__ import annotations

import re
import warnings

__all__ = [
    "CaffeFormatError",
    "TextFormatError",
    "BinaryFormatError",
    "UpgradeError",
    "UnknownLayerTypeError",
    "BlobError",
    "UpgradeWarning",
]


class CaffeFormatError(ValueError):
    """A Caffe file (or message) could not be read, upgraded or written."""

    def __init__(self, message: str, *, file: str | None = None):
        self.file = file
        self.reason = message
        super().__init__(f"{file}: {message}" if file else message)


class TextFormatError(CaffeFormatError):
    """Malformed protobuf text: knows the file, 1-based line and column, and
    the offending token (``"<end of file>"`` when the text ended early)."""

    def __init__(self, message: str, *, file: str | None, line: int | None,
                 column: int | None, token: str | None):
        self.line, self.column, self.token = line, column, token
        where = file or "<text>"
        if line is not None:
            where += f":{line}" + (f":{column}" if column is not None else "")
        if token is not None:
            message += f" (at token {token!r})"
        ValueError.__init__(self, f"{where}: {message}")
        self.file, self.reason = file, message


class BinaryFormatError(CaffeFormatError):
    """A binary protobuf file is truncated, corrupt or not of the expected
    message type."""


class UpgradeError(CaffeFormatError):
    """A legacy (V0/V1) net or an old solver cannot be upgraded, e.g. a
    padding layer that feeds a layer other than a convolution or pooling."""

    def __init__(self, message: str, *, file: str | None = None,
                 layer: str | None = None):
        self.layer = layer
        if layer is not None:
            message = f"layer {layer!r}: {message}"
        super().__init__(message, file=file)


class UnknownLayerTypeError(UpgradeError):
    """A layer type that Caffe 1.0 does not know (V0 string, V1 enum value or
    V2 type string)."""

    def __init__(self, layer_type: str, *, file: str | None = None,
                 layer: str | None = None, known=()):
        self.layer_type = layer_type
        hint = ""
        if known:
            hint = " (known types: " + ", ".join(sorted(known)) + ")"
        super().__init__(f"unknown layer type {layer_type!r}{hint}",
                         file=file, layer=layer)


class BlobError(CaffeFormatError):
    """A BlobProto whose data does not match its shape, or an array that
    cannot be stored as a blob."""


class UpgradeWarning(UserWarning):
    """Caffe logged an error but went on (e.g. ``Unknown parameter pad for
    layer type relu``): the setting is dropped, exactly as Caffe drops it."""


def warn_upgrade(message: str) -> None:
    warnings.warn(message, UpgradeWarning, stacklevel=3)


_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|\'(?:[^\'\\\n]|\\.)*\'?|[\w.+-]+|\S')


def token_at(text: str, line: int | None, column: int | None) -> str | None:
    """The token that starts at 1-based (line, column) of ``text``; the next
    token when the position is blank; ``"<end of file>"`` past the end."""
    if line is None:
        return None
    lines = text.split("\n")
    if line < 1 or line > len(lines):
        return "<end of file>"
    rest = lines[line - 1][max((column or 1) - 1, 0):]
    rest += "\n" + "\n".join(lines[line:])
    m = _TOKEN.search(rest)
    return m.group(0) if m else "<end of file>"
