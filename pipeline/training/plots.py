"""Training curves as PNG: seed 000's panels (train_loss, val_loss, learning_rate, batch_train_loss,
grad_norm, epoch, each against step), the self-critical figures when a run has them (sample reward,
baseline, entropy, sample length, share of samples cut at max length) and the validation metrics;
one run or several overlaid."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: servers, CI, Kaggle kernels
import matplotlib.pyplot as plt  # noqa: E402

from pipeline.io import atomic_path  # noqa: E402
from pipeline.runs.metrics_log import read_metrics  # noqa: E402

SCST_STEP_CURVES = ("batch_reward", "baseline", "entropy", "sample_length", "samples_cut")
STEP_CURVES = ("batch_train_loss", "learning_rate", "grad_norm", "epoch", *SCST_STEP_CURVES)
SEED_000_CURVES = ("train_loss", "val_loss", "learning_rate", "batch_train_loss", "grad_norm", "epoch")
SCST_CURVES = ("train_reward", *SCST_STEP_CURVES)


def _series(records: list[dict], name: str) -> tuple[list[int], list[float]]:
    kind = "step" if name in STEP_CURVES else "epoch"
    pts = [(r["step"], r[name]) for r in records if r.get("kind") == kind and r.get(name) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def val_metric_names(records: list[dict]) -> list[str]:
    names = {k for r in records if r.get("kind") == "epoch" for k in r if k.startswith("val_") and k != "val_loss"}
    return sorted(names)


def plot_runs(runs: dict[str, Path], out_dir: Path) -> list[Path]:
    """One PNG per curve with every run overlaid, plus ``overview.png`` with all panels."""
    logs = {label: read_metrics(Path(folder) / "metrics.jsonl") for label, folder in runs.items()}
    present = {k for recs in logs.values() for r in recs for k in r}
    names = [*SEED_000_CURVES, *(n for n in SCST_CURVES if n in present),
             *sorted({n for recs in logs.values() for n in val_metric_names(recs)})]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [_save(_figure([name], logs), out_dir / f"{name}.png") for name in names]
    cols = 3
    written.append(_save(_figure(names, logs, cols), out_dir / "overview.png"))
    return written


def _figure(names: list[str], logs: dict[str, list[dict]], cols: int = 1):
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for label, records in logs.items():
            x, y = _series(records, name)
            if x:
                ax.plot(x, y, marker="o" if name not in STEP_CURVES else None, markersize=3, label=label)
        ax.set_title(f"{name} vs step")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if name in ("learning_rate",):
            ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        if len(logs) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
