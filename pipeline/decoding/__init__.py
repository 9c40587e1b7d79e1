"""Turning a decoder's step function into captions: greedy and beam search, batched across images."""

from pipeline.decoding.greedy import greedy_search

__all__ = ["greedy_search"]
