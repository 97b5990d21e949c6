"""``python -m data_prep synth``: the procedural mini-ImageNet is reproducible, in the ILSVRC layout
that ``lists`` / ``splits`` / ``pack`` read, and built as the demo needs it (shared parts, class-
specific compositions)."""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import __main__ as cli
from data_prep.lists import write_lists
from data_prep.splits import random_half_classes, read_list
from data_prep.synth import SynthSpec, make_classes, render, write_synth

SMALL = SynthSpec(classes=6, train_per_class=5, valid_per_class=3, seed=3)


def _digest(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "a"
    write_synth(out, SMALL, progress=False)
    return out


def test_same_arguments_same_bytes_other_seed_other_images(small, tmp_path):
    write_synth(tmp_path / "b", SMALL, progress=False)
    assert _digest(small) == _digest(tmp_path / "b")
    write_synth(tmp_path / "c", SynthSpec(**{**SMALL.__dict__, "seed": 4}), progress=False)
    other = _digest(tmp_path / "c")
    same = [k for k, v in _digest(small).items() if k.endswith(".JPEG") and other.get(k) == v]
    assert not same


def test_ilsvrc_layout_and_lists(small, tmp_path):
    wnids = (small / "synsets.txt").read_text().split()
    assert len(wnids) == 6 and sorted(wnids) == wnids
    assert sorted(p.name for p in (small / "train").iterdir()) == wnids
    for w in wnids:
        assert len(list((small / "train" / w).glob("*.JPEG"))) == 5
    vals = sorted(p.name for p in (small / "val").iterdir())
    assert vals == [f"ILSVRC2012_val_{k:08d}.JPEG" for k in range(1, 19)]
    # `lists` on the folders gives exactly the train.txt / val.txt that synth wrote
    write_lists(tmp_path, train_dir=small / "train", ground_truth=small / "val_ground_truth.txt")
    assert (tmp_path / "whole_train" / "files.txt").read_bytes() == (small / "train.txt").read_bytes()
    assert (tmp_path / "whole_valid" / "files.txt").read_bytes() == (small / "val.txt").read_bytes()
    labels = Counter(label for _, label in read_list(small / "val.txt"))
    assert labels == {c: 3 for c in range(6)}
    img = Image.open(small / "train" / wnids[0] / f"{wnids[0]}_1.JPEG")
    assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (32, 32))


def test_classes_share_parts_but_not_compositions():
    spec = SynthSpec()
    vocab, classes = make_classes(spec)
    assert len(classes) == 40 and len(vocab) == spec.vocabulary
    uses = Counter(p for c in classes for p in c.parts)
    assert set(uses) <= set(vocab)
    # low-level parts are shared: every part that is used at all is used by several classes
    assert min(uses.values()) >= 3, uses
    # and both random halves draw on the same vocabulary
    a, b = random_half_classes(0, 40)
    parts_a = {p for i in a for p in classes[i].parts}
    parts_b = {p for i in b for p in classes[i].parts}
    assert len(parts_a & parts_b) >= spec.vocabulary - 2
    # what makes a class is its composition: parts and arrangement (a few classes share all three
    # parts and differ in their arrangement only)
    assert len({(c.parts, c.offsets) for c in classes}) == 40
    assert len({frozenset(c.parts) for c in classes}) >= 35


def test_render_places_the_composition(small):
    vocab, classes = make_classes(SMALL)
    rng = np.random.RandomState(0)
    img = render(classes[0], vocab, SynthSpec(**{**SMALL.__dict__, "noise": 0.0, "distractors": 0.0}), rng)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    # each of the class's part colours is present (the background is grey-ish, parts are saturated)
    from data_prep.synth import COLOURS
    for p in classes[0].parts:
        want = np.asarray(COLOURS[p.colour]) * 255
        assert np.min(np.abs(img.reshape(-1, 3).astype(float) - want).max(axis=1)) < 40, p


def test_errors(small, tmp_path):
    with pytest.raises(FileExistsError, match="already holds"):
        write_synth(small, SMALL, progress=False)
    with pytest.raises(ValueError, match="at least 2 classes"):
        write_synth(tmp_path / "x", SynthSpec(classes=1), progress=False)
    with pytest.raises(SystemExit, match="already holds"):
        cli.main(["synth", "--out", str(small), "--classes", "6", "--quiet"])


def test_splits_of_a_40_class_set(tmp_path, capsys):
    """`splits` takes the class count from the lists and halves it with the release's rule."""
    lines = "".join(f"n9{c:07d}/x_{k}.JPEG {c}\n" for c in range(40) for k in range(2))
    (tmp_path / "train.txt").write_text(lines)
    assert cli.main(["splits", "--train-list", str(tmp_path / "train.txt"), "--out", str(tmp_path / "s"),
                     "--seeds", "0", "--no-reduced"]) == 0
    assert "40 classes: not ImageNet's, no MD5 to check" in capsys.readouterr().out
    a, b = random_half_classes(0, 40)
    idx = (tmp_path / "s" / "half0A_train" / "idxmap.txt").read_text().splitlines()[1:]
    assert [int(line.split()[0]) for line in idx] == a
    got = read_list(tmp_path / "s" / "half0B_train" / "files.txt")
    assert sorted({int(f.split("/")[0][2:]) for f, _ in got}) == b
    assert sorted({label for _, label in got}) == list(range(20))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_families_share_few_parts_random_halves_share_all(seed):
    """The natural / man-made analogue: the families' halves share ``family_shared`` parts (2 of 14),
    measured from the class definitions; the random halves mix both families and share (nearly) all."""
    from data_prep.synth import family_indices
    spec = SynthSpec(seed=seed)
    vocab, classes = make_classes(spec)
    nat, man = family_indices(classes)
    assert nat == list(range(0, 40, 2)) and man == list(range(1, 40, 2))
    parts = [{p for i in fam for p in classes[i].parts} for fam in (nat, man)]
    assert len(parts[0] & parts[1]) <= spec.family_shared
    assert len(parts[0] | parts[1]) >= spec.vocabulary - 1
    palettes = [{vocab[i] for i in classes[fam[0]].palette} for fam in (nat, man)]
    assert len(palettes[0] & palettes[1]) == spec.family_shared and all(len(p) == 8 for p in palettes)
    a, b = random_half_classes(0, 40)
    parts_a = {p for i in a for p in classes[i].parts}
    parts_b = {p for i in b for p in classes[i].parts}
    assert len(parts_a & parts_b) >= spec.vocabulary - 2 > 3 * spec.family_shared
    # one family: the data set as before families (every class may use every part)
    vocab1, classes1 = make_classes(SynthSpec(seed=seed, families=1))
    assert vocab1 == vocab and {c.family for c in classes1} == {0}


def test_family_index_files_and_distractors(small):
    nat = [int(x) for x in (small / "half_nat_idx.txt").read_text().split()]
    man = [int(x) for x in (small / "half_man_idx.txt").read_text().split()]
    assert nat == [0, 2, 4] and man == [1, 3, 5]
    vocab, classes = make_classes(SMALL)
    # an image's distractors come from its family's parts only: with six distractors an image, a
    # colour no part of the family has (green here) never appears
    spec = SynthSpec(**{**SMALL.__dict__, "noise": 0.0, "distractors": 6.0})
    from data_prep.synth import COLOURS
    c = classes[1]
    allowed = {vocab[i].colour for i in c.palette}
    banned = {col for col in COLOURS if col not in allowed}
    rng = np.random.RandomState(0)
    img = np.concatenate([render(c, vocab, spec, rng).reshape(-1, 3) for _ in range(20)]).astype(float)
    for col in banned:
        want = np.asarray(COLOURS[col]) * 255
        assert np.min(np.abs(img - want).max(axis=1)) > 25, col
