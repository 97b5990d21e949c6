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
