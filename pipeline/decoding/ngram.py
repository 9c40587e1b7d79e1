"""No-repeat n-gram blocking: a hypothesis may not produce an n-gram of words it already contains."""

from __future__ import annotations

import torch


def repeated_ngram_mask(history: torch.Tensor, n: int, vocab_size: int) -> torch.Tensor | None:
    """history [R, t] (words emitted so far, no <start>) -> bool [R, V]: tokens that would repeat an n-gram.

    Token w is banned for row r when (last n-1 words of r, w) already occurs in r; n = 1 bans every
    word used so far. Returns None when nothing can be banned yet (t < n).
    """
    rows, t = history.shape
    if n <= 0 or t < n:
        return None
    suffix = history[:, t - n + 1:]  # [R, n-1], the prefix the next token would complete
    grams = history.unfold(1, n, 1)  # [R, t-n+1, n]: every n-gram already emitted
    match = (grams[:, :, : n - 1] == suffix.unsqueeze(1)).all(-1)  # [R, t-n+1]
    counts = torch.zeros(rows, vocab_size, device=history.device)
    counts.scatter_add_(1, grams[:, :, n - 1], match.float())  # [R, V]
    return counts > 0
