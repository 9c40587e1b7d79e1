"""`capcache demo`: the whole pipeline on the built-in synthetic set, offline, in a few minutes.

generate -> extract (tiny-cnn, seeded random weights) -> train (the ``demo`` preset's attention
LSTM, or ``demo-prefix-lm``'s small GPT-2 trained from scratch) -> eval on test.
Everything lands under one folder, which is itself a run folder (config.json, checkpoints/,
eval/test.json, plots/) with the data in data/ and the cache in cache/. Running it again reuses
what is done and resumes what was interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.data.manifest import Manifest
from pipeline.data.synthetic import SyntheticConfig, generate_dataset
from pipeline.errors import CapcacheError
from pipeline.evaluation.evaluate_run import evaluate_run
from pipeline.extract import ExtractResult, extract
from pipeline.training.config import resolve_config
from pipeline.training.loop import TrainResult, train
from pipeline.runs.folder import RunFolder


@dataclass
class DemoResult:
    run_dir: Path
    decoder: str
    extraction: ExtractResult
    training: TrainResult
    evaluation: dict


DEMO_PRESETS = ("demo", "demo-prefix-lm")


def run_demo(out: str | Path = "runs/demo", data: SyntheticConfig | None = None, overrides: list[str] | None = None,
             device: str = "auto", workers: int = 2, progress: bool = True, preset: str = "demo") -> DemoResult:
    out = Path(out)
    manifest_path = generate_dataset(out / "data", data or SyntheticConfig(), name="demo")
    manifest = Manifest.load(manifest_path)
    extraction = extract(manifest, "tiny-cnn", cache_dir=out / "cache", workers=workers, device=device,
                         progress=progress)
    if preset not in DEMO_PRESETS:
        raise CapcacheError(f"unknown demo preset {preset!r}; use {' or '.join(DEMO_PRESETS)}")
    config = resolve_config(preset, overrides=[f"data.manifest={manifest_path.resolve()}",
                                               f"data.cache={extraction.path.resolve()}", f"device={device}",
                                               *(overrides or [])])
    training = train(config, out, resume=RunFolder(out).checkpoint("last").exists(), progress=progress)
    evaluation = evaluate_run(out, split="test", device=device)
    return DemoResult(out, config.decoder, extraction, training, evaluation)

