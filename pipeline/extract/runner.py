"""The extraction loop: manifest + encoder -> a complete, resumable cache file.

Batches are decoded by DataLoader workers, run through the frozen encoder under inference mode
(channels_last, fp16 autocast on CUDA), and written by a background thread. Re-running with the
same settings finds the complete cache and returns at once; after an interruption it continues
with the rows not yet written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pipeline.cache import hdf5
from pipeline.cache.key import CacheSpec, image_digests
from pipeline.cache.writer import CacheWriter
from pipeline.data.manifest import Manifest
from pipeline.device import resolve_device
from pipeline.encoders import build_encoder
from pipeline.encoders.base import FrozenEncoder
from pipeline.extract.background import BackgroundWriter
from pipeline.extract.images import ImageFiles
from pipeline.io import atomic_write_json, read_json


@dataclass
class ExtractResult:
    path: Path
    key: str
    n_images: int
    extracted: int  # rows written by this run
    bad: list[dict] = field(default_factory=list)  # {"image_id", "file", "error"}
    seconds: float = 0.0
    reused: bool = False

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    @property
    def images_per_s(self) -> float:
        return self.extracted / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        if self.reused:
            return f"cache is complete and matches these settings (key {self.key}); nothing to do"
        lines = [f"images: {self.n_images}, extracted now: {self.extracted}, skipped as bad: {len(self.bad)}",
                 f"size on disk: {self.size_bytes / 2**20:.1f} MiB, speed: {self.images_per_s:.1f} images/s"]
        lines += [f"  bad: {b['file']}: {b['error']}" for b in self.bad[:10]]
        if len(self.bad) > 10:
            lines.append(f"  ... and {len(self.bad) - 10} more, listed in {self.path.with_suffix('.json')}")
        return "\n".join(lines)


def cache_spec(manifest: Manifest, encoder: FrozenEncoder, dtype: str) -> CacheSpec:
    image_set, image_names = image_digests(manifest)
    return CacheSpec(encoder=encoder.describe(), dtype=dtype, image_set=image_set, image_names=image_names,
                     n_images=len(manifest.images))


def cache_path_for(cache_dir: str | Path, manifest: Manifest, spec: CacheSpec) -> Path:
    return Path(cache_dir) / f"{spec.encoder['encoder']}-{manifest.name}-{spec.key}.h5"


def extract(manifest: Manifest, encoder: str, weights: str | None = None, grid: int | None = None,
            cache_dir: str | Path = "cache", batch_size: int = 32, workers: int = 2,
            device: str = "auto", dtype: str = "float16", progress: bool = True) -> ExtractResult:
    model = build_encoder(encoder, weights, grid)
    spec = cache_spec(manifest, model, dtype)
    path = cache_path_for(cache_dir, manifest, spec)
    report_path = path.with_suffix(".json")
    if report_path.exists() and read_json(report_path).get("complete") and path.exists():
        report = read_json(report_path)
        return ExtractResult(path, spec.key, spec.n_images, 0, report.get("bad", []), reused=True)

    dev = resolve_device(device)
    model = model.to(dev).to(memory_format=torch.channels_last)
    n_tokens, dim = _output_shape(model, dev)
    ids = [r.image_id for r in manifest.images]
    files = [manifest.image_path(r) for r in manifest.images]
    start = time.perf_counter()
    with CacheWriter(path, spec, ids, n_tokens, dim) as writer:
        todo = writer.rows_to_do()
        images = ImageFiles(files, todo, model.preprocessing.transform(), model.preprocessing.crop)
        loader = DataLoader(images, batch_size=batch_size, num_workers=workers, pin_memory=dev.type == "cuda",
                            persistent_workers=False)
        bad_rows = _run(model, loader, writer, dev, len(todo), progress)
        status = writer.status_array()
    bad = [{"image_id": ids[r], "file": str(manifest.images[r].file), "error": err} for r, err in sorted(bad_rows.items())]
    result = ExtractResult(path, spec.key, spec.n_images, int(len(todo) - len(bad_rows)), bad,
                           seconds=time.perf_counter() - start)
    atomic_write_json(report_path, {
        "key": spec.key, "spec": spec.to_dict(), "manifest": manifest.name,
        "complete": bool(np.all(status != hdf5.PENDING)),
        "n_images": spec.n_images, "n_done": int((status == hdf5.DONE).sum()), "bad": bad,
    })
    return result


def _run(model: FrozenEncoder, loader: DataLoader, writer: CacheWriter, dev: torch.device,
         total: int, progress: bool) -> dict[int, str]:
    bad: dict[int, str] = {}
    background = BackgroundWriter(writer.write)
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=dev.type == "cuda")
    try:
        with torch.inference_mode(), autocast, tqdm(total=total, desc="extract", unit="img", disable=not progress) as bar:
            for rows, images, errors in loader:  # rows [B], images [B, 3, S, S], errors: B strings
                ok = np.array([e == "" for e in errors])
                rows = rows.numpy()
                if not ok.all():
                    writer_rows = rows[~ok]
                    bad.update({int(r): e for r, e in zip(writer_rows, np.array(errors)[~ok])})
                    writer.mark_bad(writer_rows)
                if ok.any():
                    batch = images[torch.from_numpy(ok)].to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
                    feats = model(batch).float().cpu().numpy()  # [b, L, D]
                    background.put(rows[ok], feats)
                bar.update(len(rows))
    finally:
        background.close()
    return bad


def _output_shape(model: FrozenEncoder, dev: torch.device) -> tuple[int, int]:
    """(L, D) of the encoder's output, from one dummy image."""
    size = model.preprocessing.crop
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, size, size, device=dev))  # [1, L, D]
    return out.shape[1], out.shape[2]
