"""The fast CIDEr-D of self-critical rewards: parity with pycocoevalcap, and the published definition."""

from __future__ import annotations

import math
import pytest
from pycocoevalcap.cider.cider import Cider

from pipeline.data.text import karpathy_words
from pipeline.evaluation.cider_d import CiderD, DocumentFrequency

from helpers import flickr8k_captions


def test_equals_pycocoevalcap_cider_on_real_flickr8k_captions(shared_data):
    """Each image's first caption against its other four, 300 images, the same tokens and corpus."""
    captions = {image: [karpathy_words(c) for c in caps] for image, caps in
                flickr8k_captions(shared_data / "flickr8k_text" / "Flickr8k.token.txt", 300).items()}
    ids: dict[str, int] = {}
    as_ids = lambda words: [ids.setdefault(w, len(ids) + 4) for w in words]  # noqa: E731  (ids 0-3: special tokens)
    gts = {image: [" ".join(c) for c in caps[1:]] for image, caps in captions.items()}
    res = {image: [" ".join(caps[0])] for image, caps in captions.items()}
    _, theirs = Cider().compute_score(gts, res)

    references = {image: [as_ids(c) for c in caps[1:]] for image, caps in captions.items()}
    scorer = CiderD(DocumentFrequency.from_references(references.values()))
    ours = scorer.scores([as_ids(captions[image][0]) for image in gts], [scorer.prepare(references[image]) for image in gts])
    assert len(ours) == 300 and max(theirs) > 1.0  # real overlaps, not a set of zeros
    assert ours.tolist() == pytest.approx(list(theirs), abs=1e-6)
    one_by_one = [scorer.score(as_ids(captions[image][0]), scorer.prepare(references[image])) for image in gts]
    assert one_by_one == pytest.approx(ours.tolist(), abs=1e-12)  # a batch scores each candidate as alone


# Hand-computed cases. With no document frequencies every n-gram has the same idf, log(images), and
# the cosine is scale-free, so the tf-idf vectors reduce to plain counts.
FLAT = CiderD(DocumentFrequency({}, images=2))


def _score(candidate: str, *references: str, scorer: CiderD = FLAT) -> float:
    ids = {w: i for i, w in enumerate("abcdefgh", start=4)}  # word ids start after the special tokens
    return scorer.score([ids[w] for w in candidate.split()], scorer.prepare([[ids[w] for w in r.split()] for r in references]))


def test_an_exact_match_scores_its_share_of_the_four_ngram_orders():
    df = DocumentFrequency.from_references([[[4, 5]], [[6, 7]]])  # images "a b" and "c d"
    assert _score("a b", "a b", scorer=CiderD(df)) == pytest.approx(10 * (1 + 1 + 0 + 0) / 4)  # no 3- or 4-grams


def test_reference_counts_clip_the_candidates():
    # unigrams: candidate {a: 2} against {a: 1, b: 1}: min(2, 1) * 1 / (2 * sqrt 2); bigrams share nothing
    assert _score("a a", "a b") == pytest.approx(10 * (1 / (2 * math.sqrt(2))) / 4)


def test_a_gaussian_penalty_with_sigma_6_on_the_length_difference_in_bigrams():
    # 1 bigram against 7: exp(-36 / 72); unigrams 2 / (sqrt 2 * sqrt 8), bigrams 1 / sqrt 7
    expected = 10 * math.exp(-0.5) * (2 / (math.sqrt(2) * math.sqrt(8)) + 1 / math.sqrt(7)) / 4
    assert _score("a b", "a b c d e f g h") == pytest.approx(expected)


def test_the_score_is_the_mean_over_references_and_empty_candidates_score_zero():
    assert _score("a b", "a b", "c d") == pytest.approx(_score("a b", "a b") / 2)
    assert FLAT.score([], FLAT.prepare([[4, 5]])) == 0.0
    assert FLAT.score([4, 5], FLAT.prepare([])) == 0.0
