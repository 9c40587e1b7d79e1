"""The offline demo set: deterministic, true to its scenes, idempotent on disk."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.data.manifest import Manifest
from pipeline.data.synthetic import (Scene, SceneObject, SyntheticConfig, captions_for, generate_dataset,
                                     image_for, scene_for)
from pipeline.data.synthetic.draw import RGB, draw_scene
from pipeline.data.synthetic.phrasing import describe, noun_phrase, plural
from pipeline.data.synthetic.scene import COLOURS, SHAPES, SIZES
from pipeline.data.text import tokenize
from pipeline.errors import CapcacheError, DataError

TINY = SyntheticConfig.tiny()
PLACE_CELLS = {
    "top left corner": {(0, 0)}, "top right corner": {(0, 2)}, "bottom left corner": {(2, 0)},
    "bottom right corner": {(2, 2)}, "at the top": {(0, 1)}, "at the bottom": {(2, 1)},
    "on the left": {(1, 0)}, "on the right": {(1, 2)}, "in the center": {(1, 1)}, "in the middle": {(1, 1)},
}
SINGULAR = {plural(shape): shape for shape in SHAPES}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("tiny"), TINY, name="tiny")


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "images").iterdir())}


def singular(word: str) -> str:
    return SINGULAR.get(word, word)


# -- determinism --------------------------------------------------------------------------------
def test_same_seed_gives_identical_files(tiny_set: Path, tmp_path: Path):
    again = generate_dataset(tmp_path, TINY, name="tiny")
    assert file_bytes(again.parent) == file_bytes(tiny_set.parent)
    assert again.read_bytes() == tiny_set.read_bytes()


def test_other_seed_gives_other_images_and_captions(tiny_set: Path, tmp_path: Path):
    other = generate_dataset(tmp_path, SyntheticConfig.tiny(seed=1), name="tiny")
    assert file_bytes(other.parent) != file_bytes(tiny_set.parent)
    captions = lambda p: [r.captions for r in Manifest.load(p).images]  # noqa: E731
    assert captions(other) != captions(tiny_set)


# -- the manifest ---------------------------------------------------------------------------------
def test_manifest_splits_captions_and_images(tiny_set: Path):
    manifest = Manifest.load(tiny_set)
    assert manifest.split_counts() == {"train": TINY.n_train, "val": TINY.n_val, "test": TINY.n_test}
    assert json.loads(tiny_set.read_text())["image_root"] == "images"  # relative: the folder can move
    for rec in manifest.images:
        assert len(set(rec.captions)) == 5
        with Image.open(manifest.image_path(rec)) as img:
            assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (TINY.image_size, TINY.image_size))


def test_config_is_saved_so_the_set_can_be_rebuilt(tiny_set: Path, tmp_path: Path):
    saved = json.loads((tiny_set.parent / "synthetic_config.json").read_text())
    assert saved["complete"] and SyntheticConfig(**saved["config"]) == TINY
    rebuilt = generate_dataset(tmp_path, SyntheticConfig(**saved["config"]), name=saved["name"])
    assert rebuilt.read_bytes() == tiny_set.read_bytes()


# -- captions are true of the scene -------------------------------------------------------------
@pytest.mark.parametrize("index", range(TINY.total))
def test_captions_name_only_what_is_drawn(index: int):
    objects = scene_for(TINY, index).objects
    captions = captions_for(TINY, index)
    for caption in captions:
        words = {singular(w) for w in tokenize(caption)}
        assert words & set(COLOURS) <= {o.colour for o in objects}, caption
        assert words & set(SHAPES) <= {o.shape for o in objects}, caption
        assert words & set(SIZES) <= {o.size for o in objects}, caption
        for place, cells in PLACE_CELLS.items():
            if place in caption.lower():
                assert cells & {(o.row, o.col) for o in objects}, caption
    mentioned = {singular(w) for c in captions for w in tokenize(c)}
    assert {o.colour for o in objects} | {o.shape for o in objects} | {o.size for o in objects} <= mentioned


@pytest.mark.parametrize("index", range(TINY.total))
def test_counts_match_the_scene(index: int):
    kinds = Counter((o.colour, o.shape) for o in scene_for(TINY, index).objects)
    expected = {noun_phrase(n, [colour, shape]) for (colour, shape), n in kinds.items()}
    # one reference lists every colour-shape kind with its count
    assert any(all(phrase in c.lower() for phrase in expected) for c in captions_for(TINY, index))


def test_relations_are_true():
    scene = Scene((SceneObject("circle", "red", "small", 1, 0), SceneObject("square", "blue", "large", 1, 2)))
    true = {"a red circle to the left of a blue square", "a blue square to the right of a red circle"}
    for seed in range(20):
        captions = describe(scene, np.random.default_rng(seed))
        relations = [c.lower() for c in captions if "left of" in c or "right of" in c]
        assert len(relations) == 1 and any(relations[0].endswith(t) for t in true), relations


def test_grammar():
    assert noun_phrase(1, ["orange", "circle"]) == "an orange circle"
    assert noun_phrase(3, ["red", "cross"]) == "three red crosses"
    assert plural("square") == "squares"
    for index in range(TINY.total):
        for caption in captions_for(TINY, index):
            assert caption[0].isupper() and caption == caption.strip() and caption[-1].isalpha()
            assert not re.search(r"\bthere is (two|three)\b|\bthere are (a|an|one)\b|\ba [aeiou]", caption.lower())


# -- scenes and pixels ----------------------------------------------------------------------------
def test_scenes_respect_the_config():
    config = SyntheticConfig(min_objects=2, max_objects=4)
    for index in range(200):
        objects = scene_for(config, index).objects
        cells = [(o.row, o.col) for o in objects]
        assert 2 <= len(objects) <= 4 and len(set(cells)) == len(cells)  # one object per cell: no overlap
        assert cells == sorted(cells)  # reading order, as the captions list them


def test_objects_are_drawn_in_their_cells_with_their_colour():
    scene = Scene((SceneObject("circle", "red", "large", 0, 0), SceneObject("square", "yellow", "large", 2, 1)))
    pixels = np.asarray(draw_scene(scene, 96, 0.0, np.random.default_rng(0)), dtype=int)

    def cell_mean(row: int, col: int) -> np.ndarray:  # the middle 8 x 8 pixels of a 32-pixel cell
        return pixels[row * 32 + 12:row * 32 + 20, col * 32 + 12:col * 32 + 20].mean((0, 1))
    assert np.abs(cell_mean(0, 0) - RGB["red"]).max() < 25
    assert np.abs(cell_mean(2, 1) - RGB["yellow"]).max() < 25
    background = cell_mean(1, 1)
    assert np.ptp(background) < 1 and background[0] < 80  # an empty cell is plain dark grey


def test_image_for_matches_the_written_file(tiny_set: Path):
    coarse = lambda img: np.asarray(img.reduce(8), dtype=int)  # averages away noise and JPEG loss  # noqa: E731
    with Image.open(tiny_set.parent / "images" / Manifest.load(tiny_set).images[7].file) as img:
        on_disk = coarse(img)
    error = lambda index: np.abs(on_disk - coarse(image_for(TINY, index))).max()  # noqa: E731
    assert error(7) < 10 < error(8)


# -- idempotent writing ---------------------------------------------------------------------------
def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_second_call_is_fast_and_rewrites_nothing(tiny_set: Path):
    before = mtimes(tiny_set.parent)
    start = time.perf_counter()
    assert generate_dataset(tiny_set.parent, TINY, name="tiny") == tiny_set
    assert time.perf_counter() - start < 0.5
    assert mtimes(tiny_set.parent) == before


def test_other_config_regenerates_cleanly(tmp_path: Path):
    generate_dataset(tmp_path, TINY)
    smaller = SyntheticConfig(n_train=10, n_val=5, n_test=5, image_size=48)
    manifest = Manifest.load(generate_dataset(tmp_path, smaller))
    assert len(manifest.images) == 20 and len(list((tmp_path / "images").iterdir())) == 20  # no stale files
    with Image.open(manifest.image_path(manifest.images[0])) as img:
        assert img.size == (48, 48)


def test_interrupted_set_is_regenerated(tmp_path: Path):
    manifest = generate_dataset(tmp_path, TINY)
    marker = tmp_path / "synthetic_config.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "complete": False}))
    (tmp_path / "images" / "00003.jpg").unlink()
    generate_dataset(tmp_path, TINY)
    assert (tmp_path / "images" / "00003.jpg").is_file() and json.loads(marker.read_text())["complete"]
    assert Manifest.load(manifest).split_counts()["train"] == TINY.n_train


def test_refuses_a_folder_it_did_not_write(tmp_path: Path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "holiday.jpg").write_bytes(b"mine")
    with pytest.raises(DataError, match="synthetic_config.json"):
        generate_dataset(tmp_path, TINY)
    assert (tmp_path / "images" / "holiday.jpg").read_bytes() == b"mine"


@pytest.mark.parametrize("bad", [dict(n_train=-1), dict(image_size=16), dict(min_objects=3, max_objects=2),
                                 dict(max_objects=10), dict(repeat_prob=1.5)])
def test_bad_config_is_refused(bad: dict):
    with pytest.raises(CapcacheError):
        SyntheticConfig(**bad)
