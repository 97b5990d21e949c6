"""Command line: Caffe's upgrade tools.

    python -m prototxt_like upgrade IN [OUT]
        Upgrade a net or solver prototxt (auto-detected) to the current
        format and print it, or write it to OUT, exactly as Caffe's
        upgrade_net_proto_text / upgrade_solver_proto_text write it.

    python -m prototxt_like upgrade-binary IN OUT
        Upgrade a binary net (.caffemodel) as upgrade_net_proto_binary.

Exit status, as Caffe's tools: 0 upgraded (or already current), 1 upgraded
but Caffe would have logged errors (dropped fields, see the warnings), 2 the
input could not be read or parsed or upgraded.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from . import caffe_pb2
from .codec import parse_text, read_text_source, serialize, to_text
from .errors import CaffeFormatError, TextFormatError, UpgradeWarning
from .io import load_net_binary
from .upgrade import net_needs_upgrade, solver_needs_upgrade, upgrade_net, upgrade_solver
from replicate.fileio import atomic_write


def detect_and_parse(text: str, file: str | None):
    """``("net"|"solver", message)``: the message type the text parses as.

    When neither parses, the error of the parse that got further is raised
    (a net file with a typo fails later as a net than as a solver).
    """
    errors = []
    for kind, cls in (("net", caffe_pb2.NetParameter), ("solver", caffe_pb2.SolverParameter)):
        try:
            return kind, parse_text(text, cls, file)
        except TextFormatError as e:
            errors.append(e)
    raise max(errors, key=lambda e: (e.line or 0, e.column or 0))


def _upgrade_text(args) -> int:
    text, file = read_text_source(Path(args.input))
    kind, msg = detect_and_parse(text, file)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UpgradeWarning)
        if kind == "net":
            needed = net_needs_upgrade(msg)
            msg = upgrade_net(msg, file=file)
        else:
            needed = solver_needs_upgrade(msg)
            msg = upgrade_solver(msg, file=file)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if not needed:
        print(f"{file}: already in the latest {kind} format", file=sys.stderr)
    out = to_text(msg)
    if args.output:
        atomic_write(args.output, out)
    else:
        sys.stdout.write(out)
    return 1 if caught else 0


def _upgrade_binary(args) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UpgradeWarning)
        net = load_net_binary(args.input)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    atomic_write(args.output, serialize(net))
    return 1 if caught else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prototxt_like",
                                     description="Caffe file format tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("upgrade", help="upgrade a net or solver prototxt to the current format")
    p.add_argument("input")
    p.add_argument("output", nargs="?")
    p.set_defaults(run=_upgrade_text)
    p = sub.add_parser("upgrade-binary", help="upgrade a binary net (.caffemodel)")
    p.add_argument("input")
    p.add_argument("output")
    p.set_defaults(run=_upgrade_binary)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CaffeFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
