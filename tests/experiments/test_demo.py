"""``python -m replicate demo`` (``make demo``): the whole pipeline on a tiny synthetic set, its
Figure 2 table and verdict, and a second run that redoes nothing.  The demo's real numbers (40
classes, 1,200 iterations) are measured by ``make demo`` itself and recorded in the README."""
from __future__ import annotations

import csv
import time

import pytest

from replicate.experiments import demo


def _row(net, kind, n, v):
    return {"net": net, "kind": kind, "n": "" if n is None else str(n), "top1_mean_best10": f"{v:.6f}"}


def _rows(anb_top=0.5, ft=0.9):
    rows = [_row("half0A", "base", None, 0.8), _row("half0B", "base", None, 0.6)]
    for n in range(1, 8):
        rows += [_row(f"transfer0A0A_1_{n}", "selffer", n, 0.8 - 0.01 * n),
                 _row(f"transfer-ft0A0A_1_{n}", "selffer_ft", n, ft),
                 _row(f"transfer0B0A_1_{n}", "transfer", n, 0.85 if n < 6 else anb_top),
                 _row(f"transfer-ft0B0A_1_{n}", "transfer_ft", n, ft + 0.01)]
    return rows


def test_table_rows_per_n_and_the_target_base():
    lines = demo.table_markdown(_rows()).splitlines()
    assert lines[0] == "| n | baseB | BnB | BnB+ | AnB | AnB+ |"
    assert lines[2] == "| 0 | 0.800 |  |  |  |  |"  # the target half's base, not the mean of both bases
    assert lines[3] == "| 1 |  | 0.790 | 0.900 | 0.850 | 0.910 |"
    assert lines[9] == "| 7 |  | 0.730 | 0.900 | 0.500 | 0.910 |"


@pytest.mark.parametrize("anb_top, ft, expect", [(0.5, 0.9, [True, True, True]),
                                                 (0.81, 0.9, [False, True, True]),
                                                 (0.5, 0.7, [True, False, False])])
def test_verdict(anb_top, ft, expect):
    got = demo.verdict(_rows(anb_top, ft))
    assert [ok for _, ok, _ in got] == expect
    assert "AnB n=7: " + f"{anb_top:.3f}" in got[0][2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "d"
    args = ["--out", str(out), "--classes", "4", "--train-per-class", "6", "--valid-per-class", "3",
            "--max-iter", "3", "--test-iter", "1", "--workers", "2", "--quiet"]
    assert demo.main(args) == 0
    return out, args


def test_tiny_demo_end_to_end(tiny):
    out, _ = tiny
    rows = list(csv.DictReader((out / "report" / "results.csv").open(newline="")))
    assert len(rows) == 30 and {r["last_iter"] for r in rows} == {"3"}
    by = {r["net"]: r["top1_mean_best10"] for r in rows}
    text = (out / "report" / "demo.md").read_text()
    # the table holds results.csv's numbers (one network per cell here)
    for n in range(1, 8):
        cells = [by[f"transfer0A0A_1_{n}"], by[f"transfer-ft0A0A_1_{n}"], by[f"transfer0B0A_1_{n}"],
                 by[f"transfer-ft0B0A_1_{n}"]]
        assert f"| {n} |  | " + " | ".join(f"{float(c):.3f}" for c in cells) + " |" in text
    assert f"| 0 | {float(by['half0A']):.3f} |" in text
    for f in ("figure2_lines.png", "figure2_points.png"):
        assert (out / "report" / "demo" / f).stat().st_size > 10000
    # the data went through the real tools: two halves of 2 classes, LMDBs and means
    for half in ("half0A", "half0B"):
        assert len((out / "lists" / f"{half}_train" / "files.txt").read_text().splitlines()) == 12
        assert (out / "data" / f"{half}_mean.binaryproto").is_file()


def test_second_run_redoes_nothing(tiny, capsys):
    out, args = tiny
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.caffemodel")}
    t = time.monotonic()
    assert demo.main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("already there") == 5  # synth and the four databases
    assert "start on CPU" not in printed
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.caffemodel")} == before
    print(f"second run: {time.monotonic() - t:.1f} s")


def test_other_settings_in_the_same_folder_are_refused(tiny):
    out, args = tiny
    with pytest.raises(SystemExit, match="other settings"):
        demo.main([a if a != "6" else "7" for a in args])
