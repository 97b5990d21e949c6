"""Data-layer throughput: images/s of ``replicate.data`` in TRAIN (batch 256, crop 227,
mirror, 3x256x256 mean file) from a raw 256x256 LMDB of synthetic images, per worker count."""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from data_prep.pack import _LMDBWriter  # noqa: E402
from prototxt_like import caffe_pb2  # noqa: E402
from prototxt_like.datum import array_to_datum, serialize_datum  # noqa: E402
from prototxt_like.io import save_blob  # noqa: E402
from replicate.data import open_source  # noqa: E402

RECORDS, SIDE, CROP, BATCH = 1000, 256, 227, 256


def _make_db(folder: str) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    db = os.path.join(folder, "train_lmdb")
    w = _LMDBWriter(db)
    base = rng.integers(0, 256, (3, SIDE, SIDE), dtype=np.uint8)
    for i in range(RECORDS):
        img = np.roll(base, i * 7, axis=2) ^ np.uint8(i % 251)
        w.put(f"{i:08d}_img_{i:04d}.jpg".encode(), serialize_datum(array_to_datum(img, label=i % 1000)))
        if (i + 1) % 250 == 0:
            w.commit()
    w.commit()
    w.close()
    mean = os.path.join(folder, "mean.binaryproto")
    save_blob(mean, rng.uniform(0, 255, (1, 3, SIDE, SIDE)).astype(np.float32), legacy_4d=True)
    return db, mean


def _layer(db: str, mean: str):
    lp = caffe_pb2.LayerParameter(name="data", type="Data", top=["data", "label"])
    lp.data_param.source, lp.data_param.batch_size = db, BATCH
    lp.data_param.backend = caffe_pb2.DataParameter.LMDB
    tp = lp.transform_param
    tp.crop_size, tp.mirror, tp.mean_file = CROP, True, mean
    return lp


def run(repeats: int = 5) -> dict:
    """``{"workers_1": images/s, "workers_2": ..., ...}`` (best of ``repeats`` timed
    stretches of 4 batches each, after 2 warm-up batches)."""
    out: dict = {"batch": BATCH, "crop": CROP, "mirror": True, "mean_file": f"3x{SIDE}x{SIDE}",
                 "records": RECORDS, "unit": "images/s"}
    with tempfile.TemporaryDirectory() as tmp:
        db, mean = _make_db(tmp)
        lp = _layer(db, mean)
        for workers in (1, 2):
            with open_source(lp, caffe_pb2.TRAIN, rng_seed=1, workers=workers, pin_memory=False) as src:
                for _ in range(2):
                    src.next()
                best = 0.0
                for _ in range(max(1, repeats)):
                    t = time.perf_counter()
                    for _ in range(4):
                        src.next()
                    best = max(best, 4 * BATCH / (time.perf_counter() - t))
            out[f"workers_{workers}"] = round(best, 1)
    return out


if __name__ == "__main__":
    import json
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3), indent=1))
