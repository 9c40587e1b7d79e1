"""Consensus reranking (decoding/consensus.py): a beam's hypotheses rescored by CIDEr-D against the
captions of the nearest training photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline.cache.reader import FeatureCache
from pipeline.data.manifest import Manifest
from pipeline.decoding import DecodingConfig, beam_search, decode
from pipeline.decoding.consensus import ConsensusReranker, pooled_keys
from pipeline.errors import CapcacheError
from pipeline.evaluation.cider_d import CiderD, DocumentFrequency
from pipeline.evaluation.evaluate_run import evaluate_run
from pipeline.runs.load import load_trained

# word ids 1..: a toy vocabulary of what three training photos' captions say
DOG, RUNS, GRASS, MAN, RIDES, BIKE, A, ON, CHILD, SITS, BENCH = range(1, 12)
REFERENCES = [  # per training photo, its captions
    [[A, DOG, RUNS, ON, GRASS], [A, DOG, RUNS], [DOG, ON, GRASS]],
    [[A, MAN, RIDES, A, BIKE], [MAN, RIDES, BIKE], [A, MAN, ON, A, BIKE]],
    [[A, CHILD, SITS, ON, A, BENCH], [CHILD, ON, BENCH], [A, CHILD, SITS]],
]
KEYS = np.eye(3, 4, dtype=np.float32)  # training photo t's pooled features point along axis t


def cider_score(candidates, lent):
    scorer = CiderD(DocumentFrequency.from_references(REFERENCES))
    prepared = scorer.prepare(lent)
    return scorer.scores(candidates, [prepared] * len(candidates))


def photo_near(axis: int, tokens: int = 5) -> torch.Tensor:
    """[1, L, 4] grid features whose mean points mostly along ``axis`` (a little along the others)."""
    grid = torch.full((1, tokens, 4), 0.1)
    grid[0, :, axis] = 1.0
    return grid


def test_nearest_training_photos_by_pooled_features():
    reranker = ConsensusReranker(KEYS, REFERENCES, cider_score, neighbours=2)
    feats = torch.cat([photo_near(1), photo_near(2)])
    feats[0, :, 0] = 0.5  # photo 0: closest to training photo 1, then 0
    nearest = reranker.nearest(feats)
    assert nearest[0].tolist() == [1, 0] and nearest[1, 0] == 2  # photo 1's second is a tie of 0 and 1
    np.testing.assert_allclose(np.linalg.norm(pooled_keys(feats), axis=1), 1.0, rtol=1e-6)


def test_chooses_the_hypothesis_the_neighbours_captions_agree_with():
    reranker = ConsensusReranker(KEYS, REFERENCES, cider_score, neighbours=1)
    feats = torch.cat([photo_near(0), photo_near(1), photo_near(2)])
    candidates = [
        [[A, MAN, RIDES, A, BIKE], [A, DOG, RUNS, ON, GRASS]],  # near the dog photo: the second one
        [[A, MAN, RIDES, A, BIKE], [A, DOG, RUNS]],  # near the bike photo: the first one
        [[A, CHILD, SITS, ON, A, BENCH]],  # a single hypothesis is kept whatever it says
    ]
    assert reranker.choose(feats, candidates) == [1, 0, 0]


def test_ties_keep_the_better_ranked_hypothesis():
    reranker = ConsensusReranker(KEYS, REFERENCES, cider_score, neighbours=1)
    unrelated = [[SITS, SITS], [BENCH, BENCH]]  # share nothing with the dog photo's captions: both score 0
    assert reranker.choose(photo_near(0), [unrelated]) == [0]


def test_bad_reranker_settings_are_refused():
    with pytest.raises(CapcacheError, match="between 1 and 3 neighbours"):
        ConsensusReranker(KEYS, REFERENCES, cider_score, neighbours=4)
    with pytest.raises(CapcacheError, match="2 reference sets"):
        ConsensusReranker(KEYS, REFERENCES[:2], cider_score, neighbours=1)
    with pytest.raises(CapcacheError, match="--beam 2 or more"):
        DecodingConfig.from_beam(1, rerank_neighbours=10)
    with pytest.raises(CapcacheError, match="0 .off. or positive"):
        DecodingConfig.from_beam(5, rerank_neighbours=-1)


def test_describe_names_reranking_only_when_it_is_on():
    assert "rerank_neighbours" not in DecodingConfig.from_beam(3).describe()
    assert DecodingConfig.from_beam(3, rerank_neighbours=7).describe()["rerank_neighbours"] == 7


class LongestWins:
    """A reranker stand-in that prefers the longest hypothesis, to see what decode does with a choice."""

    def __init__(self):
        self.seen = None

    def choose(self, features, candidates):
        self.seen = candidates
        return [max(range(len(h)), key=lambda i: (len(h[i]), -i)) if h else 0 for h in candidates]


def test_decode_returns_the_hypothesis_the_reranker_chose(caption_runs):
    trained = load_trained(caption_runs["transformer"], device="cpu")
    cache = FeatureCache(trained.config.data.cache)
    manifest = Manifest.load(caption_runs["manifest"])
    rows = cache.rows([r.image_id for r in manifest.split("test")])
    feats = torch.from_numpy(np.stack([cache[int(r)] for r in rows])).float()
    config = DecodingConfig.from_beam(4, rerank_neighbours=3, max_len=12)
    stand_in = LongestWins()
    seqs, log_probs = decode(trained.decoder, feats, config, stand_in)
    every = beam_search(trained.decoder, feats, beam_size=4, max_len=12, n_best=4)
    assert stand_in.seen == [[h.tokens for h in hyps] for hyps in every]  # the beam's whole n-best list
    for seq, lp, hyps, pick in zip(seqs, log_probs.tolist(), every, stand_in.choose(feats, stand_in.seen)):
        assert seq == hyps[pick].tokens and lp == pytest.approx(hyps[pick].log_prob)
    with pytest.raises(CapcacheError, match="drop --rerank"):
        decode(trained.decoder, feats, config)


def test_eval_with_reranking_records_it_and_picks_among_the_beam(caption_runs):
    run = caption_runs["transformer"]
    report = evaluate_run(run, "test", device="cpu", decoding=DecodingConfig.from_beam(4, rerank_neighbours=5))
    assert report["decoding"]["rerank_neighbours"] == 5
    saved = json.loads((run / "eval" / "test.json").read_text())
    assert saved["decoding"] == report["decoding"] and saved["scores"]["CIDEr"] == report["scores"]["CIDEr"]
    trained = load_trained(run, device="cpu")
    cache = FeatureCache(trained.config.data.cache)
    for item in report["captions"]:
        feats = torch.from_numpy(cache[int(cache.rows([item["image_id"]])[0])]).float()[None]
        hyps = beam_search(trained.decoder, feats, beam_size=4, max_len=trained.config.max_decode_len, n_best=4)[0]
        assert item["caption"] in {trained.vocab.decode(h.tokens) for h in hyps}


def test_cli_rerank_without_a_beam_is_one_clear_line(caption_runs):
    from cli import app

    result = CliRunner().invoke(app, ["eval", str(caption_runs["transformer"]), "--rerank", "5", "--device", "cpu"])
    assert result.exit_code != 0
    assert "--beam 2 or more" in result.output and "Traceback" not in result.output
