"""Importers for the caption formats people actually have, all producing the same ``Manifest``.

``import_dataset`` is the one entry point: it runs the format's importer, drops images whose file
is not on disk (a manifest that names absent images fails much later, mid-training, with a worse
message), and saves the manifest atomically when asked to.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

from pipeline.data.importers.coco import import_coco
from pipeline.data.importers.flickr30k_csv import import_flickr30k_csv
from pipeline.data.importers.flickr8k import import_flickr8k
from pipeline.data.importers.intake import ImportOptions, Parsed, listing, located
from pipeline.data.importers.kaggle import import_kaggle
from pipeline.data.importers.karpathy import import_karpathy
from pipeline.data.importers.labels_csv import import_labels_csv
from pipeline.data.importers.nus_wide import import_nus_wide
from pipeline.data.importers.report import ImportResult
from pipeline.data.manifest import Manifest
from pipeline.errors import DataError

__all__ = ["IMPORTERS", "ImportResult", "import_dataset"]

IMPORTERS: dict[str, Callable[[Path, ImportOptions], Parsed]] = {
    "karpathy": import_karpathy,
    "flickr8k": import_flickr8k,
    "kaggle": import_kaggle,
    "flickr30k-csv": import_flickr30k_csv,
    "coco": import_coco,
    "nus-wide": import_nus_wide,
    "labels-csv": import_labels_csv,
}


def import_dataset(
    fmt: str,
    path: str | Path,
    images: str | Path,
    name: str,
    out: str | Path | None = None,
    split_seed: int = 0,
    split_ratios: Sequence[float] = (0.8, 0.1, 0.1),
    check_files: bool = True,
    *,
    split: str | None = None,
    split_files: Mapping[str, str | Path] | None = None,
    karpathy_split: str | Path | None = None,
) -> ImportResult:
    """Import one caption file of format ``fmt``; images are looked up under ``images``.

    ``split_seed``/``split_ratios`` apply only where a random split is drawn (kaggle files that
    are not Flickr8k, labels CSVs without a split column; NUS-WIDE's val draw uses the seed);
    ``split`` names a COCO file's split when its name does not; ``split_files``
    gives Flickr8k's split lists when they are not beside the token file; ``karpathy_split``
    names the dataset_flickr30k.json whose split a flickr30k-csv file takes.
    """
    importer = IMPORTERS.get(fmt)
    if importer is None:
        raise DataError(f"unknown format {fmt!r}; use one of {', '.join(IMPORTERS)}")
    for option, value, owner in (("split", split, "coco"), ("split_files", split_files, "flickr8k"),
                                 ("karpathy_split", karpathy_split, "flickr30k-csv")):
        if value is not None and fmt != owner:
            raise DataError(f"{option} applies to the {owner} format only, not to {fmt}")
    root = Path(os.path.abspath(images))
    if check_files and not root.is_dir():
        raise DataError("image folder not found", root)
    files = {s: Path(p) for s, p in split_files.items()} if split_files is not None else None
    parsed = importer(Path(path), ImportOptions(split_seed, tuple(split_ratios), split, files,
                                                Path(karpathy_split) if karpathy_split is not None else None))
    missing = [r.file for r in parsed.images if not (root / r.file).is_file()] if check_files else []
    warnings, skipped = list(parsed.warnings), dict(parsed.skipped)
    if missing:
        warnings.append(located(root, None, f"{len(missing)} image files not found, left out: {listing(missing)}"))
        skipped["missing_file"] = len(missing)
    gone = set(missing)
    kept = [r for r in parsed.images if r.file not in gone]
    if not kept:
        problem = "none of its images is in the image folder" if parsed.images else "no images with captions or labels found"
        raise DataError(f"{problem}; check the format and the images path {str(root)!r}", path)
    labels = parsed.labels.restricted_to({r.image_id for r in kept}) if parsed.labels is not None else None
    manifest = Manifest(name=name, image_root=str(root), images=kept, source=parsed.source, labels=labels)
    if out is not None:
        manifest.save(out)
    return ImportResult(manifest, warnings, missing, skipped)
