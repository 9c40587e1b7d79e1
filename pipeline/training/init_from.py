"""Starting a run from another run's weights (``TrainConfig.init_from``, `capcache finetune`).

Self-critical training, or cross-entropy with other settings, continues from a run's best
checkpoint: the new run takes its weights and its vocabulary (the ids the weights were trained
on) and is an ordinary run folder of its own (config, checkpoints, metrics, resume). Only the
model is taken: optimiser, schedule and progress start afresh. A source the new config cannot
load (another decoder or model shape, features from another cache) is refused in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.cache.reader import FeatureCache
from pipeline.data.vocab import CaptionVocabulary, load_vocabulary
from pipeline.errors import CapcacheError
from pipeline.io import read_json
from pipeline.runs.checkpoint import load_checkpoint
from pipeline.training.config import TrainConfig
from pipeline.runs.folder import RunFolder


@dataclass
class InitialWeights:
    source: Path  # the checkpoint file
    epoch: int  # the source run's epoch it holds
    vocab: CaptionVocabulary
    model: dict  # state dict

    def summary(self) -> str:
        return f"starting from {self.source} (epoch {self.epoch}) and its vocabulary of {len(self.vocab)} tokens"


def initial_weights(config: TrainConfig, cache: FeatureCache) -> InitialWeights:
    source = RunFolder(Path(config.init_from))
    if not source.config.is_file() or not source.checkpoint("best").is_file():
        raise CapcacheError(f"init_from {source.root} is not a trained capcache run (no config.json or "
                            "checkpoints/best.pt); train it first or pass another run folder")
    trained = TrainConfig.from_dict(read_json(source.config))
    for what, theirs, ours in (("decoder", trained.decoder, config.decoder),
                               ("model", trained.model.__dict__, config.model.__dict__)):
        if theirs != ours:
            diff = [k for k in ours if ours[k] != theirs.get(k)] if isinstance(ours, dict) else [f"{theirs} vs {ours}"]
            raise CapcacheError(f"init_from {source.root} was trained with another {what} ({', '.join(diff)}); "
                                "keep its decoder and model settings to start from it")
    key = read_json(source.cache_info)["key"]
    if key != cache.key:
        raise CapcacheError(f"init_from {source.root} was trained on cache key {key}, not {cache.key}; "
                            "train from the cache it was trained on")
    ckpt = load_checkpoint(source.checkpoint("best"))
    return InitialWeights(source.checkpoint("best"), ckpt["progress"]["epoch"], load_vocabulary(source.vocab), ckpt["model"])
