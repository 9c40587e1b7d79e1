"""Caption decoders. Adding one: a new file that calls ``register``, plus one import line here."""

from pipeline.decoders.registry import available_decoders, build_decoder
from pipeline.decoders import att_rnn  # noqa: F401  (registers att_lstm, att_gru)

__all__ = ["available_decoders", "build_decoder"]
