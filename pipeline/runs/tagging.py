"""Loading a trained tagging run back: config, class and tag names, and the heads' weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.device import resolve_device
from pipeline.errors import CapcacheError
from pipeline.heads.tagger import Tagger
from pipeline.io import read_json
from pipeline.runs.checkpoint import load_checkpoint
from pipeline.runs.folder import RunFolder
from pipeline.training.tagging.config import TaggingConfig


@dataclass
class TrainedTagger:
    run: RunFolder
    config: TaggingConfig
    classes: list[str]
    tags: list[str]
    tagger: Tagger  # in eval mode, on ``device``
    device: torch.device
    checkpoint: str
    stage: int  # stages completed or in progress when the checkpoint was written (1-based)


def run_task(run_dir: str | Path) -> str:
    """"captioning" or "tagging", from the run folder's config.json."""
    run = RunFolder(Path(run_dir))
    if not run.config.is_file():
        raise CapcacheError(f"{run.root} is not a capcache run folder (no config.json)")
    return read_json(run.config).get("task", "captioning")


def load_tagger(run_dir: str | Path, which: str = "best", device: str = "auto") -> TrainedTagger:
    run = RunFolder(Path(run_dir))
    if run_task(run.root) != "tagging":
        raise CapcacheError(f"{run.root} is a captioning run, not a tagging one")
    config = TaggingConfig.from_dict(read_json(run.config))
    names = read_json(run.labels)
    cache_info = read_json(run.cache_info)
    ckpt = load_checkpoint(run.checkpoint(which))
    dev = resolve_device(device)
    tagger = Tagger(config.model, cache_info["feature_dim"], len(names["classes"]), len(names["tags"]))
    tagger.load_state_dict(ckpt["model"])  # count_stats (LQP's normalisation) included
    return TrainedTagger(run, config, names["classes"], names["tags"], tagger.to(dev).eval(), dev, which,
                         ckpt["progress"]["stage"] + 1)
