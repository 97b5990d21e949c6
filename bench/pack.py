"""Pack benchmark: images/s of ``data_prep pack`` with 1 and 2 workers and, in the same run on the
same real files, of a single-process loop doing what Caffe's ``convert_imageset`` does per file
(``cv2.imread``, ``cv2.resize``, Datum serialisation with protobuf, LMDB put, a commit every 1000),
and of the same loop with the Datum's bytes put together by hand (``_lean``: without protobuf's
Python-side cost, nearer to what convert_imageset's C++ spends).  Prints JSON.

The files: the real photographs of ``shared/golden/photos/img`` (48 JPEG variants: baseline,
4:4:4, progressive, grey, CMYK, EXIF-rotated, a PNG named .JPEG), listed ``--repeat-list`` times
(1152 lines by default), or any ``--root``/``--list``.  Each measurement runs in a fresh process
(``--rounds`` rounds, interleaved; the best of each is reported: the machine may be shared), and
every database is checked to hold the same records as the loop's.

    python bench/pack.py [--rounds 3] [--resize 256] [--workers 1 2] [--root DIR/ --list FILE]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def caffe_loop(root: str, list_file: str, out: str, height: int, width: int, gray: bool,
               lean: bool = False) -> int:
    """convert_imageset's per-file work, single-threaded, in Python.  ``lean``: the Datum's bytes put
    together by hand (as pack does) instead of protobuf's ``SerializeToString``, closer to what the
    same work costs in C++."""
    import cv2
    import lmdb
    import numpy as np
    from data_prep.records import varint
    from prototxt_like import caffe_pb2
    flag = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR
    lines = []
    with open(list_file, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\n")
            pos = line.rfind(b" ")
            lines.append((line[:pos].decode(), int(line[pos + 1:])))
    os.mkdir(out)
    env = lmdb.open(out, map_size=1 << 30, sync=False, metasync=False)  # as pack's writer
    txn = env.begin(write=True)
    count = 0
    for line_id, (name, label) in enumerate(lines):
        img = cv2.imread(root + name, flag)
        if img is None:
            continue
        if height and width:
            img = cv2.resize(img, (width, height))
        if img.ndim == 2:
            img = img[:, :, None]
        if lean:
            c, h, w = img.shape[2], img.shape[0], img.shape[1]
            head = b"\x08" + varint(c) + b"\x10" + varint(h) + b"\x18" + varint(w) + b"\x22" + varint(c * h * w)
            rec = bytearray(len(head) + c * h * w) + b"\x28" + varint(label) + b"\x38\x00"
            rec[:len(head)] = head
            planes = list(np.frombuffer(rec, np.uint8, count=c * h * w, offset=len(head)).reshape(c, h, w))
            if c == 1:
                planes[0][...] = img[:, :, 0]
            else:
                cv2.split(img, planes)
            value = rec
        else:
            value = caffe_pb2.Datum(channels=img.shape[2], height=img.shape[0], width=img.shape[1],
                                    data=img.transpose(2, 0, 1).tobytes(), label=label,
                                    encoded=False).SerializeToString()
        txn.put(b"%08d_%s" % (line_id, name.encode()), value)
        count += 1
        if count % 1000 == 0:
            txn.commit()
            txn = env.begin(write=True)
    txn.commit()
    env.sync(True)
    env.close()
    return count


def one(args) -> None:
    """One measurement in this process; prints {"seconds", "records", CPU seconds of this process
    ("main_cpu") and of it with its (joined) workers ("cpu")}."""
    import resource

    def cpu(who):
        r = resource.getrusage(who)
        return r.ru_utime + r.ru_stime
    if args.prime_mb:  # see main(): recently touched free pages for this run's page cache
        scratch = args.out + ".prime"
        block = b"\1" * (1 << 20)
        with open(scratch, "wb") as f:
            for _ in range(args.prime_mb):
                f.write(block)
        os.remove(scratch)
    c0, k0 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
    if args.mode in ("loop", "lean"):
        t = time.perf_counter()
        n = caffe_loop(args.root, args.list, args.out, args.resize, args.resize, args.gray,
                       lean=args.mode == "lean")
    else:
        from data_prep.pack import pack
        t = time.perf_counter()
        n = pack(args.root, args.list, args.out, resize_height=args.resize, resize_width=args.resize,
                 gray=args.gray, workers=int(args.mode), progress=False, log=lambda m: None)
    sec = time.perf_counter() - t
    main_cpu = cpu(resource.RUSAGE_SELF) - c0
    print(json.dumps({"seconds": sec, "records": n, "main_cpu": main_cpu,
                      "cpu": main_cpu + cpu(resource.RUSAGE_CHILDREN) - k0}))


def digest(db: str) -> str:
    import lmdb
    h = hashlib.sha256()
    env = lmdb.open(db, readonly=True, lock=False)
    with env.begin() as txn:
        for k, v in txn.cursor():
            h.update(hashlib.sha256(k).digest() + hashlib.sha256(v).digest())
    env.close()
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", help="image folder (with its trailing /); default: shared/golden/photos/img/")
    ap.add_argument("--list", help="list file; default: the photos' list.txt repeated --repeat-list times")
    ap.add_argument("--repeat-list", type=int, default=72)
    ap.add_argument("--resize", type=int, default=256, help="resize to N x N (0: full size)")
    ap.add_argument("--gray", action="store_true")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tmp", default=None, help="folder for the databases (default: the system's temp)")
    ap.add_argument("--prime-mb", type=int, default=None,
                    help="before each measured run, write and delete a scratch file of this many MB "
                    "(default: the database's size), untimed: on VMs the first touch of a page the "
                    "guest has not used lately costs several times more, which makes writes of "
                    "fresh page cache vary from run to run; this gives every mode the same start")
    ap.add_argument("--one", dest="mode", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        return one(args)

    tmp = tempfile.mkdtemp(prefix="bench_pack_", dir=args.tmp)
    try:
        if args.root is None:
            from tests._shared import shared_dir
            photos = shared_dir() / "golden" / "photos"
            args.root = str(photos / "img") + "/"
            lines = (photos / "list.txt").read_text().splitlines()
            args.list = os.path.join(tmp, "list.txt")
            with open(args.list, "w") as f:
                f.write("\n".join(lines * args.repeat_list) + "\n")
        n_lines = sum(1 for _ in open(args.list, "rb"))
        if args.prime_mb is None:  # about the database's size
            per = (3 - 2 * args.gray) * args.resize * args.resize if args.resize else 1 << 19
            args.prime_mb = max(16, n_lines * (per + 100) >> 20)
        modes = ["loop", "lean"] + [str(w) for w in args.workers]
        times: dict = {m: [] for m in modes}
        cpus: dict = {m: [] for m in modes}
        digests: dict = {}
        for r in range(args.rounds):
            for m in modes:
                out = os.path.join(tmp, f"db_{m}_{r}")
                cmd = [sys.executable, __file__, "--one", m, "--root", args.root, "--list", args.list,
                       "--out", out, "--resize", str(args.resize), "--prime-mb", str(args.prime_mb)] \
                    + (["--gray"] if args.gray else [])
                res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
                if res.returncode:
                    sys.exit(f"{m} failed:\n{res.stderr[-3000:]}")
                got = json.loads(res.stdout.strip().splitlines()[-1])
                times[m].append(got["seconds"])
                cpus[m].append((got["cpu"], got["main_cpu"]))
                if r == 0:
                    digests[m] = digest(out)
                shutil.rmtree(out)
        rate = {m: n_lines / min(ts) for m, ts in times.items()}
        cpus_n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        name = {"loop": "convert_imageset_loop", "lean": "convert_imageset_loop_lean", **{str(w): f"pack_{w}_worker{'s' * (w > 1)}" for w in args.workers}}
        report = {
            "files": f"{args.root} ({n_lines} list lines)", "resize": args.resize, "gray": args.gray,
            "prime_mb": args.prime_mb,
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "images_per_s": {name[m]: round(v, 1) for m, v in rate.items()},
            "seconds_per_round": {name[m]: [round(t, 3) for t in ts] for m, ts in times.items()},
            "speedup_vs_loop": {name[m]: round(rate[m] / rate["loop"], 2) for m in modes if m != "loop"},
            "speedup_vs_lean_loop": {name[m]: round(rate[m] / rate["lean"], 2) for m in modes
                                     if m not in ("loop", "lean")},
            # CPU per image (all processes / the writing process), best round: on a shared machine
            # the wall-clock rates above also measure the other users; these do not
            "cpu_ms_per_image": {name[m]: [round(1e3 * min(c for c, _ in v) / n_lines, 3),
                                           round(1e3 * min(mc for _, mc in v) / n_lines, 3)]
                                 for m, v in cpus.items()},
            # what the CPU time allows on idle cores: all processes' CPU spread over the cores, but
            # no faster than the one writing process can go
            "cpu_limit_images_per_s": {
                name[m]: round(min((1 if m in ("loop", "lean") else min(int(m), cpus_n)) / min(c for c, _ in v),
                                   1 / min(mc for _, mc in v)) * n_lines, 1)
                for m, v in cpus.items()},
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "records_identical_to_loop": all(d == digests["loop"] for d in digests.values()),
        }
        print(json.dumps(report, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
