"""Word vocabulary built from the train split only (val/test words must not leak into training).

Ids 0..3 are fixed special tokens, so padding masks, decoding start/stop and unknown words mean
the same in every run; the vocabulary is saved with the run so a checkpoint always decodes with
the words it was trained on.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from pipeline.data.text import tokenizer
from pipeline.errors import CapcacheError
from pipeline.io import atomic_write_json, read_json

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
PAD_ID, START_ID, END_ID, UNK_ID = range(4)


class CaptionVocabulary(Protocol):
    """What training, decoding and scoring use of a vocabulary: words (``Vocabulary``) or subword
    tokens (``pipeline.data.subword.SubwordVocabulary``), ids 0..3 the specials above in both."""
    tokenizer: str  # the word style (pipeline.data.text) captions are split by before encoding

    def __len__(self) -> int: ...

    def encode(self, caption: str, max_len: int | None = None) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def save(self, path: str | os.PathLike) -> None: ...


@dataclass
class Vocabulary:
    words: list[str]  # index -> word; words[:4] == SPECIALS
    min_freq: int
    tokenizer: str = "karpathy"  # pipeline.data.text style the words were split by, and captions are

    def __post_init__(self) -> None:
        if tuple(self.words[:4]) != SPECIALS:
            raise CapcacheError(f"vocabulary must start with {SPECIALS}; rebuild it with the current capcache")
        self._index = {w: i for i, w in enumerate(self.words)}
        self._split = tokenizer(self.tokenizer)

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, captions: Iterable[str], min_freq: int = 5, style: str = "karpathy") -> "Vocabulary":
        """Keep words seen at least ``min_freq`` times; rarer ones become <unk>."""
        split = tokenizer(style)
        counts = Counter(tok for cap in captions for tok in split(cap))
        kept = sorted((w for w, c in counts.items() if c >= min_freq and w not in SPECIALS),
                      key=lambda w: (-counts[w], w))
        if not kept:
            raise CapcacheError(
                f"empty vocabulary: no word occurs {min_freq}+ times in the train captions; lower --min-freq or check the manifest")
        return cls(list(SPECIALS) + kept, min_freq, style)

    def encode(self, caption: str, max_len: int | None = None) -> list[int]:
        """<start> w1 .. wn <end>, with at most ``max_len`` words (the end token is always kept)."""
        ids = [self._index.get(w, UNK_ID) for w in self._split(caption)]
        if max_len is not None:
            ids = ids[:max_len]
        return [START_ID, *ids, END_ID]

    def decode(self, ids: Sequence[int]) -> str:
        """Words up to the first <end>; <start> and <pad> dropped."""
        return " ".join(self.words[i] for i in content_ids(ids))

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, {"min_freq": self.min_freq, "tokenizer": self.tokenizer, "words": self.words})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        return cls.from_saved(read_json(path))

    @classmethod
    def from_saved(cls, d: dict) -> "Vocabulary":
        return cls(d["words"], d["min_freq"], d.get("tokenizer", "karpathy"))  # older runs: karpathy


def content_ids(ids: Sequence[int]) -> list[int]:
    """The ids before the first <end>, without <pad> and <start>: what a decoded caption says."""
    out = []
    for i in ids:
        i = int(i)
        if i == END_ID:
            break
        if i not in (PAD_ID, START_ID):
            out.append(i)
    return out


def load_vocabulary(path: str | os.PathLike) -> CaptionVocabulary:
    """A run's saved vocabulary, word-level (``Vocabulary``) or subword (``SubwordVocabulary``)."""
    d = read_json(path)
    if d.get("kind") == "subword":
        from pipeline.data.subword import SubwordVocabulary  # needs the tokenizers package
        return SubwordVocabulary.from_saved(d)
    return Vocabulary.from_saved(d)
