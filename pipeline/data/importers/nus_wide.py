"""NUS-WIDE (Chua et al., 2009) in its published folder layout: Flickr images, 81 concepts, 1k user tags.

``path`` is the dataset folder. What is read from it:

- ``ImageList/Imagelist.txt``: every image, as a Windows path
  (``C:\\ImageData\\Flickr\\actor\\0001_2124494179.jpg``); the part after ``Flickr\\`` is the file,
  relative to the image folder, and its stem the image id.
- ``ImageList/TrainImagelist.txt`` and ``TestImagelist.txt``: the official split, which every published
  NUS-WIDE result uses, so it is kept as it is.
- ``Concepts81.txt`` (at the root or in ``ConceptsList/``): the class names, in column order.
- the labels, in the first of the three layouts the releases come in that is present:
  ``Groundtruth/TrainTestLabels/Labels_<concept>_{Train,Test}.txt`` (one 0/1 per line, in split-list
  order), ``Groundtruth/AllLabels/Labels_<concept>.txt`` (one 0/1 per line, Imagelist order), or
  ``Groundtruth/AllLabels81.txt`` (one row of 0/1 per image, Imagelist order).
- optionally ``NUS_WID_Tags/AllTags1k.txt`` (one row of 1000 0/1 per image, Imagelist order), the noisy
  user tags, named by ``TagList1k.txt`` (in ``NUS_WID_Tags/`` or ``ConceptsList/``).

NUS-WIDE has no validation split; a model still needs one to choose its threshold and to stop early
without looking at test, so ``val`` is carved out of train: a seeded draw (``split_seed``) of 10 % of
the train images (``val_fraction``), the share the default random split gives val: about 16,000 images,
plenty to set a threshold on, while train stays close to the official one. ``split_ratios`` does not
apply: train and test are the official ones.

Images with no label among the concepts are left out (the seed thesis, Table 4.1: every image has at
least one label); images with no tag are kept, since a missing tag is ordinary user behaviour.

Every file is positional (line ``i`` is image ``i`` of some list), so anything that could shift the
lines (a value other than 0/1, a blank line inside a file, a line count other than the list's) is an
error: reading on would silently give images each other's labels. The 0/1 files are parsed with bytes
operations rather than a Python int per value (see below): the whole 269,648-image set, tag matrix
included, imports in about 11 s on two CPU cores, the 540 MB tag matrix taking 3.4 s of it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.data.importers.intake import (FirstSeen, ImportOptions, Intake, Parsed, fail, is_image_name, listing,
                                              located)
from pipeline.data.importers.reading import text_lines
from pipeline.data.labels import ImageLabels, LabelSet
from pipeline.errors import DataError

IMAGE_LIST = "ImageList/Imagelist.txt"
SPLIT_LISTS = {"train": "ImageList/TrainImagelist.txt", "test": "ImageList/TestImagelist.txt"}
CONCEPT_NAMES = ("Concepts81.txt", "ConceptsList/Concepts81.txt")
TAG_MATRIX = "NUS_WID_Tags/AllTags1k.txt"
TAG_NAMES = ("NUS_WID_Tags/TagList1k.txt", "ConceptsList/TagList1k.txt")
VAL_FRACTION = 0.1  # of the train images; see the module docstring

BLANK = b" \t\r"  # what may separate or surround values on a line; deleted before the values are checked
SPACE = BLANK + b"\n"
TOUCHING = (b"00", b"01", b"10", b"11")  # two digits with no space between: one value such as "10"
TO_SPACE = bytes.maketrans(b"\t\r\n", b"   ")
ONE = ord("1")


def import_nus_wide(path: Path, options: ImportOptions, val_fraction: float = VAL_FRACTION) -> Parsed:
    folder = _Folder(path)
    images = _read_image_list(folder)
    concepts = _read_names(folder.need(*CONCEPT_NAMES, why="the concept names"), "concept")
    labels, layout = _read_labels(folder, concepts, images)
    tags, tag_rows = _read_tags(folder, len(images.files))
    intake = Intake(path)
    kept = _kept_rows(intake, images, labels, len(concepts))
    val = _carve_val([images.ids[i] for i in kept if images.split[i] == "train"], val_fraction, options.split_seed)
    records = intake.records(((images.ids[i], images.files[i], "val" if images.ids[i] in val else images.split[i])
                              for i in kept), keep_uncaptioned=True)
    label_names = _names_per_row(labels, concepts)
    entries = {images.ids[i]: ImageLabels(label_names[i], [tags[j] for j in tag_rows[i].tolist()] if tags else [])
               for i in kept}
    if tags:
        _warn_untagged(intake, folder.root / TAG_MATRIX, [i for i, e in entries.items() if not e.tags], len(tags))
    source = {"format": "nus-wide", "labels": layout, "files": folder.read,
              "split": {"train": "official", "test": "official",
                        "val": {"of": "train", "fraction": val_fraction, "seed": options.split_seed}}}
    return replace(intake.parsed(records, **source), labels=LabelSet(concepts, entries, tags, source))


class _Folder:
    """The dataset folder, and which of its files were read (for the manifest's provenance)."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise DataError("expected the NUS-WIDE folder (the one holding ImageList/ and Groundtruth/)", root)
        self.root = root
        self.read: list[str] = []

    def find(self, *candidates: str) -> Path | None:
        for name in candidates:
            if (self.root / name).is_file():
                self.read.append(name)
                return self.root / name
        return None

    def need(self, *candidates: str, why: str) -> Path:
        """The first of ``candidates`` that exists; if none, the error says what it is for and where it looked."""
        found = self.find(*candidates)
        if found is None:
            looked = " or ".join(str(self.root / name) for name in candidates)
            raise DataError(f"the NUS-WIDE layout needs {candidates[0]} ({why}); not found at {looked}")
        return found


@dataclass
class _Images:
    """Imagelist.txt, row by row, with each row's official split ("" for one in neither list)."""

    files: list[str]
    ids: list[str]
    split: list[str]
    order: dict[str, np.ndarray]  # split -> its list's images as Imagelist rows, in that list's order


def _read_image_list(folder: _Folder) -> _Images:
    path = folder.need(IMAGE_LIST, why="the list of all images")
    files: list[str] = []
    ids: list[str] = []
    seen = FirstSeen("image id")
    for number, line in text_lines(path):
        file = _flickr_file(line, path, number)
        ids.append(file.rpartition("/")[2].rpartition(".")[0])  # the stem; pathlib would take 5 s for NUS-WIDE
        seen.add(ids[-1], path, number)
        files.append(file)
    row_of = {file: i for i, file in enumerate(files)}
    split = [""] * len(files)
    order = {name: _read_split_list(folder, name, row_of, split) for name in SPLIT_LISTS}
    return _Images(files, ids, split, order)


def _flickr_file(line: str, path: Path, number: int) -> str:
    """``C:\\ImageData\\Flickr\\actor\\0001_2124494179.jpg`` -> ``actor/0001_2124494179.jpg``."""
    _, found, file = ("/" + line.strip().replace("\\", "/")).partition("/Flickr/")
    if not (found and is_image_name(file)):
        raise fail(path, number, "expected an image path such as C:\\ImageData\\Flickr\\actor\\0001_2124494179.jpg, "
                                 f"got {line.strip()[:60]!r}")
    return file


def _read_split_list(folder: _Folder, split: str, row_of: dict[str, int], split_of: list[str]) -> np.ndarray:
    """The list's images as Imagelist rows; an image in both lists is an error, as either choice leaks test data."""
    path = folder.need(SPLIT_LISTS[split], why=f"the official {split} images")
    rows: list[int] = []
    for number, line in text_lines(path):
        file = line.strip().replace("\\", "/")
        row = row_of.get(file)
        if row is None:
            raise fail(path, number, f"{file!r} is not in {IMAGE_LIST}")
        if split_of[row]:
            raise fail(path, number, f"{file!r} is already in the {split_of[row]} list")
        split_of[row] = split
        rows.append(row)
    return np.array(rows, dtype=np.int64)


def _read_names(path: Path, what: str) -> list[str]:
    names: list[str] = []
    seen = FirstSeen(f"{what} name")
    for number, line in text_lines(path):
        seen.add(line.strip(), path, number)
        names.append(line.strip())
    if not names:
        raise DataError(f"no {what} names (expected one per line)", path)
    return names


def _read_labels(folder: _Folder, concepts: list[str], images: _Images) -> tuple[np.ndarray, str]:
    """[N, C] bool labels of the Imagelist rows, and which layout they came from."""
    labels = np.zeros((len(images.files), len(concepts)), dtype=bool)
    ground = folder.root / "Groundtruth"
    if (ground / "TrainTestLabels").is_dir():
        for j, concept in enumerate(concepts):
            for split, rows in images.order.items():
                name = f"Groundtruth/TrainTestLabels/Labels_{concept}_{split.title()}.txt"
                path = folder.need(name, why="the TrainTestLabels layout has one per concept and split")
                labels[rows, j] = _read_column(path, len(rows), SPLIT_LISTS[split])
        return labels, "TrainTestLabels"
    if (ground / "AllLabels").is_dir():
        for j, concept in enumerate(concepts):
            path = folder.need(f"Groundtruth/AllLabels/Labels_{concept}.txt",
                               why="the AllLabels layout has one per concept")
            labels[:, j] = _read_column(path, len(images.files), IMAGE_LIST)
        return labels, "AllLabels"
    path = folder.find("Groundtruth/AllLabels81.txt")
    if path is None:
        raise DataError("the NUS-WIDE layout needs labels: Groundtruth/TrainTestLabels/, Groundtruth/AllLabels/ or "
                        f"Groundtruth/AllLabels81.txt; none of them is in {folder.root}")
    for i, ones in enumerate(_read_rows(path, len(concepts), len(images.files), CONCEPT_NAMES[0])):
        labels[i, ones] = True
    return labels, "AllLabels81"


def _read_tags(folder: _Folder, n_images: int) -> tuple[list[str], list[np.ndarray]]:
    """Tag names and each Imagelist row's tag columns; ``([], [])`` for a copy without the tag files."""
    path = folder.find(TAG_MATRIX)
    if path is None:
        return [], []
    names_file = folder.need(*TAG_NAMES, why=f"the names of the columns of {TAG_MATRIX}")
    names = _read_names(names_file, "tag")
    return names, _read_rows(path, len(names), n_images, names_file.name)


def _kept_rows(intake: Intake, images: _Images, labels: np.ndarray, n_concepts: int) -> list[int]:
    """Imagelist rows that are in a split list and have a label, reporting the others in one warning each."""
    listed = [i for i, split in enumerate(images.split) if split]
    intake.leave_out("not_in_split", [images.files[i] for i, split in enumerate(images.split) if not split],
                     f"in neither {SPLIT_LISTS['train']} nor {SPLIT_LISTS['test']}")
    labelled = labels.any(axis=1)
    intake.leave_out("no_label", [images.ids[i] for i in listed if not labelled[i]],
                     f"no label among the {n_concepts} concepts")
    return [i for i in listed if labelled[i]]


def _names_per_row(matrix: np.ndarray, names: list[str]) -> list[list[str]]:
    """The names of each row's True columns, from one ``nonzero`` over the whole [N, C] matrix (a numpy
    call per row would cost seconds on NUS-WIDE's 269,648 rows)."""
    per_row: list[list[str]] = [[] for _ in range(len(matrix))]
    rows, columns = matrix.nonzero()
    for i, j in zip(rows.tolist(), columns.tolist()):
        per_row[i].append(names[j])
    return per_row


def _carve_val(train: list[str], fraction: float, seed: int) -> set[str]:
    """A seeded draw of ``fraction`` of the train ids, from their sorted order, so file order does not matter."""
    if not 0 <= fraction < 1:
        raise DataError(f"the val fraction of train must be at least 0 and below 1, got {fraction}")
    order = sorted(train)
    random.Random(seed).shuffle(order)
    return set(order[: round(fraction * len(order))])


def _warn_untagged(intake: Intake, path: Path, untagged: list[str], n_tags: int) -> None:
    if untagged:
        intake.warnings.append(located(path, None, f"{len(untagged)} images have none of the {n_tags} tags, kept "
                                                   f"(their tag input is all zeros): {listing(untagged)}"))


# -- the 0/1 files -----------------------------------------------------------------------------
# They are large (81 label files of 269,648 lines; a 269,648 x 1000 tag matrix, 540 MB), so no value
# becomes a Python object: a column file is checked whole and a matrix line by line, with bytes
# operations that run in C, and a file is split into values only to say where its error is.

def _read_column(path: Path, expected: int, list_name: str) -> np.ndarray:
    """A file of one 0/1 per line -> bool [lines].

    With the separators deleted, a well-formed file is "v\\nv\\n...v": values at even offsets and
    newlines at odd ones, which two slices check without splitting the file into lines.
    """
    raw = _read_bytes(path)
    digits = raw.translate(None, BLANK).rstrip(b"\n")
    values = digits[0::2]
    if digits[1::2] != b"\n" * (len(digits) // 2) or values.translate(None, b"01"):
        _raise_bad_value(path, raw)
    _check_count(path, len(values), expected, list_name)
    return np.frombuffer(values, dtype=np.uint8) == ONE


def _raise_bad_value(path: Path, raw: bytes) -> None:
    """The first line of a column file that is not one 0/1 (a blank line inside counts: it shifts the rest)."""
    lines = raw.split(b"\n")
    while lines and not lines[-1].strip(SPACE):
        lines.pop()
    for number, line in enumerate(lines, 1):
        value = line.strip(SPACE)
        if value not in (b"0", b"1"):
            raise fail(path, number, f"expected 0 or 1, got {_shown(value)}" if value else
                       "blank line; expected one 0 or 1 per line (a blank line would shift the images after it)")


def _read_rows(path: Path, width: int, expected: int, names_of: str) -> list[np.ndarray]:
    """A matrix file of ``width`` 0/1 per line -> the columns of the 1s in each line, line by line.

    Streamed, not read whole: the tag matrix is 540 MB. Blank lines at the end are ignored; a blank
    line with values after it is an error, as it would shift every image after it by one.
    """
    rows: list[np.ndarray] = []
    blank = None
    for number, line in _binary_lines(path):
        if not line.strip(SPACE):
            blank = blank or number
            continue
        if blank is not None:
            raise fail(path, blank, "blank line; expected one line of 0/1 per image "
                                    "(it would shift the images after it)")
        rows.append(_ones(line, width, path, number, names_of))
    _check_count(path, len(rows), expected, IMAGE_LIST)
    return rows


def _ones(line: bytes, width: int, path: Path, number: int, names_of: str) -> np.ndarray:
    """Columns of the 1s in one line of ``width`` space-separated 0/1, without making ``width`` Python objects.

    Deleting the separators must leave exactly ``width`` characters, all 0 or 1; and no two digits
    may touch, or "10" would pass as two values. With one separator between values (as NUS-WIDE
    writes them) the digits are exactly the even offsets, which one slice checks; other spacing
    falls back to searching for touching pairs, four times slower.
    """
    body = line.strip(SPACE)
    digits = body.translate(None, SPACE)
    if (len(digits) != width or digits.translate(None, b"01")
            or body[0::2] != digits and any(pair in body for pair in TOUCHING)):
        raise fail(path, number, _row_problem(line, width, names_of))
    return (np.frombuffer(digits, dtype=np.uint8) == ONE).nonzero()[0]


def _row_problem(line: bytes, width: int, names_of: str) -> str:
    values = [v for v in line.translate(TO_SPACE).split(b" ") if v]
    bad = next((v for v in values if v not in (b"0", b"1")), None)
    if bad is not None:
        return f"expected 0 or 1, got {_shown(bad)}"
    return f"{len(values)} values, expected {width} (one per name in {names_of})"


def _check_count(path: Path, got: int, expected: int, list_name: str) -> None:
    """Points at the first line past the list's images, or at the last line when the file is short."""
    if got != expected:
        line = expected + 1 if got > expected else got or None
        raise fail(path, line, f"{got} lines, expected {expected}: one per image of {list_name}, in its order")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read ({e.strerror})", path) from e


def _binary_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        with open(path, "rb") as f:
            yield from enumerate(f, 1)
    except OSError as e:
        raise DataError(f"cannot read ({e.strerror})", path) from e


def _shown(value: bytes) -> str:
    return repr(value.decode("utf-8", "replace")[:20])
