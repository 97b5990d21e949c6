"""lists on a tiny fake ImageNet, and the release's validation list re-made from its labels."""
import hashlib

from data_prep.__main__ import main
from data_prep.splits import RELEASE_MD5
from tests._shared import require


def _fake_imagenet(root):
    wnids = ["n02000000", "n01000000", "n03000000"]
    for w in wnids:
        d = root / "train" / w
        d.mkdir(parents=True)
        for i in (2, 10, 1):
            (d / f"{w}_{i}.JPEG").write_bytes(b"x")
        (d / "notes.txt").write_text("not an image")
    gt = root / "val_gt.txt"
    gt.write_text("ILSVRC2012_val_00000002.JPEG n03000000\nILSVRC2012_val_00000001.JPEG n01000000\n")
    return gt


def test_lists_on_a_fake_imagenet(tmp_path):
    gt = _fake_imagenet(tmp_path)
    assert main(["lists", "--train-dir", str(tmp_path / "train"), "--val-ground-truth", str(gt),
                 "--out", str(tmp_path / "out")]) == 0
    train = (tmp_path / "out" / "whole_train" / "files.txt").read_text()
    assert train == ("n01000000/n01000000_1.JPEG 0\nn01000000/n01000000_10.JPEG 0\n"
                     "n01000000/n01000000_2.JPEG 0\nn02000000/n02000000_1.JPEG 1\n"
                     "n02000000/n02000000_10.JPEG 1\nn02000000/n02000000_2.JPEG 1\n"
                     "n03000000/n03000000_1.JPEG 2\nn03000000/n03000000_10.JPEG 2\n"
                     "n03000000/n03000000_2.JPEG 2\n")
    valid = (tmp_path / "out" / "whole_valid" / "files.txt").read_text()
    assert valid == "ILSVRC2012_val_00000001.JPEG 0\nILSVRC2012_val_00000002.JPEG 2\n"


def test_devkit_ground_truth(tmp_path):
    _fake_imagenet(tmp_path)
    (tmp_path / "devkit_wnids.txt").write_text("n03000000\nn01000000\nn02000000\n")
    (tmp_path / "gt.txt").write_text("3\n1\n2\n")
    assert main(["lists", "--train-dir", str(tmp_path / "train"), "--val-ground-truth",
                 str(tmp_path / "gt.txt"), "--devkit-wnids", str(tmp_path / "devkit_wnids.txt"),
                 "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "whole_valid" / "files.txt").read_text() == (
        "ILSVRC2012_val_00000001.JPEG 1\nILSVRC2012_val_00000002.JPEG 2\nILSVRC2012_val_00000003.JPEG 0\n")


def test_release_valid_list_from_wnid_labels(tmp_path):
    il = require("paper", "ilsvrc12")
    wnids = [line.split()[0] for line in (il / "synsets.txt").read_text().splitlines()]
    rows = [line.split() for line in (il / "whole_valid_files.txt").read_text().splitlines()]
    gt = tmp_path / "gt.txt"
    gt.write_text("".join(f"{f} {wnids[int(c)]}\n" for f, c in reversed(rows)))
    assert main(["lists", "--synsets", str(il / "synsets.txt"), "--val-ground-truth", str(gt),
                 "--out", str(tmp_path / "out")]) == 0
    got = (tmp_path / "out" / "whole_valid" / "files.txt").read_bytes()
    assert hashlib.md5(got).hexdigest() == RELEASE_MD5["whole_valid"]
