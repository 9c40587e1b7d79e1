"""How varied generated captions are: the figures a score table does not show.

A decoder can score a fair CIDEr by saying the same few safe sentences about every image, so eval
reports beside the scores (the definitions of Shetty et al. 2017 and Aneja et al. 2019):

* distinct captions: how many different captions there are, and their share of all captions;
* vocabulary: how many different words the captions use;
* Div-1 / Div-2: distinct unigrams / distinct bigrams (within captions) over all generated words;
* novel share: captions that are not a training caption verbatim;
* repeated bigrams: bigrams that repeat an earlier bigram of the same caption, over all bigrams
  ("a man in a red shirt and a man in a hat": 1 of 10), the sign of a decoder (often one trained
  with self-critical rewards) collapsing into "a a a" loops.

Captions are compared as the model's vocabulary sees them (``pipeline.data.text``, in the run's
tokenizer style), so a generated caption equals a training caption exactly when the decoder could
have copied it word for word. Pure functions on strings: callers read the files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

from pipeline.data.text import tokenizer


@dataclass(frozen=True)
class Diversity:
    captions: int
    distinct: int  # different captions
    distinct_share: float  # distinct / captions
    vocabulary: int  # different words over all captions
    div_1: float  # distinct unigrams / words generated
    div_2: float  # distinct bigrams / words generated
    novel_share: float  # captions that are no training caption verbatim / captions
    repeated_2grams: float  # bigrams repeating an earlier one of their caption / bigrams

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


def diversity(captions: Sequence[str], training_captions: Iterable[str], style: str = "karpathy") -> Diversity:
    """One figure set for generated ``captions`` (one per image) against the training split's captions,
    both split by the tokenizer ``style`` the model's vocabulary was built with (a "ptb" model writes
    "man 's", which must meet the training caption "man's" as the same words)."""
    split = tokenizer(style)
    seqs = [tuple(split(c)) for c in captions]
    seen = {tuple(split(c)) for c in training_captions}
    words = sum(len(s) for s in seqs)
    unigrams = {w for s in seqs for w in s}
    bigrams = {pair for s in seqs for pair in zip(s, s[1:])}
    n = len(seqs)
    return Diversity(captions=n, distinct=len(set(seqs)), distinct_share=_share(len(set(seqs)), n),
                     vocabulary=len(unigrams), div_1=_share(len(unigrams), words), div_2=_share(len(bigrams), words),
                     novel_share=_share(sum(s not in seen for s in seqs), n),
                     repeated_2grams=repeated_bigram_share(seqs))


def repeated_bigram_share(captions: Sequence[Sequence[str]]) -> float:
    """captions as word sequences -> the share of their bigrams that repeat one earlier in the same caption."""
    pairs = [list(zip(c, c[1:])) for c in captions]
    return _share(sum(len(p) - len(set(p)) for p in pairs), sum(len(p) for p in pairs))


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
