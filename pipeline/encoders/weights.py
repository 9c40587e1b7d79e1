"""Where an encoder's weights come from: a published name, a local file, or a seeded random init.

``random`` (or ``random:SEED``) builds the identical network in every process and every resumed
run, which is what tests, the offline demo and multi-process extraction need; a path loads a
local checkpoint; anything else is a name the encoder resolves (torchvision enum, open_clip tag).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from pipeline.digests import file_digest
from pipeline.errors import CapcacheError
from pipeline.memo import recall, remember


@dataclass(frozen=True)
class WeightsSpec:
    kind: str  # "random" | "file" | "named"
    value: str  # seed, absolute path or published name

    @classmethod
    def parse(cls, text: str) -> "WeightsSpec":
        if text == "random" or text.startswith("random:"):
            seed = text.partition(":")[2] or "0"
            if not seed.isdigit():
                raise CapcacheError(f"bad weights {text!r}: use random or random:SEED with an integer seed")
            return cls("random", seed)
        if text.endswith((".pt", ".pth", ".bin", ".ckpt", ".safetensors")) or Path(text).exists():
            path = Path(text).expanduser()
            if not path.is_file():
                raise CapcacheError(f"weights file {path} not found; pass an existing file, a published name, or random")
            return cls("file", str(path.resolve()))
        return cls("named", text)

    @property
    def label(self) -> str:
        """What goes into the cache key: the file's name and content rather than where it happens to lie
        (checkpoints of one architecture all have the same size, so size alone tells nothing)."""
        if self.kind == "random":
            return f"random:{self.value}"
        if self.kind == "file":
            return f"file:{Path(self.value).name}:{remembered_digest(Path(self.value))}"
        return self.value


def remembered_digest(path: Path) -> str:
    """The content digest of a weights file, hashed once and then remembered by (path, size, mtime) in
    ``$CAPCACHE_HOME`` (``pipeline.memo``), since a checkpoint can be GBs."""
    st = path.stat()
    entry = [st.st_size, st.st_mtime_ns]
    known = recall(_MEMO, str(path))
    if isinstance(known, list) and known[:2] == entry:
        return known[2]
    digest = file_digest(path)
    remember(_MEMO, str(path), [*entry, digest])
    return digest


_MEMO = "weights-digests"


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block under a fixed torch seed without disturbing the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def load_state_file(path: str) -> dict:
    """A plain state dict, or one nested under 'state_dict'/'model' as training scripts save it."""
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or foreign file: say which and why in one line
        text = " ".join(str(e).split())
        # torch's weights_only refusal is a page of advice around one line that says what it met
        refused = text.partition("WeightsUnpickler error: ")[2].partition(" Check the documentation")[0]
        reason = f"not a plain state dict that torch.load(weights_only=True) accepts ({refused})" if refused else text
        raise CapcacheError(f"cannot read weights file {path}: {reason}") from e
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state


def load_strict(module: torch.nn.Module, state: dict, source: str) -> None:
    """Load every tensor of ``state`` into ``module`` and nothing else, or raise one line saying what does not fit.

    A checkpoint of another architecture (resnet101 into resnet50, a classifier head of another size)
    would otherwise fail with PyTorch's multi-line report, or with strict=False load silently half of it.
    """
    if not isinstance(state, dict):
        raise CapcacheError(f"{source} holds a {type(state).__name__}, not a state dict of tensors")
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatch: the first line after PyTorch's header names the tensor
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise CapcacheError(f"{source} does not fit {type(module).__name__}: {detail}") from e
    missing, unexpected = result.missing_keys, result.unexpected_keys
    if missing or unexpected:
        raise CapcacheError(f"{source} does not fit {type(module).__name__}: {len(missing)} tensors missing"
                            + (f" (e.g. {missing[0]})" if missing else "")
                            + f", {len(unexpected)} unexpected" + (f" (e.g. {unexpected[0]})" if unexpected else ""))
