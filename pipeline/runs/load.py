"""Loading a trained run back: config, vocabulary and decoder weights from its folder alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.data.vocab import CaptionVocabulary, load_vocabulary
from pipeline.decoders import build_decoder
from pipeline.decoders.base import CaptionDecoder
from pipeline.device import resolve_device
from pipeline.errors import CapcacheError
from pipeline.io import read_json
from pipeline.runs.checkpoint import load_checkpoint
from pipeline.training.config import TrainConfig
from pipeline.runs.folder import RunFolder


@dataclass
class TrainedRun:
    run: RunFolder
    config: TrainConfig
    vocab: CaptionVocabulary
    decoder: CaptionDecoder  # in eval mode, on ``device``
    device: torch.device
    checkpoint: str  # "best" | "last"
    epoch: int


def load_trained(run_dir: str | Path, which: str = "best", device: str = "auto") -> TrainedRun:
    run = RunFolder(Path(run_dir))
    if not run.config.is_file():
        raise CapcacheError(f"{run.root} is not a capcache run folder (no config.json)")
    config = TrainConfig.from_dict(read_json(run.config))
    vocab = load_vocabulary(run.vocab)
    ckpt = load_checkpoint(run.checkpoint(which))
    cache_info = read_json(run.cache_info)  # the decoder's input shape, without needing the cache itself
    dev = resolve_device(device)
    decoder = build_decoder(config.decoder, config.model, cache_info["feature_dim"], cache_info["n_tokens"],
                            len(vocab))
    decoder.load_state_dict(ckpt["model"])
    return TrainedRun(run, config, vocab, decoder.to(dev).eval(), dev, which, ckpt["progress"]["epoch"])

