"""``python -m replicate demo`` (``make demo``): the whole pipeline on a tiny synthetic set, its
Figure 2 table and verdict, and a second run that redoes nothing.  The demo's real numbers (40
classes, 1,200 iterations) are measured by ``make demo`` itself and recorded in the README."""
from __future__ import annotations

import csv
import time
from dataclasses import replace

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


def test_verdict_on_figure2_rows():
    got = demo.verdict(_rows(0.5, 0.9))
    assert [ok for _, ok, _ in got] == [True, False, True, None, None]  # 4, 5: not run without --full
    assert "AnB n=7: 0.500" in got[0][2] and "not run" in got[3][2]
    # finding 1 fails when AnB stays above baseB at the top, finding 3 when AnB+ is below baseB
    assert [ok for _, ok, _ in demo.verdict(_rows(0.81, 0.9))][:3] == [False, False, True]
    assert [ok for _, ok, _ in demo.verdict(_rows(0.5, 0.7))][:3] == [True, False, False]


def _curves(**over):
    """Numbers in demo.PAPER's form where every finding holds by a wide margin; ``over`` breaks one."""
    c = {"baseB": 0.80,
         "BnB": {1: 0.80, 2: 0.80, 3: 0.76, 4: 0.75, 5: 0.76, 6: 0.79, 7: 0.80},
         "BnB+": {n: 0.82 for n in range(1, 8)},
         "AnB": {1: 0.80, 2: 0.79, 3: 0.78, 4: 0.76, 5: 0.74, 6: 0.72, 7: 0.68},
         "AnB+": {n: 0.83 for n in range(1, 8)},
         "natA": 0.70, "natB": 0.60,
         "natAB": {1: 0.60, 2: 0.58, 3: 0.55, 4: 0.52, 5: 0.48, 6: 0.45, 7: 0.40},
         "natBA": {1: 0.70, 2: 0.68, 3: 0.65, 4: 0.62, 5: 0.58, 6: 0.55, 7: 0.50},
         "netbase": 0.75, "nolearn": {1: 0.70, 2: 0.60, 3: 0.30, 4: 0.20, 5: 0.10, 6: 0.05, 7: 0.05}}
    for k, v in over.items():
        c[k] = {**c[k], **v} if isinstance(v, dict) else v
    return c


def _holds(c):
    return [f["holds"] for f in demo.findings(c)]


def test_findings_all_hold_on_the_paper_and_on_clear_numbers():
    assert _holds(demo.PAPER) == [True] * 5
    assert _holds(_curves()) == [True] * 5


@pytest.mark.parametrize("k, over", [
    (0, {"AnB": {6: 0.81}}),                         # 1: AnB above baseB at n = 6
    (0, {"AnB": {1: 0.685}}),                        # 1: below baseB at the top, but no fall with n
    (1, {"BnB": {3: 0.81, 4: 0.81, 5: 0.81}}),       # 2: no dip (the demo's 1,200-iteration bases)
    (1, {"BnB": {1: 0.70, 2: 0.72}}),                # 2: rising with n is not a dip in the middle
    (1, {"BnB": {6: 0.755, 7: 0.755}}),              # 2: no recovery at the top
    (1, {"BnB": {3: 0.795, 4: 0.795, 5: 0.795}}),    # 2: a dip within the tolerance
    (2, {"AnB+": {7: 0.80}}),                        # 3: level with baseB at one n is not above it
    (3, {"natAB": {n: 0.60 - (0.80 - v) for n, v in _curves()["AnB"].items()},
         "natBA": {n: 0.70 - (0.80 - v) for n, v in _curves()["AnB"].items()}}),  # 4: same drop as AnB
    (4, {"nolearn": {1: 0.76}}),                     # 5: random conv1 as good as the base at n = 1
    (4, {"nolearn": {n: 0.75 - 0.005 * n for n in range(1, 8)}}),  # 5: random layers barely hurt
])
def test_each_finding_fails_on_its_own(k, over):
    got = _holds(_curves(**over))
    assert got[k] is False
    assert got[:k] + got[k + 1:] == [True] * 4


def test_findings_not_run_and_the_table():
    c = {k: v for k, v in _curves().items() if k not in ("netbase", "nolearn")}
    assert _holds(c) == [True, True, True, True, None]
    rows = []
    for n in range(1, 8):
        rows.append(_row(f"nolearn_1_{n}", "random_frozen", n, 0.5))
    text = demo.findings_markdown(_rows() + rows + [_row("netbase", "full_imagenet_base", None, 0.9)])
    lines = text.splitlines()
    assert len(lines) == 7 and lines[0].startswith("| finding | measure | demo | paper |")
    assert lines[2].endswith("| -0.300 / -0.300 | -0.044 / -0.083 | yes | yes |")
    assert lines[6].endswith("| not run | yes |")  # no natman networks: finding 5 cannot be computed


def test_paper_numbers_are_the_release_s(tmp_path):
    """demo.PAPER holds shared/paper's numbers (skipped where that folder is absent)."""
    import csv as _csv
    from pathlib import Path
    root = Path(__file__).resolve().parents[2].parent / "shared" / "paper"
    if not (root / "reference_results.csv").exists():
        pytest.skip("../shared/paper is absent")
    means = {(r["kind"], int(r["n"])): float(r["mean_top1"])
             for r in _csv.DictReader((root / "figure2_means.csv").open())}
    labels = {"BnB": "selffer", "BnB+": "selffer_ft", "AnB": "transfer", "AnB+": "transfer_ft"}
    assert demo.PAPER["baseB"] == means[("base", 0)]
    for label, kind in labels.items():
        assert demo.PAPER[label] == {n: means[(kind, n)] for n in range(1, 8)}
    ref = {r["net"]: float(r["top1_mean_best10"]) for r in _csv.DictReader((root / "reference_results.csv").open())}
    assert (demo.PAPER["natA"], demo.PAPER["natB"], demo.PAPER["netbase"]) == \
        (ref["halfnatmanA"], ref["halfnatmanB"], ref["netbase"])
    for key, pattern in (("natAB", "transfernatmanAB_1_{}"), ("natBA", "transfernatmanBA_1_{}"),
                         ("nolearn", "nolearn_1_{}")):
        assert demo.PAPER[key] == {n: ref[pattern.format(n)] for n in range(1, 8)}


def test_plans_figure3_s_networks_and_full_trains_longer(tmp_path, monkeypatch):
    from replicate.experiments import plan as P
    nets, _ = P.select(list(demo.NETS))
    names = {n.name for n in nets}
    assert {f"nolearn_1_{n}" for n in range(1, 8)} <= names and "netbase" in names
    assert {f"transfernatman{x}_1_{n}" for x in ("AB", "BA") for n in range(1, 8)} <= names
    assert {"halfnatmanA", "halfnatmanB", "half0A", "half0B"} <= names and len(names) == 54
    assert {n.train_set for n in nets} <= set(demo.SETS)
    # what main hands to plan: every network, each 3,600 iterations with --full (stopped at the plan)
    seen = {}

    def fake_plan(runs, data, *, nets, scale, **kw):
        seen.update(nets=nets, scale=scale)
        raise P.PlanError("stop here")
    monkeypatch.setattr(demo, "prepare_data", lambda out, spec, **kw: seen.update(sets=kw["sets"]) or tmp_path)
    monkeypatch.setattr(P, "write_plan", fake_plan)
    assert demo.main(["--out", str(tmp_path / "d"), "--full", "--quiet"]) == 1
    assert seen["nets"] == list(demo.NETS) and seen["sets"] == demo.SETS
    base, other = P.classify("halfnatmanB"), P.classify("nolearn_1_3")
    assert seen["scale"].solver_numbers(base)[1:] == (3600, 2400)
    assert seen["scale"].solver_numbers(other)[1:] == (3600, 2400)
    assert seen["scale"].test_interval == 120 and seen["scale"].base_lr == 0.005
    assert seen["scale"].num_classes == 80  # two fc8 outputs a class: netbase leaves chance (demo.py)
    full = seen["scale"]
    # the README's make demo-full numbers came from --max-iter 3600 --test-interval 120: the same plan
    assert demo.main(["--out", str(tmp_path / "h"), "--max-iter", "3600", "--test-interval", "120",
                      "--quiet"]) == 1
    assert seen["scale"] == full
    assert demo.main(["--out", str(tmp_path / "e"), "--quiet"]) == 1
    assert seen["nets"] == list(demo.NETS) and seen["sets"] == demo.SETS
    assert seen["scale"].solver_numbers(base)[1:] == (1200, 800)
    assert seen["scale"].num_classes == 80
    # the mini preset's lr: 0.005, not the release's 0.01 (set for batches of 256; plan.py, README)
    assert seen["scale"].base_lr == 0.005 and seen["scale"].test_interval == 60
    # --max-iter keeps 20 tests unless --test-interval says otherwise; --base-lr reaches every network
    assert demo.main(["--out", str(tmp_path / "f"), "--max-iter", "3600", "--quiet"]) == 1
    assert (seen["scale"].solver_numbers(base)[1:], seen["scale"].test_interval) == ((3600, 2400), 180)
    assert demo.main(["--out", str(tmp_path / "g"), "--max-iter", "3600", "--test-interval", "120",
                      "--base-lr", "0.01", "--quiet"]) == 1
    assert (seen["scale"].test_interval, seen["scale"].base_lr) == (120, 0.01)
    solver = P.network_files(other, seen["scale"], tmp_path)["imagenet_solver.prototxt"]
    assert "base_lr: 0.01\n" in solver and "test_interval: 120\n" in solver
    # the longer bases reach their solver files and their dependants' weights
    scale = replace(P.PRESETS["mini"], base_iter_multiple=3)
    solver = P.network_files(base, scale, tmp_path)["imagenet_solver.prototxt"]
    assert "max_iter: 3600" in solver and "stepsize: 2400" in solver
    assert P.final_snapshot(base, scale) == "caffe_imagenet_train_iter_3600.caffemodel"
    with pytest.raises(P.PlanError, match="base-iter-multiple"):
        replace(scale, base_iter_multiple=0).check()


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
    assert len(rows) == 54 and {r["last_iter"] for r in rows} == {"3"}
    by = {r["net"]: r["top1_mean_best10"] for r in rows}
    text = (out / "report" / "demo.md").read_text()
    # the table holds results.csv's numbers (one network per cell here)
    for n in range(1, 8):
        cells = [by[f"transfer0A0A_1_{n}"], by[f"transfer-ft0A0A_1_{n}"], by[f"transfer0B0A_1_{n}"],
                 by[f"transfer-ft0B0A_1_{n}"]]
        assert f"| {n} |  | " + " | ".join(f"{float(c):.3f}" for c in cells) + " |" in text
    assert f"| 0 | {float(by['half0A']):.3f} |" in text
    for f in ("figure2_lines.png", "figure2_points.png", "figure3.png"):
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
    assert printed.count("already there") == 11  # synth and the ten databases
    assert "start on CPU" not in printed
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.caffemodel")} == before
    print(f"second run: {time.monotonic() - t:.1f} s")


def test_other_settings_in_the_same_folder_are_refused(tiny):
    out, args = tiny
    with pytest.raises(SystemExit, match="other settings"):
        demo.main([a if a != "6" else "7" for a in args])


def test_a_demo_of_other_training_settings_is_refused_with_a_way_on(tiny, capsys):
    out, args = tiny
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.caffemodel")}
    assert demo.main(args + ["--base-lr", "0.01"]) == 1
    err = capsys.readouterr().err
    assert "refusing to rewrite" in err and "--base-lr 0.01" in err and "another --out" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.caffemodel")} == before
