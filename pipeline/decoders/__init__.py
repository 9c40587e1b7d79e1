"""Caption decoders. Adding one: a new file that calls ``register``, plus one import line here."""

from pipeline.decoders.registry import available_decoders, build_decoder
from pipeline.decoders import att_rnn  # noqa: F401  (registers att_lstm, att_gru)
from pipeline.decoders import prefix_lm  # noqa: F401  (registers prefix_lm; transformers is imported on first use)
from pipeline.decoders import show_tell  # noqa: F401  (registers show_tell, show_tell_gru)
from pipeline.decoders import transformer  # noqa: F401  (registers transformer)

__all__ = ["available_decoders", "build_decoder"]
