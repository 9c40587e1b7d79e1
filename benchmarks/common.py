"""What every benchmark shares: timing, peak memory, and the one-JSON-object-last contract.

Benchmarks compare variants side by side in one process run, so the ratios they print hold on a
noisy machine where absolute times do not.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python benchmarks/x.py` from a checkout
    sys.path.insert(0, str(REPO))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux's VmHWM belongs to this process image alone; getrusage's ru_maxrss survives fork + exec,
    so a child started by a big parent would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


@contextmanager
def timer() -> Iterator[dict]:
    """``with timer() as t: ...`` then ``t["s"]`` holds the elapsed seconds."""
    out = {"s": 0.0}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - start


def print_result(result: dict) -> None:
    """The contract: one JSON object as the last line of stdout."""
    print(json.dumps(result, sort_keys=True))
