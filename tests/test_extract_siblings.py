"""A manifest that gains images extends from the cache it outgrew: only the new images are encoded."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from pipeline.data.manifest import ImageRecord, Manifest
from pipeline.extract import extract


def photos(folder: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")


def manifest_of(folder: Path, n: int) -> Manifest:
    return Manifest("set", str(folder), [ImageRecord(f"{i}.jpg", f"{i}.jpg", "train", ["x"]) for i in range(n)])


def run(manifest: Manifest, cache: Path):
    return extract(manifest, "tiny-cnn", cache_dir=cache, workers=0, progress=False)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    photos(tmp_path / "images", 5)
    return tmp_path / "images"


def features(path: Path) -> dict[str, np.ndarray]:
    """image id -> features [L, D] of every DONE row."""
    with h5py.File(path, "r") as f:
        done = f["status"][:] == 1
        return {i: f["features"][r] for r, i in enumerate(f["image_ids"].asstr()[:]) if done[r]}


def test_adding_images_encodes_only_the_new_ones_and_matches_a_clean_extraction(folder, tmp_path):
    old = run(manifest_of(folder, 3), tmp_path / "c")
    grown = run(manifest_of(folder, 5), tmp_path / "c")
    assert grown.path != old.path and grown.extracted == 2  # 3 rows copied, 2 encoded
    assert f"copied 3 rows from {old.path.name}" in grown.summary()
    assert "delete the old cache" in grown.summary()
    clean = run(manifest_of(folder, 5), tmp_path / "clean")
    assert clean.extracted == 5
    got, want = features(grown.path), features(clean.path)
    assert got.keys() == want.keys() and all(np.array_equal(got[i], want[i]) for i in want)
    assert run(manifest_of(folder, 5), tmp_path / "c").reused  # complete: nothing left to do


def test_an_image_edited_since_the_old_cache_is_encoded_again(folder, tmp_path):
    run(manifest_of(folder, 3), tmp_path / "c")
    Image.new("RGB", (64, 64), (9, 9, 9)).save(folder / "1.jpg")  # new content, new size
    grown = run(manifest_of(folder, 5), tmp_path / "c")
    assert grown.extracted == 3 and grown.changed == ["1.jpg"]  # 2 new + the edited one
    assert features(grown.path).keys() == {f"{i}.jpg" for i in range(5)}
    clean = run(manifest_of(folder, 5), tmp_path / "clean")
    assert np.array_equal(features(grown.path)["1.jpg"], features(clean.path)["1.jpg"])


def test_a_damaged_row_of_the_old_cache_is_not_copied(folder, tmp_path):
    old = run(manifest_of(folder, 3), tmp_path / "c")
    with h5py.File(old.path, "r+") as f:
        f["features"][0, 0, 0] += 1  # the stored checksum no longer holds
    grown = run(manifest_of(folder, 5), tmp_path / "c")
    assert grown.extracted == 3 and "copied 2 rows" in grown.summary()
    clean = run(manifest_of(folder, 5), tmp_path / "clean")
    assert np.array_equal(features(grown.path)["0.jpg"], features(clean.path)["0.jpg"])


def test_other_settings_or_other_images_are_never_copied(folder, tmp_path):
    extract(manifest_of(folder, 3), "tiny-cnn", weights="random:1", cache_dir=tmp_path / "c", workers=0,
            progress=False)  # other weights: not a sibling
    grown = run(manifest_of(folder, 5), tmp_path / "c")
    assert grown.extracted == 5 and not grown.notes
    other = tmp_path / "other"
    photos(other, 3, seed=7)  # same names, other photos: a sibling in settings, but no row matches its files
    renamed = Manifest("set", str(other), [ImageRecord(f"o{i}", f"{i}.jpg", "train", ["x"]) for i in range(3)])
    fresh = run(renamed, tmp_path / "c")
    assert fresh.extracted == 3 and "extracted in full" in fresh.summary()
