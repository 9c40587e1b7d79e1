"""`capcache tag`: labels for image files that were never in a manifest or a cache.

The run's own encoder computes the features (pipeline/extract/new_files.py); the labels are
chosen by the run's indicator function: top-k from LQP, top-3, or the threshold chosen on val by
`capcache eval` (recorded in eval/val.json; 0.5 until the run has been evaluated on val).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipeline.evaluation.tagging.indicators import threshold, top_k
from pipeline.extract.new_files import FileEncoder, image_files
from pipeline.io import read_json
from pipeline.runs.tagging import load_tagger


@dataclass
class TaggedImage:
    path: Path
    labels: list[str]  # chosen by the run's indicator, most probable first
    probabilities: dict[str, float]  # every class


@dataclass
class TagResult:
    images: list[TaggedImage] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it could not be read
    indicator: str = ""


def tag_images(run_dir: str | Path, inputs: list[str | Path], checkpoint: str = "best", weights: str | None = None,
               tags: dict[str, list[str]] | None = None, batch_size: int = 16, device: str = "auto",
               workers: int = 2, progress: bool = False) -> TagResult:
    """``tags``: noisy tags per file path, for runs with a tag modality (files without any get none)."""
    trained = load_tagger(run_dir, checkpoint, device)
    encoder = FileEncoder(read_json(trained.run.cache_info), trained.device, weights)
    files = image_files(inputs)
    alpha = _val_alpha(trained.run.eval_file("val"))
    indicator = trained.config.indicator
    result = TagResult(indicator=f"threshold {alpha:.2f}" if indicator == "threshold" else
                       "top-k (LQP)" if indicator == "topk" else f"top-{trained.config.top_k}")
    tag_column = {t: j for j, t in enumerate(trained.tags)}
    for rows, feats, skipped in encoder.batches(files, batch_size, workers, progress, desc="tag"):
        result.skipped.update(skipped)
        if not rows:
            continue
        tag_input = _tag_matrix([str(files[r]) for r in rows], tags or {}, tag_column, trained.device) \
            if trained.tagger.tags is not None else None
        with torch.inference_mode():
            out = trained.tagger(feats, tag_input)
            probs = out.logits.sigmoid().cpu().numpy()  # [b, C]
            k = trained.tagger.predicted_counts(out).cpu().numpy() if indicator == "topk" else trained.config.top_k
        chosen = threshold(probs, alpha) if indicator == "threshold" else top_k(probs, k)
        for b, r in enumerate(rows):
            order = sorted(range(len(trained.classes)), key=lambda j: -probs[b, j])
            result.images.append(TaggedImage(files[r], [trained.classes[j] for j in order if chosen[b, j]],
                                             {c: float(p) for c, p in zip(trained.classes, probs[b])}))
    return result


def _tag_matrix(paths: list[str], tags: dict[str, list[str]], column: dict[str, int], device) -> torch.Tensor:
    out = torch.zeros(len(paths), len(column), device=device)  # [b, T]
    for b, path in enumerate(paths):
        for t in tags.get(path, []):
            if t in column:
                out[b, column[t]] = 1.0
    return out


def _val_alpha(path: Path) -> float:
    return float(read_json(path).get("alpha", 0.5)) if path.is_file() else 0.5
