"""The sweep's BLAS mode: passed to every trainer, written into DONE, the logs' headers, results.csv
and the report; a plan does not mix modes unless --allow-mixed-blas.  Uses test_sweep's tiny plan."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from replicate.experiments import logparse, report, sweep
from tests.experiments.test_sweep import FINAL, MAX_ITER, PREFIX, _copy, template  # noqa: F401 (fixture)


def _done(plan: Path, name: str) -> dict:
    return json.loads((plan / name / "DONE").read_text())


def test_mode_recorded_and_mixing_refused(template, tmp_path, capsys):  # noqa: F811
    plan = _copy(template, tmp_path / "plan")
    assert sweep.main([str(plan), "--nets", "half0A", "--blas", "fast"]) == 0
    assert _done(plan, "half0A")["blas"] == "fast"
    assert json.loads((plan / "sweep_status.json").read_text())["blas"] == "fast"
    logs = sorted((plan / "half0A" / "logs").glob("*.log"))
    assert [logparse.blas_mode(p) for p in logs] == ["fast"]
    assert sweep.recorded_blas(plan / "half0A", {"name": "half0A", "max_iter": MAX_ITER,
                                                 "snapshot_prefix": PREFIX}) == ["fast"]

    # the default on CPU is exact: the plan holds a fast network, so the sweep refuses, trains nothing
    capsys.readouterr()
    assert sweep.main([str(plan), "--nets", "half0A,transfer0A0B_1_1"]) == 2
    err = capsys.readouterr().err
    assert "BLAS mode exact" in err and "half0A (fast)" in err and "--allow-mixed-blas" in err
    assert not (plan / "transfer0A0B_1_1" / "logs").exists()

    assert sweep.main([str(plan), "--nets", "half0A,transfer0A0B_1_1", "--allow-mixed-blas"]) == 0
    assert _done(plan, "transfer0A0B_1_1")["blas"] == "exact"
    log = next((plan / "transfer0A0B_1_1" / "logs").glob("*.log")).read_text()
    assert log.splitlines()[0].split("] ", 1)[1].startswith("BLAS mode: exact (")

    out = tmp_path / "report"
    assert report.main([str(plan), "--out", str(out), "--no-figures", "--no-reference", "--output", "acc"]) == 0
    rows = {r["net"]: r for r in csv.DictReader((out / "results.csv").open(newline=""))}
    assert rows["half0A"]["blas"] == "fast" and rows["transfer0A0B_1_1"]["blas"] == "exact"
    assert "BLAS modes: MIXED" in (out / "results.md").read_text()

    # one mode throughout: a plain column and line
    plan2 = _copy(template, tmp_path / "plan2")
    assert sweep.main([str(plan2), "--nets", "half0A", "--blas", "exact"]) == 0
    assert sweep.main([str(plan2), "--nets", "half0A"]) == 0  # exact again: skipped, no complaint
    out2 = tmp_path / "report2"
    assert report.main([str(plan2), "--out", str(out2), "--no-figures", "--no-reference", "--output", "acc"]) == 0
    assert "BLAS mode: exact (all 1 networks)." in (out2 / "results.md").read_text()


def test_unknown_and_part_trained_modes(template, tmp_path):  # noqa: F811
    """A DONE from before modes were recorded (no header in its logs) counts as unknown; a
    part-trained network counts by its logs' headers."""
    plan = _copy(template, tmp_path / "plan")
    nets = sweep.load_plan(plan)
    net = next(n for n in nets if n["name"] == "half0B")
    d = plan / "half0B"
    (d / FINAL).write_bytes(b"x")
    (d / "logs").mkdir()
    (d / "logs" / "20260101-000000-attempt1.log").write_text("I0101 00:00:00.000000  1 caffe.cpp:197] Use CPU.\n")
    (d / "DONE").write_text(json.dumps({"final_iter": MAX_ITER, "fingerprint": sweep.fingerprint(d, net)}))
    assert sweep.recorded_blas(d, net) == ["unknown"]
    assert sweep.mixed_blas(plan, nets, "exact") == ["half0B (unknown)"]

    d2 = plan / "half0A"
    (d2 / f"{PREFIX}_iter_4.solverstate").write_bytes(b"s")
    (d2 / f"{PREFIX}_iter_4.caffemodel").write_bytes(b"m")
    (d2 / "logs").mkdir()
    (d2 / "logs" / "20260101-000000-attempt1.log").write_text(
        "I0101 00:00:00.000000  1 caffe.cpp:0] BLAS mode: fast (gemm/gemv on torch)\n")
    net_a = next(n for n in nets if n["name"] == "half0A")
    assert sweep.recorded_blas(d2, net_a) == ["fast"]
    assert sweep.mixed_blas(plan, nets, "fast") == ["half0B (unknown)"]
    assert sorted(sweep.mixed_blas(plan, nets, "exact")) == ["half0A (fast)", "half0B (unknown)"]
