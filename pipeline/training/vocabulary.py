"""The vocabulary a new run trains with, and for a language-model decoder the LM it starts from.

Word decoders get a word vocabulary of the train captions. ``prefix_lm`` gets its LM's own
tokenizer: a byte-level BPE trained on the train captions for a scratch LM, or the pretrained
LM's tokenizer (with its weights, loaded once here). Either way the LM's full config and special
ids go into the run's config (``model.lm_resolved``), so the run rebuilds offline from its folder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pipeline.data.vocab import CaptionVocabulary, Vocabulary
from pipeline.training.config import TrainConfig

LM_DECODERS = ("prefix_lm",)  # decoders whose tokens are a language model's


@dataclass
class RunVocabulary:
    config: TrainConfig  # with model.lm_resolved filled for an LM decoder
    vocab: CaptionVocabulary
    lm_weights: dict | None  # a pretrained LM's state dict, to load into the decoder's ``lm``


def new_run_vocabulary(config: TrainConfig, captions: list[str]) -> RunVocabulary:
    if config.decoder not in LM_DECODERS:
        return RunVocabulary(config, Vocabulary.build(captions, config.data.min_freq, config.data.tokenizer), None)
    from pipeline.data.subword import SubwordVocabulary
    from pipeline.decoders.prefix_lm.language_model import resolve_lm, scratch_config

    model, style = config.model, config.data.tokenizer
    if model.lm == "scratch":
        vocab = SubwordVocabulary.train_bpe(captions, model.bpe_vocab, style)
        lm_config, weights = scratch_config(model, vocab.lm.size, vocab.lm.bos, vocab.lm.eos), None
    else:
        from pipeline.decoders.prefix_lm.pretrained import load_pretrained_lm
        pretrained = load_pretrained_lm(model.lm)
        vocab = SubwordVocabulary.from_pretrained(pretrained.tokenizer_json, model.lm, pretrained.bos, pretrained.eos, style)
        pretrained.model.resize_token_embeddings(vocab.lm.size)  # one row more when <sep> was added
        lm_config, weights = pretrained.model.config.to_dict(), pretrained.model.state_dict()
    return RunVocabulary(replace(config, model=resolve_lm(model, lm_config, vocab.lm)), vocab, weights)
