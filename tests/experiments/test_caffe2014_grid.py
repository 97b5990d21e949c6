"""``plan --caffe 2014``: the release's own files (V0 nets, the 2014 solver) field by field, and a tiny
2014 grid that ``sweep`` trains with ``train --caffe 2014`` (old-format ``<prefix>_iter_N`` snapshots,
``finetune_net.bin``-style ``-weights``) and ``report`` reads from its ``Test score #k`` logs."""
from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest

from prototxt_like import caffe_pb2
from prototxt_like.codec import parse_text
from replicate.experiments import plan as P
from replicate.experiments import report, sweep
from replicate.experiments.names import release_names
from tests._shared import random_image_db, require
from tests.experiments.test_plan import diff

NAMES = list(release_names())


def _raw(path, cls):
    """The file as written (no V0 upgrade), so V0 fields are compared as V0 fields."""
    return parse_text(path.read_text(), cls, str(path))


def _normalised(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    for l in net.layers:
        if l.layer.type == "data":
            l.layer.ClearField("source")
            l.layer.ClearField("meanfile")
    return net


@pytest.fixture(scope="module")
def plan14(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan14") / "paper"
    P.write_plan(out, "/data/root", caffe="2014")
    return out


@pytest.mark.parametrize("name", NAMES)
def test_v0_files_are_the_releases(plan14, name):
    release = require("paper", "results") / name
    ours = plan14 / name
    problems = []
    for f in ("imagenet_train.prototxt", "imagenet_val.prototxt"):
        a = _raw(ours / f, caffe_pb2.NetParameter)
        assert not len(a.layer) and len(a.layers), f"{name}/{f}: not a V0 net"
        assert all(l.HasField("layer") and not l.HasField("type") for l in a.layers), f"{name}/{f}: not V0 layers"
        problems += [f"{f}: {x}" for x in diff(_normalised(a), _normalised(_raw(release / f, caffe_pb2.NetParameter)))]
    f = "imagenet_solver.prototxt"
    problems += [f"{f}: {x}" for x in diff(_raw(ours / f, caffe_pb2.SolverParameter),
                                          _raw(release / f, caffe_pb2.SolverParameter))]
    theirs = (release / "basenet.txt").read_bytes() if (release / "basenet.txt").exists() else None
    mine = (ours / "basenet.txt").read_bytes() if (ours / "basenet.txt").exists() else None
    if theirs != mine:
        problems.append(f"basenet.txt: ours {mine!r}, release {theirs!r}")
    assert not problems, f"{name} differs from the release:\n" + "\n".join(problems)


def test_plan_json_records_the_mode(plan14):
    plan = json.loads((plan14 / "plan.json").read_text())
    assert plan["caffe"] == "2014" and plan["backend"] == "leveldb"
    by = {e["name"]: e for e in plan["networks"]}
    assert by["half0A"]["final_snapshot"] == "caffe_imagenet_train_iter_450000"
    assert by["transfer0A0B_1_3"]["weights"] == "../half0A/caffe_imagenet_train_iter_450000"
    assert by["reduced-0001"]["weights"] is None and by["reduced-0001"]["max_iter"] == 200000
    assert all(e["caffe"] == "2014" for e in plan["networks"])
    src = _raw(plan14 / "half0A" / "imagenet_train.prototxt", caffe_pb2.NetParameter).layers[0].layer
    assert src.source == "/data/root/half0A_train_leveldb" and src.meanfile == "/data/root/half0A_mean.binaryproto"


def test_2014_needs_leveldb_and_modes_do_not_mix(tmp_path):
    with pytest.raises(P.PlanError, match="LevelDB"):
        P.write_plan(tmp_path / "p", "/d", nets=["half0A"], caffe="2014", backend="lmdb")
    P.write_plan(tmp_path / "p", "/d", nets=["half0A"], caffe="2014")
    with pytest.raises(P.PlanError, match="caffe"):
        P.write_plan(tmp_path / "p", "/d", nets=["half0B"])  # 1.0 into a 2014 plan.json


def test_scale_options_apply_to_the_v0_files(tmp_path):
    scale = replace(P.PRESETS["mini"], num_classes=20)
    P.write_plan(tmp_path / "p", "/d", nets=["transfer0B0A_1_2"], scale=scale, caffe="2014")
    net = _raw(tmp_path / "p" / "transfer0B0A_1_2" / "imagenet_train.prototxt", caffe_pb2.NetParameter)
    v2 = P.build_net(P.classify("transfer0B0A_1_2"), scale,
                     P.data_paths(P.classify("transfer0B0A_1_2"), "/d", "leveldb"), "leveldb", train=True)
    by = {l.layer.name: l.layer for l in net.layers}
    assert by["data"].cropsize == 28 and by["data"].batchsize == 32 and by["data"].mirror
    assert by["conv1"].kernelsize == 3 and not by["conv1"].HasField("stride") and by["conv1"].num_output == 12
    assert list(by["conv1"].blobs_lr) == [0, 0] and list(by["conv3-new"].blobs_lr) == [1, 2]
    assert list(by["conv3-new"].weight_decay) == [1, 0]
    assert by["fc8-new"].num_output == 20
    for l in v2.layer:
        if l.type in ("Convolution", "InnerProduct"):
            q = l.convolution_param if l.type == "Convolution" else l.inner_product_param
            assert by[l.name].weight_filler.std == q.weight_filler.std
    s = _raw(tmp_path / "p" / "transfer0B0A_1_2" / "imagenet_solver.prototxt", caffe_pb2.SolverParameter)
    assert (s.max_iter, s.stepsize, s.test_interval, s.snapshot, s.random_seed) == (1200, 800, 60, 600, 0 + NAMES.index(
        "transfer0B0A_1_2"))


# -- a tiny 2014 grid: sweep and report ------------------------------------------------------------
TINY = ("transfer0A0B_1_1", "transfer-ft0A0B_1_2")


@pytest.fixture(scope="module")
def tiny14(tmp_path_factory):
    """A mini 2014 plan (half0A and two networks that load it) over tiny 32 px LevelDBs, swept."""
    from data_prep.mean import write_mean
    tmp = tmp_path_factory.mktemp("tiny14")
    data = tmp / "data"
    data.mkdir()
    for i, ds in enumerate(("half0A", "half0B")):
        for split in ("train", "valid"):
            random_image_db(tmp, data / f"{ds}_{split}_leveldb", n=8, size=32, classes=5, seed=10 * i + len(split),
                            backend="leveldb")
        write_mean(str(data / f"{ds}_train_leveldb"), str(data / f"{ds}_mean.binaryproto"), "leveldb",
                   log=lambda m: None)
    scale = replace(P.PRESETS["mini"], max_iter=4, snapshot=2, test_iter=2, test_interval=2, test_batch_size=4,
                    batch_size=4, display=1, num_classes=5)
    plan = P.write_plan(tmp / "plan", data, nets=list(TINY), scale=scale, check_data=True, caffe="2014")
    rc = sweep.main([str(plan), "--workers", "2"])
    return rc, plan


def test_tiny_2014_sweep_finishes(tiny14):
    rc, plan = tiny14
    assert rc == 0
    names = [e["name"] for e in json.loads((plan / "plan.json").read_text())["networks"]]
    assert names == ["half0A", *TINY]
    for name in names:
        d = plan / name
        assert (d / "caffe_imagenet_train_iter_4").is_file() and (d / "caffe_imagenet_train_iter_4.solverstate").is_file()
        assert (d / "caffe_imagenet_train_iter_2").is_file()
        assert not list(d.glob("*.caffemodel")), name
        done = json.loads((d / "DONE").read_text())
        assert done["final_model"] == "caffe_imagenet_train_iter_4"
        text = "\n".join(p.read_text() for p in sorted((d / "logs").glob("*.log")))
        assert "Test score #0:" in text and "Test net output" not in text, name
        if name != "half0A":
            assert "Finetuning from ../half0A/caffe_imagenet_train_iter_4" in text
        # the snapshot is the old format: V1 `layers` with legacy 4-D blobs
        from prototxt_like.codec import parse_binary
        m = parse_binary((d / "caffe_imagenet_train_iter_4").read_bytes(), caffe_pb2.NetParameter)
        assert len(m.layers) and not len(m.layer)
    # the frozen layer of the transfer network is the base's, bit for bit
    from replicate.net import Net  # noqa: F401 - importing checks the package
    base = parse_binary((plan / "half0A" / "caffe_imagenet_train_iter_4").read_bytes(), caffe_pb2.NetParameter)
    tr = parse_binary((plan / "transfer0A0B_1_1" / "caffe_imagenet_train_iter_4").read_bytes(), caffe_pb2.NetParameter)
    conv1 = lambda m: [list(b.data) for l in m.layers if l.name == "conv1" for b in l.blobs]  # noqa: E731
    assert conv1(base) == conv1(tr) and conv1(base)
    # a second sweep skips every network; the status knows them finished
    assert sweep.main([str(plan), "--workers", "2"]) == 0
    st = json.loads((plan / "sweep_status.json").read_text())["networks"]
    assert all(st[n]["status"] in ("skipped", "finished") for n in names)


def test_tiny_2014_resume_from_old_format_snapshot(tiny14, tmp_path):
    """A network with only its iteration-2 snapshot resumes from it (-snapshot .solverstate)."""
    import shutil
    _, plan = tiny14
    dst = tmp_path / "plan"
    shutil.copytree(plan, dst)
    d = dst / "half0A"
    for f in ("caffe_imagenet_train_iter_4", "caffe_imagenet_train_iter_4.solverstate", "DONE"):
        (d / f).unlink()
    assert sweep.latest_snapshot(d, "caffe_imagenet_train", 4).name == "caffe_imagenet_train_iter_2.solverstate"
    assert sweep.snapshot_problem(d / "caffe_imagenet_train_iter_2.solverstate") is None
    rec = sweep.run_network(str(dst), {"name": "half0A", "max_iter": 4, "snapshot_prefix": "caffe_imagenet_train",
                                       "solver": "imagenet_solver.prototxt", "caffe": "2014"}, max_attempts=1,
                            say=lambda m: None)
    assert rec["status"] == "finished", rec
    log = (d / rec["logs"][-1]).read_text()
    assert "Restoring previous solver status from caffe_imagenet_train_iter_2.solverstate" in log


def test_report_reads_the_2014_logs(tiny14, tmp_path):
    _, plan = tiny14
    assert report.main([str(plan), "--out", str(tmp_path / "rep"), "--no-reference"]) == 0
    rows = {r["net"]: r for r in csv.DictReader((tmp_path / "rep" / "results.csv").open(newline=""))}
    assert set(rows) == {"half0A", *TINY}
    for name, r in rows.items():
        # 2 tests per run (iterations 2 and 4; the 2014 Caffe has no test at 0), top-1 from `Test score #0`
        assert r["tests"] == "2" and r["last_iter"] == "4", r
        v = float(r["top1_mean_best10"])
        assert 0.0 <= v <= 1.0


def test_tiny_demo_in_2014_mode(tmp_path):
    """``demo --caffe 2014``: LevelDBs, the 2014 plan, its sweep and report, end to end (tiny sizes)."""
    from replicate.experiments import demo
    out = tmp_path / "d"
    args = ["--out", str(out), "--classes", "4", "--train-per-class", "6", "--valid-per-class", "3",
            "--max-iter", "3", "--test-iter", "1", "--workers", "2", "--quiet", "--caffe", "2014"]
    assert demo.main(args) == 0
    assert json.loads((out / "runs" / "plan.json").read_text())["caffe"] == "2014"
    assert (out / "data" / "half0A_train_leveldb").is_dir() and not (out / "data" / "half0A_train_lmdb").exists()
    rows = list(csv.DictReader((out / "report" / "results.csv").open(newline="")))
    assert len(rows) == 54 and {r["last_iter"] for r in rows} == {"3"}
    assert (out / "runs" / "transfer0B0A_1_7" / "caffe_imagenet_train_iter_3").is_file()
    text = (out / "report" / "demo.md").read_text()
    assert "Caffe: 2014" in text and "| n | baseB | BnB | BnB+ | AnB | AnB+ |" in text
