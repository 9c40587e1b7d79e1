"""An extraction learns its encoder's output shape once (a dummy forward pass) and recalls it after:
the shape it recalls is checked against the first batch before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import pipeline.extract.inference as inference
from pipeline.cache import hdf5
from pipeline.data.manifest import Manifest
from pipeline.data.synthetic import SyntheticConfig, generate_dataset
from pipeline.errors import CapcacheError
from pipeline.extract import extract
from pipeline.extract.encoder_facts import SHAPES_MEMO
from pipeline.memo import memo_path


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch) -> Manifest:
    monkeypatch.setenv("CAPCACHE_HOME", str(tmp_path / "home"))  # starts with nothing remembered
    return Manifest.load(generate_dataset(tmp_path / "data", SyntheticConfig.tiny()))


def _extract(manifest: Manifest, cache_dir: Path):
    return extract(manifest, "tiny-cnn", cache_dir=cache_dir, batch_size=8, workers=0, progress=False)


def _features(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[hdf5.FEATURES][:]


def test_the_second_extraction_recalls_the_shape_instead_of_a_dummy_forward(manifest, tmp_path, monkeypatch):
    first = _extract(manifest, tmp_path / "a")
    assert list(json.loads(memo_path(SHAPES_MEMO).read_text()).values()) == [list(_features(first.path).shape[1:])]
    monkeypatch.setattr(inference, "output_shape", lambda *a: pytest.fail("ran the dummy forward pass again"))
    second = _extract(manifest, tmp_path / "b")
    np.testing.assert_array_equal(_features(second.path), _features(first.path))


def test_a_wrong_remembered_shape_is_refused_before_any_row_is_written(manifest, tmp_path):
    _extract(manifest, tmp_path / "a")
    memo = memo_path(SHAPES_MEMO)
    memo.write_text(json.dumps({key: [5, 7] for key in json.loads(memo.read_text())}))
    with pytest.raises(CapcacheError, match=r"holds features of shape \[5, 7\] per image but the encoder gives "
                                            r"\[\d+, \d+\]; delete .* and .*encoder-output-shapes.json"):
        _extract(manifest, tmp_path / "b")
    (path,) = (tmp_path / "b").glob("*.h5")
    with h5py.File(path, "r") as f:
        assert not (f[hdf5.STATUS][:] == hdf5.DONE).any()


def test_an_unreadable_remembered_shape_is_found_out_again(manifest, tmp_path):
    first = _extract(manifest, tmp_path / "a")
    memo = memo_path(SHAPES_MEMO)
    memo.write_text(json.dumps({key: "not a shape" for key in json.loads(memo.read_text())}))
    again = _extract(manifest, tmp_path / "b")
    np.testing.assert_array_equal(_features(again.path), _features(first.path))
    assert list(json.loads(memo.read_text()).values()) == [list(_features(first.path).shape[1:])]
