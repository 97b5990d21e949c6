"""ImageNet folder -> the release's ``FILE LABEL`` lists (``whole_train``, ``whole_valid``).

Class index = position of the wnid in sorted order (the order of
``synsets.txt``, Caffe's ``ilsvrc12`` convention), unless a synsets file is
given.  Train lines are ``<wnid>/<file> <label>``, classes in that order and
files sorted by name within a class; valid lines are ``<file> <label>``
sorted by file name, e.g. ``ILSVRC2012_val_00000001.JPEG 65``.

The validation labels come from one of:

* ``--val-ground-truth F`` with lines ``FILE WNID`` or ``FILE LABEL``
  (whitespace or comma separated; a Kaggle-style ``LOC_val_solution.csv``,
  ``ImageId,PredictionString`` with the wnid first, also works), or
  one ILSVRC2012_ID per line (the devkit's
  ``ILSVRC2012_validation_ground_truth.txt``) together with ``--devkit-wnids``
  (the wnids in ILSVRC2012_ID order, one per line);
* ``--val-dir D`` holding ``<wnid>/<file>`` sub-folders.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from replicate.fileio import atomic_write

__all__ = ["IMAGE_EXTS", "class_wnids", "train_lines", "valid_lines", "write_lists"]

IMAGE_EXTS = (".jpeg", ".jpg", ".png", ".bmp")
_WNID = re.compile(r"^n\d{8}$")


def _images(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def class_wnids(train_dir=None, synsets=None) -> list[str]:
    """The wnids in class-index order: the ``synsets`` file's order, else the
    sorted sub-folders of ``train_dir``."""
    if synsets is not None:
        return [line.split()[0] for line in Path(synsets).read_text().splitlines() if line.strip()]
    if train_dir is None:
        raise ValueError("give a train folder or a synsets file to fix the class order")
    return sorted(p.name for p in Path(train_dir).iterdir() if p.is_dir())


def train_lines(train_dir, wnids) -> str:
    train_dir = Path(train_dir)
    out = []
    for label, wnid in enumerate(wnids):
        d = train_dir / wnid
        if not d.is_dir():
            raise FileNotFoundError(f"class folder {d} is missing")
        out.extend(f"{wnid}/{name} {label}\n" for name in _images(d))
    return "".join(out)


def _ground_truth(path, wnids, devkit_wnids=None) -> dict[str, int]:
    index = {w: i for i, w in enumerate(wnids)}
    labels: dict[str, int] = {}
    rows = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if rows and rows[0].lower().startswith("imageid"):
        rows = rows[1:]
    if rows and all(re.fullmatch(r"\d+", r) for r in rows):
        if devkit_wnids is None:
            raise ValueError(f"{path} holds ILSVRC2012_IDs; give --devkit-wnids (wnids in ID order)")
        dk = [line.split()[0] for line in Path(devkit_wnids).read_text().splitlines() if line.strip()]
        for i, r in enumerate(rows, 1):
            labels[f"ILSVRC2012_val_{i:08d}.JPEG"] = index[dk[int(r) - 1]]
        return labels
    for n, r in enumerate(rows, 1):
        parts = re.split(r"[,\s]+", r)
        if len(parts) < 2:
            raise ValueError(f"{path}:{n}: expected 'FILE WNID' or 'FILE LABEL', got {r!r}")
        name, cls = parts[0], parts[1]
        if not os.path.splitext(name)[1]:
            name += ".JPEG"
        if _WNID.match(cls):
            if cls not in index:
                raise ValueError(f"{path}:{n}: wnid {cls} is not one of the classes")
            labels[name] = index[cls]
        else:
            labels[name] = int(cls)
    return labels


def valid_lines(wnids, *, ground_truth=None, devkit_wnids=None, val_dir=None) -> str:
    if ground_truth is not None:
        labels = _ground_truth(ground_truth, wnids, devkit_wnids)
    elif val_dir is not None:
        index = {w: i for i, w in enumerate(wnids)}
        labels = {}
        for d in sorted(Path(val_dir).iterdir()):
            if d.is_dir() and d.name in index:
                for name in _images(d):
                    labels[name] = index[d.name]
    else:
        raise ValueError("give --val-ground-truth or --val-dir for the validation list")
    return "".join(f"{name} {labels[name]}\n" for name in sorted(labels))


def write_lists(out, *, train_dir=None, synsets=None, ground_truth=None, devkit_wnids=None,
                val_dir=None) -> list[Path]:
    """Write ``out/whole_train/files.txt`` (with a train folder) and
    ``out/whole_valid/files.txt`` (with validation labels)."""
    wnids = class_wnids(train_dir, synsets)
    written = []
    out = Path(out)
    if train_dir is not None:
        p = out / "whole_train" / "files.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(p, train_lines(train_dir, wnids).encode())
        written.append(p)
    if ground_truth is not None or val_dir is not None:
        p = out / "whole_valid" / "files.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(p, valid_lines(wnids, ground_truth=ground_truth, devkit_wnids=devkit_wnids,
                                    val_dir=val_dir).encode())
        written.append(p)
    return written
