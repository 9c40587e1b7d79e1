"""Frozen vision backbones. Adding one: a new file that calls ``register``, plus one import line here."""

from pipeline.encoders.registry import available_encoders, build_encoder
from pipeline.encoders import tiny  # noqa: F401  (registers tiny-cnn)

__all__ = ["available_encoders", "build_encoder"]
