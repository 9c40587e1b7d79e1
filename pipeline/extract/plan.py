"""`capcache extract --plan`: what an extraction would write and who would write it, before it starts.

For a dataset the size of COCO or Conceptual Captions a user wants to know, before hours of GPU
time, how large the cache will be, whether the disk holds it, how many images are missing, and
how the parts fall to the processes of a torchrun job. Nothing is written to the cache folder: the
files are stat'ed, and the encoder's description and output shape come from ``encoder_facts``
(built and run on a dummy image once per machine and settings, then remembered).
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.cache import hdf5
from pipeline.cache.contents import MISSING, file_stats
from pipeline.cache.parts import parts_folder
from pipeline.data.image_source import holding_name
from pipeline.data.manifest import Manifest
from pipeline.extract.api import MOST_MISSING
from pipeline.extract.encoder_facts import encoder_facts
from pipeline.extract.partition import cut, default_rows_per_part, recorded_partition
from pipeline.extract.result import cache_path_for, described_cache_spec


@dataclass
class ExtractionPlan:
    cache: str
    images: int
    missing_files: int
    tokens: int  # L
    dim: int  # D
    pooled_dim: int | None
    dtype: str
    estimated_bytes: int  # an upper bound (``hdf5.estimated_bytes``), of the clean cache and its views together
    free_bytes: int  # on the cache folder's disk now
    state: str  # "new", "complete", "incomplete" or "in parts"
    processes: int
    rows_per_part: int
    parts: int
    rows_per_process: tuple[int, int]  # (fewest, most) rows a process writes
    parts_of_process: dict[int, list[int]]  # rank -> part indices (the first 8 ranks)
    encoder_remembered: bool = False  # the encoder's shape came from an earlier plan, not from building it
    views: int = 0  # augmented views cached beside the clean features (``extract --views``), each as large

    def summary(self) -> str:
        fewest, most = self.rows_per_process
        ranks = "; ".join(f"rank {r}: parts {_listed(p)}" for r, p in self.parts_of_process.items())
        fits = "fits" if self.estimated_bytes <= self.free_bytes else "DOES NOT FIT: free space or pick another --cache-dir"
        return "\n".join([
            f"cache:     {self.cache} ({self.state})",
            f"images:    {self.images}, " + _missing(self.missing_files, self.images),
            f"features:  {self.images} x {self.tokens} x {self.dim} {self.dtype}"
            + (f", pooled {self.pooled_dim}" if self.pooled_dim else ""),
            f"size:      at most {self.estimated_bytes / 2**30:.2f} GiB"
            + (f" (the clean cache and {self.views} views of the same size)" if self.views else "")
            + f"; {self.free_bytes / 2**30:.1f} GiB free: {fits}",
            f"parts:     {self.parts} of up to {self.rows_per_part} rows (used under torchrun, or once started in parts)",
            f"processes: {self.processes}: {fewest}-{most} rows each; {ranks}"
            + (" ..." if self.processes > len(self.parts_of_process) else ""),
        ])

    def to_dict(self) -> dict:
        return asdict(self)


def plan_extraction(manifest: Manifest, encoder: str, weights: str | None, grid: int | None, cache_dir: str | Path,
                    dtype: str, processes: int, rows_per_part: int | None, views: int = 0) -> ExtractionPlan:
    manifest.require_image_files()
    facts, remembered = encoder_facts(encoder, weights, grid)
    stats = file_stats(manifest.image_files())  # [N, 2]
    spec = described_cache_spec(manifest, facts.description, dtype, stats)
    path = cache_path_for(cache_dir, manifest, spec)
    n = len(manifest.images)
    partition = recorded_partition(path) or cut([holding_name(r) for r in manifest.images],
                                                rows_per_part or default_rows_per_part(n, processes))
    folder = Path(cache_dir)
    while not folder.exists():  # the disk it would be created on
        folder = folder.parent
    rows = [partition.rows_of_rank(r, processes) for r in range(processes)]
    return ExtractionPlan(
        cache=str(path), images=n, missing_files=int((stats[:, 0] == MISSING).sum()), tokens=facts.tokens,
        dim=facts.dim, pooled_dim=facts.pooled_dim, dtype=dtype,
        estimated_bytes=(1 + views) * hdf5.estimated_bytes(n, facts.tokens, facts.dim, facts.pooled_dim, dtype,
                                                           sum(len(r.image_id) + len(r.file) for r in manifest.images)),
        free_bytes=shutil.disk_usage(folder).free, state=_state(path), processes=processes,
        rows_per_part=partition.rows_per_part, parts=partition.n_parts, rows_per_process=(min(rows), max(rows)),
        parts_of_process={r: partition.of_rank(r, processes) for r in range(min(processes, 8))},
        encoder_remembered=remembered, views=views)


def _state(path: Path) -> str:
    if parts_folder(path).is_dir():
        return "in parts"
    if not path.is_file():
        return "new"
    try:
        with hdf5.open_for_reading(path) as f:
            return "complete" if not (f[hdf5.STATUS][:] == hdf5.PENDING).any() else "incomplete"
    except Exception as e:  # noqa: BLE001  (a plan reports, it does not fail on a busy or damaged file)
        return f"unreadable: {e}"


def _missing(missing: int, images: int) -> str:
    if not missing:
        return "all files present"
    if missing > MOST_MISSING * images:
        return f"{missing} files missing: extract would refuse (is the image folder right?)"
    return f"{missing} files missing (extract skips them as bad)"


def _listed(parts: list[int]) -> str:
    if not parts:
        return "none"
    return ", ".join(map(str, parts[:6])) + (f" ... ({len(parts)} parts)" if len(parts) > 6 else "")
