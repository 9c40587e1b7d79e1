"""CIDEr-D on integer token ids: the reward of self-critical training, without Java or subprocesses.

The arithmetic is pycocoevalcap's ``CiderScorer`` (which, like the coco-caption code it comes
from, computes CIDEr-D: Vedantam et al. 2015, §4): tf-idf vectors of the 1..4-grams, the idf
``log(images) - log(max(1, df))``, reference counts clipping the candidate's (``min(h, r) * r``),
a Gaussian penalty ``exp(-δ² / 2σ²)`` with σ = 6 on the length difference δ (measured, as there, in
bigrams: words - 1), the mean over references and n, times 10. What differs is only where the
time goes:

* the document frequencies come from a fixed corpus (the train references, as in Rennie et al.'s
  SCST and ruotianluo's ``CiderD(df="coco-train")``), counted once instead of from each batch;
* an image's references are vectorised once (``prepare``) and reused for every candidate, every step;
* ``scores`` does a whole batch of candidates in a few numpy passes: each n-gram is packed into one
  uint64 (16 bits a token, so it is exact for ids below 65,536), and candidate and reference
  entries are matched by sorting instead of one dict lookup at a time.

With the document frequencies of the scored set itself, it equals pycocoevalcap's ``Cider`` to 1e-6
(tests/test_cider_d.py, on real Flickr8k captions).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

NGram = tuple[int, ...]
_BITS = 16  # per token in a packed n-gram: 4 x 16 = 64 bits
ID_LIMIT = 1 << _BITS  # candidate ids must stay below it; reference n-grams beyond it can never match one


def ngram_counts(tokens: Sequence[int], n: int = 4) -> Counter:
    """tokens -> Counter of every 1..n-gram (as tuples of ids)."""
    tokens = tuple(tokens)
    return Counter(tokens[i:i + k] for k in range(1, n + 1) for i in range(len(tokens) - k + 1))


def _pack(gram: NGram) -> int:
    """(t1, .., tk) -> t1 t2 .. tk in base 2^16. Token ids are >= 1 (never <pad>), so codes of
    different orders never meet: a k-gram's code is at least 2^(16 (k-1))."""
    code = 0
    for t in gram:
        code = (code << _BITS) | t
    return code


@dataclass(frozen=True)
class DocumentFrequency:
    """In how many images' reference sets each n-gram occurs, over a corpus of ``images`` images."""
    counts: dict[NGram, int]
    images: int

    @classmethod
    def from_references(cls, references: Iterable[Sequence[Sequence[int]]], n: int = 4) -> "DocumentFrequency":
        """references: per image, its reference captions as token ids."""
        counts: Counter = Counter()
        images = 0
        for refs in references:
            counts.update({g for ref in refs for g in ngram_counts(ref, n)})
            images += 1
        return cls(dict(counts), images)


@dataclass(frozen=True)
class PreparedReferences:
    """One image's references as tf-idf vectors, in the form ``scores`` consumes."""
    codes: np.ndarray  # [E] uint64 packed n-grams a candidate can match (ids below ID_LIMIT)
    weights: np.ndarray  # [E] their tf-idf weights
    slots: np.ndarray  # [E] int64 reference j and order k as j * n + k
    norms: np.ndarray  # [R, n] norm of each reference's vector per order (every n-gram counted)
    lengths: np.ndarray  # [R] bigrams per reference


class CiderD:
    """``scores(candidates, [prepare(references) per candidate])`` -> CIDEr-D of each candidate."""

    def __init__(self, document_frequency: DocumentFrequency, n: int = 4, sigma: float = 6.0):
        self.n, self.sigma = n, sigma
        self.log_images = math.log(max(document_frequency.images, 1))
        # idf of the corpus n-grams; any other n-gram has df 0, i.e. idf log(images)
        self.idf = {g: self.log_images - math.log(max(1.0, c)) for g, c in document_frequency.counts.items()}
        packable = sorted((_pack(g), w) for g, w in self.idf.items() if max(g) < ID_LIMIT)
        self._idf_codes = np.array([c for c, _ in packable], dtype=np.uint64)  # [G] sorted
        self._idf_values = np.array([w for _, w in packable], dtype=np.float64)  # [G]

    def prepare(self, references: Sequence[Sequence[int]]) -> PreparedReferences:
        """Vectorise one image's references; keep the result to score many candidates against them."""
        _check_ids(references)
        codes, weights, slots = [], [], []
        norms = np.zeros((len(references), self.n))
        for j, ref in enumerate(references):
            for gram, tf in ngram_counts(ref, self.n).items():
                w, k = tf * self.idf.get(gram, self.log_images), len(gram) - 1
                norms[j, k] += w * w
                if max(gram) < ID_LIMIT:
                    codes.append(_pack(gram))
                    weights.append(w)
                    slots.append(j * self.n + k)
        return PreparedReferences(np.array(codes, dtype=np.uint64), np.array(weights), np.array(slots, dtype=np.int64),
                                  np.sqrt(norms), np.array([max(len(r) - 1, 0) for r in references]))

    def score(self, candidate: Sequence[int], references: PreparedReferences) -> float:
        return float(self.scores([candidate], [references])[0])

    def scores(self, candidates: Sequence[Sequence[int]], references: Sequence[PreparedReferences]) -> np.ndarray:
        """candidates: token ids each; references: the prepared references of each one's image -> [S]."""
        n, count = self.n, len(candidates)
        if not count:
            return np.zeros(0)
        cand_rows, cand_codes, cand_orders, cand_lengths = self._candidate_ngrams(candidates)
        entries = [len(r.codes) for r in references]
        refs_per = np.array([len(r.lengths) for r in references])  # [S]
        ref_rows = np.repeat(np.arange(count), entries)  # [E] candidate of each reference entry
        # dense ids for the batch's codes, so (candidate, n-gram) fits one sortable int64 key
        dense, index = np.unique(np.concatenate([cand_codes, *(r.codes for r in references)]), return_inverse=True)
        cand_keys = cand_rows * len(dense) + index[: len(cand_codes)]
        ref_keys = ref_rows * len(dense) + index[len(cand_codes):]
        keys, first, tf = np.unique(cand_keys, return_index=True, return_counts=True)  # [U] each candidate's n-grams
        grams, which = np.unique(keys % len(dense), return_inverse=True)  # the batch's distinct candidate n-grams
        h = tf * self._idf_of(dense[grams])[which]  # [U] candidate tf-idf weights (looked up sorted: fast)
        rows, orders = cand_rows[first], cand_orders[first]
        h_norms = np.sqrt(np.bincount(rows * n + orders, h * h, minlength=count * n)).reshape(count, n)  # [S, n]

        at, hit = _lookup(keys, ref_keys)  # the candidate's weight for each reference entry's n-gram, if any
        r = np.concatenate([x.weights for x in references])  # [E]
        first_slot = np.repeat((np.cumsum(refs_per) - refs_per) * n, entries)  # [E] the candidate's first (j, k) slot
        slots = np.concatenate([x.slots for x in references]) + first_slot  # [E] global (reference, order) slot
        dots = np.bincount(slots[hit], np.minimum(h[at[hit]], r[hit]) * r[hit], minlength=refs_per.sum() * n)
        dots = dots.reshape(-1, n).astype(np.float64)  # [sum R, n] clipped dot products (int when none met)

        owner = np.repeat(np.arange(count), refs_per)  # [sum R] candidate of each reference
        denom = h_norms[owner] * np.concatenate([x.norms for x in references])  # [sum R, n]
        cosine = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        delta = cand_lengths[owner] - np.concatenate([x.lengths for x in references])  # [sum R]
        per_ref = cosine.sum(1) * np.exp(-(delta ** 2) / (2 * self.sigma ** 2))
        totals = np.bincount(owner, per_ref, minlength=count)
        return np.divide(10.0 * totals, n * refs_per, out=np.zeros(count), where=refs_per > 0)

    def _idf_of(self, codes: np.ndarray) -> np.ndarray:
        """packed n-grams [M] -> idf [M]; log(images) for n-grams outside the corpus."""
        at, known = _lookup(self._idf_codes, codes)
        out = np.full(len(codes), self.log_images)
        out[known] = self._idf_values[at[known]]
        return out

    def _candidate_ngrams(self, candidates: Sequence[Sequence[int]]) -> tuple[np.ndarray, ...]:
        """-> (row [N], packed code [N] uint64, order k - 1 [N], bigrams per candidate [S]), one entry per n-gram occurrence."""
        _check_ids(candidates)
        lengths = np.array([len(c) for c in candidates], dtype=np.int64)
        width = int(lengths.max()) if len(candidates) else 0
        tokens = np.zeros((len(candidates), width), dtype=np.uint64)  # [S, T]
        for s, c in enumerate(candidates):
            tokens[s, : len(c)] = c
        if width and int(tokens.max()) >= ID_LIMIT:
            raise ValueError(f"CIDEr-D candidates must have token ids below {ID_LIMIT}; got {int(tokens.max())}")
        rows, codes, orders = [], [], []
        code = np.zeros((len(candidates), width), dtype=np.uint64)
        for k in range(min(self.n, width)):  # code[:, p] = the (k+1)-gram starting at position p
            code = (code[:, : width - k] << np.uint64(_BITS)) | tokens[:, k:]
            valid = np.arange(width - k)[None, :] + k < lengths[:, None]  # [S, T-k] inside the caption
            s, p = np.nonzero(valid)
            rows.append(s)
            codes.append(code[s, p])
            orders.append(np.full(len(s), k))
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.int64), np.maximum(lengths - 1, 0)
        return np.concatenate(rows), np.concatenate(codes), np.concatenate(orders), np.maximum(lengths - 1, 0)


def _check_ids(captions: Sequence[Sequence[int]]) -> None:
    if any(c and min(c) < 1 for c in captions):
        raise ValueError("CIDEr-D token ids start at 1 (0 is <pad>, which no caption contains)")


def _lookup(sorted_keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> (position of each query in ``sorted_keys``, whether it is there)."""
    if not len(sorted_keys):
        return np.zeros(len(queries), np.int64), np.zeros(len(queries), bool)
    at = np.searchsorted(sorted_keys, queries).clip(max=len(sorted_keys) - 1)
    return at, sorted_keys[at] == queries
