"""What an import did, in a form a person can check before training on it.

Importers keep going past small problems (a blank caption, a missing image), so the result has
to say what was left out and why; otherwise a manifest 92 images short looks like a complete one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from pipeline.data.importers.intake import SHOWN, listing
from pipeline.data.manifest import SPLITS, ImageRecord, Manifest


@dataclass
class Tally:
    """What the summary says about a manifest's images, counted one record at a time, so that a
    streamed import (whose records are never all in memory) can report exactly as any other."""

    name: str
    format: str
    images: int = 0
    captions: int = 0
    fewest: int = 0  # captions of the image with the fewest
    most: int = 0
    per_split: Counter = field(default_factory=Counter)
    labels: str | None = None  # the labels line, for a manifest with a labels section

    def add(self, record: ImageRecord) -> None:
        n = len(record.captions)
        if n < self.fewest or not self.images:
            self.fewest = n
        if n > self.most:
            self.most = n
        self.images += 1
        self.captions += n
        self.per_split[record.split] += 1

    def add_all(self, records: Iterable[ImageRecord]) -> "Tally":
        for record in records:
            self.add(record)
        return self

    @classmethod
    def of(cls, m: Manifest) -> "Tally":
        labels = (f"{len(m.labels.classes)} classes, {len(m.labels.tags)} tags, "
                  f"{sum(bool(e.labels) for e in m.labels.images.values()):,} labelled images") if m.labels else None
        return cls(m.name, m.source.get("format", "?"), labels=labels).add_all(m.images)


@dataclass
class ImportResult:
    tally: Tally
    warnings: list[str] = field(default_factory=list)  # each "file:line: message" (or "file: entry: message")
    missing_files: list[str] = field(default_factory=list)  # image files, relative to manifest.image_root
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> how many captions, images or shards
    notes: list[str] = field(default_factory=list)  # information, not problems (img2dataset's failed downloads)
    path: Path | None = None  # where the manifest was saved
    held: Manifest | None = None  # the manifest, when it was built in memory (a streamed one never is)

    @classmethod
    def built(cls, manifest: Manifest, warnings: list[str], missing_files: list[str], skipped: dict[str, int],
              path: Path | None) -> "ImportResult":
        """The result of an import that built its manifest in memory."""
        return cls(Tally.of(manifest), warnings, missing_files, skipped, path=path, held=manifest)

    @property
    def manifest(self) -> Manifest:
        """The imported manifest; a streamed import's is read back from its file on first use."""
        if self.held is None:
            self.held = Manifest.load(self.path)
        return self.held

    def summary(self) -> str:
        t = self.tally
        per_split = ", ".join(f"{split} {t.per_split[split]:,}" for split in SPLITS if t.per_split[split])
        lines = [
            f"manifest {t.name!r} ({t.format} format): {t.images:,} images",
            f"  images per split: {per_split or 'none'}",
            f"  captions per image: min {t.fewest}, mean {t.captions / max(t.images, 1):.2f}, max {t.most}",
            f"  total captions: {t.captions:,}",
            *([f"  labels: {t.labels}"] if t.labels else []),
            *(f"  {note}" for note in self.notes),
            f"  skipped: {', '.join(f'{reason} {n:,}' for reason, n in sorted(self.skipped.items())) or 'nothing'}",
            f"  missing image files: {len(self.missing_files):,}"
            + (f" ({listing(self.missing_files)})" if self.missing_files else ""),
            f"  warnings: {len(self.warnings):,}" + (f" (first {SHOWN} shown)" if len(self.warnings) > SHOWN else ""),
        ]
        lines += [f"    {w}" for w in self.warnings[:SHOWN]]
        return "\n".join(lines)
