"""Captions for cached images: batches of cache rows through a decoding strategy to text."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline.cache.reader import FeatureCache
from pipeline.data.vocab import CaptionVocabulary
from pipeline.decoders.base import CaptionDecoder
from pipeline.decoding.config import DecodingConfig
from pipeline.decoding.consensus import ConsensusReranker
from pipeline.decoding.search import decode


def caption_cached_images(decoder: CaptionDecoder, cache: FeatureCache, image_ids: list[str], vocab: CaptionVocabulary,
                          device: torch.device, batch_size: int = 64, max_len: int = 20,
                          decoding: DecodingConfig | None = None, progress: bool = False,
                          reranker: ConsensusReranker | None = None) -> dict[str, str]:
    """Greedy with ``max_len`` unless ``decoding`` says otherwise (its max_len, when set, wins);
    ``reranker`` is what ``decoding.rerank_neighbours`` needs.

    ``batch_size`` counts images: beam search runs batch_size * beam_size beams per step.
    ``progress`` shows a bar counting images (`capcache eval`; validation inside training stays quiet).
    """
    decoding = (decoding or DecodingConfig()).resolved(max_len)
    rows = cache.rows(image_ids)
    out: dict[str, str] = {}
    was_training = decoder.training
    decoder.eval()
    with tqdm(total=len(rows), desc=f"decode ({decoding.strategy})", unit="img", disable=not progress) as bar:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            feats = torch.from_numpy(np.stack([cache[int(r)] for r in chunk])).float().to(device)  # [B, L, D]
            seqs, _ = decode(decoder, feats, decoding, reranker)
            out.update({image_ids[start + k]: vocab.decode(s) for k, s in enumerate(seqs)})
            bar.update(len(chunk))
    decoder.train(was_training)
    return out
