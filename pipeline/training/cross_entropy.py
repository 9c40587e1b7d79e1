"""The cross-entropy objective: teacher forcing, label smoothing, the decoder's regulariser."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.parallel import DistributedDataParallel

from pipeline.data.vocab import PAD_ID
from pipeline.decoders.base import CaptionDecoder
from pipeline.distributed import Collective
from pipeline.training.config import TrainConfig
from pipeline.training.data import Batch
from pipeline.training.global_batch import global_counts


@dataclass
class LossTerms:
    """Sums over one process's share of a batch; ``scaled`` turns them into the loss to optimise."""
    objective: torch.Tensor  # training objective (label-smoothed when asked) summed over real tokens
    regularization: torch.Tensor  # the decoder's extra term, a mean over this share's captions
    nll: torch.Tensor  # plain cross-entropy summed over real tokens: what train_loss and val_loss report
    tokens: int  # real target tokens
    captions: int

    def scaled(self, tokens: float, captions: float) -> torch.Tensor:
        """Objective per token and regularisation per caption, over ``tokens`` / ``captions``."""
        return self.objective / tokens + self.regularization * (self.captions / captions)


def caption_loss(model: CaptionDecoder | DistributedDataParallel, batch: Batch, teacher_forcing: float,
                 label_smoothing: float) -> LossTerms:
    """batch.tokens [B, T] = <start> w1 .. wn <end> <pad>...; features one row per image."""
    inputs, targets = batch.tokens[:, :-1], batch.tokens[:, 1:]  # [B, T-1] each
    out = model(batch.features, inputs, teacher_forcing, batch.image_index)  # logits [B, T-1, V]
    decoder = getattr(model, "module", model)  # DDP wraps the decoder
    mask = targets != PAD_ID  # [B, T-1]
    log_probs = out.logits.float().log_softmax(-1)[mask]  # [N, V] real tokens only
    nll = -log_probs.gather(1, targets[mask].unsqueeze(1)).sum()
    # PyTorch's label smoothing: (1 - eps) * nll + eps * mean over the vocabulary of -log p
    objective = nll if not label_smoothing else (1 - label_smoothing) * nll - label_smoothing * log_probs.mean(-1).sum()
    return LossTerms(objective, decoder.regularization(out, mask), nll.detach(), int(mask.sum()), inputs.size(0))


def training_loss(model, batch: Batch, config: TrainConfig, comm: Collective, device) -> tuple[torch.Tensor, float]:
    """-> (loss to back-propagate, plain cross-entropy per token of this share), normalised over
    the global batch (``global_batch.py``); raises NonFiniteLoss on every rank when one's is broken."""
    terms = caption_loss(model, batch, config.teacher_forcing, config.optim.label_smoothing)
    # one device sync for the finiteness check and the logged loss
    value, nll = torch.stack([(terms.objective + terms.regularization).detach(), terms.nll]).tolist()
    tokens, captions = global_counts(comm, device, value, [terms.tokens, terms.captions])
    return terms.scaled(tokens, captions), nll / max(terms.tokens, 1)
