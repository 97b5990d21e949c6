"""The release's dataset splits (``ilsvrc12/make_reduced_datasets.sh`` of
yosinski/convnet_transfer), byte for byte.

* Random halves, split seed s = 0..3: NumPy's legacy global RNG seeded with the
  one-element list ``[s]``, then ``choice(arange(1000), 500, replace=False)``
  gives group A's original class indices; B is the rest.  Each half renumbers
  its classes 0..499 in sorted original order; ``files.txt`` keeps the input's
  line order as ``FILE NEWLABEL``; ``idxmap.txt`` is ``# Orig_idx new_idx``
  then ``ORIG NEW`` per class.
* Natural / man-made halves (``halfnatmanA`` = natural, ``B`` = man-made) from
  the two class-index files, renumbered the same way.
* Reduced sets (train only): the first N lines of each class in file order,
  labels kept, N in 1000, 750, 500, 250, 100, 50, 25, 10, 5, 2, 1
  (folders ``reduced0001_train`` ...).

Folder names are the release's: ``half<s>{A,B}_<tv>``, ``halfnatman{A,B}_<tv>``,
``reduced<NNNN>_train`` with ``tv`` in ``train``/``valid``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from replicate.fileio import atomic_write

__all__ = ["read_list", "random_half_classes", "half_lines", "reduced_lines", "make_splits",
           "RELEASE_MD5", "REDUCED_SIZES", "check_md5"]

REDUCED_SIZES = (1000, 750, 500, 250, 100, 50, 25, 10, 5, 2, 1)

# md5sum of every files.txt, as published at the bottom of the release's
# ilsvrc12/make_reduced_datasets.sh (github.com/yosinski/convnet_transfer).
RELEASE_MD5 = {
    "half0A_train": "83f4e664c68213ba43dd9b4465dd7d4e",
    "half0B_train": "0a9e2917a5f10bdbf22974f4b1fc17ce",
    "half1A_train": "8926a880165726455c5639e4813a2d3b",
    "half1B_train": "b95d534d95151f4fae7610d25d6377fd",
    "half2A_train": "61ffa67fe88e307ac1c5639a087fdf1b",
    "half2B_train": "ddda030205cfd7960498d9300f5c3deb",
    "half3A_train": "32369aaeb73012881558f0f16d932b95",
    "half3B_train": "0017c6f301f33db91008663985b6f826",
    "halfnatmanA_train": "5fb4569a4f3be3897f490ee21b356256",
    "halfnatmanB_train": "4ba839156cd6c7f33d8ada94e4331887",
    "reduced0001_train": "803a36f02b511db01532a604f5704ea8",
    "reduced0002_train": "af6addb779610611d460f0ade2931f2f",
    "reduced0005_train": "abdce3ff7f7933b0323c1074de7a734d",
    "reduced0010_train": "d3752c71b0facde0173876293ce632fd",
    "reduced0025_train": "df313d05c0256010b96870f5707f0417",
    "reduced0050_train": "34e5285b75e5448ff82bc6b0ca0c28f7",
    "reduced0100_train": "8376e82b043586424b8bebf4fd4a8af2",
    "reduced0250_train": "e83abe901d08926ef62956be8628dbd0",
    "reduced0500_train": "d32ff1c8817548f0edf5557b32ca5e0e",
    "reduced0750_train": "5bb58aecc081ec6c27ec68bbc755bb58",
    "reduced1000_train": "94fce01f9b4cb80bdb3fbf2a440c26e6",
    "whole_train": "3be8e5d8cbd932cc295ec175d5110921",
    "half0A_valid": "2f10009e20d77eb7007cf70674958b94",
    "half0B_valid": "cce39b383d681345c873faf2c0c28d33",
    "half1A_valid": "9ab48b6420504e32ff4498e7d8569f8b",
    "half1B_valid": "57522f5e2aa69547846089f5197c8a6b",
    "half2A_valid": "03d05b6565ab9176baccdd05d746bfd1",
    "half2B_valid": "18de8b37378e07e60dc602b6130eeeb2",
    "half3A_valid": "46086440ddde128f169f23331998499d",
    "half3B_valid": "e5f9f0895fd0d49a8ac0b804ec891282",
    "halfnatmanA_valid": "4fb63c72229ba07106a558127192cb9f",
    "halfnatmanB_valid": "f03be5732fb6bc7928ee53397b043613",
    "whole_valid": "b6284a7c08fba47457c2c1f6049a156e",
}


def read_list(path) -> list[tuple[str, int]]:
    """``FILE LABEL`` lines (whitespace-separated, as the release's script splits them)."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise ValueError(f"{os.fspath(path)}:{n}: expected 'FILE LABEL', got {line.rstrip()!r}")
            out.append((parts[0], int(parts[1])))
    return out


def read_indices(path) -> list[int]:
    with open(path) as f:
        return sorted(int(line) for line in f if line.strip())


def random_half_classes(seed: int, n_classes: int = 1000) -> tuple[list[int], list[int]]:
    """Group A's and group B's original class indices (sorted) for split ``seed``."""
    rs = np.random.RandomState()
    rs.seed([int(seed)])  # the one-element list, as the release's random.seed(args.seed)
    a = sorted(int(i) for i in rs.choice(np.arange(n_classes), n_classes // 2, replace=False))
    aset = set(a)
    return a, [i for i in range(n_classes) if i not in aset]


def half_lines(lines, old_idx) -> tuple[str, str]:
    """``(files.txt, idxmap.txt)`` texts of the half holding classes ``old_idx``."""
    old_idx = sorted(old_idx)
    new = {o: n for n, o in enumerate(old_idx)}
    files = "".join(f"{f} {new[c]}\n" for f, c in lines if c in new)
    idxmap = "# Orig_idx new_idx\n" + "".join(f"{o} {n}\n" for o, n in new.items())
    return files, idxmap


def reduced_lines(lines, per_class: int) -> str:
    seen: dict[int, int] = {}
    out = []
    for f, c in lines:
        if seen.get(c, 0) < per_class:
            seen[c] = seen.get(c, 0) + 1
            out.append(f"{f} {c}\n")
    return "".join(out)


def _write(out: Path, name: str, files: str, idxmap: str | None, written: list) -> None:
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    atomic_write(d / "files.txt", files.encode())
    if idxmap is not None:
        atomic_write(d / "idxmap.txt", idxmap.encode())
    written.append(name)


def make_splits(out, *, train_list=None, valid_list=None, natural=None, manmade=None,
                seeds=(0, 1, 2, 3), reduced=True, n_classes: int = 1000) -> list[str]:
    """Write every split the release makes from the given lists; returns the
    folder names written (``half0A_valid``, ...)."""
    out = Path(out)
    written: list[str] = []
    halves = [(f"{s}", *random_half_classes(s, n_classes)) for s in seeds]
    if natural is not None or manmade is not None:
        if natural is None or manmade is None:
            raise ValueError("the natural/man-made split needs both --natural-classes and --manmade-classes")
        nat, man = read_indices(natural), read_indices(manmade)
        if sorted(nat + man) != list(range(n_classes)):
            raise ValueError(f"the natural and man-made class files must together hold 0..{n_classes - 1} once each")
        halves.append(("natman", nat, man))
    for tv, path in (("train", train_list), ("valid", valid_list)):
        if path is None:
            continue
        lines = read_list(path)
        for name, a, b in halves:
            for group, idx in (("A", a), ("B", b)):
                _write(out, f"half{name}{group}_{tv}", *half_lines(lines, idx), written)
        if tv == "train" and reduced:
            for n in REDUCED_SIZES:
                _write(out, f"reduced{n:04d}_train", reduced_lines(lines, n), None, written)
    return written


def check_md5(out, names) -> dict[str, bool | None]:
    """For each written folder: True/False against the release's MD5, None if it publishes none."""
    res = {}
    for name in names:
        want = RELEASE_MD5.get(name)
        got = hashlib.md5((Path(out) / name / "files.txt").read_bytes()).hexdigest()
        res[name] = None if want is None else got == want
    return res
