"""Shared fixtures. Tests never touch the network: open_clip is told to stay offline."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any open_clip import, or it waits 45 s on the hub

# Under pytest-xdist (`-n auto`) every worker gets its share of the cores, set before torch is
# imported so the processes a test starts inherit it: 2 workers each running 2 OpenMP threads on
# 2 cores stall at every parallel region's barrier waiting for a preempted thread.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

# What capcache remembers between runs (``pipeline.memo``: encoder shapes, weight digests) goes to
# a home of this test session, never the user's: a test must not depend on what ran before it.
os.environ["CAPCACHE_HOME"] = tempfile.mkdtemp(prefix="capcache-test-home-")
atexit.register(shutil.rmtree, os.environ["CAPCACHE_HOME"], ignore_errors=True)

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


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory) -> tuple[Path, Path]:
    """(manifest, cache) of the tiny synthetic set (60 train images), extracted with tiny-cnn."""
    from pipeline.data.manifest import Manifest
    from pipeline.data.synthetic import SyntheticConfig, generate_dataset
    from pipeline.extract import extract

    root = tmp_path_factory.mktemp("tiny")
    manifest_path = generate_dataset(root / "data", SyntheticConfig.tiny())
    cache = extract(Manifest.load(manifest_path), "tiny-cnn", cache_dir=root / "cache", workers=0, progress=False)
    return manifest_path, cache.path


@pytest.fixture(scope="session")
def caption_runs(tmp_path_factory) -> dict[str, Path]:
    """Two small trained runs on the tiny set, "att_lstm" (with attention) and "transformer", plus
    their "manifest": shared by the caption, report and serve tests (tests may add eval files)."""
    from pipeline.data.manifest import Manifest
    from pipeline.data.synthetic import SyntheticConfig, generate_dataset
    from pipeline.extract import extract
    from pipeline.training.config import resolve_config
    from pipeline.training.loop import train

    fast = ["epochs=2", "batch_size=16", "model.embed_dim=32", "model.hidden_dim=48", "model.attention_dim=32",
            "val_max_images=10"]
    root = tmp_path_factory.mktemp("caption")
    manifest = generate_dataset(root / "data", SyntheticConfig.tiny())
    cache = extract(Manifest.load(manifest), "tiny-cnn", cache_dir=root / "cache", workers=0, progress=False).path
    out = {}
    for decoder in ("att_lstm", "transformer"):
        overrides = [f"data.manifest={manifest}", f"data.cache={cache}", f"decoder={decoder}", *fast]
        train(resolve_config("demo", None, overrides), root / decoder, progress=False)
        out[decoder] = root / decoder
    out["manifest"] = manifest
    return out
