"""Shared fixtures. Tests never touch the network: open_clip is told to stay offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any open_clip import, or it waits 45 s on the hub

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The real-data folder: $CAPCACHE_SHARED_DATA, else ../shared/data beside the checkout."""
    env = os.environ.get("CAPCACHE_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("real data folder shared/data not found beside the checkout (set CAPCACHE_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def real_photos(shared_data: Path) -> Path:
    return shared_data / "real_photos"
