"""A pretrained causal LM and its tokenizer, from a local folder or the Hugging Face cache, or a
one-line error at once when neither has it and the hub cannot be reached (as the encoders do).

Used only when a run starts (``pipeline.training.vocabulary``): the run then records the LM's
config and tokenizer, and its checkpoints hold the weights, so a trained run never needs this again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from pipeline.encoders.downloads import OFFLINE_ENV, first_line, hf_hub_cache, require_reachable
from pipeline.errors import CapcacheError
from pipeline.optional import require


@dataclass
class PretrainedLM:
    model: nn.Module  # a transformers causal LM
    tokenizer_json: str  # its fast tokenizer, serialised
    bos: int
    eos: int


def load_pretrained_lm(name: str) -> PretrainedLM:
    transformers = require("transformers")
    AutoModelForCausalLM, AutoTokenizer = transformers.AutoModelForCausalLM, transformers.AutoTokenizer

    local = Path(name).expanduser()
    what = f"language model {name!r}"
    if local.is_dir():
        source, only_local = str(local), True
    else:
        source, only_local = name, _cached(name)
        if not only_local:
            from huggingface_hub import constants
            folder = Path(hf_hub_cache()) / f"models--{name.replace('/', '--')}"
            require_reachable(f"{constants.ENDPOINT}/{name}/resolve/main/config.json", what, folder,
                              f"run once on a machine with internet (it is cached in {folder.parent}) or pass "
                              f"--set model.lm=/path/to/a/saved/model/folder", (OFFLINE_ENV, "HF_HUB_OFFLINE"),
                              smoke_test="--set model.lm=scratch")
    try:
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=only_local)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=only_local)
    except (OSError, ValueError) as e:
        raise CapcacheError(f"cannot load {what}: {first_line(e)}") from e
    if not getattr(tokenizer, "is_fast", False):
        raise CapcacheError(f"{what} has no fast (tokenizers) tokenizer; save one with tokenizer.json beside it")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise CapcacheError(f"{what}'s tokenizer has no end-of-sequence token; it cannot end a caption")
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    return PretrainedLM(model, tokenizer.backend_tokenizer.to_str(), bos, eos)


def _cached(name: str) -> bool:
    """Whether the Hugging Face cache already holds ``name``'s config (then no network is needed)."""
    from huggingface_hub import try_to_load_from_cache
    return isinstance(try_to_load_from_cache(name, "config.json", cache_dir=hf_hub_cache()), str)
