"""``python -m replicate``: a drop-in for Caffe 1.0's ``caffe`` tool, plus the comparison tool.

    python -m replicate train -solver S [-weights W[,W2]] [-snapshot STATE [-caffe_resume]] [-gpu N]
    python -m replicate test  -model M -weights W [-iterations N]
    python -m replicate time  -model M [-weights W] [-iterations N]
    python -m replicate blobs -model M [-weights W] [-inputs IN.npz] -out OUT.npz [-phase TEST|TRAIN]
                              [-backward] [-top_diff TD.npz] [-iterations N]
    python -m replicate compare A B [--tol RTOL] [--atol ATOL] [--ulps N] [--json]
                              (.caffemodel/.solverstate/.binaryproto/.npz per blob, or two caffe train
                              logs per printed value; exit 0 identical, 1 different, 2 unreadable)
    python -m replicate serve [--socket PATH]   (a fork server: with env REPLICATE_SERVER=PATH, or 1
                              for the default path, train/test/time/blobs start as forks of it without
                              torch's import; replicate/zygote.py)

Flags take Caffe's single-dash spelling or a double dash.  Every command takes ``--blas exact|fast``
(exact: Caffe's BLAS calls on the system OpenBLAS), ``-random_seed S`` (Caffe's boost mt19937 and
Boost 1.74's distributions, draw for draw: with the same seed, fillers, Data-layer crops and mirrors
and dropout masks are Caffe's; the seed is taken modulo 2^32 as Caffe's set_random_seed takes it) and
``--log FILE``.

Start-up: torch is imported only by the commands that compute (train, test, time, blobs), with the
garbage collector paused and its objects frozen after; those commands end without Python's
teardown (:func:`exit_now`; env ``REPLICATE_FAST_EXIT=0`` keeps it).  Env
``REPLICATE_STARTUP_TRACE=FILE`` appends the start-up milestones to FILE (bench/startup.py).  With
env ``REPLICATE_SERVER`` (a ``serve`` socket's path, or 1 for the default) train/test/time/blobs run
as forks of that server, without torch's import (replicate/zygote.py: what it refuses, and why the
bits are the same); when it cannot, they run here, after one line saying why.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional

from .timing import mark

mark("python")  # the interpreter is up and this module runs (bench/startup.py)

# numpy and torch are imported by the commands that use them, so that ``compare``, ``plan``,
# ``report``, ``status``, ``sweep`` and ``demo`` start without torch's import (about 1 s).


def _flag(p: argparse.ArgumentParser, name: str, **kw):
    p.add_argument(f"-{name}", f"--{name}", dest=name, **kw)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--blas", choices=("exact", "fast"), default=None,
                   help="exact (the default on CPU): Caffe's BLAS calls on Debian's OpenBLAS 0.3.21, its Haswell "
                        "kernels and 1 thread, set up and checked in this process: Caffe 1.0's bits (refused, "
                        "with what to install, on another library). fast: the CBLAS's own kernels for this CPU "
                        "(or torch), not bit-for-bit. On a GPU (-gpu, or a solver with solver_mode: GPU) the "
                        "default is fast: no mode promises Caffe's CPU bits on a GPU, and exact (Caffe's cuBLAS "
                        "calls per image and group) runs about 2.3x slower there. Env REPLICATE_BLAS sets the "
                        "default. A layer's engine field: exact computes Caffe's CPU arithmetic whatever the "
                        "engine (as Caffe built with cuDNN does in CPU mode); fast runs CUDNN and DEFAULT on its "
                        "fast kernels and CAFFE in Caffe's kernel order on fast's library (README: The engine "
                        "field).")
    _flag(p, "random_seed", type=int, default=None,
          help="seed of Caffe's random generator (boost mt19937 and Boost's distributions, draw for draw "
               "with Caffe: fillers, crops, mirrors, dropout; taken modulo 2^32). train: overrides the "
               "solver's random_seed; default: the solver's, else seeded from the system")
    _flag(p, "gpu", default=None, help="GPU id (CUDA builds); omitted: CPU")
    _flag(p, "log", default=None, help="write the glog lines to FILE instead of stderr")
    _flag(p, "data_workers", type=int, default=None, help="Data layer decoding workers")
    _flag(p, "level", type=int, default=0, help="the net state's level (Caffe's -level)")
    _flag(p, "stage", default="", help="comma-separated net state stages (Caffe's -stage)")
    p.add_argument("--caffe", choices=("1.0", "2014"), default="1.0",
                   help="whose semantics: Caffe 1.0 (default) or the paper's 2014 Caffe (BVLC 584abd3; "
                        "replicate/caffe2014.py lists the differences)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m replicate", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a net (caffe train)")
    _flag(p, "solver", required=True, help="solver prototxt")
    _flag(p, "weights", default=None, help="comma-separated .caffemodel files to fine-tune from")
    _flag(p, "snapshot", default=None, help=".solverstate to resume from (exactly, with its .resume sidecar)")
    p.add_argument("-caffe_resume", "--caffe_resume", "--caffe-resume", dest="caffe_resume", action="store_true",
                   help="ignore the .resume sidecar: restart the random generator and the data layers from the "
                        "seed and the first record, as Caffe does")
    _flag(p, "sigint_effect", choices=("stop", "snapshot", "none"), default="stop")
    _flag(p, "sigterm_effect", choices=("stop", "snapshot", "none"), default="stop")
    _flag(p, "sighup_effect", choices=("stop", "snapshot", "none"), default="snapshot")
    _common(p)
    p = sub.add_parser("test", help="score a model (caffe test)")
    _flag(p, "model", required=True)
    _flag(p, "weights", required=True)
    _flag(p, "iterations", type=int, default=50)
    _common(p)
    p = sub.add_parser("time", help="per-layer forward/backward time (caffe time)")
    _flag(p, "model", required=True)
    _flag(p, "weights", default=None)
    _flag(p, "iterations", type=int, default=50)
    _flag(p, "phase", choices=("TRAIN", "TEST"), default="TRAIN")
    _common(p)
    p = sub.add_parser("blobs", help="every blob's data (and diffs) as .npz, for comparing with Caffe")
    _flag(p, "model", required=True)
    _flag(p, "weights", default=None)
    _flag(p, "inputs", default=None, help=".npz of input blobs by name")
    _flag(p, "out", required=True)
    _flag(p, "phase", choices=("TRAIN", "TEST"), default="TEST")
    _flag(p, "backward", action="store_true",
          help="after each forward, clear the parameter diffs, set the top diffs and run backward from the "
               "last loss layer or the last layer making a blob given in -top_diff, whichever is later "
               "(pycaffe's net.backward(start=...)): layers after it, such as Accuracy after the loss, are "
               "skipped")
    _flag(p, "top_diff", default=None,
          help=".npz of top diffs, each set as pycaffe's net.blobs[b].diff[...] = g (cast to float32, "
               "broadcast to the blob's shape). If any key is top_diff/<blob> (the layout of a golden "
               "backward.npz), only those keys are read and each must name a blob; otherwise the keys that "
               "name a blob are read. Other keys (diff/..., param_diff/...) are ignored. A diff given for a "
               "loss blob replaces its loss weight (Caffe's loss layers scale by top diff[0]).")
    _flag(p, "iterations", type=int, default=1)
    _common(p)
    sub.add_parser("plan", help="write the paper's grid: a folder per network (plan --help)", add_help=False)
    sub.add_parser("sweep", help="train a plan's networks in dependency order, locally or on Ray (sweep --help)",
                   add_help=False)
    sub.add_parser("report", help="results.csv, tables and figures from Caffe logs (report --help)", add_help=False)
    sub.add_parser("demo", help="the whole pipeline on synthetic mini-ImageNet, to Figure 2 (demo --help)",
                   add_help=False)
    sub.add_parser("status", help="where each network of a plan stands: state, iteration, last test accuracy, "
                                  "time per iteration, ETA (status PLAN_DIR)", add_help=False)
    sub.add_parser("compare", help="is this Caffe's result? two caffemodels, solverstates, binaryprotos, npz "
                                   "files or Caffe logs, blob by blob (compare --help)", add_help=False)
    return ap


def _on_gpu(args) -> bool:
    """Whether this command computes on a GPU: -gpu, or train's solver with solver_mode: GPU (and CUDA)."""
    if args.gpu is not None:
        return True
    import torch
    if getattr(args, "solver", None) and torch.cuda.is_available():
        try:
            from prototxt_like import load_solver
            param = load_solver(args.solver)
            return param.HasField("solver_mode") and param.solver_mode == param.GPU
        except Exception:  # noqa: BLE001 - cmd_train reports a bad solver
            return False
    return False


def _setup(args):
    import torch
    from . import ops as R
    from .log import CaffeLog, environment, header_lines
    mode = args.blas or os.environ.get("REPLICATE_BLAS") or ("fast" if _on_gpu(args) else "exact")
    try:
        R.set_blas(mode)
    except RuntimeError as e:
        raise SystemExit(f"error: {e}") from None
    if os.environ.get("REPLICATE_CPU_CACHE", "1") != "0":
        R.enable_cpu_cache()  # Caffe-like reuse of activation memory (no page faults per iteration)
    log = CaffeLog(args.log, stream=None) if args.log else CaffeLog()
    device = "cpu"
    if args.gpu is not None:
        if not torch.cuda.is_available():
            raise SystemExit(f"-gpu {args.gpu}: no CUDA device available in this build")
        device = f"cuda:{int(str(args.gpu).split(',')[0])}"
    for line in header_lines(environment("cuda" if _on_gpu(args) and torch.cuda.is_available() else device)):
        log("setup", line)
    if args.gpu is not None:
        log("cli", f"Using GPUs {args.gpu}")
    else:
        log("use_cpu", "Use CPU.")
    mark("setup")
    return log, device


def _rng(seed):
    """Caffe's generator: ``Caffe::set_random_seed(unsigned int)`` truncates the seed to 32 bits;
    no seed: seeded from the system, as Caffe's own default generator."""
    from .rng import CaffeRNG, caffe_seed
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    return CaffeRNG(caffe_seed(seed))


def cmd_train(args) -> int:
    import torch
    from prototxt_like import load_solver
    from .progress import Progress
    from .solver import Action, SGDSolver
    log, device = _setup(args)
    if args.caffe == "2014":  # train_net.bin / finetune_net.bin
        from .caffe2014 import cmd_train as train_2014
        return train_2014(args, log, device)
    if args.snapshot and args.weights:
        raise SystemExit("Give a snapshot to resume training or weights to finetune but not both.")
    param = load_solver(args.solver, resolve_snapshot_prefix=True)
    if args.random_seed is not None:
        param.random_seed = args.random_seed
    param.train_state.level = args.level  # caffe train always sets these from its flags
    param.train_state.stage.extend(args.stage.split(","))
    if args.gpu is None and param.HasField("solver_mode") and param.solver_mode == param.GPU:
        if torch.cuda.is_available():  # caffe train: the solver's GPU mode and device_id
            device = f"cuda:{param.device_id}"
            log("use_gpu", f"Using GPUs {param.device_id}")
        else:
            log("use_gpu", "solver_mode is GPU but no CUDA device is available: running on the CPU", "W")
    if args.snapshot or args.weights:
        param.ClearField("weights")
    if args.weights:
        param.weights.append(args.weights)
    from .solvers import make_solver
    solver = make_solver(param, log=log, device=device, data_workers=args.data_workers,
                         caffe_resume=args.caffe_resume)
    mark("solver")
    effect = {"stop": Action.STOP, "snapshot": Action.SNAPSHOT, "none": Action.NONE}
    solver.signal_effects = {"SIGINT": effect[args.sigint_effect], "SIGTERM": effect[args.sigterm_effect],
                             "SIGHUP": effect[args.sighup_effect]}
    bar = None
    if args.log:  # stderr is free for a progress bar
        bar = Progress(param.max_iter, "train", enabled=sys.stderr.isatty())
        bar.n = 0
    try:
        if args.snapshot:
            log("resuming", f"Resuming from {args.snapshot}")
            solver.restore(args.snapshot)
        log("start", "Starting Optimization")
        solver.solve(progress=(lambda it, loss: bar.update(it - bar.n)) if bar else None)
    finally:
        if bar:
            bar.close()
        solver.close()
    log("caffe_done", "Optimization Done.")
    return 0


def _load_net(args, phase, log, device):
    from prototxt_like import caffe_pb2
    from .net import Net
    if getattr(args, "caffe", "1.0") == "2014":
        from .caffe2014 import net_2014
        net = net_2014(args.model, getattr(caffe_pb2, phase), args.random_seed, device)
    else:
        net = Net(args.model, getattr(caffe_pb2, phase), level=args.level, stages=args.stage.split(","),
                  rng=_rng(args.random_seed), device=device, data_workers=args.data_workers)
    if args.weights:
        for w in args.weights.split(","):
            net.copy_trained_layers_from(w)
    return net


def cmd_test(args) -> int:
    import numpy as np
    from .log import g
    log, device = _setup(args)
    net = _load_net(args, "TEST", log, device)
    log("cli", f"Running for {args.iterations} iterations.")
    f32 = np.float32
    scores, names, loss = [], [], f32(0)
    for i in range(args.iterations):
        loss = f32(loss + f32(net.forward()))
        idx = 0
        for name in net.output_names:
            for v in net.blobs[name].data.detach().reshape(-1).cpu().numpy().astype(np.float32):
                if i == 0:
                    scores.append(v)
                    names.append(name)
                else:
                    scores[idx] = f32(scores[idx] + v)
                log("cli", f"Batch {i}, {name} = {g(v)}")
                idx += 1
    loss = f32(loss / f32(args.iterations))
    log("cli", f"Loss: {g(loss)}")
    for name, s in zip(names, scores):
        mean = f32(s / f32(args.iterations))
        w = net.loss_weights.get(name, 0.0)
        msg = f" (* {g(w)} = {g(f32(w) * mean)} loss)" if w else ""
        log("cli", f"{name} = {g(mean)}{msg}")
    net.close()
    return 0


def cmd_time(args) -> int:
    log, device = _setup(args)
    net = _load_net(args, args.phase, log, device)
    log("cli", "Performing Forward")
    from .log import g
    loss = net.forward()
    log("cli", f"Initial loss: {g(loss)}")
    log("cli", "Performing Backward")
    net.backward()
    from .timing import time_net
    log("cli", "*** Benchmark begins ***")
    log("cli", f"Testing for {args.iterations} iterations.")
    t_all = time.perf_counter()
    timing = time_net(net, args.iterations, lambda it, ms: log(
        "cli", f"Iteration: {it + 1} forward-backward time: {g(ms)} ms."))
    log("cli", "Average time per layer: ")
    for name, f, b in zip(timing.layers, timing.forward_ms, timing.backward_ms):
        log("cli", f"{name:>10}\tforward: {g(f)} ms.")
        log("cli", f"{name:>10}\tbackward: {g(b)} ms.")
    log("cli", f"Average Forward pass: {g(timing.forward_total_ms)} ms.")
    log("cli", f"Average Backward pass: {g(timing.backward_total_ms)} ms.")
    log("cli", f"Average Forward-Backward: {g(timing.forward_total_ms + timing.backward_total_ms)} ms.")
    log("cli", f"Total Time: {g((time.perf_counter() - t_all) * 1000)} ms.")
    log("cli", "*** Benchmark ends ***")
    net.close()
    return 0


def _blob_top_diffs(net, top_diff: dict) -> dict:
    """The entries of a ``-top_diff`` file that are top diffs, ``{blob: array}``: the
    ``top_diff/<blob>`` keys when there are any (each must name a blob), else the keys that name a
    blob; the rest (``diff/...``, ``param_diff/...``, notes) is ignored."""
    explicit = {k: v for k, v in top_diff.items() if k.startswith("top_diff/")}
    if not explicit:
        picked = {k: v for k, v in top_diff.items() if k in net.blobs}
        if not picked:
            raise SystemExit(f"-top_diff holds no top diff for net {net.name!r}: no key is top_diff/<blob> or "
                             f"a blob name (keys: {', '.join(sorted(top_diff)) or 'none'})")
        return picked
    for k in explicit:
        if k[len("top_diff/"):] not in net.blobs:
            raise SystemExit(f"top diff {k!r} names no blob of net {net.name!r}")
    return {k[len("top_diff/"):]: v for k, v in explicit.items()}


def _set_diff(blob, v) -> None:
    """pycaffe's ``net.blobs[name].diff[...] = v``: cast to float32, broadcast to the blob's shape."""
    import numpy as np
    import torch
    shape = tuple(blob.data.shape)
    d = np.empty(shape, dtype=np.float32)
    try:
        d[...] = np.asarray(v)
    except ValueError:
        raise SystemExit(f"top diff for blob {blob.name!r} has shape {tuple(np.shape(v))}, which does not fit "
                         f"the blob's shape {shape}") from None
    blob.diff = torch.from_numpy(d).to(blob.data.device)


def run_blobs(net, inputs: Optional[dict], *, backward: bool, top_diff: Optional[dict], iterations: int,
              seed: Optional[int]) -> dict:
    """The ``blobs`` command's work on a built net: returns ``{key: array}``.

    Backward runs as pycaffe's ``net.backward(start=...)`` from the later of the last loss layer and
    the last layer making a blob with a given top diff; a top diff replaces what the blob's diff
    holds (for a loss blob, its loss weight: Caffe's Backward never reseeds it)."""
    import numpy as np
    import torch
    from .rng import CaffeRNG
    if seed is not None:  # caffe.set_random_seed(seed) right before forward
        net.ctx.rng = CaffeRNG(seed)
    out = {}
    for name, arr in (inputs or {}).items():
        if name not in net.blobs:
            raise SystemExit(f"input {name!r} is not a blob of net {net.name!r} (input blobs: "
                             f"{', '.join(net.input_names) or 'none'})")
        # np.array keeps a 0-d input 0-d (np.ascontiguousarray would make it 1-d)
        net.blobs[name].data = torch.from_numpy(np.array(arr, dtype=np.float32, order="C")).to(net.ctx.device)
    start = None
    diffs = {}
    if backward:
        if top_diff is not None:
            diffs = _blob_top_diffs(net, top_diff)
        producer = {t: lid for lid, tops in enumerate(net.tops) for t in tops}  # the last layer writing t
        starts = [i for i, tops in enumerate(net.tops) if any(net._top_loss(i, t) for t in tops)]
        starts += [producer[name] for name in diffs]
        if not starts:
            raise SystemExit("-backward needs a loss layer in the net or a -top_diff")
        start = max(starts)
    for it in range(iterations):
        prefix = f"{it}/" if iterations > 1 else ""
        net.forward()
        for name in net.blob_order:
            out[prefix + name] = net.blobs[name].data.detach().cpu().numpy().copy()
        if backward:
            net.clear_param_diffs()
            for name, v in diffs.items():
                _set_diff(net.blobs[name], v)
            net.backward(start)
            for name in net.blob_order:
                b = net.blobs[name]
                d = b.diff if b.diff is not None and b.diff.shape == b.data.shape else torch.zeros_like(b.data)
                out[f"{prefix}diff/{name}"] = d.detach().cpu().numpy().copy()
            for layer in net.layers:
                for i, p in enumerate(layer.params):
                    out[f"{prefix}param_diff/{layer.name}/{i}"] = p.diff.detach().cpu().numpy().copy()
    return out


def cmd_blobs(args) -> int:
    import numpy as np
    log, device = _setup(args)
    net = _load_net(args, args.phase, log, device)
    inputs = dict(np.load(args.inputs)) if args.inputs else None
    top_diff = dict(np.load(args.top_diff)) if args.top_diff else None
    out = run_blobs(net, inputs, backward=args.backward, top_diff=top_diff, iterations=args.iterations,
                    seed=args.random_seed)
    from .fileio import atomic_writer
    with atomic_writer(args.out) as buf:  # the .npz goes into the atomic writer's temporary file
        np.savez(buf, **out)
    log("cli", f"Wrote {len(out)} arrays to {args.out}")
    net.close()
    return 0


def _import_compute(command: str) -> None:
    """Import torch and the modules of ``command`` (train, test, time, blobs).

    In a fresh process (torch not imported yet: ``python -m replicate``, a sweep's trainer) the
    garbage collector is paused during these imports, and what they made is then frozen
    (``gc.freeze``: moved to a generation that collections skip).  torch's import makes some
    170,000 long-lived objects; otherwise each full collection during the import, the run and the
    interpreter's shutdown walks them all again (about 0.1 s on an idle 2-core machine per walk,
    several times that when it is busy).  Only garbage collection's timing changes, never a value.
    A process that had already imported torch (a test calling :func:`main`) is left as it is."""
    import gc
    fresh = "torch" not in sys.modules and gc.isenabled()
    if fresh:
        gc.disable()
    try:
        import torch  # noqa: F401
        mark("torch")
        import prototxt_like  # noqa: F401
        from . import layers, net, solver  # noqa: F401  (the layer registry, ops and _C with them)
        if command == "train":
            from . import fillers, progress, solvers  # noqa: F401
        mark("imports")
    finally:
        if fresh:
            gc.freeze()
            gc.enable()


def _server_path() -> Optional[str]:
    """The fork server this command asks to run it (env REPLICATE_SERVER: a socket path, or 1 for
    ``python -m replicate serve``'s default), or None: not set, or this is already such a run."""
    path = os.environ.get("REPLICATE_SERVER", "")
    if not path or path == "0" or "torch" in sys.modules:  # a process with torch already (a forked run, a
        return None                                       # test calling main) runs here
    if sys.gettrace() is not None or sys.getprofile() is not None:  # a profiler or coverage watches this process
        return None
    from .zygote import default_socket
    return default_socket() if path == "1" else path


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("plan", "sweep", "report", "demo", "status"):
        from .experiments.__main__ import main as exp_main
        return exp_main(argv)
    if argv and argv[0] == "compare":
        from .compare import main as compare_main
        return compare_main(argv[1:])
    if argv and argv[0] == "serve":
        from .zygote import serve_main
        return serve_main(argv[1:])
    args = build_parser().parse_args(argv)
    server = _server_path()
    if server:
        from .zygote import ZygoteUnavailable, run_via_server
        try:
            return run_via_server(server, argv)
        except ZygoteUnavailable as e:
            print(f"replicate: not started by the server ({e}); starting here", file=sys.stderr, flush=True)
    _import_compute(args.command)
    from prototxt_like.errors import CaffeFormatError
    from .data.db import DataSourceError
    from .layers.base import LayerError
    from .net import NetError
    from .solver import SolverError
    try:
        return {"train": cmd_train, "test": cmd_test, "time": cmd_time, "blobs": cmd_blobs}[args.command](args)
    except (CaffeFormatError, NetError, SolverError, DataSourceError, LayerError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        mark("main_done")


def exit_now(rc=0):
    """``sys.exit(rc)`` for a process whose work is done, without the interpreter's teardown.

    With torch imported, Python's shutdown (garbage collection over torch's objects, module
    teardown) costs about 0.5 s of CPU (more than building and testing a mini CaffeNet), which every
    ``python -m replicate`` run and every sweep trainer would pay after its last log line.  Here the
    standard streams and C stdio are flushed, the ``atexit`` functions run (temporary folders,
    multiprocessing's clean-up), and the process ends with ``os._exit``.  Falls back to ``sys.exit``
    under a profiler or tracer (cProfile, coverage), when a non-daemon thread is still running
    (Python would wait for it), or with env ``REPLICATE_FAST_EXIT=0``."""
    import atexit
    import threading
    code = 0 if rc is None else rc
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if (not isinstance(code, int) or run_exitfuncs is None or os.environ.get("REPLICATE_FAST_EXIT", "1") == "0"
            or sys.getprofile() is not None or sys.gettrace() is not None
            or any(t.is_alive() and not t.daemon and t is not threading.main_thread()
                   for t in threading.enumerate())):
        sys.exit(rc)
    run_exitfuncs()  # (they may still print)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken stream: let Python report it as usual
        sys.exit(rc)
    try:
        import ctypes
        ctypes.CDLL(None).fflush(None)  # C/C++ stdio buffers (os._exit skips libc's exit handlers)
    except (OSError, AttributeError):
        pass
    mark("exit")
    os._exit(code & 0xFF)


if __name__ == "__main__":
    _rc = main()
    if sys.argv[1:2] and sys.argv[1] in ("train", "test", "time", "blobs"):  # the commands that import torch
        exit_now(_rc)
    sys.exit(_rc)
