"""Cached augmentation views (``extract --views K``, ``data.views``): fixed per image and view, keyed
by their settings, resumable like any cache, and drawn one per image and epoch in training."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import pipeline.training.loop as loop
from cli import app
from pipeline.augmentation import Augmentation, View
from pipeline.cache.inspect import cache_info
from pipeline.cache.parts import is_joined
from pipeline.cache.reader import FeatureCache
from pipeline.data.manifest import Manifest
from pipeline.data.synthetic import SyntheticConfig, generate_dataset
from pipeline.data.vocab import Vocabulary
from pipeline.encoders.preprocessing import Preprocessing
from pipeline.encoders.views import ViewTransform, crop_box
from pipeline.errors import CapcacheError
from pipeline.extract import extract
from pipeline.runs.metrics_log import read_metrics
from pipeline.training.config import resolve_config
from pipeline.training.data import CaptionGroups

from helpers import REPO, extract_interrupted, train_interrupted_after_first_epoch

FAST = ["epochs=2", "batch_size=16", "model.embed_dim=32", "model.hidden_dim=48", "model.attention_dim=32",
        "val_max_images=10"]
PREP = Preprocessing(resize=36, crop=32)


def run(manifest: Path, cache_dir: Path, **options):
    return extract(Manifest.load(manifest), "tiny-cnn", cache_dir=cache_dir, workers=0, progress=False, **options)


def features(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["features"][:]  # [N, L, D]


@pytest.fixture(scope="module")
def viewed(tmp_path_factory) -> tuple[Path, Path, list[Path]]:
    """(manifest, clean cache, [view 1, view 2]) of the tiny synthetic set."""
    root = tmp_path_factory.mktemp("views")
    manifest = generate_dataset(root / "data", SyntheticConfig.tiny())
    result = run(manifest, root / "cache", views=2)
    return manifest, result.path, [v.path for v in result.views]


def photo(seed: int = 0, size: tuple[int, int] = (60, 45)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_a_view_is_fixed_by_the_image_content_and_the_view_index():
    view = ViewTransform(PREP, View(1, Augmentation()))
    img = photo()
    first = view(img, "ab12")
    assert first.shape == (3, 32, 32) and torch.equal(first, view(img, "ab12"))  # the same dice every time
    assert not torch.equal(first, view(img, "ab13"))  # another image's dice
    assert not torch.equal(first, ViewTransform(PREP, View(2, Augmentation()))(img, "ab12"))
    assert not torch.equal(first, ViewTransform(PREP, View(1, Augmentation(seed=1)))(img, "ab12"))


def test_the_flip_is_drawn_after_the_crop_and_mirrors_it():
    img = photo(3)
    plain = ViewTransform(PREP, View(1, Augmentation(hflip=0.0)))(img, "ff")
    mirrored = ViewTransform(PREP, View(1, Augmentation(hflip=1.0)))(img, "ff")
    upside_down = ViewTransform(PREP, View(1, Augmentation(hflip=0.0, vflip=1.0)))(img, "ff")
    assert torch.equal(mirrored, plain.flip(-1)) and torch.equal(upside_down, plain.flip(-2))


def test_crop_boxes_lie_inside_the_image_with_the_asked_area():
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = crop_box(60, 45, (0.6, 1.0), (3 / 4, 4 / 3), rng)
        assert 0 <= top and top + h <= 45 and 0 <= left and left + w <= 60
        assert 0.55 <= h * w / (60 * 45) <= 1.0  # rounding to whole pixels aside
    assert crop_box(100, 10, (0.9, 1.0), (1.0, 1.0), rng) == (0, 45, 10, 10)  # no draw fits: the centred square


def test_bad_augmentation_settings_are_refused_in_one_line():
    for bad in ({"scale": (0.0, 1.0)}, {"scale": (0.8, 0.5)}, {"hflip": 1.5}, {"ratio": (2.0, 1.0)}):
        with pytest.raises(CapcacheError, match="out of range"):
            Augmentation(**bad)
    with pytest.raises(CapcacheError, match="numbered from 1"):
        View(0, Augmentation())


def test_views_are_caches_of_their_own_keyed_by_their_settings(viewed, tmp_path):
    manifest, clean, views = viewed
    assert [p.name.split("-")[-2] for p in views] == ["view1", "view2"]
    specs = [json.loads(h5py.File(p, "r").attrs["spec"]) for p in views]
    assert [s["encoder"]["view"]["index"] for s in specs] == [1, 2]
    assert specs[0]["encoder"]["view"]["scale"] == [0.6, 1.0] and "view" not in json.loads(
        h5py.File(clean, "r").attrs["spec"])["encoder"]  # the clean cache keeps the key it always had
    assert '"index": 2' in cache_info(views[1]).summary() and "view:" not in cache_info(clean).summary()
    clean_f, one, two = features(clean), features(views[0]), features(views[1])
    assert not np.array_equal(clean_f, one) and not np.array_equal(one, two)
    again = run(manifest, clean.parent, views=2)  # nothing to do, each reused
    assert again.reused and [v.reused for v in again.views] == [True, True]
    assert "view 2: complete, nothing to do" in again.summary()
    other = run(manifest, clean.parent, views=1, augmentation=Augmentation(hflip=0.0))
    assert other.reused and not other.views[0].reused and other.views[0].path not in views


def test_an_interrupted_view_extraction_resumes_to_the_same_features(viewed, tmp_path, monkeypatch):
    manifest, _, views = viewed
    fresh = tmp_path / "cache"
    extract_interrupted(monkeypatch, 4 + 2, lambda: run(manifest, fresh, views=1, batch_size=32))  # 4 clean batches
    resumed = run(manifest, fresh, views=1, batch_size=32)
    assert resumed.extracted == 0 and 0 < resumed.views[0].extracted < 100  # the clean cache was complete
    assert np.array_equal(features(resumed.views[0].path), features(views[0]))


def test_training_draws_one_source_per_image_and_epoch(viewed):
    manifest, clean, views = viewed
    records = Manifest.load(manifest).split("train")
    vocab = Vocabulary.build([c for r in records for c in r.captions], min_freq=1)
    sources = [FeatureCache(p) for p in (clean, *views)]
    groups = CaptionGroups(sources[0], records, vocab, 30, sources[1:])
    drawn = []
    for epoch in range(3):
        groups.set_epoch(epoch, seed=0, captions_per_image=1)
        drawn.append(groups.source_of.copy())
        for k in range(len(groups)):
            feats, _, image = groups[k]
            s = int(groups.source_of[image])
            assert np.array_equal(feats, sources[s][int(sources[s].rows([records[image].image_id])[0])])
    assert all(set(d) == {0, 1, 2} for d in drawn) and not np.array_equal(drawn[0], drawn[1])
    plain = CaptionGroups(sources[0], records, vocab, 30)
    plain.set_epoch(0, seed=0, captions_per_image=1)
    groups.set_epoch(0, seed=0, captions_per_image=1)
    assert plain.items == groups.items  # views do not change which captions come in which batch


def _config(viewed, *extra: str):
    manifest, clean, _ = viewed
    return resolve_config("demo", None, [f"data.manifest={manifest}", f"data.cache={clean}", *FAST, *extra])


def test_a_run_on_views_records_them_and_resumes_bit_for_bit(viewed, tmp_path, monkeypatch):
    straight = loop.train(_config(viewed, "data.views=2"), tmp_path / "straight", progress=False)
    record = json.loads((tmp_path / "straight/cache.json").read_text())
    assert [v["key"] for v in record["views"]] == [p.stem.split("-")[-1] for p in viewed[2]]
    train_interrupted_after_first_epoch(monkeypatch, _config(viewed, "data.views=2"), tmp_path / "resumed")
    torch.manual_seed(99)
    resumed = loop.train(None, tmp_path / "resumed", resume=True, progress=False)
    assert resumed.steps == straight.steps
    a = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    clean = loop.train(_config(viewed), tmp_path / "clean", progress=False)  # the views change what is learned
    c = torch.load(tmp_path / "clean/checkpoints/last.pt", weights_only=False)["model"]
    assert clean.steps == straight.steps and not all(torch.equal(a[k], c[k]) for k in a)
    drop = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert drop(read_metrics(tmp_path / "straight/metrics.jsonl")) == drop(read_metrics(tmp_path / "resumed/metrics.jsonl"))


def test_missing_or_misused_views_are_refused_before_training(viewed, tmp_path):
    manifest, clean, views = viewed
    with pytest.raises(CapcacheError, match=r"views 1\.\.3 .* holds only views 1, 2; .* --views 3"):
        loop.train(_config(viewed, "data.views=3"), tmp_path / "three", progress=False)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(clean, lonely / clean.name)
    with pytest.raises(CapcacheError, match="holds none"):
        loop.train(_config(viewed, f"data.cache={lonely / clean.name}", "data.views=1"), tmp_path / "r", progress=False)
    with pytest.raises(CapcacheError, match="augmented view 1 .* pass the clean cache"):
        loop.train(_config(viewed, f"data.cache={views[0]}"), tmp_path / "v", progress=False)
    with pytest.raises(CapcacheError, match="data.views=-1"):
        loop.train(_config(viewed, "data.views=-1"), tmp_path / "n", progress=False)


def test_views_of_changed_images_are_not_used(tmp_path):
    manifest = generate_dataset(tmp_path / "data", SyntheticConfig.tiny())
    run(manifest, tmp_path / "cache", views=1)
    m = Manifest.load(manifest)
    Image.new("RGB", (64, 64), (200, 10, 10)).save(m.image_path(m.images[0]))  # another picture, another size
    fresh = run(manifest, tmp_path / "cache")  # the clean cache of the new image set
    config = resolve_config("demo", None, [f"data.manifest={manifest}", f"data.cache={fresh.path}", *FAST,
                                           "data.views=1"])
    with pytest.raises(CapcacheError, match="holds none; run the cache's extract command again with --views 1"):
        loop.train(config, tmp_path / "run", progress=False)


def test_the_cli_extracts_views_and_refuses_bad_settings(viewed, tmp_path):
    manifest = viewed[0]
    out = CliRunner().invoke(app, ["extract", str(manifest), "--encoder", "tiny-cnn", "--cache-dir",
                                   str(tmp_path / "c"), "--workers", "0", "--views", "1", "--view-hflip", "1"])
    assert out.exit_code == 0, out.output
    assert "view 1: extracted now 100" in out.output and "-view1-" in out.output
    bad = CliRunner().invoke(app, ["extract", str(manifest), "--encoder", "tiny-cnn", "--cache-dir",
                                   str(tmp_path / "c"), "--views", "1", "--view-scale", "0"])
    assert bad.exit_code != 0 and "view scale 0.0-1.0 is out of range" in bad.output
    plan = CliRunner().invoke(app, ["extract", str(manifest), "--encoder", "tiny-cnn", "--cache-dir",
                                    str(tmp_path / "c"), "--plan", "--views", "2"])
    assert plan.exit_code == 0 and "the clean cache and 2 views of the same size" in plan.output


def test_two_torchrun_ranks_make_the_same_views_in_parts(viewed, tmp_path):
    manifest, _, views = viewed
    job = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(REPO / "cli.py"), "extract", str(manifest), "--encoder", "tiny-cnn", "--cache-dir",
                          str(tmp_path), "--workers", "0", "--views", "2"],
                         cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=300)
    assert job.returncode == 0, job.stderr[-3000:]
    for view in views:  # the same names and keys, and the same bits, as one process writing one file each
        assert is_joined(tmp_path / view.name)
        assert np.array_equal(features(tmp_path / view.name), features(view))
