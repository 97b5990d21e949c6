"""The paper's figures from per-network result rows, and the numbers each one plots.

Rows are dicts as in ``results.csv`` / ``reference_results.csv`` (``net``, ``kind``, ``n`` and
accuracy columns as 6-decimal strings).  Means over networks are NumPy float64 means of those
6-decimal values taken in order of network name; with this rule the release's
``reference_results.csv`` gives ``figure2_means.csv`` exactly.  Bases (no ``n``) sit at n = 0.

The ``*_data`` functions need no matplotlib; the ``plot_*`` functions write PNG and PDF with the
Agg canvas (no pyplot state) and return the paths written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

FIG2_KINDS = ("base", "selffer", "selffer_ft", "transfer", "transfer_ft")
# Figure 2's look: white circles (base B), blue BnB, light blue BnB+, red AnB, pink AnB+.
FIG2_STYLE = {
    "base": dict(label="baseB", marker="o", color="white", edge="black"),
    "selffer": dict(label="BnB", marker="o", color="#1f3fbf", edge="#1f3fbf"),
    "selffer_ft": dict(label="BnB$^+$", marker="P", color="#7fb2ff", edge="#4f82cf"),
    "transfer": dict(label="AnB", marker="D", color="#d62728", edge="#d62728"),
    "transfer_ft": dict(label="AnB$^+$", marker="P", color="#ff99c8", edge="#e0609a"),
}
DEFAULT_COLUMN = "top1_mean_best10"

Row = Mapping[str, str]


def _n(row: Row) -> int:
    return int(row["n"]) if str(row.get("n", "")).strip() else 0


def _value(row: Row, column: str) -> Optional[float]:
    text = str(row.get(column, "")).strip()
    return float(text) if text else None


def group_means(rows: Iterable[Row], kinds: Optional[Sequence[str]] = None,
                column: str = DEFAULT_COLUMN) -> Dict[str, Dict[int, Tuple[float, int]]]:
    """{kind: {n: (mean, count)}} over the rows of ``kinds`` (all kinds if None); bases at n = 0."""
    groups: Dict[Tuple[str, int], List[float]] = {}
    for row in sorted(rows, key=lambda r: r["net"]):
        if kinds is not None and row["kind"] not in kinds:
            continue
        v = _value(row, column)
        if v is not None:
            groups.setdefault((row["kind"], _n(row)), []).append(v)
    out: Dict[str, Dict[int, Tuple[float, int]]] = {}
    for (kind, n), vals in sorted(groups.items()):
        out.setdefault(kind, {})[n] = (float(np.mean(np.array(vals, dtype=np.float64))), len(vals))
    return out


def summary_rows(rows: Iterable[Row], kinds: Optional[Sequence[str]] = None,
                 column: str = DEFAULT_COLUMN) -> List[Dict[str, str]]:
    """Rows in ``figure2_means.csv``'s form (kind, n, mean_top1, count), sorted by kind then n."""
    return [{"kind": k, "n": str(n), "mean_top1": f"{m:.6f}", "count": str(c)}
            for k, per_n in sorted(group_means(rows, kinds, column).items())
            for n, (m, c) in sorted(per_n.items())]


def figure2_data(rows: Iterable[Row], column: str = DEFAULT_COLUMN) -> Dict[str, Dict[int, float]]:
    """Figure 2's means: {kind: {n: mean}} for base (n = 0, the eight random halves), selffer,
    selffer_ft, transfer (AnB and BnA) and transfer_ft, every split of each."""
    return {k: {n: m for n, (m, _) in per_n.items()}
            for k, per_n in group_means(rows, FIG2_KINDS, column).items()}


def figure2_points(rows: Iterable[Row], column: str = DEFAULT_COLUMN) -> Dict[str, List[Tuple[int, float, str]]]:
    """Figure 2's dots: {kind: [(n, value, net), ...]}."""
    out: Dict[str, List[Tuple[int, float, str]]] = {}
    for row in sorted(rows, key=lambda r: r["net"]):
        v = _value(row, column)
        if row["kind"] in FIG2_KINDS and v is not None:
            out.setdefault(row["kind"], []).append((_n(row), v, row["net"]))
    return out


def figure3_data(rows: Iterable[Row], column: str = DEFAULT_COLUMN) -> Dict[str, Dict[int, float]]:
    """Figure 3's curves, each {n: value} with its base at n = 0:

    ``natman_AnB`` (natural -> man-made, n = 0: halfnatmanB), ``natman_BnA`` (n = 0: halfnatmanA),
    ``random_frozen`` (n = 0: netbase), ``transfer`` (random-split AnB/BnA means, n = 0: base mean),
    and the same four less their n = 0 value as ``<name>_relative`` (the bottom panel)."""
    rows = list(rows)
    by_net = {r["net"]: _value(r, column) for r in rows}
    out: Dict[str, Dict[int, float]] = {}
    for name, target, pattern in (("natman_AnB", "halfnatmanB", "transfernatmanAB_1_{}"),
                                  ("natman_BnA", "halfnatmanA", "transfernatmanBA_1_{}")):
        curve = {n: by_net[pattern.format(n)] for n in range(1, 8) if by_net.get(pattern.format(n)) is not None}
        if by_net.get(target) is not None:
            curve[0] = by_net[target]
        out[name] = dict(sorted(curve.items()))
    rf = {n: m for n, (m, _) in group_means(rows, ("random_frozen",), column).get("random_frozen", {}).items()}
    if by_net.get("netbase") is not None:
        rf[0] = by_net["netbase"]
    out["random_frozen"] = dict(sorted(rf.items()))
    f2 = figure2_data(rows, column)
    tr = dict(f2.get("transfer", {}))
    if 0 in f2.get("base", {}):
        tr[0] = f2["base"][0]
    out["transfer"] = dict(sorted(tr.items()))
    for name in ("natman_AnB", "natman_BnA", "random_frozen", "transfer"):
        curve = out[name]
        if 0 in curve:
            out[name + "_relative"] = {n: v - curve[0] for n, v in curve.items()}
    return {k: v for k, v in out.items() if v}


def reduced_data(rows: Iterable[Row], column: str = DEFAULT_COLUMN) -> Dict[int, float]:
    """Top-1 of the reduced-data networks: {images per class: value}."""
    return {n: m for n, (m, _) in group_means(rows, ("reduced",), column).get("reduced", {}).items()}


# -- plotting ------------------------------------------------------------------------------------

def _figure(width=7.0, height=4.5, nrows=1, ncols=1):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig, out: Path, stem: str) -> List[Path]:
    out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=150, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"CreationDate": None, "Producer": None})
    return paths


def _layer_axis(ax, ylabel="Top-1 accuracy (higher is better)"):
    ax.set_xlim(-0.5, 7.5)
    ax.set_xticks(range(8))
    ax.set_xlabel("Layer n at which network is chopped and retrained")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def plot_figure2(rows: Iterable[Row], out: Path, column: str = DEFAULT_COLUMN,
                 paper: Optional[Dict[str, Dict[int, float]]] = None, seed: int = 0,
                 title: str = "Figure 2") -> List[Path]:
    """``figure2_points`` (a jittered dot per network) and ``figure2_lines`` (means per n, each
    line starting at the base mean at n = 0, a dotted line at the base's level; ``paper`` means
    dashed)."""
    rows = list(rows)
    points = figure2_points(rows, column)
    means = figure2_data(rows, column)
    if not points:
        return []
    written: List[Path] = []
    rng = np.random.RandomState(seed)
    offsets = {"base": 0.0, "selffer": -0.2, "selffer_ft": -0.1, "transfer": 0.1, "transfer_ft": 0.2}
    fig, axes = _figure()
    ax = axes[0][0]
    for kind in FIG2_KINDS:
        pts = points.get(kind, [])
        if not pts:
            continue
        st = FIG2_STYLE[kind]
        x = np.array([n for n, _, _ in pts], float) + offsets[kind] + rng.uniform(-0.04, 0.04, len(pts))
        ax.scatter(x, [v for _, v, _ in pts], marker=st["marker"], facecolors=st["color"],
                   edgecolors=st["edge"], s=36, linewidths=0.8, label=st["label"], zorder=3)
    _layer_axis(ax)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"{title}: one dot per network")
    written += _save(fig, out, "figure2_points")

    fig, axes = _figure()
    ax = axes[0][0]
    base = means.get("base", {}).get(0)
    pbase = (paper or {}).get("base", {}).get(0)
    for kind in FIG2_KINDS:
        st = FIG2_STYLE[kind]
        for source, curve, b, dashed in (("ours", means.get(kind), base, False),
                                         ("paper", (paper or {}).get(kind), pbase, True)):
            if not curve:
                continue
            curve = dict(curve)
            if kind != "base" and b is not None:
                curve.setdefault(0, b)
            ns = sorted(curve)
            label = st["label"] + (" (paper)" if dashed else "")
            ax.plot(ns, [curve[n] for n in ns], linestyle="--" if dashed else "-",
                    color=st["edge"] if kind != "base" else "black", marker=st["marker"],
                    markerfacecolor="none" if dashed else st["color"], markeredgecolor=st["edge"],
                    alpha=0.6 if dashed else 1.0, linewidth=1.0 if dashed else 1.6, label=label)
    if base is not None:
        ax.axhline(base, color="black", linestyle=":", linewidth=0.8, zorder=1)
    _layer_axis(ax)
    ax.legend(loc="lower left", fontsize=7, ncol=2)
    ax.set_title(f"{title}: means over networks per n")
    written += _save(fig, out, "figure2_lines")
    return written


def plot_figure3(rows: Iterable[Row], out: Path, column: str = DEFAULT_COLUMN) -> List[Path]:
    """``figure3``: natural/man-made transfer (top left), random frozen layers (top right), both
    against the random-split transfer, less their base (bottom)."""
    data = figure3_data(rows, column)
    if not any(n > 0 for k in ("natman_AnB", "natman_BnA", "random_frozen") for n in data.get(k, {})):
        return []
    fig, axes = _figure(10, 7, 2, 2)
    gs = axes[1][0].get_gridspec()
    axes[1][0].remove()
    axes[1][1].remove()
    bottom = fig.add_subplot(gs[1, :])
    ax = axes[0][0]
    for key, label, style in (("natman_BnA", "man-made $\\to$ natural (target: natural)", "o-"),
                              ("natman_AnB", "natural $\\to$ man-made (target: man-made)", "s-")):
        curve = data.get(key, {})
        if curve:
            ax.plot(sorted(curve), [curve[n] for n in sorted(curve)], style, label=label)
    _layer_axis(ax)
    ax.set_title("Transfer between dissimilar halves")
    ax.legend(fontsize=7)
    ax = axes[0][1]
    curve = data.get("random_frozen", {})
    if curve:
        ax.plot(sorted(curve), [curve[n] for n in sorted(curve)], "o-", color="black",
                label="random, frozen layers 1..n")
    _layer_axis(ax)
    ax.set_title("Random untrained first layers")
    ax.legend(fontsize=7)
    for key, label, style in (("natman_BnA_relative", "man-made $\\to$ natural", "o-"),
                              ("natman_AnB_relative", "natural $\\to$ man-made", "s-"),
                              ("random_frozen_relative", "random frozen", "^-"),
                              ("transfer_relative", "random A/B split (AnB, BnA)", "D-")):
        curve = data.get(key, {})
        if curve:
            bottom.plot(sorted(curve), [curve[n] for n in sorted(curve)], style, label=label,
                        color="#d62728" if key.startswith("transfer") else None)
    _layer_axis(bottom, "Top-1 less base level")
    bottom.legend(fontsize=7)
    return _save(fig, out, "figure3")


def plot_reduced(rows: Iterable[Row], out: Path, column: str = DEFAULT_COLUMN,
                 paper: Optional[Dict[int, float]] = None) -> List[Path]:
    """``reduced``: top-1 vs training images per class (log x)."""
    data = reduced_data(rows, column)
    if not data:
        return []
    fig, axes = _figure(6, 4.5)
    ax = axes[0][0]
    xs = sorted(data)
    ax.plot(xs, [data[x] for x in xs], "o-", color="black", label="ours")
    if paper:
        px = sorted(paper)
        ax.plot(px, [paper[x] for x in px], "o--", color="gray", markerfacecolor="none", alpha=0.7,
                label="paper")
    ax.set_xscale("log")
    ax.set_xlabel("Training images per class")
    ax.set_ylabel("Top-1 accuracy (1000 classes)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Reduced training sets")
    return _save(fig, out, "reduced")
