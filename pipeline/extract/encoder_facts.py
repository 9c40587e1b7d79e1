"""What an encoder outputs, remembered so that `extract --plan` answers without importing torch.

A plan needs the encoder's description (its cache key) and output shape. Building any backbone
means importing torch and torchvision first, 5 to 10 seconds on a 2-core machine before a single
weight is read; planning a COCO- or web-sized set should take a fraction of that. So the first
plan of an encoder builds it once and remembers what it saw, keyed like an extract request (name,
weights as given, grid, library versions: another torchvision may build the same name
differently); later plans recall it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.cache.key import digest
from pipeline.extract.reuse import weights_identity
from pipeline.memo import recall, remember
from pipeline.versions import library_versions

_MEMO = "encoder-facts"


@dataclass(frozen=True)
class EncoderFacts:
    description: dict  # FrozenEncoder.describe()
    tokens: int  # L
    dim: int  # D
    pooled_dim: int | None  # E


def encoder_facts(encoder: str, weights: str | None, grid: int | None) -> tuple[EncoderFacts, bool]:
    """(the facts, whether they were remembered) of ``encoder`` with these options."""
    key = digest({"encoder": encoder, "weights": weights_identity(weights), "grid": grid,
                  "versions": library_versions()})
    known = recall(_MEMO, key)
    if isinstance(known, dict):
        try:
            return EncoderFacts(**known), True
        except TypeError:  # written by another capcache: find out again
            pass
    facts = _probe(encoder, weights, grid)
    remember(_MEMO, key, asdict(facts))
    return facts, False


def _probe(encoder: str, weights: str | None, grid: int | None) -> EncoderFacts:
    import torch

    from pipeline.encoders import build_encoder
    from pipeline.extract.inference import output_shape

    model = build_encoder(encoder, weights, grid)
    return EncoderFacts(model.describe(), *output_shape(model, torch.device("cpu")), model.pooled_dim)
