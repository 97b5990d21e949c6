"""Protobuf text and binary (de)serialisation with Caffe's conventions.

Parsing is done by the protobuf library; this module only turns its many
failure modes into :mod:`prototxt_like.errors` types with a location, checks
that a binary message holds no bytes the schema does not explain, and prints
text exactly as Caffe's ``WriteProtoToTextFile`` does (fields in number
order, two-space indent, floats as C++ ``SimpleFtoa``).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Type, TypeVar, Union

import numpy as np
from google.protobuf import text_encoding, text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from .errors import BinaryFormatError, CaffeFormatError, TextFormatError, token_at

M = TypeVar("M", bound=Message)
PathLike = Union[str, os.PathLike]

# Text nested deeper than this is refused up front: real nets nest about 5
# levels, and the library's recursive parser would otherwise run into
# Python's recursion limit.
MAX_NESTING = 100


# ---------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------

def looks_like_path(source) -> bool:
    """True when ``source`` names a file rather than holding protobuf text:
    an existing file, or a string without newline, brace or colon."""
    if isinstance(source, os.PathLike):
        return True
    if not isinstance(source, str) or source == "":
        return False
    if os.path.exists(source):
        return True
    return not any(c in source for c in "\n{:")


def read_text_source(source) -> tuple[str, str | None]:
    """(text, file name or None) from a path or from protobuf text itself."""
    if isinstance(source, bytes):
        source = _decode_text(source, None)
    if looks_like_path(source):
        path = os.fspath(source)
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise CaffeFormatError(f"cannot read file: {e.strerror or e}", file=path) from e
        return _decode_text(data, path), path
    return source, None


def read_binary_source(source) -> tuple[bytes, str | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    path = os.fspath(source)
    try:
        return Path(path).read_bytes(), path
    except OSError as e:
        raise CaffeFormatError(f"cannot read file: {e.strerror or e}", file=path) from e


def _decode_text(data: bytes, file: str | None) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise TextFormatError("text is not valid UTF-8", file=file, line=line,
                              column=column, token=repr(data[e.start:e.start + 1])) from e


# ---------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------

def parse_text(text: str, cls: Type[M], file: str | None = None) -> M:
    """Parse protobuf text into a new ``cls``; raise TextFormatError."""
    msg = cls()
    depth = _max_brace_depth(text)
    if depth > MAX_NESTING:
        raise TextFormatError(f"message nesting deeper than {MAX_NESTING} levels",
                              file=file, line=None, column=None, token=None)
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        line, column = e.GetLine(), e.GetColumn()
        reason = str(e)
        # The library prefixes "line:col : " (and sometimes the line text).
        prefix = f"{line}:{column} : "
        if reason.startswith(prefix):
            reason = reason[len(prefix):]
        if line is not None:
            quoted = text.split("\n")[line - 1] if 0 < line <= text.count("\n") + 1 else None
            if quoted is not None and reason.startswith(f"'{quoted}': "):
                reason = reason[len(quoted) + 4:]
        reason = f"cannot parse {cls.DESCRIPTOR.name}: {reason}"
        token = token_at(text, line, column)
        if reason.endswith('Expected "}".') and _only_blank_after(text, line, column, token):
            # the library points at the last token; the real culprit is the end
            lines = text.split("\n")
            line, column, token = len(lines), len(lines[-1]) + 1, "<end of file>"
        raise TextFormatError(reason, file=file, line=line, column=column, token=token) from e
    except Exception as e:  # anything else the library may raise on odd input
        raise TextFormatError(f"cannot parse {cls.DESCRIPTOR.name}: {e}", file=file,
                              line=None, column=None, token=None) from e
    return msg


def _only_blank_after(text: str, line, column, token) -> bool:
    if line is None or column is None or token is None:
        return False
    lines = text.split("\n")
    if not 0 < line <= len(lines):
        return True
    rest = lines[line - 1][column - 1 + len(token):] + "\n" + "\n".join(lines[line:])
    return all(not l.strip() or l.strip().startswith("#") for l in rest.split("\n"))


def _max_brace_depth(text: str) -> int:
    # Upper bound of the nesting (braces inside strings and comments count
    # too, which only makes the check stricter for absurd inputs).
    depth = best = 0
    for ch in text:
        if ch in "{<":
            depth += 1
            best = max(best, depth)
        elif ch in "}>":
            depth -= 1
    return best


def to_text(msg: Message) -> str:
    """``msg`` as Caffe's ``WriteProtoToTextFile`` writes it (byte for byte)."""
    out: list[str] = []
    _print_message(msg, "", out)
    return "".join(out)


def _print_message(msg: Message, pad: str, out: list) -> None:
    for field, value in msg.ListFields():
        values = value if field.is_repeated else (value,)
        for v in values:
            if field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
                out.append(f"{pad}{field.name} {{\n")
                _print_message(v, pad + "  ", out)
                out.append(f"{pad}}}\n")
            else:
                out.append(f"{pad}{field.name}: {_scalar(field, v)}\n")


def _scalar(field: FieldDescriptor, v) -> str:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        data = v.encode("utf-8") if isinstance(v, str) else v
        return '"' + text_encoding.CEscape(data, as_utf8=False) + '"'
    if t == FieldDescriptor.TYPE_BYTES:
        return '"' + text_encoding.CEscape(v, as_utf8=False) + '"'
    if t == FieldDescriptor.TYPE_ENUM:
        ev = field.enum_type.values_by_number.get(v)
        return ev.name if ev is not None else str(v)
    if t == FieldDescriptor.TYPE_BOOL:
        return "true" if v else "false"
    if t == FieldDescriptor.TYPE_FLOAT:
        return float_to_text(v)
    if t == FieldDescriptor.TYPE_DOUBLE:
        return double_to_text(v)
    return str(v)


def float_to_text(v: float) -> str:
    """C++ protobuf's SimpleFtoa: ``%.6g`` when it reads back as the same
    float32, else ``%.9g``."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    s = "%.6g" % v
    if np.float32(float(s)) != np.float32(v):
        s = "%.9g" % v
    return s


def double_to_text(v: float) -> str:
    """C++ protobuf's SimpleDtoa: ``%.15g``, else ``%.17g``."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    s = "%.15g" % v
    if float(s) != v:
        s = "%.17g" % v
    return s


# ---------------------------------------------------------------------------
# Binary
# ---------------------------------------------------------------------------

def parse_binary(data: bytes, cls: Type[M], file: str | None = None, *,
                 allow_unknown: bool = False) -> M:
    """Parse serialised ``cls``; raise BinaryFormatError on any damage.

    Besides protobuf's own wire-format errors this rejects what a damaged
    file can still decode to: fields the schema does not know (unless
    ``allow_unknown``) and strings that are not UTF-8.
    """
    msg = cls()
    name = cls.DESCRIPTOR.name
    try:
        msg.ParseFromString(data)
    except Exception as e:  # DecodeError, and anything else on odd input
        raise BinaryFormatError(
            f"not a valid binary {name} ({len(data)} bytes; truncated or corrupt): {e}",
            file=file) from e
    problem = find_damage(msg, allow_unknown=allow_unknown)
    if problem:
        raise BinaryFormatError(
            f"not a valid binary {name} ({len(data)} bytes; truncated or corrupt): {problem}",
            file=file)
    return msg


def find_damage(msg: Message, *, allow_unknown: bool = False, path: str = "") -> str | None:
    """Describe the first sign of damage in a parsed message, or None."""
    from google.protobuf import unknown_fields

    here = path or msg.DESCRIPTOR.name
    if not allow_unknown:
        unknown = unknown_fields.UnknownFieldSet(msg)
        if len(unknown):
            return f"{here} holds field number {unknown[0].field_number}, unknown to the schema"
    for field, value in msg.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            values = value if field.is_repeated else (value,)
            for v in values:
                if not isinstance(v, str):
                    return f"{here}.{field.name} is not valid UTF-8"
        elif field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            if field.is_repeated:
                for i, v in enumerate(value):
                    found = find_damage(v, allow_unknown=allow_unknown,
                                        path=f"{here}.{field.name}[{i}]")
                    if found:
                        return found
            else:
                found = find_damage(value, allow_unknown=allow_unknown,
                                    path=f"{here}.{field.name}")
                if found:
                    return found
    if not msg.IsInitialized():
        return f"{here} misses required fields: {', '.join(msg.FindInitializationErrors())}"
    return None


def serialize(msg: Message) -> bytes:
    """Binary form, fields in number order as Caffe (C++) writes them."""
    try:
        return msg.SerializeToString(deterministic=True)
    except Exception as e:  # e.g. EncodeError for missing required fields
        raise CaffeFormatError(f"cannot serialise {msg.DESCRIPTOR.name}: {e}") from e
