"""``python -m replicate report``: log parsing, the reference's statistics, results.md and figures."""
import gzip
from pathlib import Path

import pytest

from replicate.experiments import figures, logparse, report
from replicate.experiments.__main__ import main as dispatch
from tests._shared import require

LOGGED = ("half0A", "half0B", "halfnatmanA", "transfer-ft0A0B_1_3", "transfer0A0B_1_3")


def _csv_lines(path: Path) -> dict:
    """{net: the row's exact text} of a CSV file, header under 'net'."""
    return {line.split(",", 1)[0]: line for line in path.read_bytes().decode().splitlines(keepends=True)}


# -- 1. the release's logs give their rows of reference_results.csv ---------------------------

def test_release_logs_reproduce_reference_rows(tmp_path, capsys):
    logs = require("paper", "logs")
    ref = require("paper", "reference_results.csv")
    assert sorted(p.name for p in logs.iterdir() if p.is_dir()) == sorted(LOGGED)
    assert report.main([str(logs), "--out", str(tmp_path), "--no-figures", "--reference", str(ref)]) == 0
    ours, paper = _csv_lines(tmp_path / "results.csv"), _csv_lines(ref)
    assert ours["net"] == paper["net"]  # same header, same line ends
    assert sorted(ours) == sorted(("net",) + LOGGED)
    for net in LOGGED:
        assert ours[net] == paper[net], net
    md = (tmp_path / "results.md").read_text()
    for net in LOGGED:
        assert f"| {net} |" in md and md.split(f"| {net} |")[1].split("\n")[0].endswith("| +0.000000 |")


def test_restarted_log_later_file_wins():
    """transfer-ft0A0B_1_3 restarted from scratch inside its first file (iterations 1000..12000
    logged twice); the second run's values are the ones kept."""
    d = require("paper", "logs", "transfer-ft0A0B_1_3")
    files = logparse.log_files(d)
    assert [f.name.split(".")[1] for f in files] == ["o251884", "o252602", "o253018", "o257920", "o258007",
                                                      "o258295"]
    first = logparse.parse_file(files[0])
    at_1000 = [t.value() for t in first if t.iteration == 1000]
    assert len(at_1000) == 2 and at_1000[0] != at_1000[1]
    series = dict(logparse.accuracy_series(files))
    assert series[1000] == at_1000[1]
    assert sorted(series) == list(range(1000, 450001, 1000))


# -- 2. Figure 2's means from the reference rows ------------------------------------------------

def test_figure2_data_reproduces_figure2_means(tmp_path):
    ref = require("paper", "reference_results.csv")
    means_csv = require("paper", "figure2_means.csv")
    rows = report.read_csv(ref)
    expected = report.read_csv(means_csv)
    data = figures.figure2_data(rows)
    counts = figures.group_means(rows, figures.FIG2_KINDS)
    assert {(k, n) for k in data for n in data[k]} == {(r["kind"], int(r["n"])) for r in expected}
    for r in expected:
        k, n = r["kind"], int(r["n"])
        assert f"{data[k][n]:.6f}" == r["mean_top1"], (k, n)
        assert counts[k][n][1] == int(r["count"]), (k, n)
    report.write_csv(figures.summary_rows(rows, figures.FIG2_KINDS), tmp_path / "f2.csv",
                     ("kind", "n", "mean_top1", "count"), "\n")
    assert (tmp_path / "f2.csv").read_bytes() == means_csv.read_bytes()


def test_grouping_rules_are_pinned():
    """A wrong rule (one split only, float32, base of one half, BnA left out) misses figure2_means."""
    import numpy as np
    ref = require("paper", "reference_results.csv")
    rows = report.read_csv(ref)
    data = figures.figure2_data(rows)
    assert data["base"][0] == pytest.approx(np.mean([float(r["top1_mean_best10"]) for r in rows
                                                     if r["kind"] == "base"]))
    only_anb = [r for r in rows if not (r["kind"] == "transfer" and r["net"][9] == "B")]
    assert f"{figures.figure2_data(only_anb)['transfer'][7]:.6f}" != f"{data['transfer'][7]:.6f}"


# -- 3. parsing ------------------------------------------------------------------------------

OLD = """\
I0403 06:46:22.569109 23304 solver.cpp:217] Iteration 980, lr = 0.01
I0403 07:15:12.976109 23304 solver.cpp:96] Iteration 1000, Testing net
I0403 07:17:23.362350 23304 solver.cpp:123] Test score #0: 0.0389203
I0403 07:17:23.375859 23304 solver.cpp:123] Test score #1: 5.3778
some stray text that is not a glog line
I0403 07:46:48.524282 23304 solver.cpp:96] Iteration 2000, Testing net
I0403 07:48:58.427521 23304 solver.cpp:123] Test score #0: 0.11168
I0403 07:48:58.440526 23304 solver.cpp:123] Test score #1: 4.52266
I0403 07:50:00.000000 23304 solver.cpp:217] Iteration 2020, lr = 0.01
I0403 07:50:01.000000 23304 solver.cpp:123] Test score #0: 0.9
"""

NEW = """\
I1127 17:20:14.500000   828 solver.cpp:289] Solving CaffeNet
I1127 17:20:14.593000   828 solver.cpp:347] Iteration 0, Testing net (#0)
I1127 17:20:14.593100   830 data_layer.cpp:73] Restarting data prefetching from start.
I1127 17:20:14.593364   828 solver.cpp:414]     Test net output #0: accuracy = 0.001
I1127 17:20:14.593364   828 solver.cpp:414]     Test net output #1: loss = 6.9 (* 1 = 6.9 loss)
I1127 17:21:14.593364   828 solver.cpp:239] Iteration 20 (1.2 iter/s, 16.6s/20 iters), loss = 6.8
I1127 17:22:14.500000   828 solver.cpp:347] Iteration 20, Testing net (#0)
I1127 17:22:14.593364   828 solver.cpp:414]     Test net output #0: loss = 6.1 (* 1 = 6.1 loss)
I1127 17:22:14.593364   828 solver.cpp:414]     Test net output #1: accuracy = 0.375
I1127 17:22:14.600000   828 solver.cpp:347] Iteration 20, Testing net (#1)
I1127 17:22:14.693364   828 solver.cpp:414]     Test net output #0: loss = 9 (* 1 = 9 loss)
I1127 17:22:14.693364   828 solver.cpp:414]     Test net output #1: accuracy = 0.999
I1127 17:23:14.500000   828 solver.cpp:347] Iteration 40, Testing net (#0)
I1127 17:23:14.600000   828 solver.cpp:396] Test interrupted.
"""


def _write(path: Path, text: str, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


def test_old_form(tmp_path):
    f = _write(tmp_path / "a.log", OLD)
    assert logparse.accuracy_series([f]) == [(1000, 0.0389203), (2000, 0.11168)]
    assert logparse.accuracy_series([f], output=1) == [(1000, 5.3778), (2000, 4.52266)]


def test_new_form_picks_accuracy_by_name(tmp_path):
    f = _write(tmp_path / "a.log", NEW)
    assert logparse.accuracy_series([f]) == [(20, 0.375)]
    assert logparse.accuracy_series([f], include_initial=True) == [(0, 0.001), (20, 0.375)]
    assert logparse.accuracy_series([f], output="loss") == [(20, 6.1)]
    assert logparse.accuracy_series([f], output=0) == [(20, 6.1)]
    assert logparse.accuracy_series([f], net=1) == [(20, 0.999)]
    assert report.parse_output("#1") == 1 and report.parse_output("accuracy") == "accuracy"


def test_split_files_later_wins_in_natural_order(tmp_path):
    d = tmp_path / "half0A"
    test = "I1127 17:22:14.5 828 solver.cpp:347] Iteration {i}, Testing net (#0)\n" \
           "I1127 17:22:14.6 828 solver.cpp:414]     Test net output #0: accuracy = {v}\n"
    _write(d / "logs" / "20261127-100000-attempt2.log", test.format(i=1000, v=0.2) + test.format(i=2000, v=0.3))
    _write(d / "logs" / "20261127-100000-attempt10.log", test.format(i=2000, v=0.35) + test.format(i=3000, v=0.4))
    _write(d / "logs" / "20261127-100000-attempt1.txt", test.format(i=1000, v=0.1))
    _write(d / "notes.md", test.format(i=9000, v=0.9))  # not a log file
    files = logparse.log_files(d)
    assert [f.name for f in files] == ["20261127-100000-attempt1.txt", "20261127-100000-attempt2.log",
                                       "20261127-100000-attempt10.log"]
    assert logparse.accuracy_series(files) == [(1000, 0.2), (2000, 0.35), (3000, 0.4)]
    row = report.summarise(logparse.accuracy_series(files), best=2)
    assert row == {"top1_mean_best10": "0.375000", "top1_final": "0.400000", "tests": "3",
                   "last_iter": "3000", "top1_max": "0.400000"}


def test_gz_and_truncation(tmp_path):
    full = _write(tmp_path / "x.o1.gz", OLD, gz=True)
    assert logparse.accuracy_series([full]) == [(1000, 0.0389203), (2000, 0.11168)]
    # a log cut off while a line was being written: the partial value is not read as 0.11
    cut = OLD[: OLD.index("0.11168") + 4]
    assert logparse.accuracy_series([_write(tmp_path / "cut.log", cut)]) == [(1000, 0.0389203)]
    # a gzip stream cut short: what is intact is read, no error
    blob = gzip.compress((OLD * 50).encode(), compresslevel=1)
    (tmp_path / "short.gz").write_bytes(blob[: len(blob) // 2])
    text = logparse.read_text(tmp_path / "short.gz")
    assert text.endswith("\n") and (OLD * 50).startswith(text)
    assert logparse.accuracy_series([tmp_path / "short.gz"]) == [(1000, 0.0389203), (2000, 0.11168)]


def test_golden_log_eight_digit_date():
    log = require("golden", "solver", "train.log")
    assert logparse.accuracy_series([log]) == [(20, 0.125), (40, 0.791667), (60, 0.833333)]
    assert logparse.accuracy_series([log], include_initial=True)[0] == (0, 0.375)
    assert logparse.accuracy_series([log], output="loss")[-1] == (60, 0.452059)


# -- 4. results.md and figures ---------------------------------------------------------------

def _fake_results(root: Path) -> None:
    test = "I1127 17:22:14.5 828 solver.cpp:347] Iteration {i}, Testing net (#0)\n" \
           "I1127 17:22:14.6 828 solver.cpp:414]     Test net output #0: accuracy = {v}\n"
    nets = {"half0A": 0.60, "half0B": 0.62, "transfer0A0B_1_1": 0.61, "transfer0B0A_1_1": 0.63,
            "transfer0A0A_1_2": 0.5, "transfer-ft0A0B_1_2": 0.64, "transfernatmanAB_1_1": 0.4,
            "halfnatmanB": 0.45, "nolearn_1_1": 0.3, "netbase": 0.55, "reduced-0010": 0.01, "reduced-1000": 0.5}
    for net, top in nets.items():
        text = "".join(test.format(i=i * 1000, v=round(top - 0.001 * (12 - i), 6)) for i in range(0, 13))
        _write(root / net / "logs" / "20261127-100000-attempt1.log", text)
    (root / "half1A" / "logs").mkdir(parents=True)
    _write(root / "half1A" / "logs" / "x.log", "I1127 17:22:14.5 828 solver.cpp:289] Solving CaffeNet\n")
    (root / "scratch").mkdir()


def test_markdown_and_figures(tmp_path, capsys):
    res, out = tmp_path / "results", tmp_path / "out"
    _fake_results(res)
    ref = tmp_path / "ref.csv"
    ref.write_text("net,kind,n,top1_mean_best10,top1_final,tests,last_iter\n"
                   "half0A,base,,0.600000,0.600000,450,450000\n"
                   "transfer0A0B_1_1,transfer,1,0.612345,0.610000,450,450000\n")
    assert dispatch(["report", str(res), "--out", str(out), "--best", "3", "--reference", str(ref)]) == 0
    captured = capsys.readouterr()
    assert "scratch" in captured.err and "half1A: no results" in captured.err
    rows = report.read_csv(out / "results.csv")
    assert [r["net"] for r in rows] == sorted(r["net"] for r in rows) and len(rows) == 12
    half0a = next(r for r in rows if r["net"] == "half0A")
    # the 3 best of 0.588..0.600 (the iteration-0 test left out): 0.598, 0.599, 0.600
    assert half0a == {"net": "half0A", "kind": "base", "n": "", "top1_mean_best10": "0.599000",
                      "top1_final": "0.600000", "tests": "12", "last_iter": "12000"}
    md = (out / "results.md").read_text()
    table = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines()
             if line.startswith("| ") and " | " in line}
    for r in rows:
        assert r["net"] in table
    assert table["half0A"].endswith("| 0.599000 | 0.600000 | -0.001000 |")
    assert table["transfer0A0B_1_1"].endswith("| 0.609000 | 0.612345 | -0.003345 |")
    assert table["half0B"].endswith("| 0.619000 | — | — |")
    assert "## No results" in md and "- half1A" in md and "- scratch" in md
    # summary: transfer n=1 is the mean of AnB and BnA
    summary = report.read_csv(out / "summary.csv")
    assert {"kind": "transfer", "n": "1", "mean_top1": "0.619000", "count": "2"} in summary
    assert figures.figure2_data(rows)["transfer"][1] == pytest.approx(0.619)
    assert figures.figure3_data(rows)["natman_AnB"] == {0: 0.449, 1: 0.399}
    assert figures.reduced_data(rows) == {10: 0.009, 1000: 0.499}
    for stem in ("figure2_points", "figure2_lines", "figure3", "reduced"):
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
        pdf = (out / f"{stem}.pdf").read_bytes()
        assert pdf[:5] == b"%PDF-" and b"%%EOF" in pdf[-32:], stem
        assert str(out / f"{stem}.png") in captured.out


def test_statistic_and_missing_figures(tmp_path, capsys):
    res, out = tmp_path / "results", tmp_path / "out"
    _write(res / "half0A" / "train.log",
           "I1127 17:22:14.5 828 solver.cpp:347] Iteration 1000, Testing net (#0)\n"
           "I1127 17:22:14.6 828 solver.cpp:414]     Test net output #0: accuracy = 0.7\n"
           "I1127 17:22:14.5 828 solver.cpp:347] Iteration 2000, Testing net (#0)\n"
           "I1127 17:22:14.6 828 solver.cpp:414]     Test net output #0: accuracy = 0.5\n")
    assert report.main([str(res), "--out", str(out), "--statistic", "max", "--no-reference"]) == 0
    text = capsys.readouterr().out
    assert "Figure 3 skipped" in text and "reduced-data curve skipped" in text
    assert "| half0A | base |  | 2 | 2000 | 0.700000 | — | — |" in (out / "results.md").read_text()
    assert report.main([str(res), "--out", str(out), "--statistic", "final", "--no-reference",
                        "--no-figures"]) == 0
    assert "| 0.500000 |" in (out / "results.md").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report.main([str(empty), "--out", str(out), "--no-reference"]) == 1


def test_gz_members_and_corrupt_tail(tmp_path):
    a, b = OLD[:OLD.index("I0403 07:46:48")], OLD[OLD.index("I0403 07:46:48"):]
    two = tmp_path / "two.gz"
    two.write_bytes(gzip.compress(a.encode()) + gzip.compress(b.encode()))  # appended gzip members
    assert logparse.read_text(two) == OLD
    blob = bytearray(gzip.compress((OLD * 2000).encode()))
    blob[len(blob) * 3 // 4:] = b"\0" * (len(blob) - len(blob) * 3 // 4)
    (tmp_path / "bad.gz").write_bytes(bytes(blob))
    text = logparse.read_text(tmp_path / "bad.gz")  # no error; the data before the damage is kept
    assert text.startswith(OLD * 1000)


def test_out_inside_results_and_unknown_output(tmp_path, capsys):
    """--out inside RESULTS_DIR is not read as a network; basenet.txt is not a log; an --output that
    no test has is named as such."""
    res = tmp_path / "grid"
    _write(res / "half0A" / "logs" / "1-attempt1.log", NEW)
    (res / "half0A" / "basenet.txt").write_text("../half0B")
    assert logparse.log_files(res / "half0A") == [res / "half0A" / "logs" / "1-attempt1.log"]
    assert dispatch(["report", str(res), "--out", str(res / "report"), "--no-reference", "--no-figures"]) == 0
    assert dispatch(["report", str(res), "--out", str(res / "report"), "--no-reference", "--no-figures"]) == 0
    err = capsys.readouterr().err
    assert "skipping report" not in err
    assert dispatch(["report", str(res), "--out", str(tmp_path / "o"), "--no-reference", "--output", "top5"]) == 1
    assert "no test output 'top5'" in capsys.readouterr().err
