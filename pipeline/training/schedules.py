"""Optimisers and learning-rate schedules named in the config (seed 001: Adam + ReduceLROnPlateau;
Transformers: AdamW + linear warm-up then cosine decay, stepped per batch)."""

from __future__ import annotations

import math
from typing import Iterable

import torch

from pipeline.errors import CapcacheError
from pipeline.training.config import OptimConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise CapcacheError(f"unknown optimizer {cfg.optimizer!r}; use adam or adamw")


# Per-batch schedules after the linear warm-up: the factor at a share of the remaining steps.
PER_BATCH = {
    "cosine": lambda progress: 0.5 * (1.0 + math.cos(math.pi * progress)),
    "linear": lambda progress: 1.0 - progress,  # transformers' get_linear_schedule_with_warmup (ClipCap)
}


class Schedule:
    """Wraps the torch scheduler so the loop needn't know whether it steps per batch or per epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
        self.kind = cfg.schedule
        if cfg.schedule == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience)
        elif cfg.schedule in PER_BATCH:
            warmup, decay = max(0, cfg.warmup_steps), PER_BATCH[cfg.schedule]

            def factor(step: int) -> float:
                if step < warmup:
                    return (step + 1) / warmup
                return decay(min(1.0, (step - warmup) / max(1, total_steps - warmup)))
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        elif cfg.schedule == "none":
            self.scheduler = None
        else:
            raise CapcacheError(f"unknown schedule {cfg.schedule!r}; use plateau, cosine, linear or none")

    def after_batch(self) -> None:
        if self.kind in PER_BATCH:
            self.scheduler.step()

    def after_epoch(self, val_loss: float | None) -> None:
        if self.kind == "plateau" and val_loss is not None:
            self.scheduler.step(val_loss)

    def state_dict(self) -> dict:
        return self.scheduler.state_dict() if self.scheduler else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler:
            self.scheduler.load_state_dict(state)
