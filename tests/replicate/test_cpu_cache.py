"""The caching CPU allocator (csrc/cpu_cache.cpp): freed blocks are reused for the same size,
small requests are not cached, the footprint is trimmed to the in-use high-water mark, and
results do not change (the CLI runs the golden solver tests with it on).  It is process-wide,
so it runs in a child process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests._shared import REPO

SCRIPT = textwrap.dedent("""
    import json, torch
    from replicate import ops as R
    R.enable_cpu_cache()
    out = {}
    a = torch.empty(3 << 20, dtype=torch.uint8); p = a.data_ptr(); del a
    b = torch.empty(3 << 20, dtype=torch.uint8)
    out["reused"] = b.data_ptr() == p
    out["aligned"] = b.data_ptr() % (2 << 20) == 0
    s = R.cpu_cache_stats(); out["hits"] = s["hits"]; out["live"] = s["live_bytes"]
    small = torch.empty(1000); out["small_live"] = R.cpu_cache_stats()["live_bytes"]
    del b
    # a phase of big blocks, then another size: the cache gives blocks back instead of growing
    big = [torch.empty(64 << 20, dtype=torch.uint8) for _ in range(8)]; del big
    other = [torch.empty(96 << 20, dtype=torch.uint8) for _ in range(4)]
    s = R.cpu_cache_stats(); out["footprint"] = s["live_bytes"] + s["cached_bytes"]
    del other
    R.reset_cpu_cache_peak(); s = R.cpu_cache_stats(); out["peak_reset"] = s["peak_live_bytes"] - s["live_bytes"]
    t = torch.empty(10 << 20, dtype=torch.uint8); del t
    out["peak_window"] = R.cpu_cache_stats()["peak_live_bytes"] - s["live_bytes"]
    x = torch.randn(1 << 20); y = x * 2 + 1
    out["math"] = bool(torch.equal(y, x * 2 + 1))
    R.empty_cpu_cache(); out["after_empty"] = R.cpu_cache_stats()["cached_bytes"]
    print(json.dumps(out))
""")


def test_cpu_cache():
    r = subprocess.run([sys.executable, "-c", SCRIPT], env={**os.environ, "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["reused"] and out["aligned"] and out["hits"] >= 1
    assert out["live"] == 4 << 20, "3 MB rounds up to two 2 MB pages"
    assert out["small_live"] == 4 << 20, "small tensors go to the default allocator"
    # in-use high-water mark: 512 MB (the 64 MB blocks); untrimmed, the cache would hold 512 + 4 MB beside
    # the 384 MB in use; trimmed, in-use + cached stays within the mark + 32 MB
    assert out["footprint"] <= (512 + 32) << 20
    assert out["math"] and out["after_empty"] == 0
    # the measuring window's peak: the bytes in use at the reset, then 10 MB more (come and gone)
    assert out["peak_reset"] == 0 and out["peak_window"] == 10 << 20
