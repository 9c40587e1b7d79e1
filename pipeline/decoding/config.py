"""How captions are decoded, as one typed record: what `capcache eval` takes and writes to eval/<split>.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from pipeline.errors import CapcacheError

STRATEGIES = ("greedy", "beam")
DEFAULT_MAX_LEN = 20


@dataclass(frozen=True)
class DecodingConfig:
    strategy: str = "greedy"  # "greedy" | "beam"
    beam_size: int = 5  # beam only
    # decoding steps, <end> included: at most max_len words, or max_len - 1 when the caption ends with <end>;
    # None = the run's max_decode_len (else 20)
    max_len: int | None = None
    min_len: int = 1  # <end> is forbidden until this many words were emitted (every strategy)
    allow_unk: bool = False  # let captions contain <unk> (banned by default; see banned.py)
    length_penalty: float = 0.0  # beam only: GNMT alpha, score = log-prob / ((5 + length) / 6) ** alpha
    no_repeat_ngram: int = 0  # beam only: forbid repeating any n-gram of this size; 0 = off
    # beam only: keep the hypothesis closest (CIDEr-D) to the captions of this many nearest training photos
    # instead of the most probable one (consensus.py); 0 = off
    rerank_neighbours: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise CapcacheError(f"unknown decoding strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if self.beam_size < 1:
            raise CapcacheError(f"beam size must be at least 1, got {self.beam_size}")
        if self.max_len is not None and self.max_len < 1:
            raise CapcacheError(f"max_len must be at least 1, got {self.max_len}")
        if self.min_len < 0 or (self.max_len is not None and self.min_len >= self.max_len):
            raise CapcacheError(f"min_len must be at least 0 and below max_len ({self.max_len}) so that <end> can "
                                f"be emitted, got {self.min_len}")
        if self.no_repeat_ngram < 0:
            raise CapcacheError(f"no_repeat_ngram must be 0 (off) or positive, got {self.no_repeat_ngram}")
        if self.rerank_neighbours < 0:
            raise CapcacheError(f"--rerank (rerank_neighbours) must be 0 (off) or positive, got {self.rerank_neighbours}")
        if self.rerank_neighbours and (self.strategy != "beam" or self.beam_size < 2):
            raise CapcacheError("consensus reranking chooses among a beam's hypotheses; decode with --beam 2 or "
                                "more (10 measured best), or drop --rerank")

    @classmethod
    def from_beam(cls, beam: int = 1, **fields) -> "DecodingConfig":
        """``--beam N`` as the CLI spells it: 1 (or less) is greedy, more is beam search with N beams."""
        return cls(strategy="beam" if beam > 1 else "greedy", beam_size=max(beam, 1), **fields)

    def resolved(self, default_max_len: int | None = None) -> "DecodingConfig":
        """The same settings with max_len filled in (from the run's config when it was left open)."""
        if self.max_len is not None:
            return self
        return replace(self, max_len=default_max_len or DEFAULT_MAX_LEN)

    def describe(self) -> dict:
        """The settings that apply to this strategy (what eval/<split>.json records)."""
        d = asdict(self)
        if self.strategy == "greedy":
            return {key: d[key] for key in ("strategy", "max_len", "min_len", "allow_unk")}
        if not self.rerank_neighbours:  # reports written before reranking existed stay the same decoding
            del d["rerank_neighbours"]
        return d
