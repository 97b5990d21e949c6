"""Build the `replicate._C` extension: Caffe's layers as torch ops.

CppExtension always; CUDAExtension when the installed torch has CUDA and nvcc is found.
REPLICATE_WITH_CUDA=0|1 overrides the detection.  Build against the installed torch:
    pip install --no-build-isolation -e .
"""
import glob
import os
import shutil

from setuptools import find_packages, setup
from torch.utils import cpp_extension

HERE = os.path.dirname(os.path.abspath(__file__))


def want_cuda() -> bool:
    env = os.environ.get("REPLICATE_WITH_CUDA")
    if env is not None:
        return env == "1"
    import torch

    return torch.version.cuda is not None and shutil.which("nvcc") is not None


def sources(cuda: bool):
    src = sorted(glob.glob("csrc/*.cpp")) + sorted(glob.glob("csrc/cpu/*.cpp"))
    if cuda:
        src += sorted(glob.glob("csrc/cuda/*.cu")) + sorted(glob.glob("csrc/cuda/*.cpp"))
    return src


# -ffp-contract=off: no fused multiply-adds the source does not ask for (Caffe's loops round
# every product); no -ffast-math: the order of every sum is Caffe's.  -g0 overrides the -g of
# Python's own CFLAGS: debug information does not change the code GCC generates, and writing it for
# torch's templates took half of each file's compile time (pooling.cpp 21.7 s with it, 11.9 s without).
CXX_FLAGS = ["-O3", "-std=c++17", "-fopenmp", "-ffp-contract=off", "-fno-fast-math", "-g0"]
NVCC_FLAGS = ["-O3", "--fmad=false", "-std=c++17"]


def extension():
    cuda = want_cuda()
    kwargs = dict(
        name="replicate._C",
        sources=sources(cuda),
        include_dirs=[os.path.join(HERE, "csrc")],
        extra_compile_args={"cxx": CXX_FLAGS + (["-DREPLICATE_WITH_CUDA"] if cuda else []), "nvcc": NVCC_FLAGS},
        extra_link_args=["-fopenmp", "-ldl"],
    )
    if cuda:
        return cpp_extension.CUDAExtension(libraries=["cublas"], **kwargs)
    kwargs["extra_compile_args"] = {"cxx": CXX_FLAGS}
    return cpp_extension.CppExtension(**kwargs)


# csrc/common.h (torch's library and ATen headers: about 10 s of each file's compile) is compiled once
# into a GCC precompiled header with the very flags of the C++ files, and given to each of them
# first (-include).  Every file includes common.h itself (blas.cpp and cpu_cache.cpp first of all,
# the others after standard headers or through their own header), and no file defines a macro before
# its includes, so each sees the same declarations either way.  A header compiled with other flags
# is not used by GCC (it parses the text instead, and -Winvalid-pch says so).  The header is rebuilt
# only when its flags or one of the files it reads (common.h, torch's headers) changed, a digest of
# them kept beside it; and then every object is removed, so ninja compiles each file again (GCC 12
# leaves a forced-in precompiled header's files out of the objects' dependency lists, -fpch-deps or
# not, so ninja alone would keep objects made with the old common.h).  Measured on 2026-12-03: the build
# 2 min 33 s without it, 1 min 24 s with it (2 cores); every one of the library's 1,685 functions
# has the same instructions either way (objdump, addresses and alignment padding aside), only their
# order in the library differs.  GCC only (another compiler builds without it); REPLICATE_PCH=0
# builds without it.
_write_and_compile = cpp_extension._write_ninja_file_and_compile_objects


def _is_gcc(compiler: list) -> bool:
    import subprocess
    try:
        r = subprocess.run([*compiler, "-x", "c++", "-dM", "-E", os.devnull], capture_output=True, text=True,
                           timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and "__GNUC__" in r.stdout and "__clang__" not in r.stdout


def _pch_digest(compiler: list, flags: list, header: str):
    """A digest of the compiler, the flags and every file the header reads (path, size, mtime)."""
    import hashlib
    import subprocess
    r = subprocess.run([*compiler, "-x", "c++-header", *flags, "-M", header], capture_output=True, text=True)
    if r.returncode:
        return None
    files = r.stdout.replace("\\\n", " ").split(":", 1)[1].split()
    h = hashlib.sha256("\0".join([*compiler, *flags]).encode())
    for f in files:
        st = os.stat(f)
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def _with_precompiled_common(sources, objects, cflags, post_cflags, build_directory, with_cuda=False,
                             **kwargs):
    import shlex
    import subprocess
    compiler = shlex.split(cpp_extension.get_cxx_compiler())
    if os.environ.get("REPLICATE_PCH", "1") != "0" and _is_gcc(compiler):
        pch_dir = os.path.join(build_directory, "pch")
        os.makedirs(pch_dir, exist_ok=True)
        header = os.path.join(pch_dir, "replicate_common.h")
        text = f'#include "{os.path.join(HERE, "csrc", "common.h")}"\n'
        if not os.path.exists(header) or open(header).read() != text:
            with open(header, "w") as f:
                f.write(text)
        flags = [a for f in cflags for a in shlex.split(f)] + [a for f in post_cflags for a in shlex.split(f)]
        stamp = header + ".gch.digest"
        digest = _pch_digest(compiler, flags, header)
        fresh = (digest is not None and os.path.exists(header + ".gch") and os.path.exists(stamp)
                 and open(stamp).read() == digest)
        ok = fresh
        if not fresh:
            if os.path.exists(stamp):
                os.unlink(stamp)
            r = subprocess.run([*compiler, "-x", "c++-header", *flags, header, "-o", header + ".gch"],
                               capture_output=True, text=True)
            ok = r.returncode == 0 and digest is not None
            if ok:
                for obj in objects:  # made with the old header: ninja cannot see that (above)
                    if os.path.exists(obj):
                        os.unlink(obj)
                with open(stamp, "w") as f:
                    f.write(digest)
            else:
                print(f"setup.py: the precompiled header failed; building without it:\n{r.stderr[-2000:]}")
        if ok:
            post_cflags = [*post_cflags, "-Winvalid-pch", "-include", shlex.quote(header)]
    return _write_and_compile(sources=sources, objects=objects, cflags=cflags, post_cflags=post_cflags,
                              build_directory=build_directory, with_cuda=with_cuda, **kwargs)


cpp_extension._write_ninja_file_and_compile_objects = _with_precompiled_common


setup(
    name="replicate-caffe",
    version="0.1.0",
    description="Caffe 1.0, bit for bit, on PyTorch: the Yosinski et al. 2014 transfer experiments",
    packages=find_packages(include=["replicate*", "prototxt_like*", "data_prep*"]),
    package_data={"prototxt_like": ["*.proto"]},
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
    python_requires=">=3.10",
)
