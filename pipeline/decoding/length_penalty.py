"""GNMT length normalisation (Wu et al. 2016): score = log-prob / ((5 + length) / 6) ** alpha.

alpha = 0 ranks by raw log-probability (which favours short captions); alpha > 0 favours longer
ones, alpha < 0 shorter ones. ``length`` is what beam search counts as a hypothesis' length: its
words plus the <end> token when it emitted one (every token whose log-probability is in the sum).
"""

from __future__ import annotations


def length_penalty(length: int, alpha: float) -> float:
    return ((5.0 + length) / 6.0) ** alpha if alpha else 1.0


def normalised_score(log_prob: float, length: int, alpha: float) -> float:
    return log_prob / length_penalty(length, alpha)
