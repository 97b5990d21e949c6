"""``python -m replicate plan``: the 170 networks are the release's (after Caffe's upgrade), plan.json's
order and weights, scale options (a mini plan builds, trains and transfers), and the errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest

import prototxt_like
from prototxt_like import caffe_pb2
from replicate.experiments import plan as P
from replicate.experiments.names import classify, release_names
from tests._shared import REPO, random_image_db, require

NAMES = list(release_names())
NETS = ("imagenet_train.prototxt", "imagenet_val.prototxt")


@pytest.fixture(scope="module")
def paper_plan(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "paper"
    t = time.perf_counter()
    P.write_plan(out, "/data/root")
    print(f"plan of all 170 networks: {time.perf_counter() - t:.2f} s")
    return out


def diff(ours, theirs, path="") -> list[str]:
    """Every field where two messages differ (presence included), as 'path: ours X, release Y'."""
    out = []
    a = {f.name: v for f, v in ours.ListFields()}
    b = {f.name: v for f, v in theirs.ListFields()}
    for name in sorted(set(a) | set(b), key=lambda n: ours.DESCRIPTOR.fields_by_name[n].number):
        p = f"{path}.{name}" if path else name
        if name not in a or name not in b:
            out.append(f"{p}: ours {a.get(name, '<absent>')!r}, release {b.get(name, '<absent>')!r}")
            continue
        fd = ours.DESCRIPTOR.fields_by_name[name]
        va, vb = a[name], b[name]
        seq = fd.is_repeated
        la, lb = (list(va), list(vb)) if seq else ([va], [vb])
        if len(la) != len(lb):
            out.append(f"{p}: ours {len(la)} entries, release {len(lb)}")
            continue
        for i, (x, y) in enumerate(zip(la, lb)):
            q = p
            if seq:
                q = f"{p}[{i}]" + (f"({x.name})" if hasattr(x, "name") and isinstance(getattr(x, "name"), str)
                                   and x.name else "")
            if fd.message_type is not None:
                out += diff(x, y, q)
            elif x != y:
                out.append(f"{q}: ours {x!r}, release {y!r}")
    return out


def normalised(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    for l in net.layer:
        if l.type == "Data":
            l.data_param.ClearField("source")
            l.data_param.ClearField("backend")
            l.transform_param.ClearField("mean_file")
    return net


def normalised_solver(s: caffe_pb2.SolverParameter) -> caffe_pb2.SolverParameter:
    s.train_net = os.path.basename(s.train_net)
    s.test_net[:] = [os.path.basename(t) for t in s.test_net]
    return s


# ---------------------------------------------------------------------------------------------
# 1. the release

@pytest.mark.parametrize("name", NAMES)
def test_network_is_the_releases(paper_plan, name):
    release = require("paper", "results") / name
    ours = paper_plan / name
    problems = []
    for f in NETS:
        d = diff(normalised(prototxt_like.load_net(str(ours / f))),
                 normalised(prototxt_like.load_net(str(release / f))))
        problems += [f"{f}: {x}" for x in d]
    f = "imagenet_solver.prototxt"
    d = diff(normalised_solver(prototxt_like.load_solver(str(ours / f))),
             normalised_solver(prototxt_like.load_solver(str(release / f))))
    problems += [f"{f}: {x}" for x in d]
    if (release / "basenet.txt").exists() or (ours / "basenet.txt").exists():
        theirs = (release / "basenet.txt").read_bytes() if (release / "basenet.txt").exists() else None
        mine = (ours / "basenet.txt").read_bytes() if (ours / "basenet.txt").exists() else None
        if theirs != mine:
            problems.append(f"basenet.txt: ours {mine!r}, release {theirs!r}")
    assert not problems, f"{name} differs from the release:\n" + "\n".join(problems)


def test_release_has_exactly_the_planned_networks():
    results = require("paper", "results")
    assert sorted(p.name for p in results.iterdir() if p.is_dir()) == sorted(NAMES)


def test_diff_sees_renames_multipliers_and_presence(paper_plan):
    """The comparison above can fail: a rename, a multiplier, a filler value and an explicit default."""
    net = prototxt_like.load_net(str(paper_plan / "transfer0A0B_1_3" / "imagenet_train.prototxt"))
    assert diff(net, net) == []
    i = [l.name for l in net.layer].index("conv4-new")
    for change in (lambda n: setattr(n.layer[i], "name", "conv4"),
                   lambda n: n.layer[i + 1].bottom.__setitem__(0, "conv4"),
                   lambda n: setattr(n.layer[1].param[0], "lr_mult", 1),
                   lambda n: setattr(n.layer[1].convolution_param.bias_filler, "value", 0.5),
                   lambda n: n.layer[0].transform_param.ClearField("mirror"),  # default false vs explicit true
                   lambda n: n.layer[-1].top.append("loss")):
        other = caffe_pb2.NetParameter()
        other.CopyFrom(net)
        change(other)
        assert diff(other, net), change


def test_data_paths_and_backend(tmp_path):
    P.write_plan(tmp_path / "p", tmp_path / "data", nets=["reduced-0005", "transfer1B1A_1_2", "nolearn_1_1"],
                 backend="leveldb")
    root = str((tmp_path / "data").absolute())
    expect = {"reduced-0005": ("reduced0005_train", "whole_valid", "reduced0005_mean"),
              "transfer1B1A_1_2": ("half1A_train", "half1A_valid", "half1A_mean"),
              "half1B": ("half1B_train", "half1B_valid", "half1B_mean"),
              "nolearn_1_1": ("whole_train", "whole_valid", "whole_mean")}
    for name, (train, valid, mean) in expect.items():
        for f, db in (("imagenet_train.prototxt", train), ("imagenet_val.prototxt", valid)):
            data = prototxt_like.load_net(str(tmp_path / "p" / name / f)).layer[0]
            assert data.data_param.source == f"{root}/{db}_leveldb", (name, f)
            assert data.data_param.backend == caffe_pb2.DataParameter.LEVELDB
            assert data.transform_param.mean_file == f"{root}/{mean}.binaryproto", (name, f)


# ---------------------------------------------------------------------------------------------
# 2. plan.json

def test_plan_json_order_weights_and_basenet(paper_plan):
    plan = json.loads((paper_plan / "plan.json").read_text())
    assert plan["version"] == 1 and plan["backend"] == "lmdb" and plan["data_root"] == "/data/root"
    assert plan["scale"]["max_iter"] == 450000 and plan["scale"]["stepsize"] == 100000
    assert {"created", "scale", "networks"} <= set(plan)
    nets = plan["networks"]
    assert [n["name"] for n in nets] == NAMES
    seen = set()
    for n in nets:
        assert set(n) >= {"name", "kind", "n", "base", "weights", "max_iter", "snapshot_prefix", "solver"}
        net = classify(n["name"])
        assert (n["kind"], n["n"], n["base"]) == (net.kind, net.n, net.base)
        assert n["snapshot_prefix"] == "caffe_imagenet_train" and n["solver"] == "imagenet_solver.prototxt"
        assert n["max_iter"] == (200000 if net.kind == "reduced" else 450000)
        if net.base:
            assert net.base in seen, f"{n['name']} comes before its base {net.base}"
            assert n["weights"] == f"../{net.base}/caffe_imagenet_train_iter_450000.caffemodel"
            assert (paper_plan / n["name"] / "basenet.txt").read_text() == f"../{net.base}"
        else:
            assert n["weights"] is None and not (paper_plan / n["name"] / "basenet.txt").exists()
        seen.add(n["name"])


def test_basenet_is_the_releases(paper_plan):
    results = require("paper", "results")
    for name in NAMES:
        f = results / name / "basenet.txt"
        assert f.exists() == (paper_plan / name / "basenet.txt").exists(), name
        if f.exists():
            assert f.read_bytes() == (paper_plan / name / "basenet.txt").read_bytes(), name


def test_selection_adds_bases_and_says_so(tmp_path):
    said = []
    P.write_plan(tmp_path, tmp_path, nets="transfer-ft1*_1_7,netbase", log=said.append)
    nets = [n["name"] for n in json.loads((tmp_path / "plan.json").read_text())["networks"]]
    assert nets == ["half1A", "half1B", "netbase", "transfer-ft1A1A_1_7", "transfer-ft1A1B_1_7",
                    "transfer-ft1B1A_1_7"]
    assert any("half1A, half1B" in m for m in said)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(nets)


# ---------------------------------------------------------------------------------------------
# 3. scale

def test_solver_numbers_scale_with_the_releases_ratios():
    s = P.Scale(max_iter=9000, base_lr=0.02)
    base, reduced = classify("half0A"), classify("reduced-0010")
    assert s.solver_numbers(base) == (0.02, 9000, 2000)
    assert s.solver_numbers(reduced) == (0.025, 4000, 1280)
    assert P.Scale(max_iter=9000, stepsize=3000).solver_numbers(reduced)[2] == 1920
    assert P.Scale().solver_numbers(reduced) == (0.0125, 200000, 64000)


def test_fan_in_std_keeps_caffenets_per_layer_gain():
    """CaffeNet's fan-ins (written out from its layer shapes, not computed by the plan), and the mini
    preset's fillers: std x sqrt(fan-in) is CaffeNet's for every layer (4 significant digits)."""
    caffenet = {"conv1": 3 * 11 * 11, "conv2": 48 * 5 * 5, "conv3": 256 * 3 * 3, "conv4": 192 * 3 * 3,
                "conv5": 192 * 3 * 3, "fc6": 256 * 6 * 6, "fc7": 4096, "fc8": 4096}
    assert P.Scale().fan_ins() == caffenet
    stds = {"conv1": 0.01, "conv2": 0.01, "conv3": 0.01, "conv4": 0.01, "conv5": 0.01, "fc6": 0.005,
            "fc7": 0.005, "fc8": 0.01}
    assert {n: P.Scale().filler_std(n) for n in stds} == stds  # the paper's scale is untouched
    mini = P.PRESETS["mini"]
    assert mini.fan_ins() == {"conv1": 27, "conv2": 6 * 25, "conv3": 32 * 9, "conv4": 24 * 9, "conv5": 24 * 9,
                              "fc6": 32 * 3 * 3, "fc7": 512, "fc8": 512}
    for n, fan in mini.fan_ins().items():
        assert mini.filler_std(n) * fan ** 0.5 == pytest.approx(stds[n] * caffenet[n] ** 0.5, rel=5e-4), n
    assert replace(mini, fan_in_std=0).filler_std("fc6") == 0.005
    train = P.build_net(classify("half0A"), mini, P.data_paths(classify("half0A"), "/", "lmdb"), "lmdb", train=True)
    written = {l.name: (l.convolution_param if l.type == "Convolution" else l.inner_product_param).weight_filler.std
               for l in train.layer if l.type in ("Convolution", "InnerProduct")}
    assert written == pytest.approx({n: mini.filler_std(n) for n in stds})


def test_step_fraction():
    assert P.Scale(max_iter=900, step_fraction=2 / 3).resolved_stepsize() == 600
    assert P.Scale(max_iter=900).resolved_stepsize() == 200  # 0: the release's 2/9
    assert P.Scale(max_iter=900, step_fraction=0.5, stepsize=7).resolved_stepsize() == 7
    with pytest.raises(P.PlanError, match="step-fraction"):
        P.Scale(step_fraction=1.5).check()


def test_cli_mini_numbers(tmp_path):
    args = ["--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "p"), "--preset", "mini",
            "--nets", "transfer0A0B_1_3,reduced-0001", "--max-iter", "900", "--batch-size", "7",
            "--test-batch-size", "5", "--test-iter", "3", "--test-interval", "30", "--snapshot", "300",
            "--display", "10", "--random-seed", "40", "--width", "0.25", "--num-classes", "60", "--crop-size", "40",
            "--conv1-kernel", "5", "--conv1-stride", "2", "--base-lr", "0.004"]
    assert P.main(args) == 0
    d = tmp_path / "p"
    s = prototxt_like.load_solver(str(d / "transfer0A0B_1_3" / "imagenet_solver.prototxt"))
    assert (s.max_iter, s.stepsize, s.test_iter[0], s.test_interval, s.snapshot, s.display) == \
        (900, 600, 3, 30, 300, 10)
    assert s.base_lr == pytest.approx(0.004) and s.random_seed == 40 + NAMES.index("transfer0A0B_1_3")
    r = prototxt_like.load_solver(str(d / "reduced-0001" / "imagenet_solver.prototxt"))
    assert (r.max_iter, r.stepsize) == (400, 384) and r.base_lr == pytest.approx(0.005)
    train = prototxt_like.load_net(str(d / "transfer0A0B_1_3" / "imagenet_train.prototxt"))
    val = prototxt_like.load_net(str(d / "transfer0A0B_1_3" / "imagenet_val.prototxt"))
    layers = {l.name: l for l in train.layer}
    outs = {l.name: (l.convolution_param if l.type == "Convolution" else l.inner_product_param).num_output
            for l in train.layer if l.type in ("Convolution", "InnerProduct")}
    assert outs == {"conv1": 24, "conv2": 64, "conv3": 96, "conv4-new": 96, "conv5-new": 64, "fc6-new": 1024,
                    "fc7-new": 1024, "fc8-new": 60}
    assert (list(layers["conv1"].convolution_param.kernel_size), list(layers["conv1"].convolution_param.stride)) \
        == ([5], [2])
    assert train.layer[0].transform_param.crop_size == 40 and train.layer[0].data_param.batch_size == 7
    assert val.layer[0].transform_param.crop_size == 40 and val.layer[0].data_param.batch_size == 5
    # frozen / renamed layers as at paper scale
    paper = P.build_net(classify("transfer0A0B_1_3"), P.Scale(), P.data_paths(classify("half0A"), "/", "lmdb"),
                        "lmdb", train=True)
    assert [l.name for l in train.layer] == [l.name for l in paper.layer]
    assert [[(p.lr_mult, p.decay_mult) for p in l.param] for l in train.layer] == \
        [[(p.lr_mult, p.decay_mult) for p in l.param] for l in paper.layer]
    plan = json.loads((d / "plan.json").read_text())
    assert plan["scale"]["preset"] == "mini" and plan["scale"]["width"] == 0.25 and plan["scale"]["stepsize"] == 600
    assert plan["networks"][-1]["weights"] is None
    assert [n["weights"] for n in plan["networks"] if n["name"] == "transfer0A0B_1_3"] == \
        ["../half0A/caffe_imagenet_train_iter_900.caffemodel"]


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """A mini plan (half0A, transfer0A0B_1_3, nolearn_1_2) over tiny 32 px databases."""
    from data_prep.mean import write_mean
    tmp = tmp_path_factory.mktemp("mini")
    data = tmp / "data"
    data.mkdir()
    for i, ds in enumerate(("half0A", "half0B", "whole")):
        for split in ("train", "valid"):
            random_image_db(tmp, data / f"{ds}_{split}_lmdb", n=6, size=32, classes=5, seed=10 * i + len(split))
        write_mean(str(data / f"{ds}_train_lmdb"), str(data / f"{ds}_mean.binaryproto"), log=lambda m: None)
    scale = replace(P.PRESETS["mini"], max_iter=4, snapshot=2, test_iter=1, test_interval=2, test_batch_size=3,
                    batch_size=4, display=0)
    out = P.write_plan(tmp / "plan", data, nets=["transfer0A0B_1_3", "nolearn_1_2"], scale=scale, check_data=True)
    return out


def test_mini_nets_build_with_the_requested_shapes(mini):
    from replicate.net import Net
    for name in ("half0A", "transfer0A0B_1_3", "nolearn_1_2"):
        for f, phase in (("imagenet_train.prototxt", caffe_pb2.TRAIN), ("imagenet_val.prototxt", caffe_pb2.TEST)):
            net = Net(str(mini / name / f), phase)
            try:
                shapes = {l.name.replace("-new", ""): [tuple(p.shape) for p in l.params]
                          for l in net.layers if l.params}
                assert shapes == {"conv1": [(12, 3, 3, 3), (12,)], "conv2": [(32, 6, 5, 5), (32,)],
                                  "conv3": [(48, 32, 3, 3), (48,)], "conv4": [(48, 24, 3, 3), (48,)],
                                  "conv5": [(32, 24, 3, 3), (32,)], "fc6": [(512, 288), (512,)],
                                  "fc7": [(512, 512), (512,)], "fc8": [(40, 512), (40,)]}, (name, f)
                if phase == caffe_pb2.TRAIN:
                    frozen = classify(name).frozen
                    assert net.params_lr == [0.0, 0.0] * frozen + [1.0, 2.0] * (8 - frozen), name
                else:
                    net.forward()
                    assert tuple(net.blobs["data"].data.shape) == (3, 3, 28, 28)
                    assert tuple(net.blobs["pool5"].data.shape) == (3, 32, 3, 3)
            finally:
                net.close()


def test_mini_base_trains_and_transfer_loads_its_final_snapshot(mini, monkeypatch):
    """plan.json's weights path is the base's final snapshot; copied layers match it, -new ones do not."""
    import numpy as np
    from replicate.log import NullLog
    from replicate.solver import SGDSolver
    plan = json.loads((mini / "plan.json").read_text())
    entry = {n["name"]: n for n in plan["networks"]}
    monkeypatch.chdir(mini / "half0A")
    s = SGDSolver(entry["half0A"]["solver"], log=NullLog())
    try:
        s.solve()
    finally:
        s.close()
    assert (mini / "half0A" / entry["half0A"]["final_snapshot"]).exists()
    t = entry["transfer0A0B_1_3"]
    monkeypatch.chdir(mini / t["name"])
    s = SGDSolver(t["solver"], log=NullLog(), weights=[t["weights"]])
    try:
        base = prototxt_like.caffemodel_weights(t["weights"])
        mine = {l.name: [p.data.numpy() for p in l.params] for l in s.net.layers if l.params}
        for layer in ("conv1", "conv2", "conv3"):
            assert all(np.array_equal(a, b) for a, b in zip(mine[layer], base[layer])), layer
        assert "conv4" not in mine and not np.array_equal(mine["conv4-new"][0], base["conv4"][0])
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# 4. errors and re-running

def test_unknown_pattern(tmp_path, capsys):
    assert P.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "p"), "--nets", "half0A,transfer9*"]) == 1
    err = capsys.readouterr().err
    assert "'transfer9*' matches no network" in err
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("width,what", [(0.11, "conv2's input (conv1 num_output) is 11"),
                                        (0.12, "conv2 num_output is 31")])
def test_bad_width(tmp_path, capsys, width, what):
    assert P.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "p"), "--width", str(width)]) == 1
    err = capsys.readouterr().err
    assert what in err and "group 2" in err


def test_input_too_small(tmp_path):
    with pytest.raises(P.PlanError, match="the input of pool5 is 2x2, too small"):
        P.write_plan(tmp_path, tmp_path, scale=P.Scale(crop_size=50))
    P.Scale(crop_size=60).check()  # pool5 3x3 -> 1x1


def test_check_data_names_the_missing_path(tmp_path, capsys):
    (tmp_path / "half0A_train_lmdb").mkdir()
    (tmp_path / "half0A_mean.binaryproto").write_bytes(b"")
    args = ["--data-root", str(tmp_path), "--out", str(tmp_path / "p"), "--nets", "half0A"]
    assert P.main(args + ["--check-data"]) == 1
    assert f"data path {tmp_path}/half0A_valid_lmdb does not exist" in capsys.readouterr().err
    assert P.main(args) == 0  # a warning without --check-data
    assert "warning: 1 data path(s) do not exist yet" in capsys.readouterr().err
    (tmp_path / "half0A_valid_lmdb").mkdir()
    assert P.main(args + ["--check-data"]) == 0


def test_rerun_keeps_finished_work(tmp_path):
    out = tmp_path / "p"
    P.write_plan(out, tmp_path, nets=["half0A", "half0B"])
    P.write_plan(out, tmp_path, nets=["half0A", "half0B"])  # unchanged: fine
    (out / "half0A" / "caffe_imagenet_train_iter_10000.caffemodel").write_bytes(b"")
    P.write_plan(out, tmp_path, nets=["half0A"])  # same files: fine even with snapshots
    before = (out / "half0A" / "imagenet_solver.prototxt").read_text()
    with pytest.raises(P.PlanConflict, match=r"half0A \(has caffe_imagenet_train_iter_10000.caffemodel; would change "
                                          r"imagenet_solver.prototxt\)"):
        P.write_plan(out, tmp_path, nets=["half0*"], scale=P.Scale(max_iter=1000))
    assert (out / "half0A" / "imagenet_solver.prototxt").read_text() == before
    assert "max_iter: 450000" in (out / "half0B" / "imagenet_solver.prototxt").read_text()  # nothing written
    P.write_plan(out, tmp_path, nets=["half0*"], scale=P.Scale(max_iter=1000), force=True)
    assert "max_iter: 1000" in (out / "half0A" / "imagenet_solver.prototxt").read_text()


def test_python_m_replicate_plan(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "replicate", "plan", "--data-root", str(tmp_path), "--out",
                        str(tmp_path / "p"), "--nets", "transfernatmanAB_1_1"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "halfnatmanA" in r.stderr
    assert [n["name"] for n in json.loads((tmp_path / "p" / "plan.json").read_text())["networks"]] == \
        ["halfnatmanA", "transfernatmanAB_1_1"]


def test_planning_in_pieces_keeps_every_piece(tmp_path):
    """A second plan into the same folder keeps the first's networks in plan.json (same data and
    scale), in dependency order; another scale is refused unless --force, which drops them."""
    out = tmp_path / "grid"
    P.write_plan(out, tmp_path / "data", nets="transfer0A0B_1_1")
    P.write_plan(out, tmp_path / "data", nets="transfer1B1A_1_2")
    names = [e["name"] for e in json.loads((out / "plan.json").read_text())["networks"]]
    assert names == ["half0A", "half1B", "transfer0A0B_1_1", "transfer1B1A_1_2"]
    with pytest.raises(P.PlanConflict, match="scale"):
        P.write_plan(out, tmp_path / "data", nets="half2A", scale=replace(P.Scale(), max_iter=1000))
    P.write_plan(out, tmp_path / "data", nets="half2A", scale=replace(P.Scale(), max_iter=1000), force=True)
    assert [e["name"] for e in json.loads((out / "plan.json").read_text())["networks"]] == ["half2A"]


def test_force_moves_the_earlier_run_aside(tmp_path):
    """--force re-plans a network that has snapshots: its snapshots, logs and DONE move to
    superseded-<time>/ (nothing is deleted; the sweep starts it afresh)."""
    out = tmp_path / "grid"
    P.write_plan(out, tmp_path / "data", nets="half0A")
    d = out / "half0A"
    for name in ("caffe_imagenet_train_iter_50.caffemodel", "caffe_imagenet_train_iter_300.solverstate",
                 "caffe_imagenet_train_iter_300.resume", "DONE"):
        (d / name).write_text("x")
    (d / "logs").mkdir()
    (d / "logs" / "1-attempt1.log").write_text("x")
    with pytest.raises(P.PlanError, match="has caffe_imagenet_train_iter_300"):
        P.write_plan(out, tmp_path / "data", nets="half0A", scale=replace(P.Scale(), max_iter=900))
    said = []
    P.write_plan(out, tmp_path / "data", nets="half0A", scale=replace(P.Scale(), max_iter=900), force=True,
                 log=said.append)
    moved = [p for p in d.iterdir() if p.name.startswith("superseded-")]
    assert len(moved) == 1 and sorted(p.name for p in moved[0].iterdir()) == [
        "DONE", "caffe_imagenet_train_iter_300.resume", "caffe_imagenet_train_iter_300.solverstate",
        "caffe_imagenet_train_iter_50.caffemodel", "logs"]
    assert not any(p.name.endswith((".caffemodel", ".solverstate")) for p in d.iterdir())
    assert any("superseded-" in m for m in said)


@pytest.mark.parametrize("overrides,what", [({"max_iter": 2}, "stepsize of 0"), ({"max_iter": 1, "stepsize": 1},
                                            "reduced-"), ({"width": float("inf")}, "width"),
                                           ({"base_lr": float("nan")}, "base-lr")])
def test_scales_the_trainer_would_refuse(tmp_path, overrides, what):
    with pytest.raises(P.PlanError, match=what):
        P.write_plan(tmp_path, tmp_path, nets="half0A", scale=replace(P.Scale(), **overrides))
