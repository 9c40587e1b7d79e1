"""Kaggle's Flickr30k results.csv: pipe-separated rows, the Karpathy split when given, bad rows reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.data.importers import import_dataset
from pipeline.errors import DataError

# The upload's own layout: a space after each pipe, captions numbered 0..4, and its one broken row.
ROWS = """image_name| comment_number| comment
1000092795.jpg| 0| Two young guys with shaggy hair look at their hands while hanging out in the yard .
1000092795.jpg| 1| Two young , White males are outside near many bushes .
10002456.jpg| 0| Several men in hard hats are operating a giant pulley system .
10002456.jpg| 1| Workers look down from up above on a piece of equipment .
2199200615.jpg| 3| A dog runs across the grass .
2199200615.jpg| 4 A dog runs across the grass .
1007129816.jpg| 0| The man with pierced ears is wearing glasses and an orange hat .
1007129816.jpg| 0| The man with pierced ears is wearing glasses and an orange hat .
1007129816.jpg| 1|  
1007129816.jpg| 2| A man with glasses is wearing a beer can crocheted hat | and smiles .
"""


def _write(tmp_path: Path, text: str = ROWS) -> Path:
    path = tmp_path / "results.csv"
    path.write_text(text)
    return path


def test_rows_are_read_and_the_broken_ones_reported_with_file_and_line(tmp_path: Path) -> None:
    result = import_dataset("flickr30k-csv", _write(tmp_path), tmp_path, "f30k", check_files=False)
    captions = {r.image_id: r.captions for r in result.manifest.images}
    assert set(captions) == {"1000092795.jpg", "10002456.jpg", "2199200615.jpg", "1007129816.jpg"}
    assert captions["2199200615.jpg"] == ["A dog runs across the grass ."]  # the row missing a pipe is skipped
    assert captions["1007129816.jpg"] == ["The man with pierced ears is wearing glasses and an orange hat .",
                                          "A man with glasses is wearing a beer can crocheted hat | and smiles ."]
    assert result.skipped == {"malformed_row": 1, "duplicate_caption": 1, "empty_caption": 1}
    warnings = "\n".join(result.warnings)
    assert f"{tmp_path / 'results.csv'}:7: malformed row skipped" in warnings
    assert "caption 0 of '1007129816.jpg' again (first on line 8)" in warnings
    assert result.manifest.source["split"] == {"seed": 0, "ratios": [0.8, 0.1, 0.1]}


def test_the_karpathy_split_is_applied_and_unlisted_images_left_out(tmp_path: Path) -> None:
    karpathy = tmp_path / "dataset_flickr30k.json"
    karpathy.write_text(json.dumps({"dataset": "flickr30k", "images": [
        {"filename": "1000092795.jpg", "split": "train", "sentences": []},
        {"filename": "10002456.jpg", "split": "val", "sentences": []},
        {"filename": "1007129816.jpg", "split": "test", "sentences": []}]}))
    result = import_dataset("flickr30k-csv", _write(tmp_path), tmp_path, "f30k", check_files=False,
                            karpathy_split=karpathy)
    assert {r.image_id: r.split for r in result.manifest.images} == {
        "1000092795.jpg": "train", "10002456.jpg": "val", "1007129816.jpg": "test"}
    assert result.skipped["not_in_split"] == 1  # 2199200615.jpg
    assert result.manifest.source["split"] == "karpathy (dataset_flickr30k.json)"


def test_a_file_of_another_format_is_refused_on_its_first_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"results.csv:1: expected the header 'image_name\| comment_number\| comment'"):
        import_dataset("flickr30k-csv", _write(tmp_path, "image,caption\na.jpg,a dog\n"), tmp_path, "x",
                       check_files=False)


def test_the_karpathy_option_belongs_to_this_format_only(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="karpathy_split applies to the flickr30k-csv format only"):
        import_dataset("kaggle", _write(tmp_path), tmp_path, "x", check_files=False, karpathy_split=tmp_path / "k.json")
