"""``python -m data_prep {synth,lists,splits,pack,mean} ...``: the paper's ImageNet preparation.

  synth   a procedural mini-ImageNet (JPEGs in the ILSVRC layout) for the demo and for laptops
  lists   ImageNet folder (+ validation ground truth) -> whole_train / whole_valid lists
  splits  the release's random halves, natural/man-made halves and reduced sets
  pack    convert_imageset: images + list -> LMDB / LevelDB of Datums
  mean    compute_image_mean: database -> mean .binaryproto
"""
from __future__ import annotations

import argparse
import sys


def _lists(a) -> int:
    from .lists import write_lists
    if a.train_dir is None and a.synsets is None:
        sys.exit("lists: give --train-dir (or --synsets for a validation list alone)")
    for p in write_lists(a.out, train_dir=a.train_dir, synsets=a.synsets,
                         ground_truth=a.val_ground_truth, devkit_wnids=a.devkit_wnids,
                         val_dir=a.val_dir):
        print(p)
    return 0


def _splits(a) -> int:
    from .splits import check_md5, make_splits
    if a.train_list is None and a.valid_list is None:
        sys.exit("splits: give --train-list and/or --valid-list")
    n_classes = a.classes or _count_classes(a.train_list or a.valid_list)
    names = make_splits(a.out, train_list=a.train_list, valid_list=a.valid_list,
                        natural=a.natural_classes, manmade=a.manmade_classes,
                        seeds=a.seeds, reduced=not a.no_reduced, n_classes=n_classes)
    if n_classes != 1000:
        for name in names:
            print(f"{a.out}/{name}/files.txt  ({n_classes} classes: not ImageNet's, no MD5 to check)")
        return 0
    bad = 0
    for name, ok in check_md5(a.out, names).items():
        mark = {True: "matches the release's MD5", False: "DIFFERS from the release's MD5",
                None: "no published MD5"}[ok]
        bad += ok is False
        print(f"{a.out}/{name}/files.txt  {mark}")
    return 1 if (bad and a.check) else 0


def _count_classes(path) -> int:
    from .splits import read_list
    return max(label for _, label in read_list(path)) + 1


def _synth(a) -> int:
    from .synth import SynthSpec, write_synth
    spec = SynthSpec(classes=a.classes, train_per_class=a.train_per_class, valid_per_class=a.valid_per_class,
                     size=a.size, vocabulary=a.vocabulary, distractors=a.distractors, noise=a.noise,
                     seed=a.seed)
    try:
        info = write_synth(a.out, spec, progress=not a.quiet)
    except (ValueError, FileExistsError) as e:
        sys.exit(str(e))
    print(f"{info['classes']} classes, {info['train']} train and {info['valid']} valid images in {a.out} "
          f"(lists: train.txt, val.txt; samples.png shows 8 images of each of the first 20 classes)")
    return 0


def _pack(a) -> int:
    from .pack import PartialMismatch, pack
    root = a.root if a.root.endswith("/") or not a.root else a.root + "/"
    try:
        pack(root, a.list, a.db, backend=a.backend, resize_height=a.resize_height,
             resize_width=a.resize_width, gray=a.gray, encoded=a.encoded or bool(a.encode_type),
             encode_type=a.encode_type, shuffle=a.shuffle, seed=a.seed, keys_file=a.keys,
             check_size=a.check_size, workers=a.workers, progress=not a.quiet,
             resume=not a.restart, verify=a.verify)
    except (PartialMismatch, FileExistsError, FileNotFoundError) as e:
        sys.exit(f"pack: {e}")
    except KeyboardInterrupt:
        sys.exit(130)
    return 0


def _mean(a) -> int:
    from .mean import write_mean
    write_mean(a.db, a.out, a.backend)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    from .synth import SynthSpec
    d = SynthSpec()
    s = sub.add_parser("synth", help="a procedural mini-ImageNet as JPEGs in the ILSVRC layout",
                       description="Classes are compositions of parts from one shared vocabulary "
                       "(oriented bars, corners, gratings, blobs, rings in a few colours) at class-specific "
                       "relative positions, placed at a random position and scale with jitter, distractor "
                       "parts and noise. Writes OUT/train/<wnid>/*.JPEG, OUT/val/*.JPEG, synsets.txt, "
                       "synset_words.txt, val_ground_truth.txt, train.txt, val.txt and samples.png. "
                       "The same arguments give the same bytes.")
    s.add_argument("--out", required=True, help="output folder (must not hold train/ or val/ yet)")
    s.add_argument("--classes", type=int, default=d.classes, help=f"number of classes (default {d.classes})")
    s.add_argument("--train-per-class", type=int, default=d.train_per_class,
                   help=f"training images per class (default {d.train_per_class})")
    s.add_argument("--valid-per-class", type=int, default=d.valid_per_class,
                   help=f"validation images per class (default {d.valid_per_class})")
    s.add_argument("--size", type=int, default=d.size, help=f"image side in pixels (default {d.size})")
    s.add_argument("--vocabulary", type=int, default=d.vocabulary,
                   help=f"distinct parts shared by all classes (default {d.vocabulary})")
    s.add_argument("--distractors", type=float, default=d.distractors,
                   help=f"mean number of distractor parts per image (default {d.distractors})")
    s.add_argument("--noise", type=float, default=d.noise, help=f"pixel noise std, 0..1 (default {d.noise})")
    s.add_argument("--seed", type=int, default=d.seed, help=f"seed (default {d.seed})")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_synth)

    s = sub.add_parser("lists", help="ImageNet folder -> whole_train / whole_valid FILE LABEL lists",
                       description="Write OUT/whole_train/files.txt ('<wnid>/<file> LABEL', classes in "
                       "sorted-wnid order, files sorted) and OUT/whole_valid/files.txt ('<file> LABEL', "
                       "sorted by file name).")
    s.add_argument("--train-dir", help="ImageNet train folder holding <wnid>/*.JPEG")
    s.add_argument("--synsets", help="wnids in class-index order (default: sorted train sub-folders)")
    s.add_argument("--val-ground-truth", help="'FILE WNID' / 'FILE LABEL' lines, a LOC_val_solution.csv, "
                   "or the devkit's one-ID-per-line ground truth (with --devkit-wnids)")
    s.add_argument("--devkit-wnids", help="wnids in ILSVRC2012_ID order, for the devkit ground truth")
    s.add_argument("--val-dir", help="validation folder holding <wnid>/<file> (instead of a ground truth)")
    s.add_argument("--out", required=True, help="output folder")
    s.set_defaults(func=_lists)

    s = sub.add_parser("splits", help="the release's halves and reduced sets",
                       description="Write DIR/half<s>{A,B}_<tv>/{files,idxmap}.txt for seeds 0-3, "
                       "DIR/halfnatman{A,B}_<tv>/ with the class files, and DIR/reduced<NNNN>_train/files.txt; "
                       "each files.txt is checked against the MD5 sum the release publishes.")
    s.add_argument("--train-list", help="whole train list (FILE LABEL)")
    s.add_argument("--valid-list", help="whole valid list, e.g. ilsvrc12/whole_valid_files.txt")
    s.add_argument("--out", required=True, help="output folder DIR")
    s.add_argument("--natural-classes", help="class indices of the natural half (half_nat_idx.txt)")
    s.add_argument("--manmade-classes", help="class indices of the man-made half (half_man_idx.txt)")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="split seeds (default 0 1 2 3)")
    s.add_argument("--no-reduced", action="store_true", help="skip the reduced train sets")
    s.add_argument("--classes", type=int, default=None,
                   help="number of classes (default: the largest label + 1; ImageNet's lists give 1000)")
    s.add_argument("--check", action="store_true", help="exit 1 if a files.txt differs from the release's MD5")
    s.set_defaults(func=_splits)

    s = sub.add_parser("pack", help="convert_imageset: images + list -> LMDB/LevelDB of Datums",
                       description="Caffe's convert_imageset ROOTFOLDER/ LISTFILE DB_NAME: the same records "
                       "(OpenCV's imread and resize, as Caffe calls them). Unreadable files are skipped by name, "
                       "as Caffe does. The database is written to DB.partial and renamed to DB when complete; "
                       "a stopped pack resumes when run again with the same arguments.")
    s.add_argument("root", help="folder the list's file names are relative to")
    s.add_argument("list", help="list file: '<file> <label>' per line")
    s.add_argument("db", help="database folder to create")
    s.add_argument("--backend", choices=("lmdb", "leveldb"), default="lmdb")
    s.add_argument("--resize_height", "--resize-height", type=int, default=0)
    s.add_argument("--resize_width", "--resize-width", type=int, default=0)
    s.add_argument("--gray", action="store_true", help="decode as grey (1 channel)")
    s.add_argument("--encoded", action="store_true", help="store encoded images")
    s.add_argument("--encode_type", "--encode-type", default="", help="png, jpg, ... (default: the file's type)")
    s.add_argument("--shuffle", action="store_true", help="Caffe's shuffle of the lines")
    s.add_argument("--seed", type=int, help="seed of the shuffle (Caffe's own is unseeded: random)")
    s.add_argument("--keys", help="pack in the order of a recorded key file (%%08d_<file> per line)")
    s.add_argument("--check_size", "--check-size", action="store_true",
                   help="fail if the records differ in size")
    s.add_argument("--workers", type=int, default=None, help="decoding processes (default: CPU count)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--restart", action="store_true",
                   help="remove an unfinished DB.partial and start again instead of resuming it")
    s.add_argument("--verify", type=int, default=16, metavar="N",
                   help="when resuming, make N of the kept records again and compare (default 16)")
    s.set_defaults(func=_pack)

    s = sub.add_parser("mean", help="compute_image_mean: database -> mean .binaryproto",
                       description="Caffe's compute_image_mean INPUT_DB [OUTPUT_FILE]. Note: opening a "
                       "LevelDB rewrites its log/manifest files.")
    s.add_argument("db", help="input database folder")
    s.add_argument("out", nargs="?", help="output .binaryproto")
    s.add_argument("--backend", choices=("lmdb", "leveldb"), default="lmdb")
    s.set_defaults(func=_mean)
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
