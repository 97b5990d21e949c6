"""python -m prototxt_like upgrade: Caffe's upgrade_*_proto_text tools."""
import subprocess
import sys

import pytest

from prototxt_like.__main__ import main
from tests._shared import REPO


@pytest.mark.parametrize("src, golden", [
    ("half0A_imagenet_train.v0.prototxt", "half0A_imagenet_train.upgraded.prototxt"),
    ("v1_net.v1.prototxt", "v1_net.upgraded.prototxt"),
    ("half0A_imagenet_solver.v0.prototxt", "half0A_imagenet_solver.upgraded.prototxt"),
    ("solver_type.v1.prototxt", "solver_type.upgraded.prototxt"),
])
def test_upgrade_writes_caffes_bytes(formats, tmp_path, src, golden):
    out = tmp_path / "out.prototxt"
    assert main(["upgrade", str(formats / src), str(out)]) == 0
    assert out.read_bytes() == (formats / golden).read_bytes()


def test_upgrade_prints_to_stdout(formats):
    proc = subprocess.run([sys.executable, "-m", "prototxt_like", "upgrade",
                           str(formats / "solver_type.v1.prototxt")],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout == (formats / "solver_type.upgraded.prototxt").read_text()


def test_upgrade_binary(formats, tmp_path):
    out = tmp_path / "up.caffemodel"
    assert main(["upgrade-binary", str(formats / "small_v1.caffemodel"), str(out)]) == 0
    assert out.read_bytes() == (formats / "small_v1.upgraded.caffemodel").read_bytes()


def test_errors_exit_2_with_location(tmp_path, capsys):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('layer {\n  name: "a"\n  typo: 1\n}\n')
    assert main(["upgrade", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3:3" in err and "typo" in err


def test_dropped_fields_exit_1_like_caffe(tmp_path, capsys):
    src = tmp_path / "v0.prototxt"
    src.write_text('input: "x"\nlayers { layer { name: "r" type: "relu" group: 2 } bottom: "x" top: "x" }\n')
    assert main(["upgrade", str(src)]) == 1
    captured = capsys.readouterr()
    assert 'type: "ReLU"' in captured.out and "group" in captured.err
