"""Checkpoints that let a run continue bit for bit: model, optimiser, scheduler, RNG states, step."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import CapcacheError
from pipeline.io import atomic_path


def rng_states() -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: Path, **payload: Any) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CapcacheError(f"checkpoint {path} not found; train the run first (or check the run folder)")
    try:
        # RNG states hold numpy/python objects, so this is a full unpickle of our own file
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CapcacheError(f"cannot read checkpoint {path} ({e}); it may be from another capcache version") from e
