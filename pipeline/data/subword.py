"""Subword vocabularies: a language model's own tokenizer (GPT-2's byte-level BPE) or one trained
on the train captions with the ``tokenizers`` library, behind the same interface as the word
``Vocabulary`` (encode / decode / len / save), so training, decoding and scoring are unchanged.

The decoding code relies on ids 0..3 being <pad>, <start>, <end>, <unk>. A tokenizer trained here
puts those four first, so its ids are the vocabulary's ids (``offset`` 0). A pretrained one (GPT-2:
50,257 ids, <|endoftext|> last) cannot be renumbered, because its embedding rows are fixed, so the
vocabulary's ids are the tokenizer's plus 4 (``offset`` 4) and the decoder maps each id to the
language model's (``lm_ids``): <start> to its bos, <end> to its eos.

Captions are normalised by the word tokenizer style first (``pipeline.data.text``: lower case,
punctuation as the run's style has it) and the subword text is decoded back to those words, so
a caption scores and compares exactly like one from a word vocabulary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

from pipeline.data.text import tokenizer
from pipeline.data.vocab import END_ID, PAD_ID, SPECIALS, START_ID, UNK_ID, content_ids
from pipeline.errors import CapcacheError
from pipeline.io import atomic_write_json
from pipeline.optional import require

SEP = "<sep>"  # seed 003's separator between the image and the caption
TRAINED_SPECIALS = (*SPECIALS, SEP)  # ids 0..4 of a tokenizer trained here


@dataclass
class LmTokens:
    """Which language-model ids play the vocabulary's special roles (all in the LM's own ids)."""
    offset: int  # vocabulary id = LM id + offset (0: a tokenizer trained here; 4: a pretrained one)
    bos: int  # what <start> is fed as
    eos: int  # what <end> is predicted as
    sep: int  # seed 003's <sep> (layout "seed003")
    size: int  # the LM's vocabulary size (embedding rows)

    def lm_ids(self) -> list[int]:
        """For each vocabulary id, the LM id it is fed as and predicted as: [offset + size]."""
        specials = [self.eos, self.bos, self.eos, self.eos] if self.offset else []  # <pad> <start> <end> <unk>
        return specials + list(range(self.size))

    def dead_ids(self) -> list[int]:
        """With an offset, the ids that duplicate an LM id another id already stands for: <pad>,
        <start>, <unk> and the second copy of the LM's bos/eos. The decoder gives them no
        probability, so <end> and eos are one choice, not two tied ones. Without an offset every id
        is the LM's own and none is dead (<pad>/<start>/<unk> are banned in decoding, as for words)."""
        if not self.offset:
            return []
        return [PAD_ID, START_ID, UNK_ID, *sorted({self.offset + self.eos, self.offset + self.bos})]


@dataclass
class SubwordVocabulary:
    tokenizer_json: str  # the serialised ``tokenizers.Tokenizer``
    lm: LmTokens
    source: str  # "bpe" (trained on the train captions) or the language model it came with
    tokenizer: str = "karpathy"  # the word style captions are normalised with before subword splitting

    def __post_init__(self) -> None:
        self._tok = require("tokenizers").Tokenizer.from_str(self.tokenizer_json)
        self._split = tokenizer(self.tokenizer)

    def __len__(self) -> int:
        return self.lm.offset + self.lm.size

    @property
    def words(self) -> list[str]:
        raise CapcacheError("this run uses a subword vocabulary (a language model's tokenizer), which has no "
                            "word list: GloVe word vectors do not apply; drop model.glove_path")

    @classmethod
    def train_bpe(cls, captions: Iterable[str], size: int, style: str = "karpathy") -> "SubwordVocabulary":
        """A byte-level BPE of ``size`` ids (the five specials included) fitted to ``captions``.

        Byte-level: every caption, of any language or spelling, encodes without <unk>."""
        tk = require("tokenizers")
        Tokenizer, decoders, models, pre_tokenizers, trainers = tk.Tokenizer, tk.decoders, tk.models, tk.pre_tokenizers, tk.trainers
        if size <= len(TRAINED_SPECIALS) + 256:
            raise CapcacheError(f"model.bpe_vocab={size} is too small: a byte-level BPE needs more than "
                                f"{len(TRAINED_SPECIALS) + 256} ids (specials and the 256 bytes)")
        split = tokenizer(style)
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=size, min_frequency=2, special_tokens=list(TRAINED_SPECIALS),
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator((" ".join(split(c)) for c in captions), trainer)
        ids = [tok.token_to_id(t) for t in TRAINED_SPECIALS]
        assert ids == list(range(len(TRAINED_SPECIALS))), ids  # the trainer puts special tokens first
        lm = LmTokens(offset=0, bos=START_ID, eos=END_ID, sep=ids[-1], size=tok.get_vocab_size())
        return cls(tok.to_str(), lm, "bpe", style)

    @classmethod
    def from_pretrained(cls, tokenizer_json: str, source: str, bos: int, eos: int, style: str = "karpathy") -> "SubwordVocabulary":
        """A pretrained LM's tokenizer (its ``tokenizer.json``), with <sep> added as a new id when it
        lacks one (the LM's embeddings then grow by one row)."""
        tk = require("tokenizers")
        AddedToken, tok = tk.AddedToken, tk.Tokenizer.from_str(tokenizer_json)
        if tok.token_to_id(SEP) is None:
            tok.add_special_tokens([AddedToken(SEP, special=True)])
        lm = LmTokens(offset=len(SPECIALS), bos=bos, eos=eos, sep=tok.token_to_id(SEP), size=tok.get_vocab_size())
        return cls(tok.to_str(), lm, source, style)

    def encode(self, caption: str, max_len: int | None = None) -> list[int]:
        """<start> t1 .. tn <end>, at most ``max_len`` subword tokens (the end token is always kept)."""
        ids = self._tok.encode(" ".join(self._split(caption)), add_special_tokens=False).ids
        ids = [i + self.lm.offset for i in ids[:max_len]]
        return [START_ID, *ids, END_ID]

    def decode(self, ids: Sequence[int]) -> str:
        """The words of the tokens up to the first <end>; specials dropped."""
        # ids below 4 are <pad> <start> <end> <unk> (with offset 0 also the tokenizer's own, the same four)
        pieces = [i - self.lm.offset for i in content_ids(ids) if i >= len(SPECIALS)]
        return " ".join(self._tok.decode(pieces, skip_special_tokens=True).split())

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, {"kind": "subword", "source": self.source, "tokenizer": self.tokenizer,
                                 "lm": vars(self.lm), "tokenizer_json": self.tokenizer_json})

    @classmethod
    def from_saved(cls, d: dict) -> "SubwordVocabulary":
        return cls(d["tokenizer_json"], LmTokens(**d["lm"]), d["source"], d["tokenizer"])
