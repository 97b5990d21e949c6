"""``from replicate import caffe``: the pycaffe-style API of :mod:`replicate.pycaffe` under pycaffe's
name, so that a script's ``import caffe`` becomes ``from replicate import caffe``."""
from replicate.pycaffe import *  # noqa: F401,F403
from replicate.pycaffe import __all__, generator, io  # noqa: F401
