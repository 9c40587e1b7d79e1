"""The one registry of frozen encoders: a backbone is one file that calls ``register``."""

from __future__ import annotations

from typing import Callable

from pipeline.encoders.base import FrozenEncoder
from pipeline.encoders.weights import WeightsSpec
from pipeline.errors import CapcacheError

# name -> builder(weights: WeightsSpec, grid: int | None) -> FrozenEncoder (not yet frozen)
_BUILDERS: dict[str, Callable[[WeightsSpec, int | None], FrozenEncoder]] = {}
_DEFAULT_WEIGHTS: dict[str, str] = {}


def register(name: str, default_weights: str) -> Callable:
    def wrap(builder: Callable[[WeightsSpec, int | None], FrozenEncoder]) -> Callable:
        if name in _BUILDERS:
            raise RuntimeError(f"encoder {name!r} registered twice")
        _BUILDERS[name] = builder
        _DEFAULT_WEIGHTS[name] = default_weights
        return builder
    return wrap


def available_encoders() -> dict[str, str]:
    """Encoder name -> its default weights."""
    return dict(sorted(_DEFAULT_WEIGHTS.items()))


def build_encoder(name: str, weights: str | None = None, grid: int | None = None) -> FrozenEncoder:
    if name not in _BUILDERS:
        raise CapcacheError(f"unknown encoder {name!r}; available: {', '.join(available_encoders())}")
    spec = WeightsSpec.parse(weights or _DEFAULT_WEIGHTS[name])
    return _BUILDERS[name](spec, grid).freeze()


def rebuild_encoder(description: dict, weights: str | None = None) -> FrozenEncoder:
    """The encoder a cache was built with, from its recorded ``describe()`` (captioning new images).

    A local weights file is recorded by name only (so a cache does not depend on where the file
    lies); such runs need ``weights`` pointing at it. The rebuilt encoder must describe itself
    exactly as recorded, or its features would not be what the decoder was trained on.
    """
    label = str(description["weights"])
    if weights is None and label.startswith("file:"):
        raise CapcacheError(f"the run's encoder used the local weights file {label.split(':')[1]}; "
                            "pass its path with --weights")
    encoder = build_encoder(description["encoder"], weights or label, description.get("grid"))
    rebuilt = encoder.describe()
    mismatch = [k for k, v in description.items() if rebuilt.get(k) != v]
    if mismatch:
        raise CapcacheError(f"rebuilt encoder {description['encoder']} differs from the run's in {', '.join(mismatch)}; "
                            "pass the weights the cache was extracted with (--weights)")
    return encoder
