"""`capcache caption`: captions for image files that were never in a manifest or a cache, from
the features pipeline/extract/new_files.py computes for them as the run's cache would hold them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pipeline.data.vocab import PAD_ID, START_ID
from pipeline.decoders.base import CaptionDecoder
from pipeline.decoding.config import DecodingConfig
from pipeline.decoding.search import decode, ended
from pipeline.encoders.base import token_grid
from pipeline.encoders.preprocessing import Preprocessing
from pipeline.errors import CapcacheError
from pipeline.extract.new_files import FileEncoder, image_files
from pipeline.io import read_json
from pipeline.runs.load import load_trained


@dataclass
class CaptionedImage:
    path: Path
    caption: str
    tokens: list[int]
    log_prob: float
    ended: bool  # emitted <end>; False when cut at max_len
    attention: np.ndarray | None = None  # [T, L] weights over the grid per emitted token: words, then <end> if ended


@dataclass
class CaptionResult:
    images: list[CaptionedImage] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it could not be read
    grid: tuple[int, int] | None = None  # (rows, cols) of the feature grid, for attention maps
    preprocessing: Preprocessing | None = None  # how the encoder saw the images, for attention maps


def caption_images(run_dir: str | Path, inputs: list[str | Path], decoding: DecodingConfig | None = None,
                   checkpoint: str = "best", weights: str | None = None, batch_size: int = 16,
                   device: str = "auto", attention: bool = False, workers: int = 2,
                   progress: bool = False) -> CaptionResult:
    """Caption every image file in ``inputs`` (files and folders); unreadable ones land in ``skipped``.

    Images are decoded batch by batch in DataLoader workers, as in extraction, so a folder of any
    size is captioned in bounded memory.
    """
    trained = load_trained(run_dir, checkpoint, device)
    cache_info = read_json(trained.run.cache_info)
    encoder = FileEncoder(cache_info, trained.device, weights)
    decoding = (decoding or DecodingConfig()).resolved(trained.config.max_decode_len)
    files = image_files(inputs)
    result = CaptionResult(preprocessing=encoder.preprocessing)
    for rows, feats, skipped in encoder.batches(files, batch_size, workers, progress, desc="caption"):
        result.skipped.update(skipped)
        if not rows:
            continue
        with torch.inference_mode():
            seqs, log_probs = decode(trained.decoder, feats, decoding)
            finished = [ended(seq, decoding.max_len) for seq in seqs]
            maps = attention_weights(trained.decoder, feats, seqs, finished) if attention else [None] * len(seqs)
        result.images += [CaptionedImage(files[r], trained.vocab.decode(seq), seq, float(lp), end, amap)
                          for r, seq, lp, end, amap in zip(rows, seqs, log_probs.tolist(), finished, maps)]
    result.grid = token_grid(cache_info["spec"]["encoder"], cache_info["n_tokens"])
    return result


def attention_weights(decoder: CaptionDecoder, feats: torch.Tensor, seqs: list[list[int]],
               finished: list[bool]) -> list[np.ndarray | None]:
    """Attention weights [T, L] for each generated sequence, by teacher-forcing it through the decoder.

    Re-running the chosen words gives the weights of exactly that caption, whatever search found it:
    one row per emitted token, so a caption cut at max_len has no row for an <end> it never produced.
    """
    longest = max(len(s) for s in seqs) + 1
    tokens = torch.full((len(seqs), longest), PAD_ID, dtype=torch.long, device=feats.device)  # [B, T]
    for b, seq in enumerate(seqs):
        tokens[b, : len(seq) + 1] = torch.tensor([START_ID, *seq], device=feats.device)
    out = decoder(feats, tokens)
    if out.attention is None:
        raise CapcacheError(f"--attention needs an attention decoder (att_lstm, att_gru); this run uses "
                            f"{type(decoder).__name__}")
    return [out.attention[b, : len(seq) + end].cpu().numpy() for b, (seq, end) in enumerate(zip(seqs, finished))]
