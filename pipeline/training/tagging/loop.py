"""`capcache train --task tagging`: fit seed 004's heads on cached features, stage by stage.

Each stage trains its components (the others frozen) for ``epochs`` epochs; after each epoch the
stage's val loss picks the stage's best weights (checkpoints/best.pt), which the next stage starts
from, and the val scores of the run's indicator are logged. The run folder is a captioning run's
(config.json, cache.json, labels.json, metrics.jsonl, plots, checkpoints); ``--resume`` restores
model, optimiser, schedule, RNG states and the position (stage, epoch) of the last checkpoint, so
an interrupted run ends with the weights of an uninterrupted one. Under torchrun each process
trains a DDP replica on its share of every global batch; rank 0 validates and writes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pipeline.data.manifest import Manifest
from pipeline.device import resolve_device
from pipeline.distributed import Collective, in_process_group
from pipeline.errors import CapcacheError
from pipeline.heads.tagger import Tagger
from pipeline.io import atomic_write_json
from pipeline.training.cache_use import cache_record, check_cache, open_cache
from pipeline.runs.checkpoint import load_checkpoint, restore_rng_states, rng_states, save_checkpoint
from pipeline.training.global_batch import NonFiniteLoss, global_counts
from pipeline.training.loop import TrainResult, seed_everything
from pipeline.runs.metrics_log import MetricsLog
from pipeline.training.plots import plot_runs
from pipeline.runs.folder import RunFolder, load_or_check_config
from pipeline.training.sharding import ShardedBatches
from pipeline.training.tagging.config import TaggingConfig
from pipeline.inference.labelled_images import LabelledImages, collate_tags, labelled
from pipeline.inference.tag_cached import headline_scores, predict
from pipeline.training.tagging.stages import build_stage_optimizer, freeze_all_but, loss_sums, stage_plan, trained_by


@dataclass
class _Progress:
    stage: int = 0
    epoch: int = 0  # epochs completed in the current stage
    step: int = 0
    best: float | None = None  # the current stage's lowest val loss
    best_epoch: int | None = None
    epochs_without_gain: int = 0
    seconds: float = 0.0
    finished: bool = False
    epochs_total: int = 0  # epochs trained over all stages


def train_tagger(config: TaggingConfig | None, run_dir: str | Path, resume: bool = False,
                 progress: bool = True) -> TrainResult:
    run = RunFolder(Path(run_dir))
    config = load_or_check_config(TaggingConfig, config, run, resume)
    return in_process_group(config.device, lambda comm: _train(config, run, resume, progress and comm.is_main, comm))


def _train(config: TaggingConfig, run: RunFolder, resume: bool, progress: bool, comm: Collective) -> TrainResult:
    seed_everything(config.seed)
    manifest = Manifest.load(config.data.manifest)
    labels = manifest.labels
    if labels is None:
        raise CapcacheError(f"manifest {manifest.name!r} has no labels section; add one with `capcache labels "
                            "from-captions` or import a tagging format (nus-wide, labels-csv)")
    if config.model.tags and not labels.has_tags:
        raise CapcacheError(f"model.tags={config.model.tags} needs noisy tags, and manifest {manifest.name!r} has "
                            "none; use a preset without tags, or label with --tags-from-caption")
    train_records, dropped = labelled(manifest.split("train") + manifest.split("restval"), labels)
    val_records, _ = labelled(manifest.split("val"), labels)
    if not train_records:
        raise CapcacheError(f"manifest {manifest.name!r} has no labelled train images")
    if dropped and progress and not resume:
        tqdm.write(f"{dropped} train images have none of the {len(labels.classes)} labels and are left out")
    cache = open_cache(config.data.cache, config.data.in_memory, progress)
    check_cache(cache, manifest, config.data.encoder, run, resume)
    device = comm.device(resolve_device(config.device))
    train_set = LabelledImages(cache, train_records, labels)
    val_set = LabelledImages(cache, val_records, labels) if val_records else None
    counts = train_set.labels.sum(axis=1)  # [N] labels per train image
    tagger = Tagger(config.model, cache.dim, len(labels.classes), len(labels.tags),
                    float(counts.mean()), float(counts.std())).to(device)
    plan = stage_plan(config)
    log = MetricsLog(run.metrics) if comm.is_main else None
    state, resumed = _Progress(), None
    if resume:
        resumed = load_checkpoint(run.checkpoint("last"))
        tagger.load_state_dict(resumed["model"])
        state = _Progress(**resumed["progress"])
        restore_rng_states(resumed["rng"])
        if log:
            log.truncate_after(state.step)
    elif comm.is_main:
        run.create(config.to_dict(), cache_record(cache))
        atomic_write_json(run.labels, {"classes": labels.classes, "tags": labels.tags, "source": labels.source})

    batch_items = config.batch_size
    steps_per_epoch = math.ceil(len(train_set) / batch_items)
    while not state.finished:
        components = plan[state.stage]
        freeze_all_but(tagger, components)
        model = DistributedDataParallel(tagger) if comm.world > 1 else tagger
        optimizer, schedule = build_stage_optimizer(tagger, components, config)
        if resumed is not None and resumed["optimizer"] is not None:
            optimizer.load_state_dict(resumed["optimizer"])
            schedule.load_state_dict(resumed["schedule"])
        resumed = None

        def save(which: str) -> None:
            """At a stage boundary (epoch 0) the optimiser belongs to the finished stage: not saved,
            so a resumed run builds the next stage's afresh, as the uninterrupted one does."""
            if comm.is_main:
                mid_stage = state.epoch > 0
                save_checkpoint(run.checkpoint(which), model=tagger.state_dict(),
                                optimizer=optimizer.state_dict() if mid_stage else None,
                                schedule=schedule.state_dict() if mid_stage else None,
                                progress=vars(state).copy(), rng=rng_states(), config=config.to_dict())

        while state.epoch < config.epochs and not state.finished:
            train_set.set_epoch(config.seed, state.stage, state.epoch)
            started = time.perf_counter()
            train_loss = _train_epoch(model, tagger, train_set, components, optimizer, config, device, state,
                                      steps_per_epoch, log, progress, comm)
            schedule.step()
            state.epoch, state.epochs_total = state.epoch + 1, state.epochs_total + 1
            record = _validate(tagger, val_set, plan, state.stage, components, config, device) \
                if comm.is_main and val_set else {}
            record = comm.broadcast(record)
            state.seconds += time.perf_counter() - started
            watched = -record["val_loss"] if "val_loss" in record else -train_loss
            if state.best is None or watched > state.best:
                state.best, state.best_epoch, state.epochs_without_gain = watched, state.epoch, 0
                save("best")
            else:
                state.epochs_without_gain += 1
            if log:
                log.write({"kind": "epoch", "step": state.step, "stage": state.stage + 1, "stage_epoch": state.epoch,
                           "components": components, "train_loss": train_loss, **record, "seconds": state.seconds,
                           "processes": comm.world})
            stop_stage = bool(config.early_stop) and state.epochs_without_gain >= config.early_stop
            if stop_stage or state.epoch >= config.epochs:
                _start_next_stage(tagger, run, state, len(plan), comm)
            save("last")
            if state.epoch == 0 or state.finished:  # a stage ended (epochs take seconds: plot per stage)
                if comm.is_main:
                    plot_runs({run.root.name: run.root}, run.plots)
                break  # a new stage begins: rebuild its optimiser and DDP wrapper
    best = -state.best if state.best is not None else None
    return TrainResult(run.root, state.epochs_total, state.step, best, state.best_epoch, state.seconds, False, comm.is_main)


def _start_next_stage(tagger: Tagger, run: RunFolder, state: _Progress, n_stages: int, comm: Collective) -> None:
    """Continue from the finished stage's best weights (rank 0 reads them and every rank gets them)."""
    weights = load_checkpoint(run.checkpoint("best"))["model"] if comm.is_main else None
    tagger.load_state_dict(comm.broadcast(weights))
    if state.stage + 1 >= n_stages:
        state.finished = True
        return
    state.stage, state.epoch, state.best, state.best_epoch, state.epochs_without_gain = state.stage + 1, 0, None, None, 0


def _train_epoch(model, tagger: Tagger, train_set: LabelledImages, components: list[str], optimizer,
                 config: TaggingConfig, device, state: _Progress, steps_per_epoch: int, log: MetricsLog | None,
                 progress: bool, comm: Collective) -> float:
    """-> the epoch's mean train loss (the sum of its components' losses per image)."""
    tagger.train()
    for name, module in tagger.components().items():  # frozen heads run as at inference (no dropout)
        module.train(name in components)
    batches = ShardedBatches(len(train_set), config.batch_size, comm.rank, comm.world)
    loader = DataLoader(train_set, batch_sampler=batches, collate_fn=collate_tags, num_workers=config.data.workers,
                        generator=torch.Generator().manual_seed(config.seed))
    total, count = 0.0, 0
    bar = tqdm(loader, desc=f"stage {state.stage + 1} epoch {state.epoch + 1}/{config.epochs}", unit="batch",
               disable=not progress, leave=False, total=steps_per_epoch)
    for batch in bar:
        batch = batch.to(device)
        out = model(batch.features, batch.tags if tagger.tags is not None else None)
        sums = loss_sums(tagger, out, batch, components)
        loss_sum = sum(sums.values())
        try:
            (images,) = global_counts(comm, device, loss_sum.item(), [len(batch.images)])
        except NonFiniteLoss as e:
            raise CapcacheError(f"loss became {e} at step {state.step + 1}; training stopped, the last good "
                                "checkpoint is kept; lower the learning rates (optim.*_lr)") from None
        optimizer.zero_grad(set_to_none=True)
        (loss_sum / images).backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in tagger.parameters() if p.requires_grad],
            config.optim.grad_clip if config.optim.grad_clip > 0 else float("inf")).item()
        optimizer.step()
        state.step += 1
        figure = loss_sum.item() / len(batch.images)
        total, count = total + figure, count + 1
        bar.set_postfix(loss=f"{figure:.4f}")
        if log and (state.step % config.log_every == 0 or count == steps_per_epoch):
            log.write({"kind": "step", "step": state.step, "epoch": state.epoch + count / steps_per_epoch,
                       "batch_train_loss": figure, **{f"batch_{k}_loss": v.item() / len(batch.images)
                                                      for k, v in sums.items()},
                       "learning_rate": optimizer.param_groups[0]["lr"], "grad_norm": grad_norm})
    return total / max(count, 1)


@torch.inference_mode()
def _validate(tagger: Tagger, val_set: LabelledImages, plan: list[list[str]], stage: int, components: list[str],
              config: TaggingConfig, device) -> dict:
    """The stage's val loss (what picks its best epoch) and the val scores of what is trained so far."""
    tagger.eval()
    val_set.in_order()
    total = 0.0
    for batch in DataLoader(val_set, batch_size=256, collate_fn=collate_tags, num_workers=config.data.workers):
        batch = batch.to(device)
        out = tagger(batch.features, batch.tags if tagger.tags is not None else None)
        total += sum(v.item() for v in loss_sums(tagger, out, batch, components).values())
    done = trained_by(plan, stage)
    pred = predict(tagger, val_set, device, use_combined="combine" in done, use_quantity="quantity" in done,
                   workers=config.data.workers)
    indicator = config.indicator if config.indicator != "topk" or pred.counts is not None else "top3"
    scores = headline_scores(pred, indicator, config.top_k).to_dict()
    record = {"val_loss": total / len(val_set), **{f"val_{k}": v for k, v in scores.items()}}
    if pred.counts is not None:
        record["val_count_error"] = float(np.abs(pred.counts - pred.truth.sum(axis=1)).mean())
    return record
