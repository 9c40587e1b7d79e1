"""Optional packages (the prefix_lm decoder's transformers and tokenizers, webdataset for reading
img2dataset shards), imported with a one-line fix when absent."""

from __future__ import annotations

import importlib
from types import ModuleType

from pipeline.errors import CapcacheError

_NEEDED_BY = {  # package -> (what needs it, the extra that installs it)
    "transformers": ("the prefix_lm decoder", "lm"),
    "tokenizers": ("the prefix_lm decoder", "lm"),
    "webdataset": ("extracting images from img2dataset shards", "web"),
}


def require(package: str) -> ModuleType:
    """One of the packages above, or a CapcacheError saying how to install it."""
    try:
        return importlib.import_module(package)
    except ImportError as e:
        needed_by, extra = _NEEDED_BY[package]
        raise CapcacheError(f"{needed_by} needs the {package} package ({e}); "
                            f"install it with pip install 'capcache[{extra}]'") from e
