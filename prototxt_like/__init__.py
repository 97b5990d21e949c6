"""prototxt_like: Caffe 1.0's file formats, read and written as Caffe does.

* :mod:`prototxt_like.caffe_pb2` -- the generated protobuf classes of our
  schema ``caffe.proto`` (Caffe's message/field names and numbers).
* :mod:`prototxt_like.io` -- nets, solvers, ``.caffemodel``, ``.binaryproto``
  and ``.solverstate`` files; nets always come back upgraded to V2.
* :mod:`prototxt_like.upgrade` -- Caffe's V0 -> V1 -> V2 net and solver
  upgrade rules.
* :mod:`prototxt_like.blobs` / :mod:`prototxt_like.datum` -- BlobProto and
  Datum to and from numpy.
* :mod:`prototxt_like.errors` -- :class:`CaffeFormatError`, the one error
  type every failure raises.
* ``python -m prototxt_like upgrade IN [OUT]`` -- Caffe's
  upgrade_net_proto_text / upgrade_solver_proto_text.

See README.md in this folder for how ``caffe_pb2.py`` is generated.
"""
from . import caffe_pb2
from .blobs import blob_shape, blob_to_numpy, fit_to_shape, numpy_to_blob
from .codec import to_text
from .datum import array_to_datum, datum_to_array, encoded_datum
from .errors import (BinaryFormatError, BlobError, CaffeFormatError, TextFormatError,
                     UnknownLayerTypeError, UpgradeError, UpgradeWarning)
from .io import (caffemodel_weights, load_blob, load_blob_vector, load_mean, load_net,
                 load_net_binary, load_solver, load_solverstate, save_blob,
                 save_blob_vector, save_caffemodel, save_net_text, save_solver_text,
                 save_solverstate)
from .upgrade import (check_layer_types, net_needs_upgrade, solver_needs_upgrade,
                      upgrade_net, upgrade_solver)

__all__ = [
    "caffe_pb2",
    "load_net", "load_net_binary", "load_solver", "save_net_text", "save_solver_text",
    "to_text",
    "blob_to_numpy", "numpy_to_blob", "blob_shape", "fit_to_shape",
    "caffemodel_weights", "save_caffemodel",
    "load_blob", "load_mean", "save_blob", "load_blob_vector", "save_blob_vector",
    "load_solverstate", "save_solverstate",
    "datum_to_array", "array_to_datum", "encoded_datum",
    "upgrade_net", "upgrade_solver", "net_needs_upgrade", "solver_needs_upgrade",
    "check_layer_types",
    "CaffeFormatError", "TextFormatError", "BinaryFormatError", "UpgradeError",
    "UnknownLayerTypeError", "BlobError", "UpgradeWarning",
]
