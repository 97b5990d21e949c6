"""plan -> sweep -> report end to end on the mini CaffeNet of `plan --preset mini` (LRN, grouped
convolution, ceil pooling, dropout, random crop and mirror): 2 bases and their transfer networks at
n = 1..2, on the local engine and on a real local Ray cluster, from scratch and with a trainer or a
Ray worker killed mid-network.  A killed network must end with the same bytes as an uninterrupted
one (exact resume through the `.resume` sidecar)."""
from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from data_prep.mean import write_mean
from replicate.experiments import report, sweep
from replicate.experiments.plan import PRESETS, write_plan
from tests._shared import random_image_db
from tests.experiments.faults import inject

NETS = "transfer0A0B_1_1,transfer0A0B_1_2,transfer0B0A_1_1,transfer0B0A_1_2"
EXPECTED = ["half0A", "half0B", "transfer0A0B_1_1", "transfer0A0B_1_2", "transfer0B0A_1_1", "transfer0B0A_1_2"]
# 10 iterations of batch 8 over 36 images (the DB position at each snapshot is not 0), tests every
# 5 iterations, snapshots every 4: a kill after snapshot 4 resumes mid-epoch.
SCALE = replace(PRESETS["mini"], max_iter=10, batch_size=8, test_batch_size=10, test_iter=2, test_interval=5,
                snapshot=4, display=1, num_classes=4, width=0.0625)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for k, half in enumerate(("half0A", "half0B")):
        for tv, n in (("train", 36), ("valid", 20)):
            (root / f"{half}_{tv}_src").mkdir()
            db = random_image_db(root / f"{half}_{tv}_src", root / f"{half}_{tv}_lmdb", n=n, size=32, classes=4,
                                 seed=10 * k + (tv == "valid"))
            if tv == "train":
                write_mean(db, root / f"{half}_mean.binaryproto")
    return root


def _plan(tmp_path: Path, data_root: Path, name: str) -> Path:
    return write_plan(tmp_path / name, data_root, nets=NETS, scale=SCALE, check_data=True)


def _finals(plan_dir: Path) -> dict:
    return {n: (plan_dir / n / "caffe_imagenet_train_iter_10.caffemodel").read_bytes() for n in EXPECTED}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root):
    """An uninterrupted local sweep of the tiny plan."""
    plan = _plan(tmp_path_factory.mktemp("ref"), data_root, "plan")
    assert sweep.main([str(plan), "--workers", "2"]) == 0
    return plan


def test_local_sweep_from_scratch(reference):
    assert [n["name"] for n in sweep.load_plan(reference)] == EXPECTED
    for n in EXPECTED:
        assert (reference / n / "DONE").is_file(), n
    # transfer networks loaded their base: frozen layers keep the base's final weights bit for bit
    from prototxt_like.io import caffemodel_weights
    base = caffemodel_weights(str(reference / "half0A" / "caffe_imagenet_train_iter_10.caffemodel"))
    t2 = caffemodel_weights(str(reference / "transfer0A0B_1_2" / "caffe_imagenet_train_iter_10.caffemodel"))
    for layer in ("conv1", "conv2"):
        for a, b in zip(base[layer], t2[layer]):
            assert a.tobytes() == b.tobytes(), layer
    assert "conv3-new" in t2 and "conv3" not in t2
    # idempotent: a second sweep skips everything and changes nothing
    before = _finals(reference)
    assert sweep.main([str(reference)]) == 0
    assert _finals(reference) == before


def test_report_on_the_sweep(reference, tmp_path):
    out = tmp_path / "report"
    assert report.main([str(reference), "--out", str(out), "--no-reference"]) == 0
    rows = list(csv.DictReader((out / "results.csv").open(newline="")))
    assert [r["net"] for r in rows] == EXPECTED
    for r in rows:
        assert r["last_iter"] == "10" and r["tests"] == "2", r
        assert 0.0 <= float(r["top1_mean_best10"]) <= 1.0
    assert (out / "figure2_lines.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("engine,fault", [("local", "trainer"), ("ray", "supervisor")])
def test_sweep_after_a_kill_matches(reference, data_root, tmp_path, monkeypatch, engine, fault):
    plan = _plan(tmp_path, data_root, "plan")
    inject(monkeypatch, tmp_path, "transfer0A0B_1_2", 4, fault)
    args = [str(plan), "--engine", engine, "--workers", "2"]
    try:
        assert sweep.main(args) == 0
    finally:
        if engine == "ray":
            import ray
            ray.shutdown()
    logs = sorted((plan / "transfer0A0B_1_2" / "logs").glob("*.log"))
    assert len(logs) == 2, "the killed network was not retried"
    assert "Exact resume from" in logs[1].read_text()
    assert _finals(plan) == _finals(reference)
