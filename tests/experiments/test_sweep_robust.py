"""Issue 21: faults injected from tests only, forwarded environment, a full disk, torn snapshots,
a second Ray node, --dry-run's where and ``sweep status``.  Uses test_sweep's tiny plan."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from replicate.experiments import sweep
from tests.experiments.faults import inject
from tests.experiments.test_sweep import (FINAL, MAX_ITER, NETS, PREFIX, _copy, _finals, _status,  # noqa: F401
                                          reference, template)


def test_no_fault_hook_in_shipped_code():
    src = Path(sweep.__file__).read_text()
    assert "REPLICATE_SWEEP_FAULT" not in src and not hasattr(sweep, "_install_fault")
    assert "FAULT" not in src


def test_forwarded_environment_is_an_allow_list():
    env = {"REPLICATE_BLAS": "exact", "REPLICATE_CBLAS": "/tmp/evil.so", "REPLICATE_UNVERIFIED_BLAS": "1",
           "OPENBLAS_VERBOSE": "2", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "2", "LD_PRELOAD": "x.so",
           "MKL_DEBUG_CPU_TYPE": "5", "PYTHONPATH": "/x"}
    assert sweep.forwarded_env(env) == {"REPLICATE_BLAS": "exact", "OPENBLAS_NUM_THREADS": "1",
                                        "OMP_NUM_THREADS": "2"}


def _no_temporaries(d: Path):
    return [p.name for p in d.iterdir() if ".tmp" in p.name]


def test_full_disk_fails_loudly_and_keeps_the_previous_snapshot(template, reference, tmp_path, monkeypatch):
    plan = _copy(template, tmp_path / "plan")
    inject(monkeypatch, tmp_path, "half0A", 8, "enospc")
    assert sweep.main([str(plan), "--nets", "half0A"]) == 1
    st = _status(plan)["half0A"]
    assert st["status"] == "failed" and st["attempts"] == 1, st  # not retried: the disk is still full
    assert "disk full" in st["reason"] and "No space left on device" in st["reason"], st
    d = plan / "half0A"
    assert not _no_temporaries(d), _no_temporaries(d)
    assert not list(d.glob(f"{PREFIX}_iter_8.*")) and not (d / "DONE").exists()
    assert sweep.snapshot_problem(d / f"{PREFIX}_iter_4.solverstate") is None
    # space again: the rerun resumes from iteration 4 and ends with the uninterrupted bytes
    monkeypatch.delenv("REPLICATE_TEST_FAULT")
    assert sweep.main([str(plan), "--nets", "half0A"]) == 0
    log = sorted((d / "logs").glob("*.log"))[-1].read_text()
    assert f"Resuming from {PREFIX}_iter_4.solverstate" in log and "Exact resume" in log
    assert _finals(plan, ["half0A"]) == {"half0A": reference[2]["half0A"]}


@pytest.mark.parametrize("ext", ["caffemodel", "solverstate", "resume"])
def test_torn_newest_snapshot_is_skipped(template, reference, tmp_path, monkeypatch, capsys, ext):
    plan = _copy(template, tmp_path / "plan")
    inject(monkeypatch, tmp_path, "half0A", 8, "trainer")
    assert sweep.main([str(plan), "--nets", "half0A", "--retries", "0"]) == 1
    monkeypatch.delenv("REPLICATE_TEST_FAULT")
    d = plan / "half0A"
    torn = d / f"{PREFIX}_iter_8.{ext}"
    data = torn.read_bytes()
    torn.write_bytes(data[: len(data) // 2])  # a torn write (a crash, a full disk without this helper)
    assert sweep.snapshot_problem(d / f"{PREFIX}_iter_8.solverstate") is not None
    capsys.readouterr()
    assert sweep.main([str(plan), "--nets", "half0A"]) == 0
    out = capsys.readouterr().out
    assert f"damaged snapshot: {torn.name}" in out, out
    st = _status(plan)["half0A"]
    assert any(torn.name in t for t in st["torn"]), st
    log = sorted((d / "logs").glob("*.log"))[-1].read_text()
    assert f"Resuming from {PREFIX}_iter_4.solverstate" in log
    assert _finals(plan, ["half0A"]) == {"half0A": reference[2]["half0A"]}


def test_dry_run_says_where_and_status(template, reference, tmp_path, capsys):
    plan = _copy(template, tmp_path / "plan")
    assert sweep.main([str(plan), "--dry-run", "--workers", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("would run on this machine") and "2 worker(s)" in out[0]
    assert out[1] == "half0A: start from scratch [on local CPU worker 1]"
    assert out[2] == "half0B: start from scratch [on local CPU worker 2]"
    assert sweep.main([str(plan), "--dry-run", "--engine", "ray", "--address", "10.0.0.1:6379"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "Ray cluster at 10.0.0.1:6379" in out[0] and out[1].endswith("[on Ray task]")

    # status from the files on disk: the finished reference, a part-trained and a failed plan
    assert sweep.main(["status", str(reference[1])]) == 0
    out = capsys.readouterr().out
    for name in NETS:
        row = next(l for l in out.splitlines() if l.startswith(name + " "))
        assert "finished" in row and f"{MAX_ITER}/{MAX_ITER}" in row and "@12" in row, row
    rows = [json.loads(l) for l in _status_json(reference[1])]
    assert all(r["s_per_iter"] > 0 and r["accuracy"] is not None and r["eta_s"] is None for r in rows)

    (plan / "half0B" / "imagenet_solver.prototxt").write_text("garbage")
    assert sweep.main([str(plan), "--nets", "half0B", "--retries", "0"]) == 1
    capsys.readouterr()
    rows = {r["name"]: r for r in map(json.loads, _status_json(plan))}
    assert rows["half0B"]["state"] == "failed" and rows["half0B"]["reason"]
    assert rows["half0A"]["state"] == "pending" and rows["half0A"]["iteration"] is None


def _status_json(plan: Path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "replicate.experiments", "status", str(plan), "--json"],
                       capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_status_of_a_partial_network(template, tmp_path, monkeypatch, capsys):
    plan = _copy(template, tmp_path / "plan")
    inject(monkeypatch, tmp_path, "half0A", 8, "trainer")
    assert sweep.main([str(plan), "--nets", "half0A", "--retries", "0"]) == 1
    capsys.readouterr()
    r = sweep.network_status(plan, next(n for n in sweep.load_plan(plan) if n["name"] == "half0A"),
                             _status(plan)["half0A"])
    assert r["state"] == "failed" and r["iteration"] == 8 and r["test_iteration"] == 4  # Caffe snapshots 8 before testing 8
    assert r["s_per_iter"] > 0 and r["eta_s"] == pytest.approx((MAX_ITER - 8) * r["s_per_iter"])


def _ancestors(pid: int):
    while pid > 1:
        yield pid
        with open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])


def test_two_ray_nodes_one_killed(template, reference, tmp_path, monkeypatch):
    """Two Ray nodes on this machine (a head without CPUs, node_a and node_b with one CPU each), the
    plan folder shared; half0A's node is killed after its iteration-4 snapshot: the network moves to
    the other node, resumes there, and the plan ends byte-identical to the one-node sweep."""
    pytest.importorskip("ray")
    import ray
    from ray.cluster_utils import Cluster
    plan = _copy(template, tmp_path / "plan")
    marker = inject(monkeypatch, tmp_path, "half0A", 4, "hold")  # before the nodes start: they inherit it
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        nodes = [cluster.add_node(num_cpus=1, resources={"node_a": 1}),
                 cluster.add_node(num_cpus=1, resources={"node_b": 1})]
        cluster.wait_for_nodes()
        result = {}
        t = threading.Thread(target=lambda: result.update(rc=sweep.main(
            [str(plan), "--engine", "ray", "--address", cluster.address])))
        t.start()
        deadline = time.time() + 180
        while not (marker.exists() and marker.read_text()) and time.time() < deadline and t.is_alive():
            time.sleep(0.2)
        assert marker.exists(), "half0A never reached its iteration-4 snapshot"
        trainer = int(marker.read_text())
        chain = set(_ancestors(trainer))
        victim = next(n for n in nodes if n.all_processes["raylet"][0].process.pid in chain)
        cluster.remove_node(victim, allow_graceful=False)
        t.join(300)
        assert not t.is_alive()
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert result.get("rc") == 0, result
    st = _status(plan)
    assert all(s["status"] == "finished" for s in st.values()), st
    assert st["half0A"]["attempts"] == 2, st["half0A"]
    logs = sorted((plan / "half0A" / "logs").glob("*.log"))
    assert len(logs) == 2 and f"Resuming from {PREFIX}_iter_4.solverstate" in logs[1].read_text()
    assert "Exact resume" in logs[1].read_text()
    assert _finals(plan) == reference[2]


def test_ray_start_checks_refuse_a_node_without_the_plan(template, tmp_path, monkeypatch, capsys):
    """The start checks: a node that does not see PLAN_DIR's plan.json (another path, no shared
    filesystem) makes the sweep refuse before training anything."""
    pytest.importorskip("ray")
    plan = _copy(template, tmp_path / "plan")
    real = sweep._node_facts

    def other_node(plan_dir, probe_lock=True):
        facts = real(plan_dir, probe_lock)
        if probe_lock:  # the node's view
            facts["plan.json (sha256)"] = "unreadable at ... (No such file or directory)"
            facts["lock"] = "acquired although the driver holds it"
        return facts
    monkeypatch.setattr(sweep, "_node_facts", other_node)
    try:
        assert sweep.main([str(plan), "--engine", "ray", "--workers", "1", "--nets", "half0A"]) == 2
    finally:
        import ray
        ray.shutdown()
    err = capsys.readouterr().err
    assert "plan.json (sha256)" in err and "flock" in err and "README" in err
    assert not (plan / "half0A" / "logs").exists()
