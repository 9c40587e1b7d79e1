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
from typing import TypeVar

from pipeline.errors import CapcacheError
from pipeline.io import atomic_write_json, read_json

C = TypeVar("C")  # a run config class with from_dict / check (TrainConfig, TaggingConfig)


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
    def labels(self) -> Path:  # tagging runs: class and tag names, in column order
        return self.root / "labels.json"

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

    def create(self, config: dict, cache_record: dict) -> None:
        """Start a new run here: the folder, its config.json and cache.json, and no metrics log left
        from an earlier attempt that never reached a checkpoint."""
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.config, config)
        atomic_write_json(self.cache_info, cache_record)
        self.metrics.unlink(missing_ok=True)


def load_or_check_config(cls: type[C], config: C | None, run: RunFolder, resume: bool) -> C:
    """The config to train with: the run folder's own on ``resume``; else ``config``, checked, for a
    folder that holds no trained run yet and with its manifest and cache named."""
    if resume:
        if not run.config.is_file():
            raise CapcacheError(f"{run.root} is not a capcache run (no config.json); train it first without --resume")
        return cls.from_dict(read_json(run.config)).check()
    if config is None:
        raise CapcacheError("no training config given")
    config.check()
    if run.checkpoint("last").exists():
        raise CapcacheError(f"{run.root} already holds a trained run; continue it with --resume or choose another --out")
    for field, value in (("data.manifest", config.data.manifest), ("data.cache", config.data.cache)):
        if not value:
            raise CapcacheError(f"{field} is not set; pass it (e.g. --manifest / --cache)")
    return config
