"""A local img2dataset output folder, laid out as img2dataset 1.x writes it (rom1504/img2dataset:
``downloader.py``, ``writer.py``, ``logger.py``), for the importer's tests.

Shard N of ``--output_format webdataset`` is ``{N:05d}.tar``, written by webdataset's ``TarWriter``:
a USTAR stream (``w|``), members mode 0o444 owned by "bigdata", each sample's members in sorted
extension order (``<key>.jpg``, ``<key>.json``, ``<key>.txt``), samples in the order their
downloads finished (a thread pool's ``imap_unordered``, here a seeded shuffle). Only successful
downloads are in the tar; every row is counted in ``{N:05d}_stats.json`` (``json.dump(...,
indent=4)``), whose ``status_dict`` counts "success" and each error message. The key is
``compute_key``'s: shard × 10^ceil(log10(number_sample_per_shard)) + index in the shard, zero-padded
to 5 + that many digits (9 with the default 10,000 rows a shard). ``--output_format files`` puts
the same three files of each sample in a folder ``{N:05d}/`` instead. img2dataset also writes
``{N:05d}.parquet`` (every row's metadata); pyarrow is not a capcache dependency, so a placeholder
with parquet's magic bytes stands in for it, which the importer must ignore like the real one.
Images are tiny flat JPEGs (``jpeg``) or, for extraction, photo-like ones (``photo``).
"""

from __future__ import annotations

import io
import json
import math
import random
import tarfile
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

START = 1_700_000_000.0  # a fixed clock, so two generated folders are identical


def jpeg(index: int, size: tuple[int, int] = (12, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, ((37 * index) % 256, (91 * index) % 256, 128)).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def photo(index: int, size: tuple[int, int] = (96, 72)) -> bytes:
    """A JPEG that compresses like a photo: a lit gradient, textured, with a few soft shapes and sensor noise."""
    rng = np.random.default_rng(index)
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    light = rng.uniform(0.3, 1.0, 3) * (1 - 0.6 * np.hypot(x - rng.uniform(), y - rng.uniform()))[..., None]
    texture = 0.08 * np.sin(x * rng.uniform(10, 40) + y * rng.uniform(10, 40))[..., None]
    pixels = np.clip(255 * (light + texture) + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)  # [H, W, 3]
    img = Image.fromarray(pixels)
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = rng.integers(0, w - 8), rng.integers(0, h - 8)
        box = (x0, y0, x0 + rng.integers(8, w // 2), y0 + rng.integers(8, h // 2))
        draw.ellipse(box, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def compute_key(index: int, shard_id: int, number_sample_per_shard: int) -> str:
    oom_sample_per_shard = math.ceil(math.log10(number_sample_per_shard))
    return f"{10 ** oom_sample_per_shard * shard_id + index:0{oom_sample_per_shard + 5}d}"


def write_img2dataset_output(folder: Path, rows: Sequence[tuple[str, str]], *,
                             failures: Mapping[int, tuple[str, str]] | None = None,
                             number_sample_per_shard: int = 10000, output_format: str = "webdataset",
                             seed: int = 0, image: Callable[[int], bytes] = jpeg) -> list[Path]:
    """Write what img2dataset writes for ``rows`` of (caption, url); ``failures`` maps a row index to
    (status, error message), status failed_to_download or failed_to_resize; ``image`` makes a
    row's JPEG. Returns the shards."""
    failures = failures or {}
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    for shard_id in range(math.ceil(len(rows) / number_sample_per_shard)):
        first = shard_id * number_sample_per_shard
        indices = list(range(first, min(len(rows), first + number_sample_per_shard)))
        random.Random(seed + shard_id).shuffle(indices)  # completion order, not row order
        samples, status = [], {"success": 0}
        counts = {"count": len(indices), "successes": 0, "failed_to_download": 0, "failed_to_resize": 0}
        for row in indices:
            caption, url = rows[row]
            key = compute_key(row - first, shard_id, number_sample_per_shard)
            if row in failures:
                kind, message = failures[row]
                counts[kind] += 1
                status[message] = status.get(message, 0) + 1
                continue
            counts["successes"] += 1
            status["success"] += 1
            meta = {"caption": caption, "url": url, "key": key, "status": "success", "error_message": None,
                    "width": 12, "height": 8, "original_width": 640, "original_height": 427}
            samples.append((key, {"jpg": image(row), "json": json.dumps(meta, indent=4).encode(),
                                  "txt": caption.encode()}))
        name = f"{shard_id:05d}"
        shards.append(write_tar(folder / f"{name}.tar", samples) if output_format == "webdataset"
                      else _write_files(folder / name, samples))
        (folder / f"{name}.parquet").write_bytes(b"PAR1" + b"\0" * 8 + b"PAR1")
        stats = {**counts, "duration": 1.5, "start_time": START, "end_time": START + 1.5, "status_dict": status}
        (folder / f"{name}_stats.json").write_text(json.dumps(stats, indent=4))
    return shards


def write_tar(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> Path:
    """A shard as webdataset's TarWriter writes it: samples [(key, {extension: bytes})] in the given order."""
    with open(path, "wb") as f, tarfile.open(fileobj=f, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
        for key, parts in samples:
            for ext in sorted(parts):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime, info.mode = len(parts[ext]), START, 0o444
                info.uname = info.gname = "bigdata"
                tar.addfile(info, io.BytesIO(parts[ext]))
    return path


def _write_files(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> Path:
    path.mkdir()
    for key, parts in samples:
        for ext, data in parts.items():
            (path / f"{key}.{ext}").write_bytes(data)
    return path
