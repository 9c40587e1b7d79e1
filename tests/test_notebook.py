"""The Kaggle notebook runs end to end, unchanged, on the offline demo set (papermill parameters)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "flickr8k_kaggle.ipynb"


def test_kaggle_notebook_runs_on_the_demo_set_and_resumes(tmp_path):
    papermill = pytest.importorskip("papermill")
    params = {"DATASET": "demo", "WORK": str(tmp_path / "work"), "INSTALL": False,
              "RESNET": "tiny-cnn", "RESNET_WEIGHTS": "random", "CLIP": "tiny-cnn", "CLIP_WEIGHTS": "random:1",
              "EPOCHS": 1, "BEAM": 3, "DEVICE": "cpu", "WORKERS": 0, "DEMO_IMAGES": 50, "SHOW_IMAGES": 2}
    assert set(params) <= set(papermill.inspect_notebook(str(NOTEBOOK)))  # each one a line papermill can read
    papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "out.ipynb"), parameters=params, cwd=str(REPO),
                               kernel_name="python3", progress_bar=False)
    work = tmp_path / "work"
    table = (work / "comparison.md").read_text().splitlines()
    assert table[0].startswith("| model | BLEU-1") and len(table) == 2 + 4
    assert {line.split(" | ")[0].strip("| ") for line in table[2:]} == {
        "resnet-lstm-att", "resnet-transformer", "clip-transformer", "resnet-lstm-baseline"}
    assert len(list((work / "attention").glob("*.png"))) == 2
    assert len(list(work.glob("runs/*/report_test.html"))) == 4
    assert len(list((work / "cache").glob("*.h5"))) == 2  # one cache per encoder setting
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for o in outputs)

    # A restarted Kaggle session runs everything again: caches and runs are reused, nothing retrained.
    papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "again.ipynb"), parameters=params, cwd=str(REPO),
                               kernel_name="python3", progress_bar=False)
    again = json.loads((tmp_path / "again.ipynb").read_text())
    text = "".join("".join(o.get("text", "")) for c in again["cells"] for o in c.get("outputs", []))
    assert text.count("nothing to do") == 2  # both caches reused
