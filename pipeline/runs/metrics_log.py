"""metrics.jsonl: one JSON line per logged step and per epoch, appended as training goes.

On resume the lines written after the checkpoint being resumed are dropped, so the log reads as
if the run had never been interrupted.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.io import atomic_write_text


class MetricsLog:
    def __init__(self, path: Path):
        self.path = path

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        kept = [r for r in read_metrics(self.path) if r["step"] <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line cut short by a kill: the rest of the log is still good
            continue
    return out
