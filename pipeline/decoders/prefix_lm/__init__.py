"""The ``prefix_lm`` decoder: a ``transformers`` causal LM captioning from a mapped image prefix."""

from pipeline.decoders.config import DecoderConfig
from pipeline.decoders.prefix_lm.decoder import PrefixLM
from pipeline.decoders.registry import register


@register("prefix_lm")
def build_prefix_lm(config: DecoderConfig, feature_dim: int, n_tokens: int, vocab_size: int) -> PrefixLM:
    return PrefixLM(config, feature_dim, n_tokens, vocab_size)
