"""All 170 networks of the paper (V0 train/val nets and solvers) load."""
import warnings

import prototxt_like as pl


def test_all_paper_files_parse_and_upgrade(paper_results):
    dirs = sorted(p for p in paper_results.iterdir() if p.is_dir())
    assert len(dirs) == 170
    loaded = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no field may be dropped
        for d in dirs:
            for part in ("train", "val"):
                net = pl.load_net(d / f"imagenet_{part}.prototxt", strict=True)
                assert net.layer and not net.layers, d
                assert net.layer[0].type == "Data"
                assert all(l.type in pl.upgrade.KNOWN_LAYER_TYPES for l in net.layer)
                loaded += 1
            solver = pl.load_solver(d / "imagenet_solver.prototxt")
            assert solver.base_lr > 0 and solver.max_iter > 0, d
            loaded += 1
    assert loaded == 510


def test_paper_padding_layers_disappear(paper_results):
    net = pl.load_net(paper_results / "netbase" / "imagenet_train.prototxt")
    assert not [l for l in net.layer if l.type.lower() == "padding"]
    pads = {l.name: list(l.convolution_param.pad) for l in net.layer if l.type == "Convolution"}
    assert pads["conv2"] == [2] and pads["conv3"] == [1]


def test_paper_mean(paper_results):
    mean = pl.load_mean(paper_results.parent / "half0B_imagenet_mean.binaryproto")
    assert mean.shape == (3, 256, 256) and mean.dtype.name == "float32"
    assert 0 < float(mean.mean()) < 255
