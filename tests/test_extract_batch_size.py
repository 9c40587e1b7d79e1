"""The batch size an extraction runs at: 8 on CPU by default, recorded with the cache, kept when a
cache is continued or extended from a sibling, refused when a run would mix two sizes in one cache."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import pipeline.extract.loop as extract_loop
from pipeline.cache import hdf5
from pipeline.cache.compute import agree, describe, stored_compute
from pipeline.cache.inspect import cache_info
from pipeline.cache.key import CacheSpec
from pipeline.cache.writer import CacheWriter
from pipeline.data.manifest import ImageRecord, Manifest
from pipeline.errors import CapcacheError
from pipeline.extract import extract
from pipeline.extract.batch_size import ACCELERATOR_BATCH, CPU_BATCH, chosen_batch_size
from tests.helpers import extract_interrupted


@pytest.fixture()
def manifest(tmp_path: Path) -> Manifest:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return Manifest("twenty", str(folder), [ImageRecord(f"{i}", f"{i}.png", "train", ["x"]) for i in range(20)])


def run(manifest: Manifest, cache: Path, **kwargs):
    return extract(manifest, "tiny-cnn", cache_dir=cache, workers=0, progress=False, **kwargs)


def compute_of_file(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return stored_compute(f.attrs)


@pytest.fixture()
def batch_sizes(monkeypatch) -> list[int]:
    """The batch size of every DataLoader extraction starts."""
    seen, real = [], extract_loop.DataLoader

    def loader(*args, batch_size, **kwargs):
        seen.append(batch_size)
        return real(*args, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(extract_loop, "DataLoader", loader)
    return seen


def test_a_new_cpu_cache_runs_at_8_and_records_it(manifest, tmp_path, batch_sizes):
    result = run(manifest, tmp_path / "c")
    assert set(batch_sizes) == {CPU_BATCH} == {8}
    assert compute_of_file(result.path) == {"device": "cpu", "precision": "float32", "batch_size": 8}
    assert "computed on: cpu (float32, batch 8)" in cache_info(result.path).summary()


def test_the_default_on_an_accelerator_is_32_and_an_asked_size_always_wins():
    assert chosen_batch_size(None, torch.device("cuda"), iter([])) == ACCELERATOR_BATCH == 32
    assert chosen_batch_size(None, torch.device("cpu"), iter([{"device": "cpu"}, {"batch_size": 4}])) == 4
    assert chosen_batch_size(16, torch.device("cpu"), iter([{"batch_size": 4}])) == 16


def test_an_interrupted_cache_continues_at_its_own_size_and_refuses_another(manifest, tmp_path, monkeypatch,
                                                                             batch_sizes):
    extract_interrupted(monkeypatch, 1, lambda: run(manifest, tmp_path / "c", batch_size=4))
    with pytest.raises(CapcacheError, match=r"started on cpu \(float32, batch 4\), this run computes on cpu "
                                            r"\(float32, batch 8\); finish it with --batch-size 4"):
        run(manifest, tmp_path / "c", batch_size=8)
    batch_sizes.clear()
    result = run(manifest, tmp_path / "c")  # no size asked: the cache's own
    assert batch_sizes == [4] and result.extracted == 16
    whole = run(manifest, tmp_path / "whole", batch_size=4)
    with h5py.File(result.path, "r") as a, h5py.File(whole.path, "r") as b:
        assert np.array_equal(a[hdf5.FEATURES][:], b[hdf5.FEATURES][:])


def test_a_cache_extended_from_a_sibling_takes_the_siblings_size(manifest, tmp_path, batch_sizes):
    fewer = Manifest("fewer", manifest.image_root, manifest.images[:12])
    first = run(fewer, tmp_path / "c", batch_size=4)
    batch_sizes.clear()
    result = run(manifest, tmp_path / "c")
    assert batch_sizes == [4] and result.extracted == 8  # 12 rows copied from the sibling
    assert compute_of_file(result.path)["batch_size"] == 4
    assert f"copied 12 rows from {first.path.name}" in result.summary()


def test_a_sibling_of_another_size_is_not_mixed_in(manifest, tmp_path):
    run(Manifest("fewer", manifest.image_root, manifest.images[:12]), tmp_path / "c", batch_size=4)
    assert run(manifest, tmp_path / "c", batch_size=8).extracted == 20


def test_caches_that_record_no_batch_size_are_continued_and_joined_as_before(tmp_path):
    old, new = {"device": "cpu", "precision": "float32"}, {"device": "cpu", "precision": "float32", "batch_size": 8}
    assert agree(old, new) and agree(new, old) and not agree(new, {**new, "batch_size": 32})
    assert not agree(old, {"device": "cuda", "precision": "float16-autocast", "batch_size": 32})
    assert describe(old) == "cpu (float32)"
    spec = CacheSpec({"encoder": "x"}, "float16", "s", "n", 2)
    with CacheWriter(tmp_path / "w.h5", spec, ["a", "b"], 2, 2, compute=old) as writer:
        writer.write(np.array([0]), np.ones((1, 2, 2), np.float32))
        writer.refuse_mixing(new)  # a file written before sizes were recorded: continued at the default
