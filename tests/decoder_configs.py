"""What tests need to build any registered decoder the same way.

``prefix_lm`` is built from its language model's resolved config (a run fills it when it starts);
here it gets a scratch GPT-2 of the test's width over ids 0..V-1 used as they are (offset 0),
<start> as bos, <end> as eos and id 4 as <sep>.
"""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from pipeline.data.subword import LmTokens
from pipeline.data.vocab import END_ID, START_ID
from pipeline.decoders import build_decoder
from pipeline.decoders.config import DecoderConfig


def resolved(name: str, config: DecoderConfig, vocab_size: int) -> DecoderConfig:
    if name != "prefix_lm":
        return config
    from pipeline.decoders.prefix_lm.language_model import with_scratch_lm
    return with_scratch_lm(replace(config, lm_layers=2, prefix_len=3), LmTokens(0, START_ID, END_ID, 4, vocab_size))


def build(name: str, config: DecoderConfig, feature_dim: int, n_tokens: int, vocab_size: int) -> nn.Module:
    return build_decoder(name, resolved(name, config, vocab_size), feature_dim, n_tokens, vocab_size)


def output_bias(decoder: nn.Module) -> nn.Parameter:
    """The bias of the decoder's output layer: one entry per vocabulary id."""
    return decoder.out.bias if hasattr(decoder, "out") else decoder.logit_bias
