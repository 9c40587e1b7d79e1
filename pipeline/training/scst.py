"""Self-critical sequence training: optimise CIDEr-D directly (Rennie et al. 2017).

Each step samples N captions per image (``decoding/sampling.py``), scores each with CIDEr-D
against the image's train references (``evaluation/cider_d.py``, document frequencies of the
train references) and raises the log-probability of the samples that beat a baseline:

    loss = -(reward - baseline) * log p(sample)     per token, <end> included, nothing after it

The baseline is the mean reward of the image's other samples ("new self-critical", Luo 2020) or
the reward of its greedy caption (Rennie et al.). Sampling and the log-probabilities both run
with the decoder in eval mode, so the policy being improved is exactly the one that decodes at
test time (on-policy; no dropout mask differs between drawing a sample and scoring it).
``scst.dropout`` scores the samples with the decoder's dropout on instead, as ruotianluo's
self-critical.pytorch trains (it samples in train mode): the gradient then belongs to the
dropout-perturbed policy, a regulariser where the train references are few. The
log-probabilities come from one teacher-forced forward over the samples, so the step runs
through DDP like a cross-entropy step and every registered decoder works unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pipeline.data.vocab import END_ID, PAD_ID
from pipeline.data.word_ids import WordIds
from pipeline.decoding.banned import banned_positions
from pipeline.decoding.greedy import greedy_search
from pipeline.decoding.sampling import Samples, sample_captions
from pipeline.evaluation.cider_d import CiderD, DocumentFrequency, PreparedReferences
from pipeline.io import atomic_path
from pipeline.training.config import TrainConfig
from pipeline.training.data import Batch
from pipeline.training.global_batch import global_counts


SAMPLE_MIN_LEN = 1  # samples have at least one word (<end> is banned at the first step)


class CiderReward:
    """CIDEr-D of captions (token ids) against the references of their images (record indices)."""

    def __init__(self, references: list[list[list[int]]], document_frequency: DocumentFrequency, end_token: bool,
                 words: WordIds | None = None):
        self.references = references
        self.words = words  # a subword vocabulary's: samples are turned into word ids first
        self.scorer = CiderD(document_frequency)
        self.end_token = end_token
        self._prepared: dict[int, PreparedReferences] = {}  # image -> its reference vectors, built on first use

    def __call__(self, images: Sequence[int], captions: Sequence[Sequence[int]], ended: Sequence[bool]) -> np.ndarray:
        """-> one reward per caption [S]; ``ended``: it drew <end> (which then counts as a word when
        ``end_token``). An empty caption gets 0 whatever its references."""
        for image in set(images) - self._prepared.keys():
            self._prepared[image] = self.scorer.prepare(self.references[image])
        if self.words is not None:
            captions = [self.words.of_tokens(c) for c in captions]
        words = [[*c, END_ID] if self.end_token and stop and c else list(c) for c, stop in zip(captions, ended)]
        return self.scorer.scores(words, [self._prepared[i] for i in images])


def load_or_count_document_frequency(path: Path, references: list[list[list[int]]]) -> DocumentFrequency:
    """The train references' document frequencies, counted once and kept in the run folder.

    The file records a digest of the references it was counted from; one that does not match
    (another manifest, vocabulary or tokenizer) is counted again and replaced, never reused.
    """
    digest = hashlib.sha256(json.dumps(references).encode()).hexdigest()
    if path.is_file():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            stored = json.load(f)
        if stored.get("references") == digest:
            return DocumentFrequency({tuple(g): c for g, c in stored["ngrams"]}, stored["images"])
    df = DocumentFrequency.from_references(references)
    with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as f:
        json.dump({"references": digest, "images": df.images, "ngrams": [[list(g), c] for g, c in df.counts.items()]}, f)
    return df


@dataclass
class ScstStep:
    loss: torch.Tensor  # to back-propagate, normalised over the global batch's sampled tokens
    record: dict[str, float]  # batch_reward, baseline, entropy, sample_length, samples_cut


def scst_loss(model, batch: Batch, rewards: CiderReward, config: TrainConfig, comm, device) -> ScstStep:
    """One self-critical step's loss on ``batch`` (its images; its captions are not used)."""
    decoder = getattr(model, "module", model)  # DDP wraps the decoder
    was_training = decoder.training
    decoder.eval()
    try:
        return _scst_loss(model, decoder, batch, rewards, config, comm, device, was_training)
    finally:
        decoder.train(was_training)


def _scst_loss(model, decoder, batch: Batch, rewards: CiderReward, config: TrainConfig, comm, device,
               was_training: bool) -> ScstStep:
    cfg = config.scst
    samples = sample_captions(decoder, batch.features, cfg.samples, config.max_decode_len, cfg.temperature,
                              SAMPLE_MIN_LEN)
    reward, baseline = _reward_and_baseline(decoder, batch, samples, rewards, config, device)  # [K*N] each
    decoder.train(was_training and cfg.dropout)
    chosen, entropy, mask = _sample_log_probs(model, batch, samples, cfg.temperature, cfg.entropy > 0, device)
    objective = -((reward - baseline).unsqueeze(1) * chosen).sum() - cfg.entropy * entropy
    count = int(mask.sum())
    value, entropy_sum = torch.stack([objective.detach(), entropy.detach()]).tolist()
    (tokens_global,) = global_counts(comm, device, value, [count])
    words = samples.tokens.ne(PAD_ID).sum(1).float() - samples.ended.float()  # [K*N]
    record = {"batch_reward": reward.mean().item(), "baseline": baseline.mean().item(),
              "entropy": entropy_sum / max(count, 1), "sample_length": words.mean().item(),
              "samples_cut": 1.0 - samples.ended.float().mean().item()}
    return ScstStep(objective / max(tokens_global, 1.0), record)


def _reward_and_baseline(decoder, batch: Batch, samples: Samples, rewards: CiderReward, config: TrainConfig,
                         device) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (each sample's reward [K*N], its baseline [K*N])."""
    n = samples.per_image
    images = batch.images.repeat_interleave(n).tolist()  # [K*N] record index of each sample
    reward = torch.as_tensor(rewards(images, samples.captions(), samples.ended.tolist()), dtype=torch.float32,
                             device=device)
    if config.scst.baseline == "greedy":
        greedy, _ = greedy_search(decoder, batch.features, config.max_decode_len)
        ended = [len(c) < config.max_decode_len for c in greedy]
        baseline = torch.as_tensor(rewards(batch.images.tolist(), greedy, ended), dtype=torch.float32, device=device)
        return reward, baseline.repeat_interleave(n)
    by_image = reward.view(-1, n)  # [K, N]: each sample against the mean of its image's other samples
    return reward, ((by_image.sum(1, keepdim=True) - by_image) / (n - 1)).flatten()


def _sample_log_probs(model, batch: Batch, samples: Samples, temperature: float, entropy_grad: bool,
                      device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One teacher-forced forward over the samples -> (log-prob of each sampled token [K*N, T], 0 after
    <end>; the summed entropy of those steps' distributions, differentiable when ``entropy_grad``;
    mask [K*N, T] of the sampled tokens)."""
    tokens = samples.teacher_forcing_tokens()  # [K*N, T+1]
    inputs, targets = tokens[:, :-1], tokens[:, 1:]  # [K*N, T] each
    rows = torch.arange(batch.features.size(0), device=device).repeat_interleave(samples.per_image)  # [K*N]
    logits = model(batch.features, inputs, 1.0, rows).logits  # [K*N, T, V]
    mask = targets != PAD_ID  # <end> included
    # the distribution the samples were drawn from: the sampler's banned tokens at -inf. Scored
    # with the full softmax instead, pushing down a poor sample's words would raise <unk>, <pad> and
    # <start>, which are never sampled and so never pushed down again: their mass grows unchecked.
    step = torch.arange(targets.size(1), device=device).expand_as(targets)[mask]  # [M] step of each sampled token
    banned = banned_positions(targets.size(1), logits.size(-1), SAMPLE_MIN_LEN, device=device)[step]  # [M, V]
    log_probs = (logits[mask].float() / temperature).masked_fill(banned, -math.inf).log_softmax(-1)  # [M, V]
    chosen = torch.zeros(targets.shape, dtype=log_probs.dtype, device=device)  # [K*N, T]
    chosen[mask] = log_probs.gather(1, targets[mask].unsqueeze(1)).squeeze(1)
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        # p log p with p = 0 at the banned tokens: 0, not 0 * -inf (and no NaN gradient through it)
        entropy = -(log_probs.exp() * log_probs.masked_fill(banned, 0.0)).sum()
    return chosen, entropy, mask
