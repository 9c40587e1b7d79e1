"""What a tagging stage trains, on which loss, at which rates (seed 004, sections 3.5 and 4.3).

Seed staging: the visual classifier and the tag MLP first (independent, "some can be trained
synchronously"), then LP over their frozen outputs, then LQP. ``joint`` trains every head in one
stage; since LP and LQP read detached probabilities, each head still follows its own loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.heads.tagger import COMPONENTS, Tagger, TaggerOutput
from pipeline.training.tagging.config import TaggingConfig
from pipeline.inference.labelled_images import TagBatch

CLASSIFIERS = ("visual", "tags", "combine")  # BCE heads, whose rates halve at the milestones; LQP's stays constant


def stage_plan(config: TaggingConfig) -> list[list[str]]:
    present = [c for c in COMPONENTS if getattr(config.model, c)]
    if config.stages == "joint":
        return [present]
    first = [c for c in ("visual", "tags") if c in present]
    return [first, *([c] for c in ("combine", "quantity") if c in present)]


def trained_by(plan: list[list[str]], stage: int) -> set[str]:
    """Components trained in stages 0..stage: which outputs of the model mean something yet."""
    return {c for s in plan[: stage + 1] for c in s}


def freeze_all_but(tagger: Tagger, components: list[str]) -> None:
    for name, module in tagger.components().items():
        module.requires_grad_(name in components)


def loss_sums(tagger: Tagger, out: TaggerOutput, batch: TagBatch, components: list[str]) -> dict[str, torch.Tensor]:
    """Each component's loss summed over the batch's images (means per image over classes for BCE),
    so a DDP job can divide by the global image count."""
    y = batch.labels  # [B, C]
    sums = {}
    for name in components:
        if name == "quantity":
            target = tagger.normalised_counts(y.sum(dim=1))  # [B]
            sums[name] = F.mse_loss(out.quantity, target, reduction="sum")
        else:
            logits = {"visual": out.visual, "tags": out.tags, "combine": out.combined}[name]  # [B, C]
            sums[name] = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(dim=1).sum()
    return sums


def build_stage_optimizer(tagger: Tagger, components: list[str], config: TaggingConfig):
    """AdamW with one parameter group per component at its own rate, and an epoch schedule that
    halves the classifiers' rates at the milestones (the seed's scheduler) and keeps LQP's."""
    o = config.optim
    rates = {"visual": o.visual_lr, "tags": o.tags_lr, "combine": o.combine_lr, "quantity": o.quantity_lr}
    modules = tagger.components()
    groups = [{"params": list(modules[c].parameters()), "lr": rates[c]} for c in components]
    optimizer = torch.optim.AdamW(groups, weight_decay=o.weight_decay)

    def halving(epoch: int) -> float:
        return o.gamma ** sum(epoch >= m for m in o.milestones)

    factors = [halving if c in CLASSIFIERS else (lambda epoch: 1.0) for c in components]
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
