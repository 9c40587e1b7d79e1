"""Stage one: run a frozen encoder once over a manifest's images into a feature cache."""

from pipeline.extract.runner import ExtractResult, cache_path_for, extract

__all__ = ["ExtractResult", "cache_path_for", "extract"]
