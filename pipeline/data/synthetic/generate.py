"""Writing the synthetic set to disk: deterministic, idempotent, never half-done.

Image ``i`` depends only on (seed, i): its scene, its pixels and its captions each come from their
own random stream, so a change to the phrasing does not move a single pixel and any image can be
rebuilt alone (tests use ``scene_for``). ``synthetic_config.json`` doubles as the completion
marker: it is written first with ``"complete": false`` and rewritten last with ``true``, so a
folder from an interrupted run, or from another config, is recognised as ours and regenerated
from scratch, while a folder that holds files but no marker is refused rather than wiped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from pipeline.data.manifest import ImageRecord, Manifest
from pipeline.data.synthetic.config import SyntheticConfig
from pipeline.data.labels import ImageLabels
from pipeline.data.synthetic.draw import draw_scene
from pipeline.data.synthetic.labels import demo_label_set, noisy_tags, scene_labels
from pipeline.data.synthetic.phrasing import describe
from pipeline.data.synthetic.scene import Scene, sample_scene
from pipeline.errors import DataError
from pipeline.io import atomic_write_json, read_json

GENERATOR_VERSION = 2  # bump whenever the same config would give different files
IMAGE_DIR = "images"
MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "synthetic_config.json"
_SCENE, _PIXELS, _WORDS, _TAGS = range(4)  # independent random streams per image


def generate_dataset(out_dir: str | Path, config: SyntheticConfig = SyntheticConfig(), name: str = "demo") -> Path:
    """Write ``images/``, ``manifest.json`` and ``synthetic_config.json`` under ``out_dir``; return
    the manifest path. Returns at once if ``out_dir`` already holds this exact set. To rebuild a set
    elsewhere: ``d = read_json(p); generate_dataset(out, SyntheticConfig(**d["config"]), d["name"])``."""
    out = Path(out_dir)
    marker = _marker(config, name)
    if _is_complete(out, config, marker):
        return out / MANIFEST_FILE
    _refuse_foreign(out)
    atomic_write_json(out / CONFIG_FILE, {**marker, "complete": False})  # from here on the folder is ours
    _remove_old_set(out)
    records = [_write_image(out, config, index) for index in
               tqdm(range(config.total), desc="synthetic images", unit="img", disable=None)]
    labels = demo_label_set({r.image_id: labels_for(config, i) for i, r in enumerate(records)})
    manifest = Manifest(name=name, image_root=IMAGE_DIR, images=records,
                        source={"format": "synthetic", **marker}, labels=labels)
    manifest.save(out / MANIFEST_FILE)
    atomic_write_json(out / CONFIG_FILE, {**marker, "complete": True})
    return out / MANIFEST_FILE


def scene_for(config: SyntheticConfig, index: int) -> Scene:
    return sample_scene(_rng(config, index, _SCENE), config.min_objects, config.max_objects, config.repeat_prob)


def image_for(config: SyntheticConfig, index: int) -> Image.Image:
    return draw_scene(scene_for(config, index), config.image_size, config.noise, _rng(config, index, _PIXELS))


def captions_for(config: SyntheticConfig, index: int) -> list[str]:
    return describe(scene_for(config, index), _rng(config, index, _WORDS))


def labels_for(config: SyntheticConfig, index: int) -> ImageLabels:
    labels = scene_labels(scene_for(config, index))
    return ImageLabels(labels, noisy_tags(labels, _rng(config, index, _TAGS)))


def image_file(config: SyntheticConfig, index: int) -> str:
    """Zero-padded so a directory listing sorts like the manifest."""
    return f"{index:0{max(5, len(str(config.total - 1)))}d}.jpg"


def _rng(config: SyntheticConfig, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, index, stream])


def _write_image(out: Path, config: SyntheticConfig, index: int) -> ImageRecord:
    file = image_file(config, index)
    path = out / IMAGE_DIR / file
    path.parent.mkdir(parents=True, exist_ok=True)
    image_for(config, index).save(path, format="JPEG", quality=config.jpeg_quality)
    return ImageRecord(image_id=Path(file).stem, file=file, split=config.split_of(index),
                       captions=captions_for(config, index))


def _marker(config: SyntheticConfig, name: str) -> dict:
    return {"generator_version": GENERATOR_VERSION, "name": name, "config": config.to_dict()}


def _is_complete(out: Path, config: SyntheticConfig, marker: dict) -> bool:
    """Complete means: finished marker for this exact config and name, manifest and every image present."""
    try:
        saved = read_json(out / CONFIG_FILE)
    except (OSError, ValueError):
        return False
    if saved != {**marker, "complete": True} or not (out / MANIFEST_FILE).is_file():
        return False
    return all((out / IMAGE_DIR / image_file(config, i)).is_file() for i in range(config.total))


def _refuse_foreign(out: Path) -> None:
    """Wiping is only safe for a folder the generator wrote; anything else may be the user's data."""
    foreign = [p.name for p in (out / IMAGE_DIR, out / MANIFEST_FILE) if p.exists()]
    if foreign and not (out / CONFIG_FILE).is_file():
        raise DataError(f"holds {' and '.join(foreign)} but no {CONFIG_FILE}, so the synthetic generator did "
                        "not write it; choose an empty or new folder, or delete those files", out)


def _remove_old_set(out: Path) -> None:
    """Stale images from a larger earlier set must not linger beside the new manifest."""
    shutil.rmtree(out / IMAGE_DIR, ignore_errors=True)
    (out / MANIFEST_FILE).unlink(missing_ok=True)
