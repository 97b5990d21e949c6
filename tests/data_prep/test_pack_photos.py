"""pack on real photographs: Caffe's own records (shared/golden/photos), and held-out photos in the
same JPEG variants (EXIF orientations 1-8, CMYK with and without the Adobe marker, ...) against
OpenCV itself, the library convert_imageset calls; files Caffe skips."""
import hashlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from data_prep.pack import pack
from data_prep.records import RecordMaker, atoi
from prototxt_like import caffe_pb2
from replicate.data.db import iter_records
from tests._shared import count_compared, require

PHOTO_DBS = {  # golden db -> the convert_imageset flags its README gives
    "caffe_resized_lmdb": dict(resize_height=256, resize_width=256),
    "caffe_full_lmdb": dict(),
    "caffe_gray_lmdb": dict(resize_height=227, resize_width=300, gray=True),
}
HOPPER = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"
QUIET = dict(progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def photos():
    return require("golden", "photos")


@pytest.fixture(scope="module")
def photo_inputs():
    """The photos as inputs only (not compared with Caffe's output)."""
    return require("golden", "photos", bitlevel=False)


@pytest.mark.parametrize("db", list(PHOTO_DBS))
@pytest.mark.parametrize("workers", [1, 2])
def test_photos_every_record_is_caffes(photos, tmp_path, db, workers):
    out = tmp_path / db
    n = pack(str(photos / "img") + "/", photos / "list.txt", out, workers=workers, **QUIET, **PHOTO_DBS[db])
    assert n == 48
    got = list(iter_records(out))
    want = list(iter_records(photos / db))
    assert [k for k, _ in got] == [k for k, _ in want]
    diff = [k.decode() for (k, a), (_, b) in zip(got, want) if a != b]
    assert diff == [], f"{len(diff)} of 48 records differ from Caffe's: {diff[:6]}"
    listed = json.loads((photos / "caffe_records.json").read_text())[db]
    assert [[k.decode(), hashlib.md5(v).hexdigest(), len(v)] for k, v in got] == listed
    count_compared(48)


def _reference(path, label, h=0, w=0, gray=False) -> bytes:
    """What convert_imageset stores: cv::imread, cv::resize, CVMatToDatum, SerializeToString."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    assert img is not None
    if h and w:
        img = cv2.resize(img, (w, h))
    if img.ndim == 2:
        img = img[:, :, None]
    return caffe_pb2.Datum(channels=img.shape[2], height=img.shape[0], width=img.shape[1],
                           data=img.transpose(2, 0, 1).tobytes(), label=label,
                           encoded=False).SerializeToString()


def _strip_app14(raw: bytes) -> bytes:
    """The JPEG without its Adobe (APP14) marker segment."""
    out, i = bytearray(raw[:2]), 2
    while True:
        assert raw[i] == 0xFF
        if raw[i + 1] == 0xDA:
            return bytes(out + raw[i:])
        n = int.from_bytes(raw[i + 2:i + 4], "big")
        if raw[i + 1] != 0xEE:
            out += raw[i:i + 2 + n]
        i += 2 + n


def _held_out(folder: Path) -> dict:
    """A real photograph (matplotlib's grace_hopper.jpg) cut and saved in ImageNet's variants."""
    folder.mkdir()
    im = Image.open(HOPPER).convert("RGB")
    crops = {"a": im.crop((40, 20, 340, 250)).resize((90, 70)), "b": im.crop((200, 150, 600, 512)).resize((75, 97))}
    files = {}

    def save(name, pim, **kw):
        buf = io.BytesIO()
        pim.save(buf, "JPEG", **kw)
        files[name] = buf.getvalue()

    for c, pim in crops.items():
        save(f"{c}_plain.JPEG", pim, quality=85)
        save(f"{c}_444.JPEG", pim, quality=75, subsampling=0)
        save(f"{c}_progressive.JPEG", pim, quality=90, progressive=True)
        save(f"{c}_gray.JPEG", pim.convert("L"), quality=90)
        save(f"{c}_cmyk_adobe.JPEG", pim.convert("CMYK"), quality=90)
        files[f"{c}_cmyk_noadobe.JPEG"] = _strip_app14(files[f"{c}_cmyk_adobe.JPEG"])
        for o in range(1, 9):
            ex = Image.Exif()
            ex[0x0112] = o
            save(f"{c}_exif{o}.JPEG", pim, quality=90, exif=ex.tobytes())
        buf = io.BytesIO()
        pim.save(buf, "PNG")
        files[f"{c}_png.JPEG"] = buf.getvalue()
    assert b"Adobe" in files["a_cmyk_adobe.JPEG"][:64] and b"Adobe" not in files["a_cmyk_noadobe.JPEG"]
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    return files


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("held_out") / "img"
    files = _held_out(folder)
    lst = folder.parent / "list.txt"
    lst.write_text("".join(f"{n} {i % 5}\n" for i, n in enumerate(sorted(files))))
    return folder, lst, sorted(files)


@pytest.mark.parametrize("opts", [dict(), dict(resize_height=64, resize_width=48),
                                  dict(resize_height=50, resize_width=80, gray=True), dict(gray=True)],
                         ids=["full", "resized", "gray_resized", "gray_full"])
def test_held_out_photos_match_opencv(held_out, tmp_path, opts):
    folder, lst, names = held_out
    out = tmp_path / "db"
    assert pack(str(folder) + "/", lst, out, workers=2, **QUIET, **opts) == len(names)
    got = dict(iter_records(out))
    h, w, gray = opts.get("resize_height", 0), opts.get("resize_width", 0), opts.get("gray", False)
    bad = [n for i, n in enumerate(names)
           if got[f"{i:08d}_{n}".encode()] != _reference(folder / n, i % 5, h, w, gray)]
    assert bad == []


def test_exif_orientations_are_applied(held_out, tmp_path):
    """Orientations 2-8 change the pixels (OpenCV's imread applies them); pack stores OpenCV's."""
    folder, lst, names = held_out
    mk = RecordMaker()
    for c in "ab":
        plain = cv2.imread(str(folder / f"{c}_exif1.JPEG"))
        for o in range(1, 9):
            p = folder / f"{c}_exif{o}.JPEG"
            raw_pixels = cv2.imread(str(p), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
            assert np.array_equal(raw_pixels, plain)                    # the same stored pixels
            want = _reference(p, 3)
            rec, _, _ = mk.make(bytes(p), p.name.encode(), 3)
            assert rec == want, f"orientation {o}"
            d = caffe_pb2.Datum.FromString(rec)
            ours = np.frombuffer(d.data, np.uint8).reshape(3, d.height, d.width).transpose(1, 2, 0)
            rotated = {1: plain, 2: plain[:, ::-1], 3: plain[::-1, ::-1], 4: plain[::-1],
                       5: plain.transpose(1, 0, 2), 6: np.rot90(plain, -1), 7: np.rot90(plain, 2).transpose(1, 0, 2),
                       8: np.rot90(plain, 1)}[o]
            assert np.array_equal(ours, rotated), f"orientation {o}"


def test_cmyk_with_and_without_adobe_marker(held_out):
    folder, _, _ = held_out
    mk, mk_gray = RecordMaker(), RecordMaker(is_color=False)
    for c in "ab":
        for kind in ("adobe", "noadobe"):
            p = folder / f"{c}_cmyk_{kind}.JPEG"
            assert mk.make(bytes(p), p.name.encode(), 1)[0] == _reference(p, 1)
            assert mk_gray.make(bytes(p), p.name.encode(), 1)[0] == _reference(p, 1, gray=True)
            # Pillow's CMYK conversion (what pack used before) is not OpenCV's: the test can fail
            pil = np.asarray(Image.open(p).convert("RGB"))[:, :, ::-1]
            assert not np.array_equal(pil, cv2.imread(str(p)))


def test_datum_bytes_are_protobufs(tmp_path):
    rng = np.random.default_rng(0)
    for shape, label in (((7, 5, 3), 0), ((4, 9, 1), -3), ((300, 2, 3), 2 ** 31 - 1), ((1, 1, 3), 1000)):
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        ok, png = cv2.imencode(".png", img)
        path = tmp_path / f"img_{shape[0]}_{shape[2]}.png"
        path.write_bytes(png.tobytes())
        try:
            gray = shape[2] == 1
            rec, sizes, _ = RecordMaker(is_color=not gray).make(bytes(path), path.name.encode(), label)
            assert rec == _reference(path, label, gray=gray)
            buf = bytearray(1 << 20)
            n, _, _ = RecordMaker(is_color=not gray).make(bytes(path), path.name.encode(), label, memoryview(buf))
            assert bytes(buf[:n]) == rec and sizes == (img.size, img.size)
            enc, _, _ = RecordMaker(encoded=True).make(bytes(path), path.name.encode(), label)
            assert enc == caffe_pb2.Datum(data=png.tobytes(), label=label, encoded=True).SerializeToString()
        finally:
            path.unlink()


def test_atoi_is_glibcs():
    assert [atoi(s) for s in (b"12", b" 7x", b"-4", b"+9", b"", b"x1", b"\t3\r", b"4294967297",
                              b"99999999999999999999")] == [12, 7, -4, 9, 0, 0, 3, 1, -1]


def _bad_files(folder: Path) -> dict:
    raw = HOPPER.read_bytes()
    folder.mkdir()
    (folder / "good.JPEG").write_bytes(raw)
    (folder / "truncated_pixels.JPEG").write_bytes(raw[:len(raw) // 2])   # OpenCV decodes it: packed
    (folder / "truncated_header.JPEG").write_bytes(raw[:300])              # OpenCV cannot: skipped
    (folder / "empty.JPEG").write_bytes(b"")
    (folder / "text.JPEG").write_text("not an image\n")
    (folder / "sub").mkdir()
    buf = io.BytesIO()
    Image.open(HOPPER).save(buf, "PNG")
    (folder / "truncated.png").write_bytes(buf.getvalue()[:5000])
    return {"good.JPEG": True, "truncated_pixels.JPEG": True, "truncated_header.JPEG": False,
            "empty.JPEG": False, "text.JPEG": False, "missing.JPEG": False, "sub": False,
            "truncated.png": False}


@pytest.mark.parametrize("workers", [1, 2])
def test_unreadable_files_are_skipped_by_name_as_caffe_does(tmp_path, workers):
    folder = tmp_path / "img"
    cases = _bad_files(folder)
    names = list(cases) + ["", "good.JPEG"]   # an empty line counts as a line (std::getline)
    (tmp_path / "list.txt").write_text("".join(f"{n} 1\n" if n else "\n" for n in names))
    msgs = []
    n = pack(str(folder) + "/", tmp_path / "list.txt", tmp_path / "db", workers=workers,
             progress=False, log=msgs.append)
    keys = [k.decode() for k, _ in iter_records(tmp_path / "db")]
    want = [f"{i:08d}_{nm}" for i, nm in enumerate(names) if nm and cases.get(nm, True)]
    assert keys == want and n == len(want)
    text = "\n".join(msgs)
    for nm, ok in cases.items():
        if not ok:
            assert f"Could not open or find file {folder}/{nm} (" in text, nm
    assert "empty file" in text and "not an image OpenCV can decode" in text
    assert f"Could not open or find file {folder}/ (" in text                    # the empty line
    assert "truncated_pixels.JPEG: JPEG data ends before its end marker" in text
    assert f"{len(names) - len(want)} of {len(names)} lines skipped" in text
    rec = dict(iter_records(tmp_path / "db"))[f"00000001_truncated_pixels.JPEG".encode()]
    assert rec == _reference(folder / "truncated_pixels.JPEG", 1)


def test_records_larger_than_a_slot_come_back_by_pipe(photo_inputs):
    photos = photo_inputs
    from data_prep.workers import OK, WorkerPool, make_inline
    mk = RecordMaker(resize_height=40, resize_width=50)
    root = (str(photos / "img") + "/").encode()
    names = sorted(p.name for p in (photos / "img").iterdir())[:20]
    jobs = [(i, i, n.encode(), i % 3) for i, n in enumerate(names + ["missing.JPEG"])]
    want = [(j, k, bytes(v) if k == OK else v) for j, k, v, _, _ in make_inline(mk, root, jobs)]
    for slot_size in (4096, 8192):  # 6,000-byte records: all by pipe, then all in slots
        pool = WorkerPool(mk, root, 2, slots=3, slot_size=slot_size)
        try:
            got = [(j, k, bytes(v) if k == OK else v) for j, k, v, _, _ in pool.imap(jobs)]
        finally:
            pool.close()
        assert got == want and want[-1][1] != OK
