"""Test-only: put :mod:`fault_site` (a sitecustomize) on the trainers' PYTHONPATH with a fault spec."""
from __future__ import annotations

import json
import os
from pathlib import Path

SITE = Path(__file__).resolve().parent / "fault_site"
ENV = "REPLICATE_TEST_FAULT"


def fault_env(tmp_path: Path, net: str, at: int, action: str, environ=None) -> dict:
    """The variables that make ``net``'s first trainer to reach iteration ``at`` do ``action``."""
    environ = os.environ if environ is None else environ
    marker = Path(tmp_path) / f"fault-{net}-{at}-{action}"
    path = os.pathsep.join(p for p in (str(SITE), environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, ENV: json.dumps({"net": net, "iter": at, "action": action, "once": str(marker)})}


def inject(monkeypatch, tmp_path: Path, net: str, at: int, action: str) -> Path:
    for k, v in fault_env(tmp_path, net, at, action).items():
        monkeypatch.setenv(k, v)
    return Path(tmp_path) / f"fault-{net}-{at}-{action}"
