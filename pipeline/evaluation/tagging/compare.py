"""`capcache compare` of tagging runs: seed 004's Table 5.1, one row per run (its own indicator's row).

Columns: the seed's seven metrics (%), which indicator the row is, the heads' parameters and the
training time, read from each run folder alone.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.evaluation.compare import read_eval_report
from pipeline.evaluation.tagging.evaluate import TAGGING_COLUMNS
from pipeline.evaluation.table import format_table
from pipeline.runs.metrics_log import read_metrics
from pipeline.runs.folder import RunFolder
from pipeline.runs.tagging import load_tagger

EXTRA = ("indicator", "modalities", "params", "train time")


def compare_tagging_runs(run_dirs: list[str | Path], split: str = "test") -> dict[str, dict]:
    """Run name -> table cells."""
    rows = {}
    for run_dir in run_dirs:
        run = RunFolder(Path(run_dir))
        report = read_eval_report(run, split)
        trained = load_tagger(run.root, "last", "cpu")
        epochs = [r for r in read_metrics(run.metrics) if r["kind"] == "epoch"]
        seconds = epochs[-1]["seconds"] if epochs else 0.0
        rows[run.root.name] = {**report["scores"], "indicator": report["headline"],
                               "modalities": "image+tags" if trained.tagger.tags is not None else "image",
                               "params": f"{sum(p.numel() for p in trained.tagger.parameters()) / 1e6:.2f}M",
                               "train time": f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"}
    return rows


def format_tagging_comparison(rows: dict[str, dict], markdown: bool = False) -> str:
    return format_table(rows, TAGGING_COLUMNS + EXTRA, markdown=markdown)
