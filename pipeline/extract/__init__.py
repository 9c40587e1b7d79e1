"""Stage one: run a frozen encoder once over a manifest's images into a feature cache."""

from pipeline.extract.api import extract
from pipeline.extract.result import ExtractResult, cache_path_for

__all__ = ["ExtractResult", "cache_path_for", "extract"]
