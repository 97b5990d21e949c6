"""``python -m data_prep synth``: a procedural mini-ImageNet, built so that features transfer as in
the paper.

Every image is drawn from a small shared vocabulary of low-level *parts* (an oriented bar, a
corner, a grating patch, a blob, a ring, each in one colour): the parts are what the first layers
learn, and they are the same for every class.  A *class* is a composition: three vocabulary parts
at fixed relative positions (its layout).  Classes share parts with each other, so telling them
apart takes the conjunction and the arrangement of the parts, which is what the top layers learn
and what makes them specific to the classes they were trained on.  Each image places its class's
composition at a random position and scale, jitters each part, adds distractor parts from the same
vocabulary, a low-frequency background and pixel noise.

*Families* (the paper's natural / man-made split, in miniature): the classes come in two families
(class k is in family k mod 2) and each family draws its parts, and its images' distractors, from
its own part of the vocabulary; the two parts overlap in ``family_shared`` parts only (2 of 14 by
default).  The release's random halves mix both families, so they share the whole vocabulary; the
family halves (``half_nat_idx.txt`` / ``half_man_idx.txt``: family 0 = "natural" = halfnatmanA,
family 1 = "man-made" = halfnatmanB) share two parts.  ``families=1``: one vocabulary for all.

Written in the ILSVRC layout that ``lists``/``splits``/``pack`` read, as JPEG:

* ``OUT/train/<wnid>/<wnid>_<k>.JPEG``, ``OUT/val/ILSVRC2012_val_<k>.JPEG``;
* ``OUT/synsets.txt`` (wnids in class order), ``OUT/synset_words.txt`` (wnid and what the class is);
* ``OUT/val_ground_truth.txt`` (``FILE WNID``), and Caffe's ``OUT/train.txt`` / ``OUT/val.txt``
  lists (``FILE LABEL``; the same lines ``lists`` writes to ``whole_train``/``whole_valid``);
* ``OUT/half_nat_idx.txt``, ``OUT/half_man_idx.txt``: the two families' class indices, one a line
  (the release's ``ilsvrc12/half_{nat,man}_idx.txt``, for ``splits --natural-classes/--manmade-classes``).

The whole set is a pure function of ``--seed`` and the sizes: the same arguments give the same
bytes (tested).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from replicate.fileio import atomic_write

__all__ = ["SynthSpec", "Part", "make_classes", "family_vocabularies", "family_indices", "render", "write_synth"]

PART_TYPES = ("bar", "corner", "grating", "blob", "ring")
ORIENTED = {"bar": 4, "corner": 4, "grating": 4, "blob": 1, "ring": 1}
COLOURS = {  # RGB in [0, 1]
    "red": (0.9, 0.15, 0.1), "green": (0.1, 0.75, 0.2), "blue": (0.15, 0.3, 0.95),
    "yellow": (0.95, 0.85, 0.1), "white": (0.97, 0.97, 0.97), "black": (0.05, 0.05, 0.05),
}


@dataclass(frozen=True)
class Part:
    kind: str
    orientation: int   # 0..3 -> 0, 45, 90, 135 degrees (corners: 4 rotations of 90)
    colour: str

    def __str__(self) -> str:
        o = "" if ORIENTED[self.kind] == 1 else f"@{self.orientation * (90 if self.kind == 'corner' else 45)}"
        return f"{self.colour} {self.kind}{o}"


@dataclass(frozen=True)
class SynthSpec:
    classes: int = 40
    train_per_class: int = 260
    valid_per_class: int = 25
    size: int = 32
    vocabulary: int = 14       # distinct parts shared by all classes
    parts_per_class: int = 3
    distractors: float = 1.0   # mean number of random vocabulary parts added to each image
    noise: float = 0.06        # std of the per-pixel noise (0..1 scale)
    jitter: float = 1.2        # std (pixels) of each part's position jitter
    scale_range: tuple = (0.8, 1.2)
    quality: int = 90          # JPEG quality
    seed: int = 0
    families: int = 2          # class families (1 or 2): class k is in family k mod families
    family_shared: int = 2     # vocabulary parts both families use (families = 2)


@dataclass(frozen=True)
class ClassDef:
    wnid: str
    parts: tuple          # of Part
    offsets: tuple        # of (dy, dx) relative to the composition's centre, in pixels at scale 1
    family: int = 0
    palette: tuple = ()   # indices into the vocabulary of the family's parts (distractors come from it)

    def words(self) -> str:
        pos = ", ".join(f"{p} ({dy:+.0f},{dx:+.0f})" for p, (dy, dx) in zip(self.parts, self.offsets))
        return pos


def _vocabulary(rng: np.random.RandomState, n: int) -> list[Part]:
    every = [Part(k, o, c) for k in PART_TYPES for o in range(ORIENTED[k]) for c in COLOURS]
    idx = rng.choice(len(every), n, replace=False)
    return [every[i] for i in sorted(idx)]


def family_vocabularies(spec: SynthSpec, rng: np.random.RandomState) -> list[tuple]:
    """Each family's vocabulary indices: with two families, a seeded shuffle of the vocabulary cut
    into two overlapping runs that share ``family_shared`` parts."""
    if spec.families == 1:
        return [tuple(range(spec.vocabulary))]
    if spec.families != 2:
        raise ValueError(f"synth: families must be 1 or 2, not {spec.families}")
    own = (spec.vocabulary - spec.family_shared) // 2
    if own + spec.family_shared < spec.parts_per_class or own < 1 or spec.family_shared < 0:
        raise ValueError(f"synth: a vocabulary of {spec.vocabulary} with {spec.family_shared} shared parts leaves "
                         f"a family fewer than {spec.parts_per_class} parts")
    order = [int(i) for i in rng.permutation(spec.vocabulary)]
    first = tuple(sorted(order[:own + spec.family_shared]))
    second = tuple(sorted(order[own:2 * own + spec.family_shared]))
    return [first, second]


def make_classes(spec: SynthSpec) -> tuple[list[Part], list[ClassDef]]:
    """The vocabulary and the class compositions: distinct (parts, layout) per class; class k draws
    its parts from family k mod ``families``'s vocabulary."""
    rng = np.random.RandomState(spec.seed)
    vocab = _vocabulary(rng, spec.vocabulary)
    palettes = family_vocabularies(spec, rng)
    reach = spec.size * 0.28  # parts sit within +-reach of the centre
    classes: list[ClassDef] = []
    seen = set()
    while len(classes) < spec.classes:
        family = len(classes) % len(palettes)
        palette = palettes[family]
        idx = tuple(palette[int(i)] for i in rng.choice(len(palette), spec.parts_per_class, replace=False))
        offsets = []
        while len(offsets) < spec.parts_per_class:
            dy, dx = (float(v) for v in rng.uniform(-reach, reach, 2))
            if all(math.hypot(dy - a, dx - b) >= spec.size * 0.25 for a, b in offsets):
                offsets.append((round(dy, 1), round(dx, 1)))
        key = tuple(sorted(zip(idx, [(round(a / 4), round(b / 4)) for a, b in offsets])))
        if key in seen:
            continue
        seen.add(key)
        wnid = f"n9{len(classes):07d}"
        classes.append(ClassDef(wnid, tuple(vocab[i] for i in idx), tuple(offsets), family, palette))
    return vocab, classes


def family_indices(classes) -> list[list[int]]:
    """Class indices of each family (the natural / man-made halves' index files)."""
    fams = sorted({c.family for c in classes})
    return [[k for k, c in enumerate(classes) if c.family == f] for f in fams]


# ---------------------------------------------------------------------------------------------
# Rendering


def _mask(part: Part, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, s: float) -> np.ndarray:
    """Coverage (0..1) of ``part`` centred at (cy, cx) with scale s on the pixel grid."""
    y, x = yy - cy, xx - cx
    k = part.kind
    soft = lambda d: np.clip(0.5 - d, 0.0, 1.0)  # noqa: E731  (antialiased edge: distance in pixels)
    if k in ("bar", "grating"):
        a = math.radians(45 * part.orientation)
        u = x * math.cos(a) + y * math.sin(a)     # along
        v = -x * math.sin(a) + y * math.cos(a)    # across
        if k == "bar":
            return soft(np.maximum(np.abs(u) - 3.5 * s, np.abs(v) - 0.9 * s))
        disk = soft(np.hypot(x, y) - 3.6 * s)
        return disk * (0.5 + 0.5 * np.cos(2 * math.pi * v / (2.6 * s)))
    if k == "corner":
        a = math.radians(90 * part.orientation)
        u = x * math.cos(a) + y * math.sin(a)
        v = -x * math.sin(a) + y * math.cos(a)
        arm1 = np.maximum(np.maximum(-u, u - 3.5 * s), np.abs(v) - 0.9 * s)
        arm2 = np.maximum(np.maximum(-v, v - 3.5 * s), np.abs(u) - 0.9 * s)
        return soft(np.minimum(arm1, arm2))
    r = np.hypot(x, y)
    if k == "blob":
        return soft(r - 2.6 * s)
    if k == "ring":
        return soft(np.abs(r - 2.8 * s) - 0.8 * s)
    raise ValueError(f"unknown part type {k!r}")


def render(cls: ClassDef, vocab: list[Part], spec: SynthSpec, rng: np.random.RandomState) -> np.ndarray:
    """One HxWx3 uint8 RGB image of class ``cls``."""
    n = spec.size
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    # background: a grey level plus a smooth colour field
    coarse = rng.uniform(-0.12, 0.12, (4, 4, 3))
    ramp = np.linspace(0, 3, n)
    i0 = np.floor(ramp).astype(int).clip(0, 2)
    f = (ramp - i0)[:, None]
    rows = coarse[i0] * (1 - f)[:, :, None] + coarse[i0 + 1] * f[:, :, None]             # n x 4 x 3
    field = rows[:, i0] * (1 - f.T)[:, :, None] + rows[:, i0 + 1] * f.T[:, :, None]      # n x n x 3
    img = rng.uniform(0.3, 0.7) + field
    # distractors first (the composition draws over them)
    placed = []
    for _ in range(rng.poisson(spec.distractors)):
        palette = cls.palette or range(len(vocab))
        p = vocab[palette[rng.randint(len(palette))]]
        placed.append((p, rng.uniform(3, n - 3), rng.uniform(3, n - 3), rng.uniform(*spec.scale_range)))
    s = rng.uniform(*spec.scale_range)
    margin = n * 0.28 * s + 4 * s
    cy = rng.uniform(min(margin, n / 2), max(n - margin, n / 2))
    cx = rng.uniform(min(margin, n / 2), max(n - margin, n / 2))
    for p, (dy, dx) in zip(cls.parts, cls.offsets):
        placed.append((p, cy + dy * s + rng.normal(0, spec.jitter), cx + dx * s + rng.normal(0, spec.jitter),
                       s * rng.uniform(0.9, 1.1)))
    for p, py, px, ps in placed:
        m = _mask(p, yy, xx, py, px, ps)[:, :, None]
        colour = np.clip(np.asarray(COLOURS[p.colour]) + rng.normal(0, 0.06, 3), 0, 1)
        img = img * (1 - m) + colour * m
    img = img + rng.normal(0, spec.noise, img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _jpeg(img: np.ndarray, quality: int) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, durable=False)  # thousands of images: no fsync each


def write_synth(out, spec: SynthSpec = SynthSpec(), progress: bool = True,
                sample_sheet: Optional[str] = "samples.png") -> dict:
    """Write the data set to ``out``; returns a summary (counts, paths)."""
    from replicate.progress import Progress

    out = Path(out)
    if spec.classes < 2:
        raise ValueError(f"synth: need at least 2 classes, not {spec.classes}")
    if spec.vocabulary < spec.parts_per_class:
        raise ValueError(f"synth: a vocabulary of {spec.vocabulary} parts cannot make classes of "
                         f"{spec.parts_per_class} distinct parts")
    if (out / "train").exists() or (out / "val").exists():
        raise FileExistsError(f"synth: {out} already holds train/ or val/; choose an empty folder")
    vocab, classes = make_classes(spec)
    total = spec.classes * (spec.train_per_class + spec.valid_per_class)
    bar = Progress(total, "synth", enabled=progress)
    train_lines, val_items = [], []
    for label, c in enumerate(classes):
        # one generator per class and set: a class's images do not depend on the other classes
        rng = np.random.RandomState([spec.seed, 1, label])
        names = []
        for k in range(spec.train_per_class):
            name = f"{c.wnid}/{c.wnid}_{k + 1}.JPEG"
            _write(out / "train" / name, _jpeg(render(c, vocab, spec, rng), spec.quality))
            names.append(name)
            bar.update()
        train_lines.extend(f"{name} {label}\n" for name in sorted(names))  # the order `lists` gives
        rng = np.random.RandomState([spec.seed, 2, label])
        for k in range(spec.valid_per_class):
            val_items.append((label, render(c, vocab, spec, rng)))
            bar.update()
    # validation files are numbered in a shuffled class order, as ILSVRC's are
    order = np.random.RandomState([spec.seed, 3]).permutation(len(val_items))
    val_lines, truth = [], []
    for k, i in enumerate(order, 1):
        label, img = val_items[i]
        name = f"ILSVRC2012_val_{k:08d}.JPEG"
        _write(out / "val" / name, _jpeg(img, spec.quality))
        val_lines.append(f"{name} {label}\n")
        truth.append(f"{name} {classes[label].wnid}\n")
    bar.close()
    atomic_write(out / "synsets.txt", "".join(f"{c.wnid}\n" for c in classes))
    atomic_write(out / "synset_words.txt", "".join(f"{c.wnid} {c.words()}\n" for c in classes))
    atomic_write(out / "val_ground_truth.txt", "".join(truth))
    atomic_write(out / "train.txt", "".join(train_lines))
    atomic_write(out / "val.txt", "".join(val_lines))
    atomic_write(out / "vocabulary.txt", "".join(f"{p}\n" for p in vocab))
    fams = family_indices(classes)
    if len(fams) == 2:
        atomic_write(out / "half_nat_idx.txt", "".join(f"{k}\n" for k in fams[0]))
        atomic_write(out / "half_man_idx.txt", "".join(f"{k}\n" for k in fams[1]))
    if sample_sheet:
        _sample_sheet(out / sample_sheet, classes, vocab, spec)
    return {"classes": len(classes), "train": len(train_lines), "valid": len(val_lines), "out": str(out)}


def _sample_sheet(path: Path, classes, vocab, spec: SynthSpec, per_class: int = 8) -> None:
    """A PNG grid: one row per class (up to 20), ``per_class`` fresh samples each, 3x enlarged."""
    from PIL import Image
    rows = classes[:20]
    n, z = spec.size, 3
    sheet = np.full(((n + 2) * len(rows), (n + 2) * per_class, 3), 255, np.uint8)
    for r, c in enumerate(rows):
        rng = np.random.RandomState([spec.seed, 4, r])
        for k in range(per_class):
            sheet[r * (n + 2):r * (n + 2) + n, k * (n + 2):k * (n + 2) + n] = render(c, vocab, spec, rng)
    Image.fromarray(sheet).resize((sheet.shape[1] * z, sheet.shape[0] * z), Image.NEAREST).save(path)
