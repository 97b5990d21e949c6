"""Fast mode against exact mode: how far apart they train.  Prints JSON.

Fast mode (``--blas fast``) promises no bits: it runs the CBLAS's own kernels for this CPU and
splits the work its own way, so float sums come out in another order.  This measures how far that
moves what a user sees, on

* every golden solver run of ../shared/golden (``solver``, ``solver_frozen``, the five
  ``solver_policies`` runs, the five ``solvers_more`` runs and ``scratch``): each trained as its
  README says Caffe ran it (``train -solver solver.prototxt [-weights init.caffemodel]`` in a copy of
  the run's folder beside the golden data), once in exact mode and once in fast mode;
* the demo's base network (``half0A``: the mini CaffeNet of ``python -m replicate plan --preset
  mini``) on the demo's own synthetic data (``data_prep synth``, a smaller set: ``--train-per-class``,
  made once and kept under ``--data``), ``--mini-iter`` (300) iterations: the plan's solver copied
  with ``max_iter`` changed (lr, step and tests as the plan writes them; the final snapshot is
  Caffe's snapshot-after-train).

Per run, with ``replicate.compare`` (fast against exact; exact is the reference of every relative
difference, ``|fast - exact| / |exact|``):

* ``printed``: the printed values of the two logs per kind (loss, train/test outputs, lr, ...):
  how many, how many differ, max abs and max relative difference;
  ``losses_max_rel``: the largest relative difference over every printed loss (``Iteration N (...),
  loss = X``, the train and test net outputs named ``loss``, the final forward's loss);
* ``weights``: the final snapshot's blobs: per blob max relative and absolute difference, how many
  values differ, and ``rel_l2`` (``||fast - exact|| / ||exact||``: the elementwise maximum is set by
  values near zero); ``weights_max_rel`` and ``weights_max_rel_l2`` over all blobs;
* ``exact_matches_caffe`` (golden runs): exact mode's printed values equal Caffe's train.log's, as
  text, and every snapshot Caffe wrote (``snap_iter_*``) is byte-identical; must be true.

These are measurements of one run on one machine, not a bound: fast mode's differences depend on
the CPU's kernels and the thread count, and grow with training's own sensitivity (dropout,
the number of iterations).  Everything runs in this one process (``python -m replicate train``'s
own ``main``, in each run's folder), exact then fast for each run.  The OPENBLAS_* variables are
removed at start, as bench/run.py does (exact mode sets up its Haswell kernels itself; fast mode
picks this CPU's).

    python bench/fast_vs_exact.py [--runs solver scratch solver_policies/exp_l1 ...] [--no-mini]
                                  [--mini-iter 300] [--data DIR] [--out FILE]
"""
from __future__ import annotations

import os

# As a script (not when imported, e.g. by a test): before torch and OpenBLAS load.
REMOVED_ENV = ({k: os.environ.pop(k) for k in [k for k in os.environ if k.startswith("OPENBLAS_")]}
               if __name__ == "__main__" else {})
import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODES = ("exact", "fast")
POLICIES = ("exp_l1", "poly_clip", "sigmoid_avgloss5", "fixed_itersize3", "fixed_momentum0")
SOLVERS_MORE = ("nesterov", "adagrad", "rmsprop", "adadelta", "adam")
GOLDEN_RUNS = ("solver", "solver_frozen", *(f"solver_policies/{c}" for c in POLICIES),
               *(f"solvers_more/{c}" for c in SOLVERS_MORE), "scratch")
LOSS_KINDS = ("loss", "test loss")


def golden_root() -> Path:
    from tests._shared import shared_dir
    return shared_dir() / "golden"


# -- running ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def cwd(d: Path):
    old = os.getcwd()
    os.chdir(d)
    try:
        yield
    finally:
        os.chdir(old)


def train(d: Path, mode: str, weights: str | None = None) -> float:
    """``python -m replicate train -solver solver.prototxt [-weights W] --blas MODE --log train.log``
    in ``d`` (in this process); returns the wall seconds."""
    from replicate.__main__ import main
    argv = ["train", "-solver", "solver.prototxt", "--blas", mode, "--log", "train.log"]
    if weights:
        argv[3:3] = ["-weights", weights]
    t = time.perf_counter()
    with cwd(d):
        rc = main(argv)
    if rc:
        raise SystemExit(f"fast_vs_exact: train in {d} ({mode}) failed with status {rc}: see {d / 'train.log'}")
    return time.perf_counter() - t


def golden_case(tmp: Path, name: str, mode: str) -> tuple:
    """``tmp/<mode>/<name>`` holding the run's net, solver and init weights, beside
    ``tmp/<mode>/data`` (the golden data), so the nets' ``../data`` / ``../../data`` resolve as in
    Caffe's run; returns (folder, weights or None)."""
    g = golden_root() / name
    root = tmp / mode
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "data").exists():
        (root / "data").symlink_to(golden_root() / "data", target_is_directory=True)
    d = root / name
    d.mkdir(parents=True)
    weights = None
    for f in ("net.prototxt", "solver.prototxt", "init.caffemodel"):
        if (g / f).exists():
            shutil.copy(g / f, d / f)
            (d / f).chmod(0o644)
            weights = f if f.endswith(".caffemodel") else weights
    return d, weights


def final_snapshot(d: Path) -> Path:
    """The newest ``*_iter_N.caffemodel`` under ``d``."""
    snaps = [(int(m.group(1)), p) for p in d.rglob("*_iter_*.caffemodel")
             if (m := re.search(r"_iter_(\d+)\.caffemodel$", p.name))]
    if not snaps:
        raise SystemExit(f"fast_vs_exact: no snapshot in {d}")
    return max(snaps)[1]


# -- comparing (replicate.compare) ------------------------------------------------------------------

def _finite(x):
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def is_loss(p) -> bool:
    """A printed loss: ``Iteration N, loss``, ``Test loss``, or a net output named ``loss``."""
    return p.kind in LOSS_KINDS or (p.kind in ("train output", "test output") and "loss" in p.label.split()[-1])


def compare_logs(fast_log: Path, exact_log: Path) -> dict:
    from replicate.compare import Tolerance, compare_logs as cmp, parse_log
    f, e = parse_log(fast_log), parse_log(exact_log)
    every = cmp(f, e, Tolerance())
    losses = cmp([p for p in f if is_loss(p)], [p for p in e if is_loss(p)], Tolerance())
    kinds = {k.pop("kind"): {kk: _finite(v) for kk, v in k.items()} for k in every["kinds"]}
    return {"printed": kinds, "printed_values": every["values_b"],
            "same_printed_labels": [p.label for p in f] == [p.label for p in e],
            "losses": sum(k["values"] for k in losses["kinds"]),
            "losses_differ": losses["n_differ"],
            "losses_max_rel": _finite(max((k["max_rel"] for k in losses["kinds"]), default=0.0)),
            "losses_max_abs": _finite(max((k["max_abs"] for k in losses["kinds"]), default=0.0))}


def compare_weights(fast_model: Path, exact_model: Path) -> dict:
    import numpy as np
    from replicate.compare import Tolerance, compare_array_files, load_arrays
    fa, _ = load_arrays(fast_model, "caffemodel")
    ea, _ = load_arrays(exact_model, "caffemodel")
    blobs = {}
    for entry in compare_array_files(fa, ea, Tolerance()):
        row = {"size": entry.size, "differ": entry.n_differ, "max_rel": _finite(entry.max_rel),
               "max_abs": _finite(entry.max_abs), "status": entry.status}
        if entry.key in fa and entry.key in ea and fa[entry.key].shape == ea[entry.key].shape:
            a, b = fa[entry.key].astype(np.float64), ea[entry.key].astype(np.float64)
            nb = float(np.linalg.norm(b))
            row["rel_l2"] = _finite(float(np.linalg.norm(a - b)) / nb if nb else (0.0 if not a.any() else math.inf))
        blobs[entry.key] = row
    rel = [r["max_rel"] for r in blobs.values()]
    l2 = [r["rel_l2"] for r in blobs.values() if "rel_l2" in r]
    top = lambda xs: max(xs, key=lambda x: math.inf if isinstance(x, str) else x, default=0.0)  # noqa: E731
    return {"snapshot": exact_model.name, "blobs": blobs, "weights_max_rel": top(rel), "weights_max_rel_l2": top(l2),
            "weights_identical": all(r["status"] == "identical" for r in blobs.values())}


def exact_matches_caffe(d: Path, golden: Path) -> dict:
    """Exact mode against Caffe's own run: every printed value as text, every snapshot byte for byte."""
    from replicate.compare import parse_log
    ours = [(p.label, p.text) for p in parse_log(d / "train.log")]
    caffe = [(p.label, p.text) for p in parse_log(golden / "train.log")]
    first = next(({"label": a[0], "exact": a[1], "caffe": b[1]} for a, b in zip(ours, caffe) if a != b), None)
    snaps = sorted(p.name for p in golden.glob("snap_iter_*") if p.suffix in (".caffemodel", ".solverstate"))
    bad = [s for s in snaps if not (d / s).exists() or (d / s).read_bytes() != (golden / s).read_bytes()]
    return {"ok": ours == caffe and not bad and bool(snaps), "printed_values": len(caffe),
            "printed_identical": ours == caffe, "first_printed_difference": first,
            "snapshots": snaps, "snapshots_differ": bad}


def report(fast_dir: Path, exact_dir: Path, wall: dict) -> dict:
    out = compare_logs(fast_dir / "train.log", exact_dir / "train.log")
    out.update(compare_weights(final_snapshot(fast_dir), final_snapshot(exact_dir)))
    out["wall_s"] = {m: round(w, 2) for m, w in wall.items()}
    return out


def golden_run(tmp: Path, name: str) -> dict:
    dirs, wall = {}, {}
    for mode in MODES:
        d, weights = golden_case(tmp, name, mode)
        wall[mode] = train(d, mode, weights)
        dirs[mode] = d
    out = report(dirs["fast"], dirs["exact"], wall)
    out["exact_matches_caffe"] = exact_matches_caffe(dirs["exact"], golden_root() / name)
    return out


# -- the mini CaffeNet ------------------------------------------------------------------------------

def mini_data(folder: Path, train_per_class: int) -> tuple:
    """The demo's data stages (``data_prep synth``, lists, halves, ``pack``, ``mean``) for half0A, made
    once in ``folder`` (the demo skips what is already there); returns (data root, spec)."""
    from data_prep.synth import SynthSpec
    from replicate.experiments.demo import prepare_data
    spec = SynthSpec(train_per_class=train_per_class)
    with contextlib.redirect_stdout(sys.stderr):
        data = prepare_data(folder, spec, progress=False, workers=1, log=lambda m: None, sets=("half0A",))
    return data, spec


def mini_run(tmp: Path, data: Path, spec, iterations: int) -> dict:
    from dataclasses import replace
    from replicate.experiments.names import classify
    from replicate.experiments.plan import PRESETS, network_files
    net = classify("half0A")
    scale = replace(PRESETS["mini"], num_classes=spec.classes)
    dirs, wall = {}, {}
    for mode in MODES:
        d = tmp / mode / "mini_half0A"
        d.mkdir(parents=True)
        for name, text in network_files(net, scale, data).items():
            if name == "imagenet_solver.prototxt":
                text, n = re.subn(r"(?m)^max_iter: \d+$", f"max_iter: {iterations}", text)
                assert n == 1, "no max_iter line in the plan's solver"
                (d / "solver.prototxt").write_text(text)
            else:
                (d / name).write_text(text)
        wall[mode] = train(d, mode)
        dirs[mode] = d
    out = report(dirs["fast"], dirs["exact"], wall)
    out["net"] = {"name": "half0A (the demo's base network, plan --preset mini)", "iterations": iterations,
                  "batch_size": scale.batch_size, "test": f"{scale.test_iter} x {scale.test_batch_size} every "
                  f"{scale.test_interval} iterations", "base_lr": scale.base_lr,
                  "data": {"root": str(data), "classes": spec.classes // 2, "train_per_class": spec.train_per_class,
                           "valid_per_class": spec.valid_per_class, "seed": spec.seed}}
    return out


# -- main -------------------------------------------------------------------------------------------

def summary(result: dict) -> str:
    lines = ["run                            | losses max rel | weights max rel | weights max rel L2 | exact = Caffe"]
    for name, r in result["runs"].items():
        if "error" in r:
            lines.append(f"{name:30} | error: {r['error'][:80]}")
            continue
        g = r.get("exact_matches_caffe")
        lines.append(f"{name:30} | {_fmt(r['losses_max_rel']):>14} | {_fmt(r['weights_max_rel']):>15} | "
                     f"{_fmt(r['weights_max_rel_l2']):>18} | {'-' if g is None else ('yes' if g['ok'] else 'NO')}")
    return "\n".join(lines)


def _fmt(x) -> str:
    return x if isinstance(x, str) else f"{x:.2e}"


def run(runs=GOLDEN_RUNS, mini_iter: int = 300, data: Path | None = None, train_per_class: int = 60,
        keep: Path | None = None) -> dict:
    import torch
    from replicate.log import environment
    from replicate import ops as R
    t0 = time.time()
    env = {}
    for mode in ("fast", "exact"):  # each mode's library, as the log header prints it
        R.set_blas(mode)
        env[mode] = environment()["blas"]
    result = {"what": "fast mode against exact mode (exact is the reference): largest relative differences of the "
                      "printed losses and of the final weights, and whether exact mode is Caffe's bits; a "
                      "measurement on one machine, not a bound",
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "blas": env, "torch_threads": torch.get_num_threads(),
              "removed_env": REMOVED_ENV, "runs": {}}
    tmp = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="bench_fast_vs_exact_"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        for name in runs:
            print(f"{name}: exact, fast ...", file=sys.stderr, flush=True)
            result["runs"][name] = golden_run(tmp, name)
        if mini_iter:
            root = Path(data) if data else Path(tempfile.gettempdir()) / f"replicate_fast_vs_exact_data_{train_per_class}"
            print(f"mini CaffeNet: data in {root} ...", file=sys.stderr, flush=True)
            droot, spec = mini_data(root, train_per_class)
            print(f"mini CaffeNet: {mini_iter} iterations, exact, fast ...", file=sys.stderr, flush=True)
            result["runs"]["mini_caffenet"] = mini_run(tmp, droot, spec, mini_iter)
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    golden = [r for r in result["runs"].values() if "exact_matches_caffe" in r]
    result["exact_matches_caffe_all"] = all(r["exact_matches_caffe"]["ok"] for r in golden)
    top = lambda key, rows: max((r[key] for r in rows), key=lambda x: math.inf if isinstance(x, str) else x,  # noqa: E731
                                default=None)
    result["golden_losses_max_rel"] = top("losses_max_rel", golden)
    result["golden_weights_max_rel"] = top("weights_max_rel", golden)
    result["golden_weights_max_rel_l2"] = top("weights_max_rel_l2", golden)
    result["wall_s"] = round(time.time() - t0, 1)
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="*", default=list(GOLDEN_RUNS), choices=GOLDEN_RUNS, metavar="RUN",
                    help=f"golden runs (default all: {' '.join(GOLDEN_RUNS)}); none: --runs with no name")
    ap.add_argument("--mini-iter", type=int, default=300, help="mini CaffeNet iterations (0: skip it)")
    ap.add_argument("--no-mini", dest="mini_iter", action="store_const", const=0, help="skip the mini CaffeNet")
    ap.add_argument("--data", default=None, help="the mini CaffeNet's data folder (made there once when absent; "
                                                 "default: a folder under the system's temp directory)")
    ap.add_argument("--train-per-class", type=int, default=60,
                    help="synthetic training images per class of the mini CaffeNet's data (default 60)")
    ap.add_argument("--keep", default=None, help="train in this folder and keep it (logs, snapshots)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    result = run(args.runs, args.mini_iter, args.data, args.train_per_class, args.keep)
    text = json.dumps(result, indent=1, allow_nan=False)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(summary(result), file=sys.stderr)
    print(text)
    return 0 if result["exact_matches_caffe_all"] else 1


if __name__ == "__main__":
    sys.exit(main())
