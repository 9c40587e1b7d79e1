"""What a training step minimises, chosen by ``TrainConfig.objective``: one interface for the loop.

A step loss takes (model, batch) and returns the loss to back-propagate and the figures to log for
that step; ``headline`` names the step figure whose epoch mean the epoch record carries.
"""

from __future__ import annotations

from typing import Protocol

import torch

from pipeline.data.manifest import ImageRecord
from pipeline.data.vocab import CaptionVocabulary
from pipeline.distributed import Collective
from pipeline.training.config import TrainConfig
from pipeline.training.cross_entropy import training_loss
from pipeline.training.data import Batch
from pipeline.runs.folder import RunFolder
from pipeline.data.word_ids import WordIds, reference_ids
from pipeline.training.scst import CiderReward, load_or_count_document_frequency, scst_loss


class StepLoss(Protocol):
    headline: str  # "train_loss" | "train_reward": the epoch record's figure, the mean of step_figure
    step_figure: str  # the step record's key of that figure

    def __call__(self, model, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]: ...


class CrossEntropy:
    headline, step_figure = "train_loss", "batch_train_loss"

    def __init__(self, config: TrainConfig, comm: Collective, device):
        self.config, self.comm, self.device = config, comm, device

    def __call__(self, model, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        loss, nll = training_loss(model, batch, self.config, self.comm, self.device)
        return loss, {"batch_train_loss": nll}


class SelfCritical:
    headline, step_figure = "train_reward", "batch_reward"

    def __init__(self, config: TrainConfig, rewards: CiderReward, comm: Collective, device):
        self.config, self.rewards, self.comm, self.device = config, rewards, comm, device

    def __call__(self, model, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        step = scst_loss(model, batch, self.rewards, self.config, self.comm, self.device)
        return step.loss, step.record


def build_objective(config: TrainConfig, run: RunFolder, train_records: list[ImageRecord], vocab: CaptionVocabulary,
                    comm: Collective, device) -> StepLoss:
    if config.objective == "xe":
        return CrossEntropy(config, comm, device)
    words = WordIds(vocab)
    references = reference_ids([r.captions for r in train_records], words, config.scst.end_token)
    df = load_or_count_document_frequency(run.root / "cider_df.json.gz", references)
    return SelfCritical(config, CiderReward(references, df, config.scst.end_token, words if words.subword else None),
                        comm, device)
