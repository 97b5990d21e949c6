"""``python -m replicate plan|sweep|report|demo ...``: each subcommand is its module's ``main(argv)``."""
from __future__ import annotations

import importlib
import sys
from typing import Optional

COMMANDS = {"plan": "plan", "sweep": "sweep", "report": "report", "demo": "demo", "status": "sweep"}


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m replicate {plan|sweep|report|demo|status} ...  (--help after one for its options)",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f"replicate.experiments.{COMMANDS[argv[0]]}")
    if argv[0] == "status":  # python -m replicate.experiments status PLAN_DIR: sweep status
        return module.status_main(argv[1:])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
