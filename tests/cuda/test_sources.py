"""CPU-runnable checks that the CUDA code cannot silently lose an op or a launcher.

* every op defined in csrc/ops.cpp has a CUDA registration (``m.impl("name"`` inside a
  ``TORCH_LIBRARY_IMPL(replicate, CUDA, m)`` block of csrc/cuda/*.cpp);
* every launcher defined in a ``.cu`` file is declared in its ``.cuh`` header, and every ``.cu``
  has one;
* the glue (csrc/cuda/*.cpp) passes ``g++ -fsyntax-only`` against torch's own ATen/cuda headers,
  with tests/cuda/stub_include standing in for the cuBLAS/cuSPARSE/cuSOLVER headers that a CPU
  machine lacks (skipped when torch ships no ATen/cuda headers or the CUDA runtime headers are absent).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
CUDA = CSRC / "cuda"


def _ops() -> set[str]:
    return set(re.findall(r'm\.def\("(\w+)\(', (CSRC / "ops.cpp").read_text()))


def _cuda_impls() -> set[str]:
    names = set()
    for f in CUDA.glob("*.cpp"):
        for block in re.findall(r"TORCH_LIBRARY_IMPL\(replicate,\s*CUDA,\s*m\)\s*\{(.*?)\n\}", f.read_text(), re.S):
            names |= set(re.findall(r'm\.impl\("(\w+)"', block))
    return names


# The kernels of the CPU-only layer types and solvers (their layers and solvers stop with an error
# naming them on a CUDA tensor): every op these files register, and nothing else, may lack a CUDA twin.
CPU_ONLY_FILES = ("neuron.cpp", "losses.cpp", "norm_layers.cpp", "recurrent.cpp", "solver_updates.cpp")


def _cpu_only_ops() -> set[str]:
    found = set()
    for name in CPU_ONLY_FILES:
        found |= set(re.findall(r'm\.impl\("(\w+)"', (CSRC / "cpu" / name).read_text()))
    return found


PENDING_CUDA: set[str] = _cpu_only_ops()


def test_cpu_only_ops_are_found():
    assert len(PENDING_CUDA) >= 40, sorted(PENDING_CUDA)  # the files register with m.impl("name", ...)


def test_every_op_has_a_cuda_registration():
    ops = _ops()
    assert len(ops) >= 24, ops
    missing = ops - _cuda_impls() - PENDING_CUDA
    assert not missing, f"ops without a CUDA kernel registration in csrc/cuda/*.cpp: {sorted(missing)}"
    unknown = _cuda_impls() - ops
    assert not unknown, f"CUDA registrations of ops not defined in csrc/ops.cpp: {sorted(unknown)}"


_LAUNCHER = re.compile(r"^template <typename T>\s*\ncudaError_t (\w+)\(", re.M)


def test_every_cu_has_its_launchers_declared():
    cus = sorted(CUDA.glob("*.cu"))
    assert cus
    for cu in cus:
        header = cu.with_suffix(".cuh")
        assert header.exists(), f"{cu.name} has no {header.name}"
        defined = set(_LAUNCHER.findall(cu.read_text()))
        declared = set(re.findall(r"cudaError_t (\w+)\(", header.read_text()))
        assert defined, f"{cu.name} defines no launcher"
        assert defined <= declared, f"{cu.name}: launchers not declared in {header.name}: {defined - declared}"
        assert f'#include "{header.name}"' in cu.read_text(), f"{cu.name} does not include {header.name}"


def test_cu_files_need_no_torch_headers():
    for f in list(CUDA.glob("*.cu")) + list(CUDA.glob("*.cuh")) + [CSRC / "geom.h"]:
        text = f.read_text()
        for banned in ("<torch/", "<ATen/", "<c10/", "common.h"):
            assert banned not in text, f"{f.name} includes {banned}: .cu/.cuh must compile with nvcc alone"


def _torch_include() -> Path | None:
    try:
        import torch.utils.cpp_extension as ce
    except Exception:  # pragma: no cover
        return None
    for p in ce.include_paths():
        if (Path(p) / "ATen" / "cuda" / "CUDAContext.h").exists():
            return Path(p)
    return None


def _cuda_include() -> Path | None:
    for p in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if p and (Path(p) / "include" / "cuda_runtime.h").exists():
            return Path(p) / "include"
    return None


@pytest.mark.parametrize("name", sorted(p.name for p in CUDA.glob("*.cpp")))
def test_glue_syntax(name):
    torch_inc, cuda_inc, cxx = _torch_include(), _cuda_include(), shutil.which("g++")
    if torch_inc is None or cuda_inc is None or cxx is None:
        pytest.skip("needs torch's ATen/cuda headers, the CUDA runtime headers and g++")
    import sysconfig

    cmd = [cxx, "-std=c++17", "-fsyntax-only", "-DREPLICATE_WITH_CUDA",
           f"-I{Path(__file__).parent / 'stub_include'}", f"-I{CSRC}", f"-I{torch_inc}",
           f"-I{torch_inc / 'torch' / 'csrc' / 'api' / 'include'}", f"-I{cuda_inc}",
           f"-I{sysconfig.get_paths()['include']}", str(CUDA / name)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
