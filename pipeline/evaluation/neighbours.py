"""The consensus reranker of a run (``decoding/consensus.py``): its train photos' pooled features,
their captions as word ids and CIDEr-D with the train captions' document frequencies."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from pipeline.cache.reader import FeatureCache
from pipeline.data.manifest import ImageRecord
from pipeline.data.vocab import CaptionVocabulary
from pipeline.data.word_ids import WordIds, reference_ids
from pipeline.decoding.consensus import ConsensusReranker, pooled_keys
from pipeline.errors import CapcacheError
from pipeline.evaluation.cider_d import CiderD, DocumentFrequency

_BLOCK = 256  # photos read and pooled at a time


def consensus_reranker(train: Sequence[ImageRecord], cache: FeatureCache, vocab: CaptionVocabulary,
                       neighbours: int, progress: bool = False) -> ConsensusReranker:
    """``train``: the manifest's train split, whose photos (in ``cache``) and captions the reranker consults."""
    if not train:
        raise CapcacheError("consensus reranking consults the train split's captions, and this manifest has no "
                            "train images; drop --rerank")
    words = WordIds(vocab)
    references = reference_ids([r.captions for r in train], words, end_token=False)
    cider = CiderD(DocumentFrequency.from_references(references))
    rows = cache.rows([r.image_id for r in train])
    keys = [pooled_keys(np.stack([cache[int(r)] for r in rows[s:s + _BLOCK]]))  # [block, D] each
            for s in tqdm(range(0, len(rows), _BLOCK), desc="train photos for reranking", unit="block",
                          disable=not progress)]

    def score(candidates: Sequence[Sequence[int]], lent: Sequence[Sequence[int]]) -> np.ndarray:
        prepared = cider.prepare(lent)
        return cider.scores(candidates, [prepared] * len(candidates))

    return ConsensusReranker(np.concatenate(keys), references, score, neighbours, words.of_tokens)
