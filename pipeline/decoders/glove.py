"""Word embeddings initialised from a local GloVe text file (seed 002).

Small caption sets (Flickr8k: ~8k words) give rare words few updates; starting them from GloVe
helps. The file is read once, keeping only the vocabulary's words, so the 1-5 GB files never sit in
memory. A missing file or a dimension that does not fit is an error: silently training with
random embeddings would make a result that cannot be compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.data.vocab import Vocabulary
from pipeline.decoders.base import CaptionDecoder
from pipeline.errors import CapcacheError, DataError


@dataclass
class GloveStats:
    path: str
    found: int  # vocabulary words that had a GloVe vector
    total: int

    def summary(self) -> str:
        return f"GloVe {Path(self.path).name}: {self.found}/{self.total} vocabulary words initialised"


def read_glove(path: str | Path, words: list[str], dim: int) -> dict[str, torch.Tensor]:
    """Vectors [dim] of those ``words`` found in the GloVe text file (``word v1 ... vdim`` per line)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CapcacheError(f"GloVe file {path} not found; download e.g. glove.6B.300d.txt "
                            "(https://nlp.stanford.edu/projects/glove/) or unset model.glove_path")
    wanted, found = set(words), {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            word, _, rest = line.rstrip("\n").partition(" ")
            if word not in wanted:
                continue
            values = rest.split(" ")
            if len(values) != dim:
                if line_no == 1 or not found:
                    raise CapcacheError(f"{path} holds {len(values)}-d vectors but the decoder's embeddings are "
                                        f"{dim}-d; set the embedding size to {len(values)} or use a {dim}-d GloVe file")
                raise DataError(f"expected {dim} numbers after the word, found {len(values)}", path, line_no)
            try:
                found[word] = torch.tensor([float(v) for v in values])
            except ValueError:
                raise DataError("a vector value is not a number", path, line_no) from None
    return found


def init_word_embeddings(decoder: CaptionDecoder, vocab: Vocabulary, glove_path: str | None, freeze: bool,
                         load: bool = True) -> GloveStats | None:
    """Copy GloVe vectors into ``decoder.embedding`` (when ``load``: a fresh run, not a resume) and
    freeze it if asked; words without a vector keep their random initialisation."""
    if not glove_path and not freeze:
        return None
    embedding: torch.nn.Embedding | None = getattr(decoder, "embedding", None)
    if embedding is None:
        raise CapcacheError(f"model.glove_path and model.freeze_embeddings need a word embedding, which "
                            f"{type(decoder).__name__} has not (a language model decoder: use model.lm_frozen)")
    if freeze and embedding.weight is getattr(getattr(decoder, "out", None), "weight", None):
        raise CapcacheError("freeze_embeddings with tied embeddings would freeze the output layer too; "
                            "set model.tie_embeddings=false or model.freeze_embeddings=false")
    stats = None
    if glove_path and load:
        vectors = read_glove(glove_path, vocab.words, embedding.embedding_dim)
        row = {word: i for i, word in enumerate(vocab.words)}
        with torch.no_grad():
            for word, vector in vectors.items():
                embedding.weight[row[word]] = vector
        stats = GloveStats(str(glove_path), len(vectors), len(vocab))
    embedding.weight.requires_grad_(not freeze)
    return stats
