"""``python -m replicate demo``: the whole replication, in minutes, on built-in synthetic data.

The paper's pipeline end to end, with the real tools at every step:

1. ``data_prep synth``: a procedural mini-ImageNet (JPEGs in the ILSVRC layout, 40 classes made of
   parts from one shared vocabulary);
2. ``data_prep lists`` and ``splits``: the whole lists, then random halves A/B by the release's rule;
3. ``data_prep pack`` and ``mean``: an LMDB per half and set, the train halves' means;
4. ``replicate plan --preset mini``: the mini CaffeNet (CaffeNet's eight learned layers, LRN, grouped
   convolution, ceil pooling, dropout, at 1/8 width on 28 px crops) for both bases and every selffer
   and transfer network, with and without fine-tuning, n = 1..7;
5. ``replicate sweep``: trains them, bases first, two at a time;
6. ``replicate report``: per-network results, the Figure 2 table and PNG.

In the release's naming the selffer networks are AnA (``transfer0A0A_1_n``), so the half whose
accuracy the demo reports is ``half0A``: the paper's *B* (the target) is ``half0A`` here and its *A*
(the source) is ``half0B``.  ``transfer0B0A_1_n`` is the paper's AnB.

Every step skips work already done, so an interrupted demo continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Dict, List, Optional

from ..fileio import atomic_write

TARGET, SOURCE = "0A", "0B"  # the paper's B and A, in the release's names
NETS = (f"transfer{TARGET}{TARGET}_1_*", f"transfer-ft{TARGET}{TARGET}_1_*",
        f"transfer{SOURCE}{TARGET}_1_*", f"transfer-ft{SOURCE}{TARGET}_1_*")
# Figure 2's groups, as the paper labels them, and the release's kinds behind them.
COLUMNS = (("baseB", "base"), ("BnB", "selffer"), ("BnB+", "selffer_ft"), ("AnB", "transfer"),
           ("AnB+", "transfer_ft"))


_START = [time.monotonic()]


def _clock() -> str:
    s = int(time.monotonic() - _START[0])
    return f"{s // 60}:{s % 60:02d}"


def _stage(k: int, total: int, what: str) -> None:
    print(f"\n[{k}/{total} at {_clock()}] {what}", flush=True)


def _done(path: Path, record: dict) -> bool:
    """A stage's marker exists and records the same settings."""
    try:
        return json.loads(path.read_text()) == record
    except (OSError, ValueError):
        return False


def _mark(path: Path, record: dict) -> None:
    atomic_write(path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())


def prepare_data(out: Path, spec, *, progress: bool = True, workers: Optional[int] = None,
                 log=print, backend: str = "lmdb") -> Path:
    """Stages 1-3: synthetic images, lists and halves, databases (``backend``: lmdb, or leveldb for
    the 2014 Caffe) and means; returns the data root."""
    from data_prep.lists import write_lists
    from data_prep.mean import write_mean
    from data_prep.pack import pack
    from data_prep.splits import make_splits
    from data_prep.synth import write_synth

    synth, lists, data = out / "synth", out / "lists", out / "data"
    record = {"synth": asdict(spec)}
    record["synth"]["scale_range"] = list(spec.scale_range)
    marker = synth / "DONE.json"
    _stage(1, 6, f"synthetic mini-ImageNet: {spec.classes} classes, {spec.train_per_class} train and "
                 f"{spec.valid_per_class} valid images each -> {synth}")
    if _done(marker, record):
        log("  already there")
    else:
        if synth.exists():
            if marker.exists():
                raise SystemExit(f"demo: {synth} was made with other settings; remove {out} or choose another --out")
            import shutil
            shutil.rmtree(synth)  # an interrupted synth: start it again
        write_synth(synth, spec, progress=progress)
        _mark(marker, record)
    log(f"  sample images of {min(20, spec.classes)} classes: {synth / 'samples.png'}")

    _stage(2, 6, f"lists and random halves A/B (the release's rule, split 0) -> {lists}")
    write_lists(lists, train_dir=synth / "train", ground_truth=synth / "val_ground_truth.txt")
    make_splits(lists, train_list=lists / "whole_train" / "files.txt",
                valid_list=lists / "whole_valid" / "files.txt", seeds=(0,), reduced=False,
                n_classes=spec.classes)
    idx = {h: [line.split()[0] for line in (lists / f"half0{h}_train" / "idxmap.txt").read_text().splitlines()[1:]]
           for h in "AB"}
    log(f"  half0A: classes {' '.join(idx['A'])}\n  half0B: classes {' '.join(idx['B'])}")

    _stage(3, 6, f"{'LMDBs' if backend == 'lmdb' else 'LevelDBs'} (convert_imageset) and mean images "
                 f"(compute_image_mean) -> {data}")
    data.mkdir(parents=True, exist_ok=True)
    quiet = lambda m: None  # noqa: E731
    for half in ("half0A", "half0B"):
        for tv, root in (("train", synth / "train"), ("valid", synth / "val")):
            db = data / f"{half}_{tv}_{backend}"
            if db.exists():
                log(f"  {db.name}: already there")
                continue
            n = pack(os.fspath(root) + "/", lists / f"{half}_{tv}" / "files.txt", db, shuffle=tv == "train",
                     seed=1, workers=workers, progress=progress, log=quiet, backend=backend)
            log(f"  {db.name}: {n} images")
        mean = data / f"{half}_mean.binaryproto"
        if not mean.exists():
            tmp = mean.with_name(mean.name + ".partial")
            write_mean(data / f"{half}_train_{backend}", tmp, backend, log=quiet)
            os.replace(tmp, mean)
        log(f"  {mean.name}")
    return data


def figure2_table(rows: List[dict], column: str = "top1_mean_best10") -> Dict[str, Dict[int, float]]:
    """{column label: {n: mean}} of Figure 2's groups (bases at n = 0)."""
    from .figures import group_means
    means = group_means(rows, [k for _, k in COLUMNS], column)
    return {label: {n: m for n, (m, _) in means.get(kind, {}).items()} for label, kind in COLUMNS}


def table_markdown(rows: List[dict], column: str = "top1_mean_best10") -> str:
    """Figure 2's numbers as a Markdown table: a row per n, a column per group, and the target base."""
    by_net = {r["net"]: r for r in rows}
    target = float(by_net[f"half{TARGET}"][column]) if f"half{TARGET}" in by_net else None
    t = figure2_table(rows, column)
    lines = ["| n | " + " | ".join(label for label, _ in COLUMNS) + " |",
             "| --- |" + " --- |" * len(COLUMNS)]
    for n in range(8):
        cells = []
        for label, _ in COLUMNS:
            v = t[label].get(n)
            if label == "baseB" and n == 0 and target is not None:
                cells.append(f"{target:.3f}")
            else:
                cells.append("" if v is None else f"{v:.3f}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def verdict(rows: List[dict], column: str = "top1_mean_best10", tolerance: float = 0.01) -> List[tuple]:
    """The paper's qualitative findings, checked on the demo's numbers: (finding, holds, numbers)."""
    by_net = {r["net"]: float(r[column]) for r in rows if r.get(column)}
    base = by_net.get(f"half{TARGET}")
    if base is None:
        return []
    t = figure2_table(rows, column)
    anb, bnb_ft, anb_ft = t["AnB"], t["BnB+"], t["AnB+"]
    out = []
    top = [n for n in (6, 7) if n in anb]
    if top:
        out.append((f"transfer AnB falls below baseB at the top layers (n = {', '.join(map(str, top))})",
                    all(anb[n] < base for n in top),
                    ", ".join(f"AnB n={n}: {anb[n]:.3f}" for n in top) + f" vs baseB {base:.3f}"))
    for label, curve in (("BnB+", bnb_ft), ("AnB+", anb_ft)):
        if curve:
            low = min(curve.values())
            out.append((f"fine-tuned {label} recovers to baseB (or above) at every n",
                        low >= base - tolerance,
                        f"{label} lowest {low:.3f}, mean {sum(curve.values()) / len(curve):.3f} vs baseB "
                        f"{base:.3f} (tolerance {tolerance})"))
    return out


def main(argv: Optional[List[str]] = None) -> int:
    from data_prep.synth import SynthSpec
    from . import plan as plan_mod, report, sweep

    ap = argparse.ArgumentParser(prog="python -m replicate demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="demo", help="working folder (default: demo)")
    ap.add_argument("--workers", type=int, default=None,
                    help="networks trained at once, one thread each (default: one per CPU core)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    d = SynthSpec()
    ap.add_argument("--classes", type=int, default=d.classes, help=f"synthetic classes (default {d.classes})")
    ap.add_argument("--train-per-class", type=int, default=d.train_per_class,
                    help=f"training images per class (default {d.train_per_class})")
    ap.add_argument("--valid-per-class", type=int, default=d.valid_per_class,
                    help=f"validation images per class (default {d.valid_per_class})")
    ap.add_argument("--max-iter", type=int, default=None,
                    help="iterations per network (default: the mini preset's 1200; stepsize 2/3 of it, 20 tests)")
    ap.add_argument("--test-iter", type=int, default=None,
                    help="test batches of 50 per test (default: the mini preset's 10, every validation image)")
    ap.add_argument("--blas", choices=("exact", "fast"), default="exact",
                    help="the networks' BLAS mode (default exact: Caffe 1.0's BLAS calls and bits on Debian's "
                         "OpenBLAS 0.3.21; fast: the CBLAS's own kernels, not bit-for-bit)")
    ap.add_argument("--caffe", choices=("1.0", "2014"), default="1.0",
                    help="2014: the paper's own Caffe (plan --caffe 2014: the release's V0 files on LevelDBs, "
                         "trained with train --caffe 2014); default 1.0")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    a = ap.parse_args(argv)
    _START[0] = t0 = time.monotonic()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    workers = a.workers or max(1, len(os.sched_getaffinity(0)))
    progress = not a.quiet
    spec = SynthSpec(classes=a.classes, train_per_class=a.train_per_class, valid_per_class=a.valid_per_class,
                     seed=a.seed)
    data = prepare_data(out, spec, progress=progress, workers=workers,
                        backend="leveldb" if a.caffe == "2014" else "lmdb")

    scale = replace(plan_mod.PRESETS["mini"], num_classes=spec.classes)
    if a.max_iter:  # the preset's schedule shape: one step at 2/3, 20 tests
        scale = replace(scale, max_iter=a.max_iter, snapshot=max(1, a.max_iter // 2),
                        test_interval=max(1, a.max_iter // 20))
    if a.test_iter:
        scale = replace(scale, test_iter=a.test_iter)
    runs = out / "runs"
    _stage(4, 6, f"plan{' --caffe 2014' if a.caffe == '2014' else ''}: mini CaffeNet, baseA, baseB, BnB, BnB+, "
                 f"AnB, AnB+ for n = 1..7 -> {runs}")
    try:
        plan_mod.write_plan(runs, data, nets=list(NETS), scale=scale, check_data=True,
                            log=lambda m: print(f"  {m}"), caffe=a.caffe)
    except plan_mod.PlanError as e:
        print(f"demo: plan: {e}", file=sys.stderr)
        return 1
    _stage(5, 6, f"sweep: {workers} network(s) at a time, BLAS mode {a.blas}, Caffe {a.caffe} "
                 f"(logs in {runs}/<net>/logs/)")
    rc = sweep.main([os.fspath(runs), "--workers", str(workers), "--blas", a.blas])
    if rc != 0:
        print("demo: the sweep did not finish every network (see above); run the demo again to retry",
              file=sys.stderr)
        return rc
    rep = out / "report"
    _stage(6, 6, f"report -> {rep}")
    rc = report.main([os.fspath(runs), "--out", os.fspath(rep), "--no-reference"])
    if rc != 0:
        return rc
    import csv
    rows = list(csv.DictReader((rep / "results.csv").open(newline="")))
    table = table_markdown(rows)
    checks = verdict(rows)
    # Figure 2 with baseB = the target half's base (the report's own figure pools both bases, as the
    # paper pools its eight halves)
    from .figures import plot_figure2
    target_rows = [r for r in rows if r["net"] != f"half{SOURCE}"]
    fig_dir = rep / "demo"
    plot_figure2(target_rows, fig_dir, title="Demo, synthetic mini-ImageNet")
    text = ["# Demo: Figure 2 on synthetic mini-ImageNet", "",
            "Top-1 on the target half B (mean of the 10 best tests) in the paper's groups. In the release's "
            f"names B is half{TARGET} and A is half{SOURCE}: baseB is half{TARGET}, BnB(+) is "
            f"transfer(-ft){TARGET}{TARGET}_1_n and AnB(+) is transfer(-ft){SOURCE}{TARGET}_1_n.", "",
            report.blas_summary(rows) or f"BLAS mode: {a.blas}.",
            f"Caffe: {a.caffe}" + (" (the paper's own 2014 Caffe, BVLC 584abd3: train --caffe 2014)."
                                   if a.caffe == "2014" else "."), "", table]
    text += [f"- {'yes' if ok else 'NO '}: {what} ({nums})" for what, ok, nums in checks]
    atomic_write(rep / "demo.md", ("\n".join(text) + "\n").encode())
    print("\n" + table)
    for what, ok, nums in checks:
        print(f"{'yes' if ok else 'NO '}: {what}\n     {nums}")
    print(f"\nFigure 2: {fig_dir / 'figure2_lines.png'} (means) and {fig_dir / 'figure2_points.png'} (every network)")
    print(f"Table:    {rep / 'demo.md'} (this table), {rep / 'results.md'} (every network)")
    print(f"Demo finished in {time.monotonic() - t0:.0f} s")
    return 0
