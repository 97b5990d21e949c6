"""``caffe.io`` (python/caffe/io.py): see :mod:`replicate.pycaffe`."""
from replicate.pycaffe import (Transformer, array_to_blobproto, array_to_datum,  # noqa: F401
                               arraylist_to_blobprotovector_str, blobproto_to_array,
                               blobprotovector_str_to_arraylist, caffe_pb2, datum_to_array, load_image,
                               oversample, resize_image)
