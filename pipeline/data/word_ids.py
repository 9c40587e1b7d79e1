"""Captions as the word ids CIDEr-D counts n-grams of: shared by self-critical training (its reward)
and consensus reranking (its agreement with the nearest train photos' captions)."""

from __future__ import annotations

from typing import Sequence

from pipeline.data.text import tokenizer
from pipeline.data.vocab import END_ID, SPECIALS, Vocabulary


class WordIds:
    """The word ids CIDEr-D counts n-grams of, for references (text) and decoded captions (token ids).

    With a word vocabulary a caption's tokens are its words and keep their ids; reference words the
    vocabulary lacks get ids of their own above it (not <unk>), so the reference n-grams and their
    document frequencies are those of the words themselves: a caption can never match them (it
    cannot say the word), exactly as when scoring strings. With a subword vocabulary (a language
    model's tokens) a caption is decoded to its words first and every word gets an id on first
    sight, so CIDEr-D is over words either way, never over word pieces.
    """

    def __init__(self, vocab):
        self.vocab, self.split = vocab, tokenizer(vocab.tokenizer)
        self.subword = not isinstance(vocab, Vocabulary)
        self.index = dict(zip(SPECIALS, range(len(SPECIALS)))) if self.subword else {w: i for i, w in enumerate(vocab.words)}

    def of_text(self, caption: str) -> list[int]:
        return [self.index.setdefault(w, len(self.index)) for w in self.split(caption)]

    def of_tokens(self, tokens: Sequence[int]) -> list[int]:
        return self.of_text(self.vocab.decode(tokens)) if self.subword else list(tokens)


def reference_ids(captions: Sequence[Sequence[str]], words: "WordIds | Vocabulary", end_token: bool) -> list[list[list[int]]]:
    """Per image, its references as word ids (``WordIds``; a vocabulary gets its own)."""
    words = words if isinstance(words, WordIds) else WordIds(words)
    tail = [END_ID] if end_token else []
    return [[words.of_text(c) + tail for c in refs] for refs in captions]
