"""Consensus reranking: of a beam's hypotheses, keep the one that says what people said about the
most similar training photos (Devlin et al. 2015, "Exploring Nearest Neighbor Approaches for
Image Captioning"; Mao et al.'s m-RNN reranking).

Beam search ranks hypotheses by the decoder's log-probability, which favours short, generic
phrasing. Here each photo's ``k`` nearest training photos (cosine similarity of the mean-pooled
backbone features the decoder reads) lend their reference captions, and each hypothesis is scored
by CIDEr-D against those ``5k`` captions; the best-scoring one is the caption. Only training
captions are consulted, never the evaluated images' own references, so it is a decoding strategy
like the length penalty, with the train set as its prior. The scorer is passed in (the
evaluation layer's CIDEr-D), so decoding stays free of metrics and files.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from pipeline.errors import CapcacheError

# candidates (word ids each), the references they are all scored against (word ids each) -> [C] scores
ConsensusScore = Callable[[Sequence[Sequence[int]], Sequence[Sequence[int]]], np.ndarray]


def pooled_keys(features: torch.Tensor | np.ndarray) -> np.ndarray:
    """features [B, L, D] -> [B, D] the unit-length mean over the grid: what photos are compared by."""
    mean = torch.as_tensor(features).float().mean(1)  # [B, D]
    return torch.nn.functional.normalize(mean, dim=1).cpu().numpy()


class ConsensusReranker:
    """``choose(features, candidates)`` -> the index of each photo's consensus caption among its candidates."""

    def __init__(self, keys: np.ndarray, references: Sequence[Sequence[Sequence[int]]], score: ConsensusScore,
                 neighbours: int, words: Callable[[Sequence[int]], list[int]] = list):
        """keys [T, D]: ``pooled_keys`` of the T training photos; references: each one's captions as word
        ids; ``words``: a candidate's token ids -> the same word ids (identity for a word vocabulary)."""
        if len(keys) != len(references):
            raise CapcacheError(f"consensus reranking got {len(keys)} training photos but {len(references)} "
                                "reference sets; build both from the same train split")
        if not 1 <= neighbours <= len(keys):
            raise CapcacheError(f"consensus reranking needs between 1 and {len(keys)} neighbours (the training "
                                f"photos), got {neighbours}")
        self.keys = torch.from_numpy(np.ascontiguousarray(keys, dtype=np.float32))  # [T, D]
        self.references, self.score, self.neighbours, self.words = references, score, neighbours, words

    def nearest(self, features: torch.Tensor) -> np.ndarray:
        """features [B, L, D] -> [B, k] the training photos most similar to each, nearest first."""
        similarity = torch.from_numpy(pooled_keys(features)) @ self.keys.T  # [B, T]
        return similarity.topk(self.neighbours, dim=1).indices.numpy()

    def choose(self, features: torch.Tensor, candidates: Sequence[Sequence[Sequence[int]]]) -> list[int]:
        """features [B, L, D]; candidates: per photo its hypotheses' token ids, best-ranked first.

        Ties keep the earlier (better-ranked) hypothesis; a photo with no candidate gets 0."""
        chosen = []
        for near, hyps in zip(self.nearest(features), candidates):
            if len(hyps) < 2:
                chosen.append(0)
                continue
            lent = [ref for photo in near for ref in self.references[photo]]
            chosen.append(int(np.argmax(self.score([self.words(h) for h in hyps], lent))))
        return chosen
