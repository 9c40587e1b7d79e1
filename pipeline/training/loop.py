"""Stage two: fit a caption decoder on cached features.

One epoch = the sampled (image, caption) pairs of the train split, in batches grouped by image
(``data.group_by_image``); after each epoch: validation loss, greedy-decoded validation metrics,
LR schedule, checkpoints (last, and best by ``val_metric``), plots and the early-stopping check. ``checkpoint_every`` also saves "last" within
an epoch. Resuming restores everything saved at the last checkpoint (model, optimiser, schedule,
RNG states, position in the epoch), so an interrupted-and-resumed run ends with the same weights.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pipeline.data.manifest import Manifest
from pipeline.data.text import tokenizer
from pipeline.data.vocab import load_vocabulary
from pipeline.decoders import build_decoder
from pipeline.decoders.glove import init_word_embeddings
from pipeline.decoding.captions import caption_cached_images
from pipeline.device import resolve_device
from pipeline.distributed import Collective, in_process_group
from pipeline.evaluation.diversity import repeated_bigram_share
from pipeline.errors import CapcacheError
from pipeline.training.cache_use import cache_record, check_cache, check_token_positions, open_cache, open_views
from pipeline.runs.checkpoint import load_checkpoint, restore_rng_states, rng_states, save_checkpoint
from pipeline.training.config import TrainConfig
from pipeline.training.cross_entropy import caption_loss
from pipeline.training.data import CaptionGroups, collate, items_per_batch
from pipeline.training.global_batch import NonFiniteLoss
from pipeline.training.init_from import initial_weights
from pipeline.training.objectives import StepLoss, build_objective
from pipeline.runs.metrics_log import MetricsLog
from pipeline.training.plots import plot_runs
from pipeline.runs.folder import RunFolder, load_or_check_config
from pipeline.training.schedules import Schedule, build_optimizer
from pipeline.training.sharding import ShardedBatches
from pipeline.training.vocabulary import new_run_vocabulary


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int  # epochs completed
    steps: int
    best_metric: float | None
    best_epoch: int | None
    seconds: float
    stopped_early: bool
    main_process: bool = True  # False on the other ranks of a torchrun job (they print nothing)


@dataclass
class _Progress:
    epoch: int = 0  # epochs completed
    step: int = 0
    best: float | None = None
    best_epoch: int | None = None
    epochs_without_gain: int = 0
    seconds: float = 0.0  # training time accumulated over every session of this run
    finished: bool = False  # all epochs done, or stopped early: resuming has nothing left to do
    batch_in_epoch: int = 0  # batches of the current epoch already trained (checkpoints within an epoch)
    epoch_loss: float = 0.0  # sum of their headline figures (loss; SCST: reward), for the epoch's mean


def train(config: TrainConfig | None, run_dir: str | Path, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train (or with ``resume`` continue) the run in ``run_dir``.

    Under ``torchrun`` every process trains a DDP replica on its share of each global batch; rank 0
    alone validates and writes the run folder, and shares what the others need to stay in step.
    """
    run = RunFolder(Path(run_dir))
    config = load_or_check_config(TrainConfig, config, run, resume)  # every rank checks before rank 0 writes
    return in_process_group(config.device, lambda comm: _train(config, run, resume, progress and comm.is_main, comm))


def _train(config: TrainConfig, run: RunFolder, resume: bool, progress: bool, comm: Collective) -> TrainResult:
    seed_everything(config.seed)
    manifest = Manifest.load(config.data.manifest)
    train_records = manifest.split("train") + manifest.split("restval")  # Karpathy COCO trains on restval too
    val_records = manifest.split("val")
    if not train_records:
        raise CapcacheError(f"manifest {config.data.manifest} has no train split; import it with a split or add one")
    cache = open_cache(config.data.cache, config.data.in_memory, progress)
    check_cache(cache, manifest, config.data.encoder, run, resume)
    check_token_positions(cache, config.model)
    views = open_views(cache, config.data.views, config.data.in_memory, progress, run, resume)
    start = initial_weights(config, cache) if config.init_from and not resume else None
    lm_weights = None
    if resume or start:
        vocab = load_vocabulary(run.vocab) if resume else start.vocab
    else:  # a language-model decoder also resolves its LM here (config.model.lm_resolved)
        chosen = new_run_vocabulary(config, [c for r in train_records for c in r.captions])
        config, vocab, lm_weights = chosen.config, chosen.vocab, chosen.lm_weights

    device = comm.device(resolve_device(config.device))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    decoder = build_decoder(config.decoder, config.model, cache.dim, cache.n_tokens, len(vocab))
    glove = init_word_embeddings(decoder, vocab, config.model.glove_path, config.model.freeze_embeddings,
                                 load=not resume and not start)
    if start:
        decoder.load_state_dict(start.model)
    elif lm_weights is not None:
        decoder.lm.load_state_dict(lm_weights)  # a pretrained LM (prefix_lm with model.lm=NAME)
    decoder = decoder.to(device)
    model = DistributedDataParallel(decoder, device_ids=[device.index] if device.type == "cuda" else None) \
        if comm.world > 1 else decoder  # what the training step calls; `decoder` is the plain module
    train_set = CaptionGroups(cache, train_records, vocab, config.data.max_words, views)
    val_set = CaptionGroups(cache, val_records, vocab, config.data.max_words) if val_records else None
    batch_items = _items_per_batch(train_set, config)
    steps_per_epoch = math.ceil(len(train_set) / batch_items)
    optimizer = build_optimizer(decoder.parameters(), config.optim)
    schedule = Schedule(optimizer, config.optim, total_steps=steps_per_epoch * config.epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and device.type == "cuda")
    log = MetricsLog(run.metrics) if comm.is_main else None
    state = _Progress()

    if resume:
        ckpt = load_checkpoint(run.checkpoint("last"))
        decoder.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        scaler.load_state_dict(ckpt["scaler"])
        state = _Progress(**ckpt["progress"])
        restore_rng_states(ckpt["rng"])
        if log:
            log.truncate_after(state.step)
    elif comm.is_main:
        run.create(config.to_dict(), cache_record(cache, views))
        vocab.save(run.vocab)
        if glove and progress:
            tqdm.write(glove.summary())
        if start and progress:
            tqdm.write(start.summary())

    step_loss = build_objective(config, run, train_records, vocab, comm, device)  # after the folder exists

    def save(which: str) -> None:  # "last": everything `train --resume` needs to continue from here
        if comm.is_main:
            _save(run.checkpoint(which), decoder, optimizer, schedule, scaler, state, vocab, config)

    state.finished = state.finished or state.epoch >= config.epochs
    if not val_records and config.val_metric != "loss" and progress:
        tqdm.write(f"no val split: the best checkpoint follows the train loss, not {config.val_metric}")
    while not state.finished:
        train_set.set_epoch(state.epoch, config.seed, config.data.captions_per_image, config.data.group_by_image)
        train_figure = _train_epoch(model, step_loss, train_set, batch_items, optimizer, schedule, scaler, config,
                                    device, state, steps_per_epoch, log, progress, comm, save)
        started = time.perf_counter()  # validation time (_train_epoch counts its own)
        val_loss, scores, repeats = None, {}, None
        if comm.is_main:  # the other ranks wait for the numbers below
            val_loss = _validation_loss(decoder, val_set, config, device) if val_set else None
            if val_records:
                scores, repeats = _validation_scores(decoder, cache, val_records, vocab, config, device)
        train_figure, val_loss, scores, repeats = comm.broadcast(
            (_mean(comm.gather(train_figure)), val_loss, scores, repeats))
        train_loss = train_figure if step_loss.headline == "train_loss" else None
        schedule.after_epoch(val_loss)
        state.epoch += 1
        state.seconds += time.perf_counter() - started
        if log:
            log.write({"kind": "epoch", "epoch": state.epoch, "step": state.step, step_loss.headline: train_figure,
                       "val_loss": val_loss, **{f"val_{k}": v for k, v in scores.items()},
                       **({"val_repeated_2grams": repeats} if repeats is not None else {}), "seconds": state.seconds,
                       "processes": comm.world})
        watched = scores.get(config.val_metric, _without_val_metric(val_loss, train_loss, train_figure))
        if state.best is None or watched > state.best:
            state.best, state.best_epoch, state.epochs_without_gain = watched, state.epoch, 0
            save("best")
        else:
            state.epochs_without_gain += 1
        stopped_early = bool(config.early_stop) and state.epochs_without_gain >= config.early_stop
        state.finished = stopped_early or state.epoch >= config.epochs
        save("last")
        if comm.is_main:
            plot_runs({run.root.name: run.root}, run.plots)
    return TrainResult(run.root, state.epoch, state.step, state.best, state.best_epoch, state.seconds,
                       state.epoch < config.epochs, comm.is_main)


def optimizer_step(model, loss: torch.Tensor, optimizer, scaler, schedule: Schedule, grad_clip: float) -> tuple[float, bool]:
    """Backward, clip and step -> (gradient norm, whether the step was taken).

    With mixed precision the scaler skips a step whose gradients overflowed (and lowers its
    scale); the learning-rate schedule then must not advance either, or warm-up and decay would
    run ahead of the optimiser.
    """
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    limit = grad_clip if grad_clip > 0 else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), limit).item()
    scale = scaler.get_scale() if scaler.is_enabled() else None
    scaler.step(optimizer)
    scaler.update()
    taken = scale is None or scaler.get_scale() >= scale  # the scale only drops on a skipped step
    if taken:
        schedule.after_batch()
    return grad_norm, taken


def _train_epoch(model, step_loss: StepLoss, train_set, batch_items: int, optimizer, schedule, scaler,
                 config: TrainConfig, device, state: _Progress, steps_per_epoch: int, log: MetricsLog | None,
                 progress: bool, comm: Collective, save: Callable[[str], None]) -> float:
    """Train the rest of the epoch (all of it unless resumed within it) -> the epoch's mean of the
    objective's headline figure (train loss, or SCST's sample reward)."""
    model.train()
    batches = ShardedBatches(len(train_set), batch_items, comm.rank, comm.world, skip=state.batch_in_epoch)
    # a generator of its own: the loader's worker seed would otherwise be drawn from the global RNG,
    # which a run resumed mid-epoch restores to where it was after that draw
    loader = DataLoader(train_set, batch_sampler=batches, collate_fn=collate, num_workers=config.data.workers,
                        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(config.seed))
    total, count = state.epoch_loss, state.batch_in_epoch
    saved = f"step {state.step}" if count else f"epoch {state.epoch}"  # what checkpoints/last.pt holds
    clock = time.perf_counter()
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=scaler.is_enabled())
    bar = tqdm(loader, desc=f"epoch {state.epoch + 1}/{config.epochs}", unit="batch", disable=not progress,
               leave=False, initial=count, total=steps_per_epoch)
    for batch in bar:
        batch = batch.to(device)
        try:
            with autocast:
                loss, figures = step_loss(model, batch)
        except NonFiniteLoss as e:
            raise CapcacheError(
                f"loss became {e} at step {state.step + 1} (epoch {state.epoch + 1}); training stopped, "
                f"the last good checkpoint is kept ({saved}); lower optim.lr or set optim.grad_clip") from None
        learning_rate = optimizer.param_groups[0]["lr"]  # the rate this step uses (the schedule moves on below)
        grad_norm, _ = optimizer_step(model, loss, optimizer, scaler, schedule, config.optim.grad_clip)
        state.step += 1
        figure = figures[step_loss.step_figure]
        total, count = total + figure, count + 1
        bar.set_postfix({step_loss.step_figure.removeprefix("batch_"): f"{figure:.3f}"})
        if log and (state.step % config.log_every == 0 or count == steps_per_epoch):
            log.write({"kind": "step", "step": state.step, "epoch": state.epoch + count / steps_per_epoch,
                       **figures, "learning_rate": learning_rate, "grad_norm": grad_norm})
        if config.checkpoint_every and state.step % config.checkpoint_every == 0 and count < steps_per_epoch:
            state.batch_in_epoch, state.epoch_loss = count, total
            now = time.perf_counter()
            state.seconds, clock = state.seconds + now - clock, now
            save("last")
            saved = f"step {state.step}"
    state.batch_in_epoch, state.epoch_loss = 0, 0.0  # the epoch-end checkpoint starts the next epoch afresh
    state.seconds += time.perf_counter() - clock
    return total / max(count, 1)


@torch.inference_mode()
def _validation_loss(decoder, val_set: CaptionGroups, config: TrainConfig, device) -> float:
    """Plain cross-entropy per token over every val caption (no label smoothing, as train_loss)."""
    decoder.eval()
    val_set.set_epoch(0, config.seed, 0)  # every caption, fixed order, grouped by image
    loader = DataLoader(val_set, batch_size=items_per_batch(config.batch_size, val_set.captions_per_item()), collate_fn=collate,
                        num_workers=config.data.workers)
    total, tokens_seen = 0.0, 0
    for batch in loader:
        terms = caption_loss(decoder, batch.to(device), 1.0, 0.0)
        total, tokens_seen = total + terms.nll.item(), tokens_seen + terms.tokens
    return total / max(tokens_seen, 1)


def _validation_scores(decoder, cache, records, vocab, config: TrainConfig, device) -> tuple[dict[str, float], float]:
    """-> (greedy val scores, the share of repeated bigrams in those captions)."""
    from pipeline.evaluation.scorers import score_captions  # java start-up only when validating

    records = records[: config.val_max_images]
    captions = caption_cached_images(decoder, cache, [r.image_id for r in records], vocab, device,
                                     config.batch_size, config.max_decode_len)
    wanted = {"BLEU-4", "CIDEr"} | ({config.val_metric} - {"loss"})
    result = score_captions(captions, {r.image_id: r.captions for r in records}, metrics=tuple(sorted(wanted)))
    split = tokenizer(vocab.tokenizer)
    return dict(result.scores), repeated_bigram_share([split(c) for c in captions.values()])


def _save(path: Path, decoder, optimizer, schedule: Schedule, scaler, state: _Progress, vocab,
          config: TrainConfig) -> None:
    save_checkpoint(path, model=decoder.state_dict(), optimizer=optimizer.state_dict(),
                    schedule=schedule.state_dict(), scaler=scaler.state_dict(), progress=vars(state).copy(),
                    rng=rng_states(), config=config.to_dict(), vocab_size=len(vocab))


def _without_val_metric(val_loss: float | None, train_loss: float | None, train_figure: float) -> float:
    """What picks the best checkpoint when the val metric is "loss" or there is no val split (higher is better)."""
    if val_loss is not None:
        return -val_loss
    return -train_loss if train_loss is not None else train_figure  # SCST: the train reward


def _mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def _items_per_batch(items: CaptionGroups, config: TrainConfig) -> int:
    """Images (grouped) or pairs (flat) per batch, so that a batch holds about ``batch_size`` captions
    (SCST: ``batch_size`` sampled captions, ``scst.samples`` per image)."""
    if config.objective == "scst":
        return max(1, config.batch_size // config.scst.samples)
    k = config.data.captions_per_image
    per_image = sum(len(c) if k <= 0 else min(k, len(c)) for c in items.captions) / max(len(items.captions), 1)
    return items_per_batch(config.batch_size, per_image if config.data.group_by_image else 1.0)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
