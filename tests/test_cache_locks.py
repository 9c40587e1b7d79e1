"""A cache open in another process is busy, not damaged: the error says who holds it, never "delete it"."""

from __future__ import annotations

import contextlib
import errno
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import pipeline.cache.lock as lock_module
from pipeline.cache.inspect import verify_cache
from pipeline.cache.key import CacheSpec
from pipeline.cache.reader import FeatureCache
from pipeline.cache.writer import CacheWriter
from pipeline.errors import CapcacheError

IDS = ["a.jpg", "b.jpg", "c.jpg"]
SPEC = CacheSpec(encoder={"encoder": "test"}, dtype="float16", image_set="set", image_names="names", n_images=3)


@pytest.fixture()
def cache(tmp_path: Path) -> Path:
    path = tmp_path / "cache.h5"
    with CacheWriter(path, SPEC, IDS, 4, 8) as writer:
        writer.write(np.arange(3), np.ones((3, 4, 8), np.float32))
    return path


@contextlib.contextmanager
def held_open(path: Path, mode: str) -> Iterator[None]:
    """Another process holding ``path`` open with h5py's defaults (HDF5 file locks on)."""
    code = f"import h5py, sys; f = h5py.File({str(path)!r}, {mode!r}); print('open', flush=True); sys.stdin.read()"
    other = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "open"
        yield
    finally:
        other.kill()
        other.wait()


def test_readers_of_a_cache_being_written_are_told_to_wait(cache):
    with held_open(cache, "r+"):
        for read in (FeatureCache, verify_cache):
            with pytest.raises(CapcacheError, match="open in another process, an extraction still writing it") as e:
                read(cache)
            assert "delete" not in str(e.value)
    assert FeatureCache(cache)[0].sum() == 32  # free again, and intact


def test_resuming_an_extraction_while_something_reads_the_cache_says_what_holds_it(cache):
    with held_open(cache, "r"):
        with pytest.raises(CapcacheError, match=r"open in another process, something reading it \(training"):
            CacheWriter(cache, SPEC, IDS, 4, 8)


def test_a_file_system_without_locks_still_extracts_with_a_warning(tmp_path, monkeypatch):
    def no_locks(*args):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(lock_module.fcntl, "lockf", no_locks)
    with pytest.warns(UserWarning, match="does not support file locks"):
        writer = CacheWriter(tmp_path / "c.h5", SPEC, IDS, 4, 8)
    with writer:
        writer.write(np.arange(3), np.ones((3, 4, 8), np.float32))
    assert FeatureCache(tmp_path / "c.h5").status.tolist() == [1, 1, 1]
