"""The one entry point from a ``DecodingConfig`` to token ids: what captions and evaluation call."""

from __future__ import annotations

import torch

from pipeline.decoders.base import CaptionDecoder
from pipeline.decoding.beam import beam_search
from pipeline.decoding.config import DEFAULT_MAX_LEN, DecodingConfig
from pipeline.decoding.consensus import ConsensusReranker
from pipeline.decoding.greedy import greedy_search
from pipeline.errors import CapcacheError


def decode(decoder: CaptionDecoder, features: torch.Tensor, config: DecodingConfig,
           reranker: ConsensusReranker | None = None) -> tuple[list[list[int]], torch.Tensor]:
    """features [B, L, D] -> (token ids per image without <start>/<end>, total log-prob of each [B]).

    Beam search returns each image's best hypothesis by its (length-normalised) score, or, with
    ``config.rerank_neighbours``, the one of its ``beam_size`` hypotheses that ``reranker`` chooses;
    the log-prob beside it is the raw sum, comparable with greedy's.
    """
    max_len = config.max_len or DEFAULT_MAX_LEN
    if config.strategy == "greedy":
        return greedy_search(decoder, features, max_len, config.min_len, config.allow_unk)
    if config.rerank_neighbours and reranker is None:
        raise CapcacheError("consensus reranking needs the training photos' features and captions; this command "
                            "cannot supply them, so drop --rerank")
    found = beam_search(decoder, features, beam_size=config.beam_size, max_len=max_len, min_len=config.min_len,
                        length_penalty=config.length_penalty, no_repeat_ngram=config.no_repeat_ngram,
                        n_best=config.beam_size if config.rerank_neighbours else 1, allow_unk=config.allow_unk)
    pick = reranker.choose(features, [[h.tokens for h in hyps] for hyps in found]) if config.rerank_neighbours \
        else [0] * len(found)
    best = [hyps[i] if hyps else None for hyps, i in zip(found, pick)]
    seqs = [h.tokens if h else [] for h in best]
    log_probs = torch.tensor([h.log_prob if h else float("-inf") for h in best], device=features.device)
    return seqs, log_probs


def ended(tokens: list[int], max_len: int) -> bool:
    """Whether a decoded caption emitted <end>: every strategy stops at <end> or after max_len words,
    so a caption shorter than max_len ended and one of max_len words was cut."""
    return len(tokens) < max_len
