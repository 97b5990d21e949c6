"""``python -m replicate report RESULTS_DIR --out DIR``: per-network top-1 from training logs,
compared with the paper's ``reference_results.csv``, and the paper's figures.

RESULTS_DIR holds one directory per network, named as the release names it, with its logs in
``<net>/`` or ``<net>/logs/`` (see :mod:`.logparse`).  Per network, over its test points (the
iteration-0 test excluded; later files win for the same iteration):

- ``top1_mean_best10``: NumPy float64 mean of the K (``--best``, 10) highest values, highest first;
- ``top1_final``: the value at the highest tested iteration, ``last_iter``;
- ``tests``: the number of distinct tested iterations;
- ``blas``: the BLAS mode it was trained in (its sweep ``DONE`` record, else its logs' headers;
  ``+`` joins several), a column only when some network names one (Caffe's own logs do not).

Values are written with 6 decimals, as ``reference_results.csv`` has them; with these rules the
release's logs give their rows of that file exactly.  Writes ``results.csv`` (the reference's
columns), ``summary.csv`` (``figure2_means.csv``'s form, every kind), ``results.md`` and, unless
``--no-figures``, the figures of :mod:`.figures`.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import figures
from .logparse import accuracy_series, blas_modes, log_files
from .names import classify

COLUMNS = ("net", "kind", "n", "top1_mean_best10", "top1_final", "tests", "last_iter")
STATISTIC_COLUMN = {"mean_best": "top1_mean_best10", "final": "top1_final", "max": "top1_max"}
PAPER_HAS = {"top1_mean_best10", "top1_final"}
REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """``$REPLICATE_SHARED``, else ``<repo>/../shared`` (the rule of ``tests/_shared.py``)."""
    env = os.environ.get("REPLICATE_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def default_reference() -> Optional[Path]:
    path = shared_dir() / "paper" / "reference_results.csv"
    return path if path.is_file() else None


def summarise(series: Sequence[Tuple[int, float]], best: int = 10) -> Dict[str, str]:
    """The statistics of one network's (iteration, top-1) series, formatted as in the reference."""
    values = np.array([v for _, v in series], dtype=np.float64)
    top = np.sort(values)[::-1][:best]  # highest first: ascending order misses 2 of the 5 logged rows
    return {"top1_mean_best10": f"{np.mean(top):.6f}", "top1_final": f"{series[-1][1]:.6f}",
            "tests": str(len(series)), "last_iter": str(series[-1][0]), "top1_max": f"{values.max():.6f}"}


def parse_output(text: Optional[str]):
    """``--output``: an index (``2`` or ``#2``), a name, or None for the default."""
    if text is None:
        return None
    t = text.lstrip("#")
    return int(t) if t.isdigit() else text


def collect(results_dir: Path, best: int = 10, output=None, include_initial: bool = False,
            warn=print, exclude: Optional[Path] = None) -> Tuple[List[Dict[str, str]], List[str], List[str]]:
    """(rows sorted by name, names outside the grid, networks without test results).  ``exclude``:
    a folder to pass over (the report's own --out inside RESULTS_DIR)."""
    rows, skipped, empty = [], [], []
    ex = exclude.resolve() if exclude is not None else None
    for d in sorted(p for p in results_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
                    and p.resolve() != ex):
        try:
            net = classify(d.name)
        except ValueError:
            warn(f"report: warning: skipping {d.name}: not a network of the release's grid")
            skipped.append(d.name)
            continue
        series = accuracy_series(log_files(d), output=output, include_initial=include_initial)
        if not series:
            if output is not None and accuracy_series(log_files(d), include_initial=include_initial):
                warn(f"report: {d.name}: no test output {output!r} in {d} (see --output)")
            else:
                warn(f"report: {d.name}: no results (no test lines in {d})")
            empty.append(d.name)
            continue
        row = {"net": d.name, "kind": net.kind, "n": "" if net.n is None else str(net.n)}
        row.update(summarise(series, best))
        row["blas"] = network_blas(d)
        rows.append(row)
    return sorted(rows, key=lambda r: r["net"]), skipped, empty


def network_blas(net_dir: Path) -> str:
    """The BLAS mode of a network's results: its ``DONE``'s ``blas`` (written by ``sweep``), else the
    modes its logs name (``+``-joined); "" when nothing says (Caffe's own logs)."""
    import json
    try:
        mode = json.loads((net_dir / "DONE").read_text()).get("blas")
        if mode:
            return str(mode)
    except (OSError, ValueError, AttributeError):
        pass
    return "+".join(blas_modes(log_files(net_dir)))


def blas_summary(rows) -> Optional[str]:
    """One line on the BLAS modes of ``rows``; None when no row names one."""
    by_mode: Dict[str, List[str]] = {}
    for r in rows:
        by_mode.setdefault(r.get("blas") or "unknown", []).append(r["net"])
    if set(by_mode) == {"unknown"}:
        return None
    if len(by_mode) == 1:
        mode = next(iter(by_mode))
        return f"BLAS mode: {mode} (all {len(rows)} networks)."
    parts = [f"{m}: {len(v)} ({', '.join(v[:8])}{' ...' if len(v) > 8 else ''})" for m, v in sorted(by_mode.items())]
    return "BLAS modes: MIXED, the networks do not come from one mode: " + "; ".join(parts) + "."


def read_csv(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_csv(rows: Sequence[Dict[str, str]], path: Path, columns: Sequence[str] = COLUMNS,
              lineterminator: str = "\r\n") -> None:
    """CSV with the reference's line ends: CRLF as in reference_results.csv, LF in figure2_means.csv."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore", lineterminator=lineterminator)
        w.writeheader()
        w.writerows(rows)


def delta(ours: Optional[str], paper: Optional[str]) -> str:
    """ours - paper, exact in decimal, signed, 6 decimals; ``—`` when either is missing."""
    if not ours or not paper:
        return "—"
    return f"{Decimal(ours) - Decimal(paper):+.6f}"


def markdown(rows, reference: Optional[List[Dict[str, str]]], column: str, best: int,
             skipped=(), empty=(), results_dir="", reference_path=None) -> str:
    ref = {r["net"]: r for r in reference or []}
    pcol = column if column in PAPER_HAS else None
    what = {"top1_mean_best10": f"mean of the {best} best test top-1", "top1_final": "final test top-1",
            "top1_max": "best test top-1"}[column]
    lines = [f"# Replication results: {results_dir}", "",
             f"Statistic: {what} (`{column}`); paper: {reference_path or 'none'}"
             + ("" if pcol or not reference else " (the paper's file has no such column)") + ".", "",
             *([blas_summary(rows), ""] if blas_summary(rows) else []),
             "## Per network", "",
             "| net | kind | n | tests | last_iter | ours | paper | delta |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        p = ref.get(r["net"], {}).get(pcol) if pcol else None
        lines.append(f"| {r['net']} | {r['kind']} | {r['n']} | {r['tests']} | {r['last_iter']} | "
                     f"{r[column]} | {p or '—'} | {delta(r[column], p)} |")
    lines += ["", "## Per kind and n (means over networks; bases at n = 0)", "",
              "| kind | n | ours | count | paper, same networks | paper, all | count, all | delta (same networks) |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    ours = figures.group_means(rows, column=column)
    same = figures.group_means([ref[r["net"]] for r in rows if r["net"] in ref], column=pcol) if pcol else {}
    everyone = figures.group_means(reference, column=pcol) if pcol and reference else {}
    for kind in sorted(ours):
        for n, (m, c) in sorted(ours[kind].items()):
            s = same.get(kind, {}).get(n)
            a = everyone.get(kind, {}).get(n)
            ss = f"{s[0]:.6f}" if s else None
            lines.append(f"| {kind} | {n} | {m:.6f} | {c} | {ss or '—'} | {f'{a[0]:.6f}' if a else '—'} | "
                         f"{a[1] if a else '—'} | {delta(f'{m:.6f}', ss)} |")
    if empty:
        lines += ["", "## No results", "", *[f"- {n}" for n in empty]]
    if skipped:
        lines += ["", "## Skipped (not networks of the grid)", "", *[f"- {n}" for n in skipped]]
    missing = sorted(set(ref) - {r["net"] for r in rows} - set(empty))
    if missing:
        lines += ["", f"{len(missing)} of the paper's {len(ref)} networks are not in {results_dir}."]
    return "\n".join(lines) + "\n"


def paper_figure2(reference_path: Optional[Path], reference, column: str):
    """The paper's Figure 2 means: ``figure2_means.csv`` beside the reference for the mean-of-best
    statistic, else the reference's rows grouped the same way; None without a reference."""
    if not reference or column not in PAPER_HAS:
        return None
    sibling = reference_path.parent / "figure2_means.csv" if reference_path else None
    if column == "top1_mean_best10" and sibling and sibling.is_file():
        out: Dict[str, Dict[int, float]] = {}
        for r in read_csv(sibling):
            out.setdefault(r["kind"], {})[int(r["n"])] = float(r["mean_top1"])
        return out
    return figures.figure2_data(reference, column)


def make_figures(rows, out: Path, column: str, reference_path, reference) -> List[Path]:
    written: List[Path] = []
    for name, paths in (
            ("Figure 2", figures.plot_figure2(rows, out, column,
                                              paper=paper_figure2(reference_path, reference, column))),
            ("Figure 3", figures.plot_figure3(rows, out, column)),
            ("reduced-data curve", figures.plot_reduced(
                rows, out, column,
                paper=figures.reduced_data(reference, column) if reference and column in PAPER_HAS else None))):
        if paths:
            written += paths
        else:
            print(f"report: {name} skipped: none of its networks have results")
    return written


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m replicate report", description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("results_dir", type=Path, help="one directory per network, logs in <net>/ or <net>/logs/")
    p.add_argument("--out", type=Path, required=True, help="where results.csv, results.md and figures go")
    p.add_argument("--best", type=int, default=10, metavar="K", help="top1_mean_best10 averages the K best tests")
    p.add_argument("--statistic", choices=sorted(STATISTIC_COLUMN), default="mean_best",
                   help="what results.md and the figures compare (default mean_best)")
    p.add_argument("--reference", type=Path, default=None,
                   help="the paper's reference_results.csv (default: $REPLICATE_SHARED or ../shared, "
                        "paper/reference_results.csv, when present)")
    p.add_argument("--no-reference", action="store_true", help="compare with nothing")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.add_argument("--output", default=None, metavar="NAME|INDEX",
                   help="the test output that is top-1 (default: 'accuracy', or #0 in 2014 logs)")
    p.add_argument("--include-initial", action="store_true",
                   help="count the iteration-0 test (the 2014 logs have none)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    if not args.results_dir.is_dir():
        print(f"report: {args.results_dir} is not a directory", file=sys.stderr)
        return 2
    if args.best < 1:
        print("report: --best must be at least 1", file=sys.stderr)
        return 2
    reference_path = None if args.no_reference else (args.reference or default_reference())
    if reference_path is not None and not reference_path.is_file():
        print(f"report: reference {reference_path} does not exist", file=sys.stderr)
        return 2
    reference = read_csv(reference_path) if reference_path else None
    column = STATISTIC_COLUMN[args.statistic]
    rows, skipped, empty = collect(args.results_dir, args.best, parse_output(args.output), args.include_initial,
                                   warn=lambda m: print(m, file=sys.stderr), exclude=args.out)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "results.csv", COLUMNS + ("blas",) if blas_summary(rows) else COLUMNS)
    write_csv(figures.summary_rows(rows, column=column), out / "summary.csv",
              ("kind", "n", "mean_top1", "count"), "\n")
    (out / "results.md").write_text(markdown(rows, reference, column, args.best, skipped, empty,
                                             args.results_dir, reference_path))
    written = [out / "results.csv", out / "summary.csv", out / "results.md"]
    if not args.no_figures:
        written += make_figures(rows, out, column, reference_path, reference)
    for path in written:
        print(path)
    print(f"report: {len(rows)} networks with results, {len(empty)} without, {len(skipped)} skipped "
          f"({time.perf_counter() - t0:.1f} s)")
    if blas_summary(rows):
        print(f"report: {blas_summary(rows)}")
    return 0 if rows else 1
