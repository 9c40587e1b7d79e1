"""Optional packages (the prefix_lm decoder's transformers and tokenizers), imported with a one-line fix when absent."""

from __future__ import annotations

import importlib
from types import ModuleType

from pipeline.errors import CapcacheError


def require(package: str) -> ModuleType:
    """``transformers`` or ``tokenizers``, or a CapcacheError saying how to install it."""
    try:
        return importlib.import_module(package)
    except ImportError as e:
        raise CapcacheError(f"the prefix_lm decoder needs the {package} package ({e}); "
                            "install it with pip install 'capcache[lm]'") from e
