"""What an import did, in a form a person can check before training on it.

Importers keep going past small problems (a blank caption, a missing image), so the result has
to say what was left out and why; otherwise a manifest 92 images short looks like a complete one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.data.importers.intake import SHOWN, listing
from pipeline.data.manifest import Manifest


@dataclass
class ImportResult:
    manifest: Manifest
    warnings: list[str] = field(default_factory=list)  # each "file:line: message" (or "file: entry: message")
    missing_files: list[str] = field(default_factory=list)  # image files, relative to manifest.image_root
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> how many captions or images

    def summary(self) -> str:
        m = self.manifest
        counts = [len(r.captions) for r in m.images]
        total = sum(counts)
        per_split = ", ".join(f"{split} {n:,}" for split, n in m.split_counts().items())
        lines = [
            f"manifest {m.name!r} ({m.source.get('format', '?')} format): {len(m.images):,} images",
            f"  images per split: {per_split or 'none'}",
            f"  captions per image: min {min(counts, default=0)}, mean {total / max(len(counts), 1):.2f}, "
            f"max {max(counts, default=0)}",
            f"  total captions: {total:,}",
            *([f"  labels: {len(m.labels.classes)} classes, {len(m.labels.tags)} tags, "
               f"{sum(bool(e.labels) for e in m.labels.images.values()):,} labelled images"] if m.labels else []),
            f"  skipped: {', '.join(f'{reason} {n:,}' for reason, n in sorted(self.skipped.items())) or 'nothing'}",
            f"  missing image files: {len(self.missing_files):,}"
            + (f" ({listing(self.missing_files)})" if self.missing_files else ""),
            f"  warnings: {len(self.warnings):,}" + (f" (first {SHOWN} shown)" if len(self.warnings) > SHOWN else ""),
        ]
        lines += [f"    {w}" for w in self.warnings[:SHOWN]]
        return "\n".join(lines)
