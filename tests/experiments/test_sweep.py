"""``python -m replicate sweep`` on a tiny hand-made plan: two bases and their transfer networks
(n = 1, 2).  The nets are deterministic and the training DB (32 images) is one snapshot's worth of
batches (4 x 8), so a resumed run must equal an uninterrupted one byte for byte.

Each test trains real networks in subprocesses (about 2 s each, mostly start-up); the file takes
about a minute on 2 cores, the Ray tests included (a local cluster, about 3 s to start)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from prototxt_like.io import caffemodel_weights
from replicate.experiments import sweep
from tests._shared import REPO, random_image_db
from tests.experiments.faults import fault_env, inject

LAYERS = ("conv1", "conv2", "ip1", "ip2")
MAX_ITER = 12
PREFIX = "caffe_imagenet_train"
FINAL = f"{PREFIX}_iter_{MAX_ITER}.caffemodel"
NETS = ("half0A", "half0B", "transfer0A0B_1_1", "transfer0A0B_1_2", "transfer0B0A_1_1", "transfer0B0A_1_2")


def _net_prototxt(db: str, n: int) -> str:
    """conv-pool-conv-ip-ip; the first n learned layers keep their names and are frozen, the
    others of a transfer network are renamed ``-new`` (so they are not copied)."""
    def name(i):
        return LAYERS[i] if i < n or n == 0 else LAYERS[i] + "-new"

    def param(i):
        return "param { lr_mult: 0 } param { lr_mult: 0 }" if i < n else "param { lr_mult: 1 } param { lr_mult: 2 }"

    data = ('layer {{ name: "data" type: "Data" top: "data" top: "label" include {{ phase: {ph} }} '
            'data_param {{ source: "{db}" batch_size: 8 backend: LMDB }} transform_param {{ scale: 0.00390625 }} }}\n')
    fill = 'weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 0.1 }'
    return ('name: "tiny"\n' + data.format(ph="TRAIN", db=db) + data.format(ph="TEST", db=db) +
            f'layer {{ name: "{name(0)}" type: "Convolution" bottom: "data" top: "conv1" {param(0)} '
            f'convolution_param {{ num_output: 4 kernel_size: 3 {fill} }} }}\n'
            'layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }\n'
            'layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" '
            'pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n'
            f'layer {{ name: "{name(1)}" type: "Convolution" bottom: "pool1" top: "conv2" {param(1)} '
            f'convolution_param {{ num_output: 4 kernel_size: 3 {fill} }} }}\n'
            'layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }\n'
            f'layer {{ name: "{name(2)}" type: "InnerProduct" bottom: "conv2" top: "ip1" {param(2)} '
            f'inner_product_param {{ num_output: 8 {fill} }} }}\n'
            'layer { name: "relu3" type: "ReLU" bottom: "ip1" top: "ip1" }\n'
            f'layer {{ name: "{name(3)}" type: "InnerProduct" bottom: "ip1" top: "ip2" {param(3)} '
            f'inner_product_param {{ num_output: 4 {fill} }} }}\n'
            'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }\n'
            'layer { name: "acc" type: "Accuracy" bottom: "ip2" bottom: "label" top: "acc" include { phase: TEST } }\n')


SOLVER = (f'net: "net.prototxt"\ntest_iter: 4\ntest_interval: 4\nbase_lr: 0.05\nlr_policy: "fixed"\n'
          f'momentum: 0.9\nweight_decay: 0.0005\nmax_iter: {MAX_ITER}\ndisplay: 2\nsnapshot: 4\n'
          f'snapshot_prefix: "{PREFIX}"\nrandom_seed: 1\n')


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A plan directory following plan.json's contract (never run itself: tests copy it)."""
    root = tmp_path_factory.mktemp("plan")
    for half, seed in (("A", 0), ("B", 1)):
        (root / "data" / half).mkdir(parents=True)
        random_image_db(root / "data" / half, root / "data" / f"db{half}", n=32, size=16, classes=4, seed=seed)
    networks = []
    for name in NETS:
        if name.startswith("half"):
            half, n, base, weights = name[-1], 0, None, None
        else:
            half, n, base = name[11], int(name[-1]), f"half0{name[9]}"
            weights = f"../{base}/{FINAL}"
        d = root / name
        d.mkdir()
        (d / "net.prototxt").write_text(_net_prototxt(f"../data/db{half}", n))
        (d / "imagenet_solver.prototxt").write_text(SOLVER)
        networks.append({"name": name, "kind": "base" if not n else "transfer", "n": n or None, "base": base,
                         "weights": weights, "max_iter": MAX_ITER, "snapshot_prefix": PREFIX,
                         "solver": "imagenet_solver.prototxt"})
    (root / "plan.json").write_text(json.dumps({"version": 1, "data_root": str(root / "data"), "scale": {},
                                                "networks": networks}, indent=1))
    return root


def _copy(template: Path, dst: Path) -> Path:
    shutil.copytree(template, dst)
    return dst


def _status(plan: Path) -> dict:
    return json.loads((plan / "sweep_status.json").read_text())["networks"]


def _finals(plan: Path, names=NETS) -> dict:
    return {n: (plan / n / FINAL).read_bytes() for n in names}


@pytest.fixture(scope="module")
def reference(template, tmp_path_factory):
    """An uninterrupted local sweep of the whole plan (2 workers)."""
    plan = _copy(template, tmp_path_factory.mktemp("ref") / "plan")
    rc = sweep.main([str(plan), "--workers", "2"])
    return rc, plan, _finals(plan)


def test_local_sweep_from_scratch(reference, capsys):
    rc, plan, finals = reference
    assert rc == 0
    status = _status(plan)
    for name in NETS:
        assert status[name]["status"] == "finished" and status[name]["attempts"] == 1, status[name]
        done = json.loads((plan / name / "DONE").read_text())
        assert done["final_iter"] == MAX_ITER and done["attempts"] == 1 and done["final_model"] == FINAL
        assert [Path(p).name for p in done["logs"]] == [p.name for p in (plan / name / "logs").glob("*.log")]
        assert "-attempt1.log" in done["logs"][0]
    # transfer networks loaded their base's final weights: frozen layers equal them bit for bit
    for name in NETS[2:]:
        base = caffemodel_weights(plan / f"half0{name[9]}" / FINAL)
        got = caffemodel_weights(plan / name / FINAL)
        n = int(name[-1])
        for i, layer in enumerate(LAYERS):
            if i < n:
                for a, b in zip(got[layer], base[layer]):
                    assert a.tobytes() == b.tobytes(), (name, layer)
            else:
                assert layer not in got and f"{layer}-new" in got, (name, layer)
    # a second run skips everything and trains nothing
    mtimes = {n: (plan / n / FINAL).stat().st_mtime_ns for n in NETS}
    capsys.readouterr()
    assert sweep.main([str(plan), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert all(s["status"] == "skipped" for s in _status(plan).values())
    assert "6 skipped" in out and "start on" not in out
    assert {n: (plan / n / FINAL).stat().st_mtime_ns for n in NETS} == mtimes
    assert all(len(list((plan / n / "logs").glob("*.log"))) == 1 for n in NETS)
    assert sweep.main([str(plan), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("skip (finished)") == 6


def test_trainers_fork_from_one_server_or_start_fresh(template, reference, tmp_path, monkeypatch, capsys):
    """By default the trainers are forks of the sweep's server (the start-up trace has a "forked"
    mark per trainer and one import of torch); --no-zygote starts each as a fresh process.  Both
    give the reference's final weights bit for bit."""
    nets = ("half0A", "transfer0A0B_1_1", "transfer0A0B_1_2")
    for flag, forked in (([], True), (["--no-zygote"], False)):
        plan = _copy(template, tmp_path / f"plan{len(flag)}")
        trace = tmp_path / f"trace{len(flag)}"
        monkeypatch.setenv("REPLICATE_STARTUP_TRACE", str(trace))
        assert sweep.main([str(plan), "--workers", "2", "--nets", "half0A,transfer0A0B_*", *flag]) == 0
        out = capsys.readouterr().out
        assert ("trainers forked from one server" in out) == forked and "as a fresh process" not in out
        marks = [line.split()[0] for line in trace.read_text().splitlines()]
        assert marks.count("first_iteration") == 3
        assert marks.count("forked") == (3 if forked else 0)
        assert marks.count("torch") == (1 + 3 if forked else 3)  # the server's import; main()'s no-op marks
        assert _finals(plan, nets) == {n: reference[2][n] for n in nets}


def test_dry_run_and_selection(template, tmp_path, capsys):
    plan = _copy(template, tmp_path / "plan")
    assert sweep.main([str(plan), "--dry-run", "--nets", "transfer0A*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("would run on this machine") and "1 worker(s), CPU" in out[0]
    assert out[1:] == [f"transfer0A0B_1_{n}: start from ../half0A/{FINAL}, after half0A (not selected: would be "
                       "blocked) [on local CPU worker 1]" for n in (1, 2)]
    # a selected network whose base is neither finished nor selected is blocked, not run
    assert sweep.main([str(plan), "--nets", "transfer0A0B_1_1"]) == 1
    st = _status(plan)["transfer0A0B_1_1"]
    assert st["status"] == "blocked" and "half0A" in st["reason"]
    assert not (plan / "transfer0A0B_1_1" / "logs").exists()


def test_local_kill_resumes_bit_for_bit(template, reference, tmp_path, monkeypatch):
    """half0A's trainer is SIGKILLed right after its iteration-4 snapshot; the retry resumes there."""
    plan = _copy(template, tmp_path / "plan")
    inject(monkeypatch, tmp_path, "half0A", 4, "trainer")
    nets = ("half0A", "transfer0A0B_1_1", "transfer0A0B_1_2")
    assert sweep.main([str(plan), "--workers", "2", "--nets", "half0A,transfer0A0B_*"]) == 0
    st = _status(plan)
    assert st["half0A"]["attempts"] == 2 and st["half0A"]["rcs"] == [-9, 0], st["half0A"]
    logs = sorted((plan / "half0A" / "logs").glob("*.log"))
    assert [p.name.split("-")[-1] for p in logs] == ["attempt1.log", "attempt2.log"]
    assert f"Resuming from {PREFIX}_iter_4.solverstate" in logs[1].read_text()
    assert "Optimization Done" not in logs[0].read_text()
    assert json.loads((plan / "half0A" / "DONE").read_text())["attempts"] == 2
    assert _finals(plan, nets) == {n: reference[2][n] for n in nets}


def test_ray_engine(template, reference, tmp_path):
    """A real local Ray cluster runs the whole plan; the results equal the local engine's."""
    pytest.importorskip("ray")
    plan = _copy(template, tmp_path / "plan")
    assert sweep.main([str(plan), "--engine", "ray", "--workers", "2"]) == 0
    assert all(s["status"] == "finished" for s in _status(plan).values())
    assert all((plan / n / "DONE").is_file() for n in NETS)
    assert _finals(plan) == reference[2]


def test_ray_worker_killed_resumes(template, reference, tmp_path, monkeypatch):
    """half0B's Ray worker is SIGKILLed after the iteration-8 snapshot (its trainer dies with it):
    the task is resubmitted and resumes from the snapshot."""
    pytest.importorskip("ray")
    plan = _copy(template, tmp_path / "plan")
    inject(monkeypatch, tmp_path, "half0B", 8, "supervisor")
    nets = ("half0B", "transfer0B0A_1_1")
    assert sweep.main([str(plan), "--engine", "ray", "--workers", "2", "--nets", ",".join(nets)]) == 0
    st = _status(plan)
    assert st["half0B"]["status"] == "finished" and st["half0B"]["attempts"] == 2, st["half0B"]
    assert st["half0B"]["rcs"] == [None, 0] and len(st["half0B"]["logs"]) == 2  # None: the worker died
    logs = sorted((plan / "half0B" / "logs").glob("*.log"))
    assert len(logs) == 2 and f"Resuming from {PREFIX}_iter_8.solverstate" in logs[1].read_text()
    assert _finals(plan, nets) == {n: reference[2][n] for n in nets}


def test_failure_blocks_dependants(template, tmp_path):
    plan = _copy(template, tmp_path / "plan")
    (plan / "half0B" / "imagenet_solver.prototxt").write_text(SOLVER.replace("net.prototxt", "missing.prototxt"))
    nets = ("half0A", "half0B", "transfer0A0B_1_1", "transfer0B0A_1_1", "transfer0B0A_1_2")
    assert sweep.main([str(plan), "--workers", "2", "--retries", "1", "--nets", ",".join(nets)]) == 1
    st = json.loads((plan / "sweep_status.json").read_text())
    nets_st = st["networks"]
    assert nets_st["half0B"]["status"] == "failed" and nets_st["half0B"]["attempts"] == 2
    assert "exit code 1" in nets_st["half0B"]["reason"] and "missing.prototxt" in nets_st["half0B"]["reason"]
    assert len(list((plan / "half0B" / "logs").glob("*.log"))) == 2
    for n in ("transfer0B0A_1_1", "transfer0B0A_1_2"):
        assert nets_st[n]["status"] == "blocked" and "half0B" in nets_st[n]["reason"]
        assert not (plan / n / "logs").exists()
    for n in ("half0A", "transfer0A0B_1_1"):
        assert nets_st[n]["status"] == "finished" and (plan / n / "DONE").is_file()
    assert st["counts"] == {"finished": 2, "failed": 1, "blocked": 2}
    assert not (plan / "half0B" / "DONE").exists()


def test_ctrl_c_stops_trainers_with_a_snapshot(template, reference, tmp_path):
    """SIGINT to the sweep (sent by the trainer after its iteration-4 snapshot) reaches the trainer,
    which snapshots where it stops; a rerun resumes there (an exact resume: the .resume sidecar)
    and ends with the uninterrupted run's bytes."""
    plan = _copy(template, tmp_path / "plan")
    env = dict(os.environ, **fault_env(tmp_path, "half0A", 4, "stop"))
    cmd = [sys.executable, "-m", "replicate", "sweep", str(plan), "--nets", "half0A"]
    # the sweep with SIGINT's default action, also when this test runs in a background job (a shell
    # without job control starts those with SIGINT ignored, and Python then keeps it ignored)
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert r.returncode == 130, r.stdout + r.stderr
    st = _status(plan)["half0A"]
    assert st["status"] == "interrupted" and st["attempts"] == 1, st
    log = next((plan / "half0A" / "logs").glob("*.log")).read_text()
    assert "Optimization stopped early." in log
    assert not (plan / "half0A" / "DONE").exists() and not (plan / "half0A" / FINAL).exists()
    stopped_at = sweep.latest_snapshot(plan / "half0A", PREFIX)
    assert stopped_at is not None and 4 <= sweep._iteration(stopped_at) < MAX_ITER
    r = subprocess.run([*cmd[:-2], "--nets", "half0A"], cwd=REPO, env=dict(os.environ), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    logs = sorted((plan / "half0A" / "logs").glob("*.log"))
    assert len(logs) == 2 and f"Resuming from {stopped_at.name}" in logs[1].read_text()
    assert (plan / "half0A" / "DONE").is_file()
    assert _finals(plan, ["half0A"]) == {"half0A": reference[2]["half0A"]}


@pytest.mark.parametrize("given,preset,expected", [(2, None, "2"), (None, None, None), (3, "5", "5")])
def test_trainer_threads(tmp_path, monkeypatch, given, preset, expected):
    """--threads reaches the trainer as OMP_NUM_THREADS; an OMP_NUM_THREADS already set wins."""
    net_dir = tmp_path / "half0A"
    net_dir.mkdir()
    (net_dir / "imagenet_solver.prototxt").write_text("")
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "${OMP_NUM_THREADS:-unset}" > "$(dirname "$0")/threads"\nexit 3\n')
    fake.chmod(0o755)
    if preset is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", preset)
    net = {"name": "half0A", "max_iter": 10, "snapshot_prefix": "caffe_imagenet_train",
           "solver": "imagenet_solver.prototxt"}
    rec = sweep.run_network(str(tmp_path), net, max_attempts=1, python=str(fake), threads=given, say=lambda m: None)
    assert rec["status"] == "failed" and rec["rcs"] == [3]
    assert (tmp_path / "threads").read_text().strip() == (expected or "unset")


def test_done_and_snapshots_belong_to_the_plan(tmp_path):
    """A DONE written for other files or another max_iter does not count as finished, and snapshots
    past max_iter are not resumed from (a re-plan with another scale)."""
    d = tmp_path / "half0A"
    d.mkdir()
    (d / "imagenet_solver.prototxt").write_text("max_iter: 8\n")
    net = {"name": "half0A", "max_iter": 8, "snapshot_prefix": "caffe_imagenet_train",
           "solver": "imagenet_solver.prototxt"}
    for it in (4, 8, 12):
        for ext in ("caffemodel", "solverstate"):
            (d / f"caffe_imagenet_train_iter_{it}.{ext}").write_bytes(b"x")
    assert sweep.latest_snapshot(d, "caffe_imagenet_train", 8).name == "caffe_imagenet_train_iter_8.solverstate"
    assert sweep.latest_snapshot(d, "caffe_imagenet_train").name == "caffe_imagenet_train_iter_12.solverstate"
    (d / "DONE").write_text(json.dumps({"final_iter": 8, "fingerprint": sweep.fingerprint(d, net)}))
    assert sweep.is_finished(d, net)
    (d / "imagenet_solver.prototxt").write_text("max_iter: 8\nbase_lr: 0.1\n")
    assert not sweep.is_finished(d, net), "a DONE for other files counted"
    (d / "DONE").write_text(json.dumps({"final_iter": 12, "fingerprint": sweep.fingerprint(d, net)}))
    assert not sweep.is_finished(d, net), "a DONE for another max_iter counted"


def test_bad_plans_and_patterns(tmp_path, capsys):
    for text in ("[]", '{"version": 1, "networks": [1]}', '{"version": 1, "networks": [{"name": "x", '
                 '"max_iter": "ten", "snapshot_prefix": "p", "solver": "s"}]}'):
        (tmp_path / "plan.json").write_text(text)
        assert sweep.main([str(tmp_path)]) == 2
        assert "error:" in capsys.readouterr().err
    (tmp_path / "plan.json").write_text(json.dumps({"version": 1, "networks": [
        {"name": "half0A", "max_iter": 4, "snapshot_prefix": "p", "solver": "s.prototxt"}]}))
    assert sweep.main([str(tmp_path), "--nets", "half0a"]) == 2
    assert "matches no network" in capsys.readouterr().err
