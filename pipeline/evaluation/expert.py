"""Do our metrics agree with people as much as the literature says? Flickr8k-Expert, scored our way.

Flickr8k's ``ExpertAnnotations.txt`` (Hodosh et al. 2013) holds 5,822 (image, candidate caption)
pairs, each judged by three experts from 1 ("unrelated to the image") to 4 ("describes it without
errors"). A candidate is a Flickr8k caption, named by its ``IMAGE.jpg#N`` id in
``Flickr8k.token.txt``, usually one written for another image. Metric papers report Kendall's
tau-c between a metric's per-candidate score and these judgements; ``expert_agreement`` computes
the same numbers with ``score_captions``, so that a wiring mistake (tokenisation, per-image score
order, references) shows up as a gap to the published table.

The protocol is that of CLIPScore (Hessel et al. 2021, Table 1 and its code,
``flickr8k_example/download.py`` and ``compute_metrics.py``), which follows the SPICE paper
(Anderson et al. 2016) and Cui et al. 2018:
- a pair is dropped when the candidate's text is one of the judged image's own five references
  (158 pairs in the real file, exactly the pairs whose candidate id names the judged image),
  leaving 5,664 pairs;
- every candidate is scored against all five references of the judged image, each pair as its
  own entry of one ``score_captions`` call, so an image judged with several candidates appears
  once per candidate (CIDEr's document frequencies therefore come from 5,664 reference sets,
  which gives the same IDF as CLIPScore's 16,992 entries: both counts scale by 3);
- each of the three judgements is its own item (16,992 items), paired with its candidate's
  metric score; tau-c, ``scipy.stats.kendalltau(variant="c")``'s convention, ×100.
Per-candidate BLEU is pycocoevalcap's per-sentence BLEU (its per-image list, 'closest' reference
length, its own tiny/small smoothing constants), as in CLIPScore.

With it, BLEU-1/BLEU-4/ROUGE-L/METEOR/CIDEr give 32.32/30.78/32.31/41.82/43.89 against the
published 32.3/30.8/32.3/41.8/43.9. The protocol matters: keeping the 158 own-reference pairs
raises every tau-c by ~5 points (BLEU-1 37.4, CIDEr 48.3), and one item per pair against the
mean of the three judgements gives another set (BLEU-1 32.8, CIDEr 45.4).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pipeline.data.importers.reading import text_lines
from pipeline.errors import CapcacheError, DataError
from pipeline.evaluation.agreement import kendall_tau_c
from pipeline.evaluation.scorers import METRICS, score_captions

# Hessel et al. 2021 (CLIPScore, EMNLP), Table 1, Flickr8K-Expert column, tau-c × 100.
PUBLISHED_TAU_C: dict[str, float] = {
    "BLEU-1": 32.3, "BLEU-4": 30.8, "ROUGE-L": 32.3, "METEOR": 41.8, "CIDEr": 43.9, "SPICE": 44.9,
}
PUBLISHED_SOURCE = "Hessel et al. 2021, CLIPScore, Table 1 (Flickr8K-Expert, tau-c)"
TOKEN_FILE = "Flickr8k.token.txt"
EXPERT_FILE = "ExpertAnnotations.txt"
JUDGES = 3
PROTOCOL = ("Flickr8k-Expert as in Hessel et al. 2021 (after Anderson et al. 2016): pairs whose candidate text "
            "is one of the judged image's references dropped; each candidate PTB-tokenised and scored against "
            "the judged image's 5 references, one entry per pair in a single score_captions call (per-sentence "
            "BLEU from pycocoevalcap's per-image list; CIDEr-D IDF over the scored pairs' reference sets); "
            f"each of the {JUDGES} expert judgements a separate item; Kendall tau-c (scipy variant 'c') x 100.")


@dataclass(frozen=True)
class ExpertPair:
    image: str  # the judged image, e.g. "1056338697_4f7d7ce270.jpg"
    candidate_id: str  # "IMAGE.jpg#N" in the token file
    candidate: str  # that caption's text
    references: tuple[str, ...]  # the judged image's captions in the token file
    judgements: tuple[int, ...]  # the experts' scores, 1-4

    @property
    def key(self) -> str:
        """Unique per pair: the same image is judged with several candidates."""
        return f"{self.image} {self.candidate_id}"


@dataclass
class ExpertData:
    pairs: list[ExpertPair]  # those kept
    pairs_in_file: int
    dropped_own_reference: int  # candidate text is one of the judged image's references
    dropped_same_image_id: int  # of those, how many have a candidate id naming the judged image


@dataclass
class AgreementResult:
    metrics: list[str] = field(default_factory=list)  # those asked for, in table order
    tau_c: dict[str, float] = field(default_factory=dict)  # metric -> Kendall tau-c x 100
    published: dict[str, float] = field(default_factory=lambda: dict(PUBLISHED_TAU_C))
    published_source: str = PUBLISHED_SOURCE
    pairs_in_file: int = 0
    pairs_dropped: int = 0  # candidate is one of the judged image's own references
    pairs_used: int = 0
    judgements_used: int = 0  # items in each tau-c: pairs_used x 3
    images: int = 0  # distinct judged images among the pairs used
    unavailable: dict[str, str] = field(default_factory=dict)  # metric -> why it has no tau-c
    notes: list[str] = field(default_factory=list)
    protocol: str = PROTOCOL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[dict[str, Any]]:
        """One row per metric asked for: ours, published, ours - published (None where absent)."""
        rows = []
        for name in self.metrics:
            ours, theirs = self.tau_c.get(name), self.published.get(name)
            diff = None if ours is None or theirs is None else ours - theirs
            rows.append({"metric": name, "tau_c": ours, "published": theirs, "diff": diff})
        return rows

    def table(self) -> str:
        header = ("metric", "tau-c x100", "published", "diff")
        body = [(r["metric"], _cell(r["tau_c"], "n/a" if r["metric"] in self.unavailable else "-"),
                 _cell(r["published"], "-", digits=1), _cell(r["diff"], "", signed=True)) for r in self.rows()]
        widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
        fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
        return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths)),
                          *(fmt.format(*row) for row in body)])

    def summary(self) -> str:
        lines = [f"Flickr8k-Expert: {self.pairs_used} of {self.pairs_in_file} (image, caption) pairs "
                 f"({self.pairs_dropped} dropped: candidate is one of the image's references), "
                 f"{self.images} images, {self.judgements_used} judgements",
                 self.table(),
                 f"published: {self.published_source}"]
        lines += [f"{metric} not scored: {why}" for metric, why in self.unavailable.items()]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def expert_agreement(token_file: str | os.PathLike, expert_file: str | os.PathLike,
                     metrics: Sequence[str] | None = None) -> AgreementResult:
    """Kendall tau-c (x100) between each metric's per-candidate score and the Flickr8k expert
    judgements, with the protocol of the module docstring. ``metrics`` as in ``score_captions``
    (default: BLEU-1..4, METEOR, ROUGE-L, CIDEr; "SPICE" may be added). A metric whose Java tool is
    missing is listed in ``unavailable``; ~35 s on one core, mostly METEOR and the PTB tokenizer."""
    wanted = _wanted(metrics)
    data = read_expert_pairs(token_file, expert_file)
    if not data.pairs:
        raise DataError("no (image, caption) pairs left to score", Path(expert_file))
    scored = score_captions({p.key: p.candidate for p in data.pairs},
                            {p.key: list(p.references) for p in data.pairs},
                            per_image=True, metrics=wanted)
    result = AgreementResult(metrics=wanted, pairs_in_file=data.pairs_in_file,
                             pairs_dropped=data.dropped_own_reference,
                             pairs_used=len(data.pairs), judgements_used=sum(len(p.judgements) for p in data.pairs),
                             images=len({p.image for p in data.pairs}), unavailable=dict(scored.unavailable),
                             notes=list(scored.notes))
    if data.dropped_same_image_id != data.dropped_own_reference:
        result.notes.append(f"{data.dropped_own_reference - data.dropped_same_image_id} dropped pairs have a "
                            "candidate written for another image, whose text equals one of the judged image's "
                            "references")
    for metric in (m for m in wanted if m in scored.scores):
        tau = _tau_c_x100(metric, data.pairs, scored.per_image, result)
        if math.isnan(tau):  # kept out of tau_c so that to_dict() stays valid JSON
            result.unavailable[metric] = "tau-c undefined: the metric gave every candidate the same score"
        else:
            result.tau_c[metric] = tau
    return result


def _wanted(metrics: Sequence[str] | None) -> list[str]:
    """The metrics asked for, in table order."""
    choices = (*METRICS, "SPICE")
    if metrics is None:
        return list(METRICS)
    unknown = [m for m in metrics if m not in choices]
    if unknown or not metrics:
        raise CapcacheError(f"unknown metric {unknown[0]!r}; " if unknown else "no metric given; "
                            f"choose from {', '.join(choices)}")
    return [m for m in choices if m in metrics]


def _tau_c_x100(metric: str, pairs: list[ExpertPair], per_image: dict[str, dict[str, float]],
                result: AgreementResult) -> float:
    """One item per judgement: (the candidate's metric score, that expert's score). A candidate the
    metric could not score (SPICE gives NaN for a caption it cannot parse) is left out, with a note."""
    items = [(per_image[p.key][metric], j) for p in pairs for j in p.judgements]
    scored = [(s, j) for s, j in items if not math.isnan(s)]
    if len(scored) < len(items):
        result.notes.append(f"{metric}: {(len(items) - len(scored)) // JUDGES} candidates had no score and "
                            "were left out of its tau-c")
    return 100 * kendall_tau_c([s for s, _ in scored], [j for _, j in scored])


def expert_files(folder: str | os.PathLike) -> tuple[Path, Path]:
    """(token file, expert file) in a Flickr8k_text folder."""
    return Path(folder, TOKEN_FILE), Path(folder, EXPERT_FILE)


def read_expert_pairs(token_file: str | os.PathLike, expert_file: str | os.PathLike) -> ExpertData:
    """The judged pairs with their caption texts, less those whose candidate is one of the judged
    image's own references (compared as text with white space collapsed, as CLIPScore does)."""
    captions, references = _read_token_file(Path(token_file))
    kept: list[ExpertPair] = []
    in_file = dropped = dropped_same_id = 0
    path = Path(expert_file)
    seen: dict[str, int] = {}
    for number, line in text_lines(path):
        fields = line.split("\t")
        if len(fields) != 2 + JUDGES:
            raise DataError(f"expected 'IMAGE<TAB>IMAGE#N<TAB>' and {JUDGES} scores, got {line[:60]!r}", path, number)
        image, candidate_id, *scores = (f.strip() for f in fields)
        if not all(s.isdecimal() and 1 <= int(s) <= 4 for s in scores):
            raise DataError(f"expert scores must be whole numbers 1-4, got {scores}", path, number)
        if candidate_id not in captions:
            raise DataError(f"candidate caption {candidate_id!r} is not in {Path(token_file).name}", path, number)
        if image not in references:
            raise DataError(f"image {image!r} has no captions in {Path(token_file).name}", path, number)
        key = f"{image} {candidate_id}"
        if key in seen:
            raise DataError(f"pair ({image}, {candidate_id}) already judged on line {seen[key]}", path, number)
        seen[key] = number
        in_file += 1
        candidate, refs = captions[candidate_id], references[image]
        if _collapsed(candidate) in {_collapsed(r) for r in refs}:
            dropped += 1
            dropped_same_id += candidate_id.rpartition("#")[0] == image
            continue
        kept.append(ExpertPair(image, candidate_id, candidate, tuple(refs), tuple(int(s) for s in scores)))
    return ExpertData(kept, in_file, dropped, dropped_same_id)


def _read_token_file(path: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(caption id -> caption, image -> its captions in file order)."""
    captions: dict[str, str] = {}
    references: dict[str, list[str]] = {}
    for number, line in text_lines(path):
        caption_id, tab, caption = line.partition("\t")
        image, hash_, index = caption_id.strip().rpartition("#")
        if not (tab and hash_ and image and index.isdecimal()):
            raise DataError(f"expected 'IMAGE#N<TAB>caption', got {line[:60]!r}", path, number)
        captions[caption_id.strip()] = caption
        references.setdefault(image, []).append(caption)
    return captions, references


def _collapsed(text: str) -> str:
    return " ".join(text.split())


def _cell(value: float | None, missing: str, signed: bool = False, digits: int = 2) -> str:
    if value is None:
        return missing
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
