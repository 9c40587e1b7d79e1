"""`capcache compare`: the seed-000 style table of several evaluated runs.

Each row comes from a run folder alone: scores and diversity figures from eval/<split>.json,
parameter count and training time from the last checkpoint, the objective (cross-entropy, or
self-critical fine-tuning and the run it started from), and which cache (encoder, weights, key)
the decoder was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import CapcacheError
from pipeline.evaluation.table import COLUMNS, DIVERSITY_COLUMNS, diversity_cells, format_table
from pipeline.io import read_json
from pipeline.runs.load import load_trained
from pipeline.runs.metrics_log import read_metrics
from pipeline.runs.folder import RunFolder

if TYPE_CHECKING:
    from pipeline.training.config import TrainConfig


@dataclass
class RunRow:
    name: str
    scores: dict[str, float | None]
    diversity: dict[str, float | int | None]  # DIVERSITY_COLUMNS -> value
    params: int  # decoder parameters (the frozen encoder is not trained, so not counted)
    train_seconds: float
    cache: str  # "<encoder> (<weights>) <key>"
    decoding: str
    objective: str = "xe"  # "xe", or "scst from <run>" for a run fine-tuned from another's weights

    def cells(self) -> dict[str, float | str | None]:
        return {**self.scores, **self.diversity, "params": f"{self.params / 1e6:.1f}M", "train time": _duration(self.train_seconds),
                "decoding": self.decoding, "objective": self.objective, "cache": self.cache}


EXTRA_COLUMNS = ("params", "train time", "decoding", "objective", "cache")


def compare_runs(run_dirs: list[str | Path], split: str = "test") -> list[RunRow]:
    rows = []
    for run_dir in run_dirs:
        run = RunFolder(Path(run_dir))
        report = read_eval_report(run, split)
        trained = load_trained(run.root, "last", "cpu")
        epochs = [r for r in read_metrics(run.metrics) if r["kind"] == "epoch"]
        cache = read_json(run.cache_info)
        encoder = cache["spec"]["encoder"]
        decoding = report.get("decoding", {})
        rows.append(RunRow(
            name=run.root.name, scores={c: report["scores"].get(c) for c in COLUMNS},
            diversity=diversity_cells(report.get("diversity")),
            params=sum(p.numel() for p in trained.decoder.parameters()),
            train_seconds=epochs[-1]["seconds"] if epochs else 0.0,
            cache=f"{encoder['encoder']} ({encoder['weights']}) {cache['key']}",
            decoding=decoding_label(decoding), objective=objective_label(trained.config)))
    return rows


def read_eval_report(run: RunFolder, split: str) -> dict:
    """The run's eval/<split>.json, or one line saying which `capcache eval` makes it."""
    if not run.eval_file(split).is_file():
        raise CapcacheError(f"{run.root} has no {split} evaluation; run `capcache eval {run.root} --split {split}` first")
    return read_json(run.eval_file(split))


def format_comparison(rows: list[RunRow], markdown: bool = False) -> str:
    return format_table({r.name: r.cells() for r in rows}, COLUMNS + DIVERSITY_COLUMNS + EXTRA_COLUMNS,
                        markdown=markdown)


def decoding_label(decoding: dict) -> str:
    """"greedy" or "beam K" from the decoding record of an eval/<split>.json."""
    size = decoding.get("beam_size", 1)
    return f"beam {size}" if decoding.get("method") == "beam" and size > 1 else "greedy"


def objective_label(config: "TrainConfig") -> str:
    """"xe", or e.g. "scst from lstm" when the run started from another run's weights."""
    return f"{config.objective} from {Path(config.init_from).name}" if config.init_from else config.objective


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
