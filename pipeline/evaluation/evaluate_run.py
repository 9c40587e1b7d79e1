"""`capcache eval`: decode a split with a trained run and score it; eval/<split>.json keeps the
scores, the diversity figures (against the manifest's train captions), the decoding settings and
every generated caption beside its references."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from pipeline.cache.reader import FeatureCache
from pipeline.data.manifest import Manifest
from pipeline.decoding.captions import caption_cached_images
from pipeline.decoding.config import DecodingConfig
from pipeline.errors import CapcacheError
from pipeline.evaluation.diversity import diversity
from pipeline.evaluation.neighbours import consensus_reranker
from pipeline.io import atomic_write_json, read_json
from pipeline.runs.load import load_trained


def evaluate_run(run_dir: str | Path, split: str = "test", checkpoint: str = "best", batch_size: int = 64,
                 max_len: int | None = None, device: str = "auto", spice: bool = False,
                 decoding: DecodingConfig | None = None, reuse: bool = False, progress: bool = False) -> dict:
    """``decoding``: greedy unless given (``DecodingConfig.from_beam(5)`` is ``--beam 5``; its
    ``rerank_neighbours`` consults the manifest's train photos and captions). Decoding length: the
    ``max_len`` argument, else ``decoding.max_len``, else the run's ``max_decode_len``. ``reuse`` returns the
    split's existing report when it was made from the same checkpoint (and epoch) with the same decoding.
    ``progress`` shows a bar while decoding."""
    from pipeline.evaluation.scorers import score_captions

    trained = load_trained(run_dir, checkpoint, device)
    config = trained.config
    manifest = Manifest.load(config.data.manifest)
    records = manifest.split(split)
    if not records:
        raise CapcacheError(f"manifest {manifest.name!r} has no {split!r} images; choose another --split")
    cache = FeatureCache(config.data.cache)
    decoding = decoding or DecodingConfig()
    decoding = replace(decoding, max_len=max_len) if max_len else decoding.resolved(config.max_decode_len)
    method = {"method": decoding.strategy, **decoding.describe()}
    previous = trained.run.eval_file(split)
    if reuse and previous.is_file():  # a restarted notebook: the same checkpoint decoded the same way is done
        report = read_json(previous)
        same = {k: v for k, v in report.get("decoding", {}).items() if k != "batch_size"} == method
        if same and (report.get("checkpoint"), report.get("epoch")) == (checkpoint, trained.epoch) \
                and (not spice or "SPICE" in report["scores"]):
            return report
    started = time.perf_counter()
    reranker = consensus_reranker(manifest.split("train"), cache, trained.vocab, decoding.rerank_neighbours,
                                  progress) if decoding.rerank_neighbours else None
    captions = caption_cached_images(trained.decoder, cache, [r.image_id for r in records], trained.vocab,
                                     trained.device, batch_size, decoding=decoding, progress=progress,
                                     reranker=reranker)
    decode_seconds = time.perf_counter() - started
    references = {r.image_id: r.captions for r in records}
    result = score_captions(captions, references, spice=spice, per_image=True)
    report = {
        "run": str(trained.run.root), "split": split, "checkpoint": checkpoint, "epoch": trained.epoch,
        "decoding": {**method, "batch_size": batch_size},
        "n_images": len(records), "decode_seconds": round(decode_seconds, 3),
        "scores": result.scores, "unavailable": result.unavailable,
        "diversity": diversity([captions[r.image_id] for r in records],
                               (c for r in manifest.split("train") for c in r.captions),
                               trained.vocab.tokenizer).to_dict(),
        "captions": [{"image_id": r.image_id, "file": r.file, "caption": captions[r.image_id],
                      "references": r.captions, "scores": result.per_image.get(r.image_id, {})} for r in records],
    }
    atomic_write_json(trained.run.eval_file(split), report)
    return report
