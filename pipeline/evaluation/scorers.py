"""Caption metrics computed the way the COCO caption evaluation computes them.

Scores are only comparable with published ones when tokenisation and arithmetic are the official
ones, so nothing here re-implements a metric: captions are PTB-tokenised and handed to
pycocoevalcap's Bleu(4), Meteor(), Rouge(), Cider() (and Spice()) in the dict shapes COCOEvalCap
uses. Corpus BLEU is Bleu's first return value, computed from corpus-wide n-gram counts; the mean
of per-sentence BLEU is a different (higher) number and is only used per image.

What this module adds is resilience around Java: a metric whose Java tool cannot answer is listed
in ``unavailable`` with the reason, with a one-line warning, and everything else is still scored.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from pipeline.errors import CapcacheError
from pipeline.evaluation.java import JavaToolError
from pipeline.evaluation.meteor import meteor_score
from pipeline.evaluation.ptb import tokenize
from pipeline.evaluation.spice import spice_score

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")

Captions = dict[str, list[str]]
# pycocoevalcap's compute_score(gts, res) -> (corpus score, per-image scores in gts order), with
# one list of each per metric when a scorer computes several (BLEU-1..4).
ComputeScore = Callable[[Captions, Captions], tuple[Any, Any]]

_SCORERS: tuple[tuple[tuple[str, ...], ComputeScore], ...] = (
    (METRICS[:4], lambda gts, res: Bleu(4).compute_score(gts, res, verbose=0)),
    (("METEOR",), meteor_score),
    (("ROUGE-L",), lambda gts, res: Rouge().compute_score(gts, res)),
    (("CIDEr",), lambda gts, res: Cider().compute_score(gts, res)),
    (("SPICE",), spice_score),
)


@dataclass
class ScoreResult:
    scores: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # metric -> why it has no score
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)  # image id -> metric -> score
    notes: list[str] = field(default_factory=list)  # caveats on all scores, e.g. approximate tokenisation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_captions(candidates: dict[str, str], references: dict[str, list[str]], spice: bool = False,
                   per_image: bool = False, metrics: Sequence[str] | None = None) -> ScoreResult:
    """Score one candidate caption per image against that image's references.

    ``metrics`` (default: all of METRICS) narrows what is computed, so that validation during
    training can skip METEOR's ~10 s JVM start; ``spice`` adds SPICE. Images in ``references``
    without a candidate are ignored (CIDEr's document frequencies come from the scored images only,
    as in COCOEvalCap). Without Java, METEOR and SPICE are unavailable and tokenisation falls back
    to ``ptb.approximate_ptb``, which ``notes`` records.
    """
    wanted = _wanted_metrics(metrics, spice)
    _check_inputs(candidates, references)
    gts, res, fallback_reason = _tokenized(candidates, references)
    result = ScoreResult()
    if fallback_reason:
        result.notes.append("captions were tokenised by a Python approximation of the PTB tokenizer, so scores "
                            f"may differ slightly from official COCO ones: {fallback_reason}")
        warnings.warn(result.notes[-1], stacklevel=2)
    for names, compute in _SCORERS:
        names_wanted = [name for name in names if name in wanted]
        if not names_wanted:
            continue
        try:
            computed = _run(names, compute, gts, res)
        except JavaToolError as exc:
            result.unavailable.update(dict.fromkeys(names_wanted, str(exc)))
            warnings.warn(f"{'/'.join(names_wanted)} not scored: {exc}", stacklevel=2)
            continue
        for metric in names_wanted:
            corpus, image_scores = computed[metric]
            result.scores[metric] = corpus
            if per_image:
                for image_id, score in zip(gts, image_scores):
                    result.per_image.setdefault(image_id, {})[metric] = score
    return result


def _wanted_metrics(metrics: Sequence[str] | None, spice: bool) -> set[str]:
    wanted = set(METRICS if metrics is None else metrics) | ({"SPICE"} if spice else set())
    unknown = wanted - {*METRICS, "SPICE"}
    if unknown:
        raise CapcacheError(f"unknown metric {sorted(unknown)[0]!r}; choose from {', '.join(METRICS)}, SPICE")
    return wanted


def _check_inputs(candidates: dict[str, str], references: dict[str, list[str]]) -> None:
    """Every candidate needs references: without them a metric is undefined, and a silently
    dropped image would change the corpus scores without anyone noticing."""
    if not candidates:
        raise CapcacheError("no candidate captions to score")
    missing = [image_id for image_id in candidates if not references.get(image_id)]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise CapcacheError(f"no reference captions for image {', '.join(map(repr, missing[:3]))}{more}; "
                            "every candidate needs at least one")
    strings = [image_id for image_id in candidates if isinstance(references[image_id], str)]
    if strings:
        raise CapcacheError(f"references for image {strings[0]!r} are a string; give a list of captions")


def _tokenized(candidates: dict[str, str], references: dict[str, list[str]]) -> tuple[Captions, Captions, str | None]:
    """(gts, res, fallback reason), in candidate order; all captions go to one tokenizer run,
    since starting the JVM costs more than tokenising."""
    ids = list(candidates)
    tokenized = tokenize([candidates[i] for i in ids] + [ref for i in ids for ref in references[i]])
    tokens = iter(tokenized.captions)
    res = {i: [next(tokens)] for i in ids}
    gts = {i: [next(tokens) for _ in references[i]] for i in ids}
    return gts, res, tokenized.fallback_reason


def _run(metrics: tuple[str, ...], compute: ComputeScore, gts: Captions,
         res: Captions) -> dict[str, tuple[float, list[float]]]:
    corpus, per_image = compute(gts, res)
    if len(metrics) == 1:
        corpus, per_image = [corpus], [per_image]
    return {m: (float(c), [float(s) for s in p]) for m, c, p in zip(metrics, corpus, per_image)}
