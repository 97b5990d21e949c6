"""The release's network names and what they mean: the one place that knows the grid's naming.

The release (``results/<net>/``) holds 170 networks:

==========================  ======================  ======================================
name                        kind                    trained on / loads
==========================  ======================  ======================================
``half<s><X>``              ``base``                half X of random split s (s = 0..3)
``halfnatman<X>``           ``natman_base``         natural (A) or man-made (B) classes
``netbase``                 ``full_imagenet_base``  all 1000 classes
``transfer<s><X><s><Y>_1_<n>``  ``selffer`` (X = Y) or ``transfer``; half Y, layers 1..n
                            from ``half<s><X>``, frozen
``transfer-ft<s><X><s><Y>_1_<n>``  ``selffer_ft`` / ``transfer_ft``: the same, fine-tuned
``transfernatman<X><Y>_1_<n>``  ``natman_transfer``: halfnatman Y, layers 1..n from
                            ``halfnatman<X>``, frozen
``nolearn_1_<n>``           ``random_frozen``       all 1000 classes; layers 1..n random and
                            frozen (1000-way chance, 0.001, is what its dead networks score)
``reduced-<NNNN>``          ``reduced``             the first NNNN training images of each
                            of the 1000 classes; validated on all 1000
==========================  ======================  ======================================

Datasets are named as ``data_prep splits`` names its lists: ``half<s><X>``, ``halfnatman<X>``,
``reduced<NNNN>`` (train only; validated on ``whole``) and ``whole``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Optional

# The eight learned layers, in order; a transfer network copies the first n of them.
LEARNED = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
SPLITS = (0, 1, 2, 3)
FT_SPLITS = (0, 1)  # the release fine-tuned splits 0 and 1 only
REDUCED = (1, 2, 5, 10, 25, 50, 100, 250, 500, 750, 1000, 1300)
KINDS = ("base", "natman_base", "full_imagenet_base", "selffer", "transfer", "selffer_ft", "transfer_ft",
         "natman_transfer", "random_frozen", "reduced")


@dataclass(frozen=True)
class Network:
    name: str
    kind: str
    n: Optional[int] = None          # layers copied (transfer), frozen (random_frozen), images/class (reduced)
    split: Optional[int] = None      # random split s
    base: Optional[str] = None       # the network whose weights are loaded
    train_set: str = "whole"         # dataset it is trained on
    val_set: str = "whole"           # dataset it is validated on
    fine_tune: bool = False          # copied layers keep learning (transfer-ft*)

    @property
    def frozen(self) -> int:
        """How many of the first learned layers have blobs_lr 0."""
        if self.kind in ("selffer", "transfer", "natman_transfer", "random_frozen"):
            return self.n or 0
        return 0

    @property
    def copied(self) -> int:
        """How many of the first learned layers start from the base network's weights."""
        return self.n or 0 if self.base else 0


_TRANSFER = re.compile(r"^transfer(-ft)?(\d)([AB])(\d)([AB])_1_(\d)$")
_NATMAN = re.compile(r"^transfernatman([AB])([AB])_1_(\d)$")


def classify(name: str) -> Network:
    """The network a release directory name stands for; ValueError for a name outside the grid."""
    m = re.fullmatch(r"half(\d)([AB])", name)
    if m:
        return Network(name, "base", split=int(m[1]), train_set=name, val_set=name)
    m = re.fullmatch(r"halfnatman([AB])", name)
    if m:
        return Network(name, "natman_base", train_set=name, val_set=name)
    if name == "netbase":
        return Network(name, "full_imagenet_base")
    m = _TRANSFER.fullmatch(name)
    if m:
        ft, s, x, s2, y, n = bool(m[1]), int(m[2]), m[3], int(m[4]), m[5], int(m[6])
        if s != s2 or not 1 <= n <= 7:
            raise ValueError(f"{name}: not a network of the grid (splits differ or n outside 1..7)")
        kind = ("selffer" if x == y else "transfer") + ("_ft" if ft else "")
        target = f"half{s}{y}"
        return Network(name, kind, n=n, split=s, base=f"half{s}{x}", train_set=target, val_set=target,
                       fine_tune=ft)
    m = _NATMAN.fullmatch(name)
    if m:
        x, y, n = m[1], m[2], int(m[3])
        if x == y or not 1 <= n <= 7:
            raise ValueError(f"{name}: not a network of the grid")
        return Network(name, "natman_transfer", n=n, base=f"halfnatman{x}", train_set=f"halfnatman{y}",
                       val_set=f"halfnatman{y}")
    m = re.fullmatch(r"nolearn_1_(\d)", name)
    if m and 1 <= int(m[1]) <= 7:
        return Network(name, "random_frozen", n=int(m[1]))
    m = re.fullmatch(r"reduced-(\d{4})", name)
    if m and int(m[1]) in REDUCED:
        return Network(name, "reduced", n=int(m[1]), train_set=f"reduced{m[1]}", val_set="whole")
    raise ValueError(f"{name!r} is not a network of the release's grid "
                     "(half<s><A|B>, halfnatman<A|B>, netbase, transfer[-ft]<s><X><s><Y>_1_<n>, "
                     "transfernatman<X><Y>_1_<n>, nolearn_1_<n>, reduced-<NNNN>)")


def release_names() -> Iterator[str]:
    """The 170 network names of the release, bases first (every base before its dependants)."""
    for s in SPLITS:
        for x in "AB":
            yield f"half{s}{x}"
    yield "halfnatmanA"
    yield "halfnatmanB"
    yield "netbase"
    for s in SPLITS:
        for x, y in (("A", "A"), ("A", "B"), ("B", "A")):
            for n in range(1, 8):
                yield f"transfer{s}{x}{s}{y}_1_{n}"
    for s in FT_SPLITS:
        for x, y in (("A", "A"), ("A", "B"), ("B", "A")):
            for n in range(1, 8):
                yield f"transfer-ft{s}{x}{s}{y}_1_{n}"
    for x, y in (("A", "B"), ("B", "A")):
        for n in range(1, 8):
            yield f"transfernatman{x}{y}_1_{n}"
    for n in range(1, 8):
        yield f"nolearn_1_{n}"
    for r in REDUCED:
        yield f"reduced-{r:04d}"


def release_networks() -> list[Network]:
    return [classify(n) for n in release_names()]
