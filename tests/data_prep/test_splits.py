"""splits on the release's whole_valid_files.txt vs the MD5 sums the release publishes."""
import hashlib

import pytest

from data_prep.__main__ import main
from data_prep.splits import RELEASE_MD5, half_lines, random_half_classes, reduced_lines
from tests._shared import require


@pytest.fixture(scope="module")
def ilsvrc12():
    return require("paper", "ilsvrc12")


def test_valid_splits_match_the_release(ilsvrc12, tmp_path, capsys):
    rc = main(["splits", "--valid-list", str(ilsvrc12 / "whole_valid_files.txt"), "--out", str(tmp_path),
               "--natural-classes", str(ilsvrc12 / "half_nat_idx.txt"),
               "--manmade-classes", str(ilsvrc12 / "half_man_idx.txt"), "--check"])
    assert rc == 0
    names = [f"half{s}{g}_valid" for s in ("0", "1", "2", "3", "natman") for g in "AB"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    for name in names:
        got = hashlib.md5((tmp_path / name / "files.txt").read_bytes()).hexdigest()
        assert got == RELEASE_MD5[name], name
    # the input itself is the release's whole_valid/files.txt
    assert hashlib.md5((ilsvrc12 / "whole_valid_files.txt").read_bytes()).hexdigest() == RELEASE_MD5["whole_valid"]
    idxmap = (tmp_path / "halfnatmanA_valid" / "idxmap.txt").read_text().splitlines()
    nat = [int(x) for x in (ilsvrc12 / "half_nat_idx.txt").read_text().split()]
    assert idxmap[0] == "# Orig_idx new_idx"
    assert [tuple(map(int, line.split())) for line in idxmap[1:]] == list(zip(sorted(nat), range(len(nat))))


def test_random_halves_partition_and_renumber():
    a, b = random_half_classes(0)
    assert len(a) == len(b) == 500 and sorted(a + b) == list(range(1000)) and a == sorted(a)
    lines = [(f"f{i}", c) for i, c in enumerate([a[3], b[0], a[0], a[3]])]
    files, idxmap = half_lines(lines, a)
    assert files == "f0 3\nf2 0\nf3 3\n"
    assert idxmap.splitlines()[1] == f"{a[0]} 0"


def test_reduced_keeps_the_first_n_per_class():
    lines = [("a", 0), ("b", 1), ("c", 0), ("d", 0), ("e", 1)]
    assert reduced_lines(lines, 2) == "a 0\nb 1\nc 0\ne 1\n"


def test_train_list_gives_halves_and_reduced_sets(tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text("".join(f"n{c:08d}/x{i}.JPEG {c}\n" for i in range(3) for c in range(1000)))
    assert main(["splits", "--train-list", str(lst), "--out", str(tmp_path / "out"), "--seeds", "0"]) == 0
    out = tmp_path / "out"
    assert (out / "half0A_train" / "idxmap.txt").exists()
    assert len((out / "reduced0002_train" / "files.txt").read_text().splitlines()) == 2000
    assert len((out / "reduced1000_train" / "files.txt").read_text().splitlines()) == 3000
