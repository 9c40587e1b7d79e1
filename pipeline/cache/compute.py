"""How a cache's features were computed, recorded in the file and never mixed within one cache.

The facts are the kind of device, the precision (fp16 autocast on CUDA, fp32 on CPU) and the batch
size the encoder ran at: oneDNN and cuDNN pick their kernels by batch shape, so the same image's
features differ in their last bits from one batch size to another (every batch runs at full size
for that reason, ``pipeline.extract.inference.encode_images``). Caches written before the batch
size was recorded lack it; facts only one side records are not compared.
"""

from __future__ import annotations

import json
from typing import Mapping

from pipeline.cache import hdf5

_FLAGS = {"device": "--device", "batch_size": "--batch-size"}  # how a user chooses each fact


def stored_compute(attrs: Mapping) -> dict:
    """The compute facts in a cache file's attributes (``f.attrs``, or a copy of them); {} for a
    file that records none."""
    return json.loads(attrs.get(hdf5.ATTR_COMPUTE, "{}"))


def agree(stored: dict, compute: dict) -> bool:
    """Whether rows computed as ``compute`` may sit beside rows computed as ``stored``."""
    return all(stored[k] == compute[k] for k in stored.keys() & compute.keys())


def describe(compute: dict) -> str:
    """e.g. "cpu (float32, batch 8)"."""
    batch = f", batch {compute['batch_size']}" if "batch_size" in compute else ""
    return f"{compute.get('device', '?')} ({compute.get('precision', '?')}{batch})"


def how_to_match(stored: dict, compute: dict) -> str:
    """The options that make a run compute as ``stored`` did, e.g. "--device cpu --batch-size 32"."""
    differ = [k for k in _FLAGS if k in stored and k in compute and stored[k] != compute[k]]
    return " ".join(f"{_FLAGS[k]} {stored[k]}" for k in differ) or f"--device {stored.get('device')}"
