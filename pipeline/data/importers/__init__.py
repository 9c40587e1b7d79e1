"""Importers for the caption formats people actually have, all producing the same ``Manifest``.

``import_dataset`` is the one entry point: it runs the format's importer, drops images whose file
is not on disk (a manifest that names absent images fails much later, mid-training, with a worse
message), and saves the manifest atomically when asked to. The web-scale formats (Conceptual
Captions, img2dataset) are ``StreamedImporter``s instead: their inputs go by split, they have no
image folder to check, and their records are written to a JSON Lines manifest as they are read
(``streamed``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

from pipeline.data.importers.coco import import_coco
from pipeline.data.importers.conceptual_captions import import_conceptual_captions
from pipeline.data.importers.flickr30k_csv import import_flickr30k_csv
from pipeline.data.importers.flickr8k import import_flickr8k
from pipeline.data.importers.img2dataset import import_img2dataset
from pipeline.data.importers.intake import ImportOptions, Parsed, listing, located
from pipeline.data.importers.kaggle import import_kaggle
from pipeline.data.importers.karpathy import import_karpathy
from pipeline.data.importers.labels_csv import import_labels_csv
from pipeline.data.importers.nus_wide import import_nus_wide
from pipeline.data.importers.report import ImportResult
from pipeline.data.importers.streamed import StreamedImporter, import_streamed
from pipeline.data.manifest import SPLITS, Manifest
from pipeline.data.manifest_lines import SUFFIX
from pipeline.errors import DataError

__all__ = ["IMPORTERS", "ImportResult", "import_dataset", "manifest_path"]

IMPORTERS: dict[str, Callable[[Path, ImportOptions], Parsed] | StreamedImporter] = {
    "karpathy": import_karpathy,
    "flickr8k": import_flickr8k,
    "kaggle": import_kaggle,
    "flickr30k-csv": import_flickr30k_csv,
    "coco": import_coco,
    "nus-wide": import_nus_wide,
    "labels-csv": import_labels_csv,
    "conceptual-captions": import_conceptual_captions,
    "img2dataset": import_img2dataset,
}


def import_dataset(
    fmt: str,
    path: str | Path | Sequence[str | Path],
    images: str | Path | None,
    name: str,
    out: str | Path | None = None,
    split_seed: int = 0,
    split_ratios: Sequence[float] = (0.8, 0.1, 0.1),
    check_files: bool = True,
    *,
    split: str | None = None,
    val: Sequence[str | Path] = (),
    test: Sequence[str | Path] = (),
    split_files: Mapping[str, str | Path] | None = None,
    karpathy_split: str | Path | None = None,
) -> ImportResult:
    """Import one caption file of format ``fmt``; images are looked up under ``images``.

    ``split_seed``/``split_ratios`` apply only where a random split is drawn (kaggle files that
    are not Flickr8k, labels CSVs without a split column; NUS-WIDE's val draw uses the seed);
    ``split`` names a COCO file's split when its name does not; ``split_files``
    gives Flickr8k's split lists when they are not beside the token file; ``karpathy_split``
    names the dataset_flickr30k.json whose split a flickr30k-csv file takes.

    A streamed format reads ``path`` (one or several inputs) into ``split`` (default train) and
    ``val``/``test`` into those splits, takes no ``images``, and writes ``out`` (a .jsonl path).
    """
    importer = IMPORTERS.get(fmt)
    if importer is None:
        raise DataError(f"unknown format {fmt!r}; use one of {', '.join(IMPORTERS)}")
    streamed = tuple(f for f, i in IMPORTERS.items() if isinstance(i, StreamedImporter))
    for option, value, owners in (("split", split, ("coco", *streamed)), ("split_files", split_files, ("flickr8k",)),
                                  ("karpathy_split", karpathy_split, ("flickr30k-csv",)),
                                  ("val", val or None, streamed), ("test", test or None, streamed)):
        if value is not None and fmt not in owners:
            also = f" (and to {', '.join(owners[1:])})" if owners[1:] else ""
            raise DataError(f"{option} applies to the {owners[0]} format only{also}, not to {fmt}")
    paths = [Path(p) for p in ([path] if isinstance(path, (str, os.PathLike)) else path)]
    if isinstance(importer, StreamedImporter):
        if images is not None:
            raise DataError(f"the {fmt} format has no image folder to give (its inputs say where the images are); "
                            "leave out --images")
        if out is None:
            raise DataError(f"the {fmt} format is written straight to its manifest; give out (a {SUFFIX} path)")
        return import_streamed(importer, _inputs_by_split(paths, split, val, test), name, Path(out))
    if len(paths) != 1:
        raise DataError(f"the {fmt} format reads one caption file; got {len(paths)}")
    if images is None:
        raise DataError(f"the {fmt} format needs the folder holding the image files (--images)")
    root = Path(os.path.abspath(images))
    if check_files and not root.is_dir():
        raise DataError("image folder not found", root)
    files = {s: Path(p) for s, p in split_files.items()} if split_files is not None else None
    parsed = importer(paths[0], ImportOptions(split_seed, tuple(split_ratios), split, files,
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
        raise DataError(f"{problem}; check the format and the images path {str(root)!r}", paths[0])
    labels = parsed.labels.restricted_to({r.image_id for r in kept}) if parsed.labels is not None else None
    manifest = Manifest(name=name, image_root=str(root), images=kept, source=parsed.source, labels=labels)
    if out is not None:
        manifest.save(out)
    return ImportResult.built(manifest, warnings, missing, skipped, Path(out) if out is not None else None)


def _inputs_by_split(paths: list[Path], split: str | None, val: Sequence[str | Path],
                     test: Sequence[str | Path]) -> dict[str, list[Path]]:
    if split is not None and split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    inputs: dict[str, list[Path]] = {}
    for s, given in ((split or "train", paths), ("val", val), ("test", test)):
        if given:
            if s in inputs:
                raise DataError(f"the {s} split is given twice (as the split of the inputs, and its own option); "
                                "give its inputs once")
            inputs[s] = [Path(p) for p in given]
    return inputs


def manifest_path(out: str, fmt: str) -> Path:
    """Where ``capcache import --out`` saves: a .json or .jsonl path as given, else
    data_manifests/NAME.json, or NAME.jsonl for a streamed format."""
    if out.endswith((".json", SUFFIX)):
        return Path(out)
    streamed = isinstance(IMPORTERS.get(fmt), StreamedImporter)
    return Path("data_manifests") / f"{out}{SUFFIX if streamed else '.json'}"
