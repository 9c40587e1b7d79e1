"""The feature cache on real photos: reuse, bad files, key mismatch, single writer, worker-safe reads."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.cache import hdf5
from pipeline.cache.reader import FeatureCache
from pipeline.cache.writer import CacheWriter
from pipeline.data.manifest import ImageRecord, Manifest
from pipeline.encoders import build_encoder
from pipeline.errors import CapcacheError
from pipeline.extract import extract
from pipeline.extract.images import load_image
from pipeline.extract.result import cache_spec


@pytest.fixture()
def photo_manifest(tmp_path: Path, real_photos: Path) -> Manifest:
    images = tmp_path / "images"
    shutil.copytree(real_photos, images)
    (images / "truncated.jpg").write_bytes((real_photos / "coffee.jpg").read_bytes()[:4000])
    (images / "not_an_image.jpg").write_text("hello")
    Image.open(real_photos / "coffee.jpg").convert("CMYK").save(images / "cmyk.jpg")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(images / "one_pixel.png")
    Image.open(real_photos / "chelsea.jpg").save(images / "png_named.jpg", format="PNG")
    Image.open(real_photos / "coffee.jpg").convert("L").save(images / "grayscale.jpg")
    rgba = Image.open(real_photos / "chelsea.jpg").convert("RGBA")
    rgba.putalpha(128)
    rgba.save(images / "rgba.png")
    Image.open(real_photos / "astronaut.jpg").resize((6000, 4500)).save(images / "very_large.jpg", quality=80)
    files = sorted(p.name for p in images.iterdir()) + ["missing.jpg"]
    return Manifest("photos", str(images), [ImageRecord(f, f, "train", ["a photo"]) for f in files])


def test_extract_writes_every_good_image_and_reports_bad_ones(photo_manifest, tmp_path):
    result = extract(photo_manifest, "tiny-cnn", cache_dir=tmp_path / "cache", batch_size=3, workers=2, progress=False)
    bad = {b["image_id"] for b in result.bad}
    assert bad == {"truncated.jpg", "not_an_image.jpg", "missing.jpg"}
    cache = FeatureCache(result.path)
    assert len(cache) == len(photo_manifest.images)
    encoder = build_encoder("tiny-cnn")
    transform = encoder.preprocessing.transform()
    for rec in photo_manifest.images:
        row = cache.row_of[rec.image_id]
        if rec.image_id in bad:
            assert cache.status[row] == hdf5.BAD
            continue
        assert cache.status[row] == hdf5.DONE
        with torch.inference_mode():
            direct = encoder(load_image(photo_manifest.image_path(rec), transform)[None])[0].numpy()
        stored = cache[row]
        assert stored.dtype == np.float16 and stored.shape == direct.shape == (36, 128)
        np.testing.assert_allclose(stored.astype(np.float32), direct, rtol=2e-3, atol=2e-3)
    with pytest.raises(CapcacheError, match="unreadable"):
        cache.rows(["truncated.jpg"])


def test_second_run_reuses_and_other_settings_make_a_new_cache(photo_manifest, tmp_path):
    first = extract(photo_manifest, "tiny-cnn", cache_dir=tmp_path / "c", workers=0, progress=False)
    again = extract(photo_manifest, "tiny-cnn", cache_dir=tmp_path / "c", workers=0, progress=False)
    assert again.reused and again.path == first.path and "nothing to do" in again.summary()
    other = extract(photo_manifest, "tiny-cnn", weights="random:1", cache_dir=tmp_path / "c", workers=0, progress=False)
    assert other.path != first.path and not other.reused
    assert not np.array_equal(FeatureCache(other.path)[0], FeatureCache(first.path)[0])


def test_existing_file_with_another_key_is_refused_naming_the_difference(photo_manifest, tmp_path):
    encoder = build_encoder("tiny-cnn")
    spec = cache_spec(photo_manifest, encoder, "float16")
    path = tmp_path / "x.h5"
    ids = [r.image_id for r in photo_manifest.images]
    CacheWriter(path, spec, ids, 36, 128).close()
    other = cache_spec(photo_manifest, build_encoder("tiny-cnn", "random:3"), "float16")
    with pytest.raises(CapcacheError, match=r"encoder.weights: random:0 != random:3"):
        CacheWriter(path, other, ids, 36, 128)


def test_second_writer_is_refused_while_readers_share(photo_manifest, tmp_path):
    spec = cache_spec(photo_manifest, build_encoder("tiny-cnn"), "float16")
    ids = [r.image_id for r in photo_manifest.images]
    path = tmp_path / "y.h5"
    with CacheWriter(path, spec, ids, 36, 128) as writer:
        writer.write(np.array([0, 1]), np.ones((2, 36, 128), np.float32))
        with pytest.raises(CapcacheError, match="another process is writing"):
            CacheWriter(path, spec, ids, 36, 128)
    a, b = FeatureCache(path), FeatureCache(path)
    assert a[0].sum() == b[1].sum() == 36 * 128
    assert list(np.flatnonzero(a.status != hdf5.DONE)) == list(range(2, len(ids)))


def test_reader_pickles_without_its_handle_and_can_load_into_memory(photo_manifest, tmp_path):
    result = extract(photo_manifest, "tiny-cnn", cache_dir=tmp_path / "c", workers=0, progress=False)
    lazy = FeatureCache(result.path)
    first = lazy[0].copy()  # opens a handle in this process
    clone = pickle.loads(pickle.dumps(lazy))  # what a DataLoader worker receives
    assert clone._handle is None
    np.testing.assert_array_equal(clone[0], first)
    np.testing.assert_array_equal(FeatureCache(result.path, in_memory=True)[0], first)
