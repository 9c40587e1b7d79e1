"""Beam search for a whole batch of images at once, through any decoder's step interface.

All live beams of all images go through ONE ``decoder.step`` call per time step: the state is
expanded to [B*k, ...] once and reordered by backpointers with ``select_state`` every step (except
tensors the steps leave untouched, such as the image features: they are the same for all beams of
an image), and images whose search is over leave the batch, so the step shrinks as images finish.

Conventions (shared with ``greedy_search``, so beam size 1 reproduces greedy):

* step t (0-based) emits one token per beam; ``max_len`` is the number of steps, so a caption has
  at most ``max_len`` words, or at most ``max_len - 1`` words when it ends with <end>;
* a hypothesis' log-prob is the sum over every token it emitted, <end> included;
* its **length** (for the length penalty) counts the same tokens: words + 1 when it emitted <end>,
  words alone when it was cut at ``max_len``;
* ``min_len`` is a number of words: <end> is forbidden at steps t < min_len;
* <pad> and <start> are never emitted, nor <unk> unless ``allow_unk`` (``banned.py``, as greedy).

Finished hypotheses follow the usual "2k candidates" scheme: each step every image ranks its 2k
best (beam, token) extensions; an <end> candidate ranked within the first k is moved to the
image's finished list (scored with the length penalty, never extended), and the first k non-<end>
candidates stay live, so an image always keeps k live beams. An image is done when it holds
``n_best`` finished hypotheses that no live beam can beat any more (log-probs only fall, so a live
beam's best possible score is bounded); at ``max_len`` the live beams are finalised as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pipeline.data.vocab import END_ID, START_ID
from pipeline.decoders.base import CaptionDecoder, select_state
from pipeline.decoding.banned import mask_banned
from pipeline.decoding.length_penalty import length_penalty as penalty_factor
from pipeline.decoding.length_penalty import normalised_score
from pipeline.decoding.ngram import repeated_ngram_mask


@dataclass(frozen=True)
class Hypothesis:
    tokens: list[int]  # word ids, without <start>/<end>
    log_prob: float  # sum of the log-probs of every emitted token (<end> included when ended)
    score: float  # log_prob / length penalty; what hypotheses are ranked by
    ended: bool  # True when it emitted <end>, False when it was cut at max_len

    @property
    def length(self) -> int:
        return len(self.tokens) + int(self.ended)


@torch.inference_mode(False)  # version counters tell which state tensors a step left untouched; inference
@torch.no_grad()  # tensors have none, so the search runs outside inference mode even when its caller is in it
def beam_search(decoder: CaptionDecoder, features: torch.Tensor, beam_size: int = 5, max_len: int = 20,
                min_len: int = 1, length_penalty: float = 0.0, no_repeat_ngram: int = 0,
                n_best: int = 1, allow_unk: bool = False) -> list[list[Hypothesis]]:
    """features [B, L, D] -> for every image its (up to) ``n_best`` best hypotheses, best first.

    An image gets fewer than ``n_best`` hypotheses only when its constraints (min_len,
    no_repeat_ngram) leave fewer complete paths than that.
    """
    if beam_size < 1 or max_len < 1 or min_len < 0 or no_repeat_ngram < 0:
        raise ValueError(f"bad beam settings: beam_size={beam_size}, max_len={max_len}, min_len={min_len}, "
                         f"no_repeat_ngram={no_repeat_ngram}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size ({beam_size}), got {n_best}")
    if features.is_inference():
        features = features.clone()  # [B, L, D], a normal tensor (with a version counter)
    k, batch, device = beam_size, features.size(0), features.device
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    if batch == 0:
        return finished
    # the n_best-th best finished score of every image (-inf until it has n_best): what live beams must beat
    threshold = [-math.inf] * batch
    # alpha > 0 lets a live beam's normalised score rise with length: bound it by the widest penalty
    widest = max(penalty_factor(n, length_penalty) for n in (1, max_len))

    active = torch.arange(batch, device=device)  # images still searching, [n]
    state = select_state(decoder.init_state(features), active.repeat_interleave(k))  # [B*k, ...]
    # state tensors no step has replaced or modified (image features, projections, a transformer's memory) are
    # equal across an image's k beams, so backpointers (which stay within an image) cannot change them: they
    # are only re-selected when images leave the batch. key -> version counter when last checked
    shared = {key: value._version for key, value in state.items()}
    tokens = torch.full((batch * k,), START_ID, dtype=torch.long, device=device)  # last token of every beam
    history = torch.zeros((batch * k, 0), dtype=torch.long, device=device)  # words so far, [n*k, t]
    beam_logp = torch.full((batch, k), -math.inf, device=device)  # cumulative log-prob, [n, k]
    beam_logp[:, 0] = 0.0  # one live beam per image at first, so the k beams do not start as copies
    row_offset = (torch.arange(batch, device=device) * k).unsqueeze(1)  # first row of each image, [B, 1]
    rank = torch.arange(2 * k, device=device)

    for t in range(max_len):
        n = active.numel()
        previous = state
        log_probs, state = decoder.step(state, tokens)  # [n*k, V]
        shared = {key: version for key, version in shared.items()
                  if state.get(key) is previous[key] and previous[key]._version == version}
        vocab = log_probs.size(-1)
        log_probs = mask_banned(log_probs, t, min_len, allow_unk)  # [n*k, V] float32
        if no_repeat_ngram:
            banned = repeated_ngram_mask(history, no_repeat_ngram, vocab)
            if banned is not None:
                log_probs.masked_fill_(banned, -math.inf)

        candidates = (beam_logp.view(-1, 1) + log_probs).view(n, k * vocab)  # [n, k*V]
        top_logp, top_index = candidates.topk(2 * k, dim=1)  # [n, 2k], best first
        top_beam, top_token = top_index // vocab, top_index % vocab  # backpointer (beam within image), token
        top_row = top_beam + row_offset[:n]  # row in the [n*k] batch
        is_end = top_token == END_ID

        # <end> within the first k ranks: a finished hypothesis (never extended)
        img_pos, end_rank = (is_end[:, :k] & (top_logp[:, :k] > -math.inf)).nonzero(as_tuple=True)
        if img_pos.numel():
            rows = top_row[img_pos, end_rank]
            for i, words, lp in zip(active[img_pos].tolist(), history[rows].tolist(), top_logp[img_pos, end_rank].tolist()):
                finished[i].append(Hypothesis(words, lp, normalised_score(lp, len(words) + 1, length_penalty), True))
                threshold[i] = _threshold(finished[i], n_best)

        # the first k candidates that are not <end> stay live (rank order kept)
        order = (is_end.long() * (2 * k) + rank).argsort(dim=1)[:, :k]  # [n, k]
        live_logp, live_row, live_token = (x.gather(1, order) for x in (top_logp, top_row, top_token))

        if t == max_len - 1:  # out of steps: the live beams are finalised as they are
            words = torch.cat([history[live_row.view(-1)], live_token.view(-1, 1)], 1).view(n, k, -1)
            for i, img_words, img_logp in zip(active.tolist(), words.tolist(), live_logp.tolist()):
                for w, lp in zip(img_words, img_logp):
                    if lp > -math.inf:
                        finished[i].append(Hypothesis(w, lp, normalised_score(lp, len(w), length_penalty), False))
            break

        # done: n_best finished that the best live beam (rank 0) cannot beat even at its best length
        keep = [threshold[i] < lp / widest for i, lp in zip(active.tolist(), live_logp[:, 0].tolist())]
        if not any(keep):
            break
        fixed = {key: state[key] for key in shared}
        if not all(keep):  # finished images leave the batch
            keep_t = torch.tensor(keep, device=device)
            image_rows = (keep_t.nonzero() * k + torch.arange(k, device=device)).view(-1)  # their rows, in order
            fixed = select_state(fixed, image_rows)
            shared = {key: value._version for key, value in fixed.items()}
            active, live_logp, live_row, live_token = active[keep_t], live_logp[keep_t], live_row[keep_t], live_token[keep_t]
        index = live_row.reshape(-1)
        state = {**select_state({key: v for key, v in state.items() if key not in shared}, index), **fixed}
        history = torch.cat([history.index_select(0, index), live_token.reshape(-1, 1)], 1)
        tokens = live_token.reshape(-1)
        beam_logp = live_logp

    return [sorted(hyps, key=lambda h: -h.score)[:n_best] for hyps in finished]


def _threshold(hyps: list[Hypothesis], n_best: int) -> float:
    if len(hyps) < n_best:
        return -math.inf
    return sorted((h.score for h in hyps), reverse=True)[n_best - 1]
