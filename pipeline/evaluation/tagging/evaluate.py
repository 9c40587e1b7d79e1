"""`capcache eval` for a tagging run: seed 004's table for every indicator function on a split.

Rows: top-3 (the seed's fixed k), threshold alpha (the alpha with the best H-F1 on *val*, so the
evaluated split does not choose its own threshold; on val itself that is the alpha it reports
best) and, for a run with LQP, top-k with each image's k from LQP. eval/<split>.json keeps the
table, the alpha and every image's true and predicted labels (by the run's own indicator).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.cache.reader import FeatureCache
from pipeline.data.manifest import Manifest
from pipeline.errors import CapcacheError
from pipeline.evaluation.tagging.indicators import best_threshold
from pipeline.evaluation.tagging.metrics import tagging_scores
from pipeline.io import atomic_write_json
from pipeline.inference.labelled_images import LabelledImages, labelled
from pipeline.runs.tagging import load_tagger
from pipeline.inference.tag_cached import predict

TAGGING_COLUMNS = ("C-P", "C-R", "C-F1", "O-P", "O-R", "O-F1", "H-F1")


def headline_row(indicator: str, top: int, rows: dict) -> str:
    """The table row a run is reported by (its config's indicator)."""
    if indicator == "topk" and "top-k (LQP)" in rows:
        return "top-k (LQP)"
    if indicator == "threshold":
        return next(name for name in rows if name.startswith("threshold"))
    return f"top-{top}"


def evaluate_tagging_run(run_dir: str | Path, split: str = "test", checkpoint: str = "best",
                         device: str = "auto") -> dict:
    trained = load_tagger(run_dir, checkpoint, device)
    config = trained.config
    manifest = Manifest.load(config.data.manifest)
    if manifest.labels is None or manifest.labels.classes != trained.classes:
        raise CapcacheError(f"manifest {manifest.name!r} no longer has the classes this run was trained on "
                            "(relabelled since?); evaluate with the manifest of the training run")
    records, left_out = labelled(manifest.split(split), manifest.labels)
    if not records:
        raise CapcacheError(f"manifest {manifest.name!r} has no labelled {split!r} images; choose another --split")
    cache = FeatureCache(config.data.cache)
    pred = predict(trained.tagger, LabelledImages(cache, records, manifest.labels), trained.device)
    val_records, _ = labelled(manifest.split("val"), manifest.labels)
    tuning = pred if split == "val" or not val_records else \
        predict(trained.tagger, LabelledImages(cache, val_records, manifest.labels), trained.device)
    alpha, _ = best_threshold(tuning.probs, tuning.truth)
    rows = pred.indicator_rows(config.top_k, alpha)
    table = {name: tagging_scores(labels, pred.truth).percent() for name, (labels, _) in rows.items()}
    headline = headline_row(config.indicator, config.top_k, table)
    chosen = rows[headline][0]
    classes = trained.classes
    report = {
        "task": "tagging", "run": str(trained.run.root), "split": split, "checkpoint": checkpoint,
        "stage": trained.stage, "n_images": len(records), "left_out_unlabelled": left_out,
        "alpha": alpha, "alpha_chosen_on": "val" if val_records else split, "headline": headline,
        "rows": table, "scores": table[headline],
        "images": [{"image_id": r.image_id, "file": r.file,
                    "labels": [c for c, y in zip(classes, pred.truth[i]) if y],
                    "predicted": [c for c, y in zip(classes, chosen[i]) if y]} for i, r in enumerate(records)],
    }
    atomic_write_json(trained.run.eval_file(split), report)
    return report
