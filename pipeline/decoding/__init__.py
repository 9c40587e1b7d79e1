"""Turning a decoder's step function into captions: greedy and beam search, batched across images.

``decode(decoder, features, DecodingConfig(...))`` is the one entry point; ``greedy_search`` and
``beam_search`` are the strategies behind it.
"""

from pipeline.decoding.beam import Hypothesis, beam_search
from pipeline.decoding.config import DecodingConfig
from pipeline.decoding.greedy import greedy_search
from pipeline.decoding.search import decode

__all__ = ["DecodingConfig", "Hypothesis", "beam_search", "decode", "greedy_search"]
