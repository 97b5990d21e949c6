"""``python -m replicate compare``: per-blob bits, errors and ulps of Caffe's files, printed values of
Caffe's logs, exit codes, and the ulp/NaN/signed-zero rules, on golden files and constructed ones."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import prototxt_like
from prototxt_like import caffe_pb2
from replicate.compare import main
from tests._shared import REPO, require


def golden(*parts):
    return require("golden", *parts, bitlevel=False)  # Caffe's files as inputs of the tool


def run(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(capsys, *args):
    rc, out, err = run(capsys, *args, "--json")
    return rc, json.loads(out)


def entry(js, key):
    return next(e for e in js["entries"] if e["key"] == key)


def npz(path, **arrays):
    np.savez(path, **arrays)
    return path


# ---- caffemodel / solverstate / binaryproto ---------------------------------------------------

def test_caffemodel_against_itself(capsys):
    f = golden("solver", "snap_iter_30.caffemodel")
    rc, out, _ = run(capsys, f, f)
    assert rc == 0
    assert "IDENTICAL: 8 keys, 8 identical" in out
    for key in ("conv1/0", "conv1/1", "conv2/0", "conv2/1", "fc3/0", "fc3/1", "fc4/0", "fc4/1"):
        assert re.search(rf"^{re.escape(key)}\s.*identical", out, re.M), key


def test_caffemodel_snapshots_30_and_60(capsys):
    a, b = golden("solver", "snap_iter_30.caffemodel"), golden("solver", "snap_iter_60.caffemodel")
    wa, wb = prototxt_like.caffemodel_weights(str(a)), prototxt_like.caffemodel_weights(str(b))
    rc, js = run_json(capsys, a, b)
    assert rc == 1 and not js["ok"]
    first = js["first_difference"]
    assert first["key"] == "conv1/0"
    x, y = wa["conv1"][0].reshape(-1), wb["conv1"][0].reshape(-1)
    i = int(np.argmax(x.view(np.uint32) != y.view(np.uint32)))
    assert first["index"] == i
    assert first["a"] == float(x[i]) and first["b"] == float(y[i])
    assert first["a_bits"] == f"0x{int(x[i].view(np.uint32)):08x}"
    for layer in wa:
        for k, (p, q) in enumerate(zip(wa[layer], wb[layer])):
            e = entry(js, f"{layer}/{k}")
            d = np.abs(p.astype(np.float64) - q)
            assert e["max_abs"] == d.max()
            assert e["n_differ"] == int((p.view(np.uint32) != q.view(np.uint32)).sum())
    rc, out, _ = run(capsys, a, b)
    assert rc == 1 and "DIFFERENT" in out and f"[{i}] {str(x[i])} (0x" in out
    assert run(capsys, a, b, "--tol", "1e6")[0] == 0  # everything within a huge rtol


def _flip_one_ulp(src, dst, layer, index, up=True):
    net = caffe_pb2.NetParameter.FromString(src.read_bytes())
    blob = next(l for l in net.layer if l.name == layer).blobs[0]
    v = np.float32(blob.data[index])
    blob.data[index] = float(np.nextafter(v, np.float32(np.inf if up else -np.inf)))
    dst.write_bytes(net.SerializeToString())
    return v, np.float32(blob.data[index])


def test_one_ulp_in_a_caffemodel(tmp_path, capsys):
    src = golden("solver", "snap_iter_30.caffemodel")
    flipped = tmp_path / "flipped.caffemodel"
    old, new = _flip_one_ulp(src, flipped, "fc3", 1234)
    rc, js = run_json(capsys, flipped, src)
    assert rc == 1
    e = entry(js, "fc3/0")
    assert e["status"] == "differs" and e["n_differ"] == 1 and e["max_ulps"] == 1
    assert e["first"]["index"] == 1234 and e["first"]["at"] == [1234 // 2048, 1234 % 2048]
    assert e["first"]["a"] == float(new) and e["first"]["b"] == float(old)
    assert e["max_abs"] == abs(float(new) - float(old))
    assert all(x["status"] == "identical" for x in js["entries"] if x["key"] != "fc3/0")
    assert js["first_difference"]["key"] == "fc3/0"
    assert run(capsys, flipped, src, "--ulps", "1")[0] == 0
    assert run(capsys, flipped, src, "--tol", "1e-6")[0] == 0
    assert run(capsys, flipped, src, "--atol", "1e-12")[0] == 1
    rc, out, _ = run(capsys, flipped, src, "--ulps", "1")
    assert "WITHIN TOLERANCE" in out and "within tolerance" in out


def test_solverstate(capsys):
    a, b = golden("solver", "snap_iter_30.solverstate"), golden("solver", "snap_iter_60.solverstate")
    assert run(capsys, a, a)[0] == 0
    rc, js = run_json(capsys, a, b)
    assert rc == 1
    keys = [e["key"] for e in js["entries"]]
    assert keys == [f"history/{i}" for i in range(8)] + ["iter", "current_step"]
    it = entry(js, "iter")
    assert it["first"]["a"] == 30 and it["first"]["b"] == 60 and it["max_abs"] == 30
    state30, _ = prototxt_like.load_solverstate(str(a))
    state60, _ = prototxt_like.load_solverstate(str(b))
    cs = entry(js, "current_step")
    assert (cs["first"] is None) == (state30.current_step == state60.current_step)
    assert js["notes"]["learned_net"] == {"a": state30.learned_net, "b": state60.learned_net}


def test_binaryproto_against_npy_and_vector_against_npz(capsys):
    f = golden("formats")
    rc, js = run_json(capsys, f / "mean.binaryproto", f / "mean.npy")
    assert rc == 0 and [e["key"] for e in js["entries"]] == ["data"]
    assert run(capsys, f / "blobs.binaryproto_vector", f / "blobs_vector.npz")[0] == 0
    assert run(capsys, f / "small.caffemodel", f / "small.npz")[0] == 0
    assert run(capsys, f / "small_v1.caffemodel", f / "small.npz")[0] == 0  # legacy shapes upgraded


def test_binaryproto_one_value_changed(tmp_path, capsys):
    mean = prototxt_like.load_blob(str(golden("formats", "mean.binaryproto")))
    other = mean.copy()
    other.reshape(-1)[100] += 1
    prototxt_like.save_blob(tmp_path / "other.binaryproto", other)
    rc, js = run_json(capsys, tmp_path / "other.binaryproto", golden("formats", "mean.binaryproto"))
    assert rc == 1
    e = entry(js, "data")
    assert e["n_differ"] == 1 and e["first"]["index"] == 100 and e["max_abs"] == pytest.approx(1, abs=1e-3)


# ---- npz: the ulp, signed-zero and NaN rules --------------------------------------------------

def test_keys_on_one_side_count_as_differences(tmp_path, capsys):
    a = npz(tmp_path / "a.npz", x=np.ones(3, np.float32), only_a=np.zeros(2, np.float32))
    b = npz(tmp_path / "b.npz", x=np.ones(3, np.float32), only_b=np.zeros(1, np.float32))
    rc, js = run_json(capsys, a, b, "--tol", "1")
    assert rc == 1
    assert {e["key"]: e["status"] for e in js["entries"]} == {"x": "identical", "only_a": "only in A",
                                                              "only_b": "only in B"}
    rc, out, _ = run(capsys, a, b)
    assert "only in A" in out and "only in B" in out


def test_shape_and_dtype_mismatch(tmp_path, capsys):
    a = npz(tmp_path / "a.npz", s=np.ones((2, 3), np.float32), t=np.ones(3, np.float32))
    b = npz(tmp_path / "b.npz", s=np.ones((3, 2), np.float32), t=np.ones(3, np.float64))
    rc, js = run_json(capsys, a, b, "--tol", "1")
    assert rc == 1
    assert entry(js, "s")["status"] == "differs" and "shape" in entry(js, "s")["note"]
    t = entry(js, "t")
    assert t["status"] == "within tolerance" and "dtype" in t["note"]  # same values, different bits
    assert run(capsys, a, b)[0] == 1


def test_ulp_rules(tmp_path, capsys):
    f32 = np.float32
    tiny = np.nextafter(f32(0), f32(1))
    big = np.finfo(f32).max
    a = np.array([0.0, tiny, 1.0, big, -2.0], f32)
    b = np.array([-0.0, -tiny, np.nextafter(f32(1), f32(2)), np.inf, np.nextafter(f32(-2), f32(0))], f32)
    rc, js = run_json(capsys, npz(tmp_path / "a.npz", **{f"k{i}": a[i:i + 1] for i in range(5)}),
                      npz(tmp_path / "b.npz", **{f"k{i}": b[i:i + 1] for i in range(5)}))
    assert rc == 1
    ulps = [entry(js, f"k{i}")["max_ulps"] for i in range(5)]
    assert ulps == [0, 2, 1, 1, 1]  # +0/-0: 0 ulps apart; across zero; next float; max float -> inf
    z = entry(js, "k0")
    assert z["status"] == "differs" and z["n_differ"] == 1 and z["max_abs"] == 0  # bits differ
    assert z["first"]["a_bits"] == "0x00000000" and z["first"]["b_bits"] == "0x80000000"
    zero_a, zero_b = npz(tmp_path / "za.npz", z=a[:1]), npz(tmp_path / "zb.npz", z=b[:1])
    assert run(capsys, zero_a, zero_b)[0] == 1
    assert run(capsys, zero_a, zero_b, "--ulps", "0")[0] == 0
    assert run(capsys, zero_a, zero_b, "--atol", "0")[0] == 0


def test_float64_ulps(tmp_path, capsys):
    x = np.linspace(-3, 3, 7)
    y = x.copy()
    y[2] = np.nextafter(y[2], np.inf)
    y[4] = np.nextafter(np.nextafter(y[4], -np.inf), -np.inf)
    rc, js = run_json(capsys, npz(tmp_path / "a.npz", x=x), npz(tmp_path / "b.npz", x=y))
    e = entry(js, "x")
    assert rc == 1 and e["dtype_a"] == "float64" and e["max_ulps"] == 2 and e["n_differ"] == 2
    assert e["first"]["index"] == 2


def test_nan_rules(tmp_path, capsys):
    qnan = np.array([0x7FC00000], np.uint32).view(np.float32)
    other_nan = np.array([0x7FC00001], np.uint32).view(np.float32)
    neg_nan = np.array([0xFFC00000], np.uint32).view(np.float32)
    base = np.array([1.0, 2.0, 3.0], np.float32)

    def pair(name, x, y):
        a, b = base.copy(), base.copy()
        a[1], b[1] = x[0], y[0]
        return npz(tmp_path / f"{name}_a.npz", v=a), npz(tmp_path / f"{name}_b.npz", v=b)

    same = pair("same", qnan, qnan)
    rc, js = run_json(capsys, *same)
    assert rc == 0 and entry(js, "v")["status"] == "identical"
    assert entry(js, "v")["max_abs"] == 0 and entry(js, "v")["nan_mismatches"] == 0  # NaNs left out of maxima

    for name, y in (("payload", other_nan), ("sign", neg_nan)):
        p = pair(name, qnan, y)
        rc, js = run_json(capsys, *p)
        e = entry(js, "v")
        assert rc == 1 and e["n_differ"] == 1 and e["nan_mismatches"] == 1 and e["first"]["index"] == 1
        assert run(capsys, *p, "--tol", "0")[0] == 0  # under a tolerance NaN matches NaN

    num = pair("num", qnan, np.array([2.0], np.float32))
    rc, js = run_json(capsys, *num)
    assert rc == 1 and entry(js, "v")["nan_mismatches"] == 1
    assert run(capsys, *num, "--tol", "1e9")[0] == 1  # NaN never matches a number
    rc, out, _ = run(capsys, *num)
    assert "NaN mismatches" in out


def test_integer_and_string_arrays(tmp_path, capsys):
    a = npz(tmp_path / "a.npz", i=np.array([1, 2, 3]), s=np.array(["x", "y"]))
    b = npz(tmp_path / "b.npz", i=np.array([1, 5, 3]), s=np.array(["x", "z"]))
    rc, js = run_json(capsys, a, b)
    assert rc == 1
    assert entry(js, "i")["max_ulps"] == 3 and entry(js, "i")["first"]["index"] == 1
    assert entry(js, "s")["status"] == "differs" and entry(js, "s")["first"]["b"] == "z"
    assert run(capsys, a, a)[0] == 0


# ---- logs -------------------------------------------------------------------------------------

def _first_line(path, pattern, n=1):
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if re.search(pattern, line)]
    return hits[n - 1]


def test_log_against_itself(capsys):
    f = golden("solver", "train.log")
    rc, js = run_json(capsys, f, f)
    assert rc == 0 and js["identical"] and js["values_a"] == 189
    kinds = {k["kind"]: k["values"] for k in js["kinds"]}
    assert kinds == {"test output": 8, "loss": 61, "train output": 60, "lr": 60}


def test_two_golden_logs(capsys):
    a, b = golden("solver", "train.log"), golden("solver_frozen", "train.log")
    rc, js = run_json(capsys, a, b)
    assert rc == 1
    f = js["first_difference"]
    assert f["label"] == "iter 0 test net #0 output #1 loss" and f["reason"] == "differs"
    assert f["a"]["line"] == _first_line(a, r"Test net output #1: loss")
    assert f["b"]["line"] == _first_line(b, r"Test net output #1: loss")
    assert f["a"]["text"] == re.search(r"Test net output #1: loss = (\S+)", a.read_text()).group(1)
    rc, out, _ = run(capsys, a, b)
    assert f"A line {f['a']['line']}: {f['a']['text']}" in out and f"B line {f['b']['line']}" in out


def test_log_with_clipping_and_policies(capsys):
    a = golden("solver_policies", "poly_clip", "train.log")
    b = golden("solver_policies", "exp_l1", "train.log")
    rc, js = run_json(capsys, a, a)
    assert rc == 0 and {k["kind"]: k["values"] for k in js["kinds"]}["clip"] == 39
    rc, js = run_json(capsys, a, b)
    assert rc == 1 and js["first_difference"]["label"] == "iter 0 test net #0 output #0 accuracy"
    assert any(k["kind"] == "clip" and k["differ"] == 39 for k in js["kinds"])  # only in A


def test_log_ignores_timestamps_pids_and_timings(tmp_path, capsys):
    src = golden("solver", "train.log")
    text = src.read_text()
    moved = re.sub(r"^([IWEF])\d+ [\d:.]+\s+\d+ ", r"\g<1>0101 00:00:00.000000 99999 ", text, flags=re.M)
    moved = re.sub(r"\(([-0-9.e+]+) iter/s, ([-0-9.e+]+)s/", "(1 iter/s, 1s/", moved)
    assert moved != text
    (tmp_path / "moved.log").write_text(moved)
    assert run(capsys, tmp_path / "moved.log", src)[0] == 0


def test_log_one_value_changed(tmp_path, capsys):
    src = golden("solver", "train.log")
    lines = src.read_text().splitlines(keepends=True)
    n = _first_line(src, r"Iteration 7, lr = ")
    lines[n - 1] = re.sub(r"lr = \S+", "lr = 0.0100001", lines[n - 1])
    (tmp_path / "changed.log").write_text("".join(lines))
    rc, js = run_json(capsys, tmp_path / "changed.log", src)
    assert rc == 1 and js["n_differ"] == 1
    f = js["first_difference"]
    assert f["label"] == "iter 7 lr" and f["a"] == {"text": "0.0100001", "line": n} and f["b"]["line"] == n
    assert run(capsys, tmp_path / "changed.log", src, "--tol", "1e-5")[0] == 0
    assert run(capsys, tmp_path / "changed.log", src, "--tol", "1e-8")[0] == 1


def test_log_missing_values(tmp_path, capsys):
    src = golden("solver", "train.log")
    lines = src.read_text().splitlines(keepends=True)
    n = _first_line(src, r"Iteration 3, lr = ")
    (tmp_path / "short.log").write_text("".join(lines[:n - 1] + lines[n:]))
    rc, js = run_json(capsys, tmp_path / "short.log", src)
    assert rc == 1 and js["n_differ"] == 1  # the rest still lines up
    f = js["first_difference"]
    assert f["label"] == "iter 3 lr" and f["reason"] == "only in B" and f["a"] is None and f["b"]["line"] == n


# ---- unreadable inputs and the command line ---------------------------------------------------

def test_unreadable_inputs_exit_2(tmp_path, capsys):
    good = golden("solver", "snap_iter_30.caffemodel")
    rc, _, err = run(capsys, tmp_path / "missing.caffemodel", good)
    assert rc == 2 and "missing.caffemodel" in err and "no such file" in err
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(good.read_bytes()[:1000])
    rc, _, err = run(capsys, good, bad)
    assert rc == 2 and str(bad) in err
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    rc, _, err = run(capsys, junk, junk)
    assert rc == 2 and "junk.npz" in err
    rc, _, err = run(capsys, golden("solver", "train.log"), good)
    assert rc == 2 and "cannot compare a log with an array file" in err
    (tmp_path / "x.bin").write_bytes(b"\x00\x01\x02")
    rc, _, err = run(capsys, tmp_path / "x.bin", tmp_path / "x.bin")
    assert rc == 2 and "x.bin" in err and "--kind" in err
    (tmp_path / "empty.log").write_text("hello\n")
    rc, _, err = run(capsys, tmp_path / "empty.log", golden("solver", "train.log"))
    assert rc == 2 and "empty.log" in err


def test_cli_dispatch(tmp_path):
    """Through ``python -m replicate compare`` (exit codes, --json on stdout)."""
    f = golden("solver", "snap_iter_30.caffemodel")
    g = golden("solver", "snap_iter_60.caffemodel")
    env_cmd = [sys.executable, "-m", "replicate", "compare"]
    r = subprocess.run([*env_cmd, str(f), str(f)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*env_cmd, str(f), str(g), "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and json.loads(r.stdout)["first_difference"]["key"] == "conv1/0"
    r = subprocess.run([*env_cmd, str(f), str(tmp_path / "nope.npz")], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "nope.npz" in r.stderr
