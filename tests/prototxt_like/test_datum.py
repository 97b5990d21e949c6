"""Datum records: raw uint8 CHW BGR, float_data, encoded images."""
import numpy as np
import pytest

import prototxt_like as pl
from prototxt_like import caffe_pb2, datum


def test_raw_uint8_layout():
    # Caffe's CVMatToDatum: data[(c * H + h) * W + w] = pixel (h, w) channel c (BGR)
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    d = pl.array_to_datum(arr, label=7)
    assert (d.channels, d.height, d.width, d.label) == (2, 3, 4, 7)
    assert d.HasField("encoded") and not d.encoded
    assert d.data == bytes(range(24))
    back, label = pl.datum_to_array(datum.parse_datum(datum.serialize_datum(d)))
    assert label == 7 and back.dtype == np.uint8 and np.array_equal(back, arr)


def test_float_data():
    arr = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 2, 2)
    d = pl.array_to_datum(arr)
    assert not d.data and len(d.float_data) == 12 and not d.HasField("label")
    back, label = pl.datum_to_array(d)
    assert label is None and back.dtype == np.float32 and np.array_equal(back, arr)


def test_size_mismatch_is_an_error():
    d = caffe_pb2.Datum(channels=3, height=2, width=2, data=b"\0" * 5)
    with pytest.raises(pl.CaffeFormatError, match="needs 12 bytes"):
        pl.datum_to_array(d)


def test_encoded_png_decodes_to_bgr_chw():
    pytest.importorskip("PIL")
    rng = np.random.RandomState(0)
    bgr = rng.randint(0, 256, size=(3, 5, 7)).astype(np.uint8)
    png = datum.encode_image(bgr, "png")
    # the file itself holds RGB: decode it independently of our BGR convention
    from PIL import Image
    import io
    rgb = np.asarray(Image.open(io.BytesIO(png)))
    assert np.array_equal(rgb, bgr.transpose(1, 2, 0)[:, :, ::-1])
    d = pl.encoded_datum(png, label=3)
    assert d.encoded and d.data == png and d.label == 3
    back, label = pl.datum_to_array(d)
    assert label == 3 and np.array_equal(back, bgr)
    grey, _ = pl.datum_to_array(d, is_color=False)
    assert grey.shape == (1, 5, 7)


def test_encoded_jpeg_decodes():
    pytest.importorskip("PIL")
    flat = np.full((3, 8, 8), 128, np.uint8)
    d = pl.encoded_datum(datum.encode_image(flat, "jpg"))
    back, _ = pl.datum_to_array(d)
    assert back.shape == (3, 8, 8) and np.abs(back.astype(int) - 128).max() <= 2


def test_garbage_encoded_data_is_a_clean_error():
    pytest.importorskip("PIL")
    with pytest.raises(pl.CaffeFormatError, match="cannot decode"):
        pl.datum_to_array(pl.encoded_datum(b"\x89PNG not really"))
