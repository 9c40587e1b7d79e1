"""What an encoder outputs, remembered so that `extract --plan` answers without importing torch,
and an extraction starts without a dummy forward pass.

A plan needs the encoder's description (its cache key) and output shape. Building any backbone
means importing torch and torchvision first, 5 to 10 seconds on a 2-core machine before a single
weight is read; planning a COCO- or web-sized set should take a fraction of that. So the first
plan of an encoder builds it once and remembers what it saw, keyed like an extract request (name,
weights as given, grid, library versions: another torchvision may build the same name
differently); later plans recall it.

An extraction needs the output shape before it creates the cache file, while its decoding workers
are already starting; found by a dummy image there, the shape cost 0.3 to 0.4 s of a 256-image
ResNet-50 extraction on 2 cores (0.05 s alone: the workers take the cores). It is remembered by
the built encoder's description, which also makes the cache key, so a shape recalled is the one
every cache of that key holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from pipeline.cache.key import digest
from pipeline.extract.reuse import weights_identity
from pipeline.memo import recall, remember
from pipeline.versions import library_versions

if TYPE_CHECKING:  # torch stays unimported until an encoder is built: a remembered plan needs none
    import torch

    from pipeline.encoders.base import FrozenEncoder

_MEMO = "encoder-facts"
SHAPES_MEMO = "encoder-output-shapes"


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


def remembered_output_shape(model: FrozenEncoder, dev: torch.device) -> tuple[int, int]:
    """(L, D) of ``model``'s output: recalled by its description, else from one dummy image (``output_shape``)."""
    from pipeline.extract.inference import output_shape

    key = digest({"description": model.describe(), "versions": library_versions()})
    known = recall(SHAPES_MEMO, key)
    if isinstance(known, list) and len(known) == 2 and all(isinstance(n, int) and n > 0 for n in known):
        return known[0], known[1]
    shape = output_shape(model, dev)
    remember(SHAPES_MEMO, key, list(shape))
    return shape


def _probe(encoder: str, weights: str | None, grid: int | None) -> EncoderFacts:
    import torch

    from pipeline.encoders import build_encoder

    model = build_encoder(encoder, weights, grid)
    return EncoderFacts(model.describe(), *remembered_output_shape(model, torch.device("cpu")), model.pooled_dim)
