"""The layout of a run folder: everything needed to reproduce, continue and evaluate a run.

runs/<name>/config.json   fully resolved TrainConfig
            cache.json    the feature cache's key and spec the run was trained on
            vocab.json    the vocabulary (ids the checkpoints use)
            metrics.jsonl one line per logged step and per epoch
            plots/*.png   training curves
            checkpoints/{last,best}.pt
            eval/<split>.json
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFolder:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def cache_info(self) -> Path:
        return self.root / "cache.json"

    @property
    def vocab(self) -> Path:
        return self.root / "vocab.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    def checkpoint(self, which: str) -> Path:  # "last" | "best"
        return self.root / "checkpoints" / f"{which}.pt"

    def eval_file(self, split: str) -> Path:
        return self.root / "eval" / f"{split}.json"
