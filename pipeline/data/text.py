"""Caption tokenisation for the vocabulary, done the same way for every dataset format.

Two styles, chosen per run (``data.tokenizer``) and saved with its vocabulary:

- ``karpathy`` (the default): neuraltalk's preprocessing, which the published Flickr8k/30k/COCO
  splits and most captioning repos use: lower-case, delete ASCII punctuation (so "man's" ->
  "mans", "tri-colored" -> "tricolored"), split on white space.
- ``ptb``: the tokens the scorer sees. pycocoevalcap runs Stanford's PTB tokenizer over candidates
  and references and drops punctuation tokens, so "man's" is "man 's" there; a model trained on
  "mans" can never match it. ``ptb_words`` reproduces PTB on ordinary English captions
  (lower-casing, splitting off punctuation and clitics, naming brackets) in pure Python, so
  training needs no Java; it is also the scorer's fallback when Java is missing.
"""

from __future__ import annotations

import re
import string
from typing import Callable

from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

from pipeline.errors import CapcacheError

_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)

# What PTB does beyond splitting at punctuation. Brackets keep their PTB names because
# pycocoevalcap only removes the upper-case ones, which -lowerCase never produces.
_SPLIT_WORDS = {"cannot": "can not", "gonna": "gon na", "gotta": "got ta", "wanna": "wan na"}
_PTB_SYMBOLS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-",
                '"': "''", "“": "``", "”": "''", "‘": "`", "’": "'", "—": "--", "–": "--", "…": "..."}
_CLITIC = re.compile(r"(?<=\w)(n't|'s|'re|'ve|'ll|'d|'m)\b")
_TOKEN = re.compile(r"""
    \b(?:mrs?|ms|dr|jr|sr|st|vs|etc)\.   # abbreviations keep their dot
  | (?:[^\W\d_]\.)+(?!\w)                # so do initials: d.c., u., a.m.
  | \d+(?:,\d{3})+(?:\.\d+)?             # 1,000.5
  | \w+(?:[-./:']\w+)*                   # x-ray, 10:30, a/b, bike.then, o'clock, n't
  | '(?:s|re|ve|ll|d|m)\b                # clitics split off by _CLITIC
  | [!?]+                                # "!!" stays one token, which PTB keeps
  | \S                                   # any other symbol on its own
""", re.VERBOSE)


def karpathy_words(caption: str) -> list[str]:
    return caption.lower().translate(_DELETE_PUNCTUATION).split()


def ptb_words(caption: str) -> list[str]:
    """PTB tokens with pycocoevalcap's punctuation removed, as the scorer sees the caption."""
    text = _CLITIC.sub(r" \1", caption.lower())
    tokens = (_SPLIT_WORDS.get(t) or _PTB_SYMBOLS.get(t, t) for t in _TOKEN.findall(text))
    return [w for w in " ".join(tokens).split(" ") if w and w not in PUNCTUATIONS]


TOKENIZERS = {"karpathy": karpathy_words, "ptb": ptb_words}


def tokenize(caption: str, style: str = "karpathy") -> list[str]:
    return tokenizer(style)(caption)


def tokenizer(style: str) -> Callable[[str], list[str]]:
    if style not in TOKENIZERS:
        raise CapcacheError(f"unknown tokenizer {style!r}; use {' or '.join(TOKENIZERS)}")
    return TOKENIZERS[style]
