"""A finished extraction asked for again is answered from its report, without torch or the encoder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pipeline.extract.reuse as reuse
import pipeline.extract.runner as runner
from pipeline.cache.contents import file_stats
from pipeline.data.manifest import ImageRecord, Manifest
from pipeline.extract import extract

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def manifest(tmp_path: Path) -> Manifest:
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    return Manifest("three", str(folder), [ImageRecord(f"{i}.jpg", f"{i}.jpg", "train", ["x"]) for i in range(3)])


def run(manifest: Manifest, cache: Path, **kwargs):
    return extract(manifest, "tiny-cnn", cache_dir=cache, workers=0, progress=False, **kwargs)


def test_the_same_request_is_answered_from_the_report(manifest, tmp_path, monkeypatch):
    first = run(manifest, tmp_path / "c")
    monkeypatch.setattr(runner, "build_encoder", lambda *a: pytest.fail("the encoder was built"))
    again = run(manifest, tmp_path / "c")
    assert again.reused and again.path == first.path and again.key == first.key


def test_another_spelling_takes_the_full_check_once_then_the_fast_path(manifest, tmp_path, monkeypatch):
    first = run(manifest, tmp_path / "c")  # default weights: random:0
    spelled = run(manifest, tmp_path / "c", weights="random:0")  # the same network: full check, same key
    assert spelled.reused and spelled.path == first.path
    assert len(json.loads(first.path.with_suffix(".json").read_text())["requests"]) == 2
    monkeypatch.setattr(runner, "build_encoder", lambda *a: pytest.fail("the encoder was built"))
    assert run(manifest, tmp_path / "c", weights="random:0").reused


def test_changed_images_or_versions_are_never_answered_from_the_report(manifest, tmp_path, monkeypatch):
    first = run(manifest, tmp_path / "c")
    versions = reuse.library_versions()
    monkeypatch.setattr(reuse, "library_versions", lambda: {**versions, "capcache": "another"})
    stats = file_stats([manifest.image_path(r) for r in manifest.images])
    assert reuse.answered(tmp_path / "c", manifest, "tiny-cnn",
                          reuse.request_digest(manifest, "tiny-cnn", None, None, "float16"), stats) is None
    assert run(manifest, tmp_path / "c").reused  # the full check finds the same key: reused all the same
    monkeypatch.undo()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(Path(manifest.image_root) / "1.jpg")  # new content, new size
    changed = run(manifest, tmp_path / "c")  # the same cache, that one row redone
    assert not changed.reused and changed.path == first.path and changed.extracted == 1
    assert changed.changed == ["1.jpg"] and "1 images changed" in changed.summary()


def test_an_unreadable_report_falls_back_to_the_full_check_and_is_rewritten(manifest, tmp_path):
    first = run(manifest, tmp_path / "c")
    report = first.path.with_suffix(".json")
    report.write_text("{ not json")
    again = run(manifest, tmp_path / "c")
    assert again.path == first.path and again.extracted == 0  # every row was already written
    assert json.loads(report.read_text())["complete"] is True


def test_a_read_only_cache_folder_is_reused_all_the_same(manifest, tmp_path, monkeypatch):
    first = run(manifest, tmp_path / "c", weights="random:0")

    def read_only(*args):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(reuse, "atomic_write_json", read_only)
    again = run(manifest, tmp_path / "c")  # another spelling: full check, and its request cannot be recorded
    assert again.reused and again.path == first.path


def test_a_repeated_request_does_not_import_torch(manifest, tmp_path):
    run(manifest, tmp_path / "c")
    manifest_path = manifest.save(tmp_path / "m.json")
    code = ("import sys; from pipeline.data.manifest import Manifest; from pipeline.extract import extract; "
            f"r = extract(Manifest.load({str(manifest_path)!r}), 'tiny-cnn', cache_dir={str(tmp_path / 'c')!r}); "
            "print(r.reused, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
