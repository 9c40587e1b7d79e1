"""Beam search: agrees with greedy at k=1, batches exactly, and finds what it should on toy models.

Random decoders of every registered type check the search mechanics (state expansion and
reordering, batching, scores); a hand-built toy decoder with fixed next-token probabilities checks
the search itself against answers worked out by hand.
"""

from __future__ import annotations


import pytest
import torch

from pipeline.data.vocab import END_ID, PAD_ID, START_ID, UNK_ID
from pipeline.decoders import available_decoders
from pipeline.decoders.base import CaptionDecoder, State
from pipeline.decoders.config import DecoderConfig
from pipeline.decoding import DecodingConfig, beam_search, decode, greedy_search
from pipeline.decoding.captions import caption_cached_images
from pipeline.decoding.ngram import repeated_ngram_mask
from pipeline.errors import CapcacheError

from decoder_configs import build, output_bias

SMALL = DecoderConfig(embed_dim=16, hidden_dim=32, attention_dim=16, num_layers=2, dropout=0.0, feature_norm="batchnorm",
                      feature_proj="linear", proj_dim=32, grid_encoder_layers=1, heads=4, ff_dim=64)
B, L, D, V, MAX_LEN = 6, 9, 24, 40, 10


def random_decoder(name: str, end_bias: float = 0.0, seed: int = 0, specials_bias: float | None = None) -> CaptionDecoder:
    """A small random decoder that looks trained where it matters: <pad>/<start> are never targets in
    training, so a trained model gives them almost nothing; ``specials_bias`` instead sets the bias of
    <pad>/<start>/<unk> (high: the tokens every strategy bans top the logits); ``end_bias`` makes
    captions end after a few words, so finished-hypothesis handling is exercised."""
    torch.manual_seed(seed)
    dec = build(name, SMALL, D, L, V).eval()
    with torch.no_grad():
        if specials_bias is None:
            output_bias(dec)[[PAD_ID, START_ID]] -= 30.0
        else:
            output_bias(dec)[[PAD_ID, START_ID, UNK_ID]] = specials_bias
        output_bias(dec)[END_ID] += end_bias
    return dec


def features(n: int = B, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, L, D, generator=torch.Generator().manual_seed(seed))


def teacher_forced_log_prob(dec: CaptionDecoder, feats: torch.Tensor, tokens: list[int], ended: bool) -> float:
    """Sum of log-probs of the hypothesis' emitted tokens, computed in one parallel forward pass."""
    targets = tokens + [END_ID] if ended else tokens
    inputs = torch.tensor([[START_ID] + targets[:-1]])
    with torch.no_grad():
        log_probs = dec(feats.unsqueeze(0), inputs).logits.log_softmax(-1)[0]  # [T, V]
    return log_probs.gather(1, torch.tensor(targets).unsqueeze(1)).sum().item()


DECODERS = available_decoders()
END_BIASES = [0.0, 3.0]  # 0: captions run to max_len; 3: they end at varied lengths


# ----------------------------------------------------------------------------- every registered decoder


@pytest.mark.parametrize("end_bias", END_BIASES)
@pytest.mark.parametrize("name", DECODERS)
def test_beam_of_one_is_greedy(name, end_bias):
    """The same banned tokens and min_len in both, even where the banned ones have the highest logits."""
    for specials_bias, min_len, allow_unk in ((None, 1, False), (4.0, 0, False), (4.0, 3, True)):
        dec, feats = random_decoder(name, end_bias, specials_bias=specials_bias), features()
        seqs, log_probs = greedy_search(dec, feats, MAX_LEN, min_len, allow_unk)
        hyps = beam_search(dec, feats, beam_size=1, max_len=MAX_LEN, min_len=min_len, allow_unk=allow_unk)
        assert [h[0].tokens for h in hyps] == seqs
        assert [h[0].log_prob for h in hyps] == log_probs.tolist()


@pytest.mark.parametrize("end_bias", END_BIASES)
@pytest.mark.parametrize("name", DECODERS)
def test_beam_scores_at_least_greedy(name, end_bias):
    dec, feats = random_decoder(name, end_bias), features()
    _, greedy_lp = greedy_search(dec, feats, MAX_LEN)
    hyps = beam_search(dec, feats, beam_size=5, max_len=MAX_LEN)
    for h, g in zip(hyps, greedy_lp.tolist()):
        assert h[0].log_prob >= g - 1e-6


@pytest.mark.parametrize("end_bias", END_BIASES)
@pytest.mark.parametrize("name", DECODERS)
def test_batched_beam_equals_per_image_beam(name, end_bias):
    dec, feats = random_decoder(name, end_bias), features()
    kw = dict(beam_size=4, max_len=MAX_LEN, n_best=3, length_penalty=0.6, no_repeat_ngram=2)
    batched = beam_search(dec, feats, **kw)
    for i in range(B):
        alone = beam_search(dec, feats[i:i + 1], **kw)[0]
        assert [h.tokens for h in batched[i]] == [h.tokens for h in alone]
        assert [h.ended for h in batched[i]] == [h.ended for h in alone]
        for a, b in zip(batched[i], alone):
            assert a.log_prob == pytest.approx(b.log_prob, abs=1e-5)
            assert a.score == pytest.approx(b.score, abs=1e-5)


@pytest.mark.parametrize("name", DECODERS)
def test_reported_scores_match_teacher_forcing(name):
    """Hypotheses stitched together through backpointers score what the model gives them in one
    forward pass: the state (the transformer's cached keys and values included) followed its beam."""
    kinds = set()
    for end_bias in END_BIASES:
        dec, feats = random_decoder(name, end_bias), features()
        hyps = beam_search(dec, feats, beam_size=5, max_len=MAX_LEN, n_best=5, length_penalty=0.6)
        for i, img in enumerate(hyps):
            for h in img:
                kinds.add(h.ended)
                assert h.log_prob == pytest.approx(teacher_forced_log_prob(dec, feats[i], h.tokens, h.ended), abs=1e-4)
                assert h.score == pytest.approx(h.log_prob / ((5 + h.length) / 6) ** 0.6, rel=1e-9)
    assert kinds == {True, False}  # ended and cut-at-max_len hypotheses both checked


@pytest.mark.parametrize("name", ["att_lstm", "transformer"])
def test_hypotheses_respect_the_constraints(name):
    dec, feats = random_decoder(name, end_bias=3.0), features()
    hyps = beam_search(dec, feats, beam_size=5, max_len=MAX_LEN, min_len=3, n_best=5, no_repeat_ngram=2)
    for img in hyps:
        assert len(img) == 5
        assert [h.score for h in img] == sorted((h.score for h in img), reverse=True)
        assert len({tuple(h.tokens) for h in img}) == 5
        for h in img:
            assert 3 <= len(h.tokens) <= MAX_LEN and (h.ended or len(h.tokens) == MAX_LEN)
            assert not {PAD_ID, START_ID, END_ID, UNK_ID} & set(h.tokens)
            bigrams = list(zip(h.tokens, h.tokens[1:]))
            assert len(bigrams) == len(set(bigrams))


# ----------------------------------------------------------------------------- a toy with known answers

A, B_, C, D_, E = 4, 5, 6, 7, 8  # word ids
TOY_V = 12


class ToyDecoder(CaptionDecoder):
    """Next-token probabilities fixed per prefix of words; features[i, 0, 0] picks image i's table.

    Tokens a table entry does not name share what is left of the probability mass evenly; a prefix
    with no entry ends with probability 0.9. Every prefix the search feeds in is recorded.
    """

    def __init__(self, *tables: dict[tuple[int, ...], dict[int, float]]):
        super().__init__()
        self.tables, self.vocab_size, self.fed = tables, TOY_V, []

    def features(self) -> torch.Tensor:
        return torch.arange(len(self.tables), dtype=torch.float).view(-1, 1, 1)

    def init_state(self, features: torch.Tensor) -> State:
        return {"image": features[:, 0, 0].long(), "prefix": torch.zeros((features.size(0), 0), dtype=torch.long)}

    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        prefix = torch.cat([state["prefix"], tokens.unsqueeze(1)], 1)  # [R, t+1], <start> first
        rows = []
        for image, seq in zip(state["image"].tolist(), prefix.tolist()):
            words = tuple(seq[1:])
            self.fed.append(words)
            named = self.tables[image].get(words, {END_ID: 0.9})
            rest = (1.0 - sum(named.values())) / (TOY_V - len(named))
            rows.append([named.get(tok, rest) for tok in range(TOY_V)])
        return torch.tensor(rows, dtype=torch.float64).log().float(), {"image": state["image"], "prefix": prefix}


def lp(*probs: float) -> float:
    return float(torch.tensor(probs, dtype=torch.float64).log().float().sum())


# greedy takes A (0.5) and then has only 0.32 at best; B (0.4) is followed by C with 0.9
TRAP = {(): {A: 0.5, B_: 0.4}, (A,): {C: 0.32, D_: 0.3, E: 0.28}, (B_,): {C: 0.9}, (A, C): {END_ID: 0.95},
        (B_, C): {END_ID: 0.95}}
# ending right after A is best overall, though A's continuation A C D outscores B's prefixes for a while
EARLY_END = {(): {A: 0.6, B_: 0.35}, (A,): {END_ID: 0.6, C: 0.35}, (A, C): {D_: 0.95}, (A, C, D_): {END_ID: 0.95},
             (B_,): {C: 0.5, D_: 0.45}, (B_, C): {END_ID: 0.95}, (B_, D_): {END_ID: 0.95}}
# A B A B is likeliest but repeats the bigram A B; A B A C does not
REPEATS = {(): {A: 0.9}, (A,): {B_: 0.9}, (A, B_): {A: 0.9, END_ID: 0.05}, (A, B_, A): {B_: 0.6, C: 0.3},
           (A, B_, A, B_): {END_ID: 0.9}, (A, B_, A, C): {END_ID: 0.9}}
# A <end> (p 0.25, length 2) vs B C D E <end> (p 0.184, length 5)
SHORT_LONG = {(): {A: 0.5, B_: 0.45}, (A,): {END_ID: 0.5}, (B_,): {C: 0.8}, (B_, C): {D_: 0.8},
              (B_, C, D_): {E: 0.8}, (B_, C, D_, E): {END_ID: 0.8}}


def run(table, **kw):
    toy = ToyDecoder(table)
    return beam_search(toy, toy.features(), **kw)[0], toy


def test_beam_escapes_the_greedy_trap():
    toy = ToyDecoder(TRAP)
    seqs, greedy_lp = greedy_search(toy, toy.features(), 20)
    assert seqs == [[A, C]] and greedy_lp.item() == pytest.approx(lp(0.5, 0.32, 0.95), abs=1e-6)
    (best,), _ = run(TRAP, beam_size=2)
    assert best.tokens == [B_, C] and best.ended
    assert best.log_prob == pytest.approx(lp(0.4, 0.9, 0.95), abs=1e-6) and best.score == best.log_prob


def test_finished_hypotheses_are_kept_and_never_extended():
    (best,), toy = run(EARLY_END, beam_size=3)
    assert best.tokens == [A] and best.log_prob == pytest.approx(lp(0.6, 0.6), abs=1e-6)
    assert max(map(len, toy.fed)) == 1  # stopped as soon as no live beam could beat A <end>
    hyps, toy = run(EARLY_END, beam_size=3, n_best=3)
    assert [h.tokens for h in hyps] == [[A], [A, C, D_], [B_, C]]
    assert [h.log_prob for h in hyps] == pytest.approx([lp(0.6, 0.6), lp(0.6, 0.35, 0.95, 0.95), lp(0.35, 0.5, 0.95)], abs=1e-6)
    assert not any(END_ID in words for words in toy.fed)  # nothing after <end> was ever fed back


def test_min_len_forbids_early_end():
    (best,), _ = run(EARLY_END, beam_size=3, min_len=2)
    assert best.tokens == [A, C, D_]
    hyps, _ = run(EARLY_END, beam_size=3, min_len=3, n_best=3)
    assert all(len(h.tokens) >= 3 for h in hyps)
    hyps, _ = run(EARLY_END, beam_size=3, min_len=0)  # an empty caption is allowed, and not best here
    assert hyps[0].tokens == [A]


def test_max_len_cuts_live_beams():
    (best,), _ = run(TRAP, beam_size=2, max_len=1)
    assert best.tokens == [A] and not best.ended and best.log_prob == pytest.approx(lp(0.5), abs=1e-6)
    (best,), _ = run(TRAP, beam_size=2, max_len=2)  # <end> would be the third token
    assert best.tokens == [B_, C] and not best.ended and best.log_prob == pytest.approx(lp(0.4, 0.9), abs=1e-6)
    (best,), _ = run(TRAP, beam_size=2, max_len=3)
    assert best.tokens == [B_, C] and best.ended


def test_no_repeat_ngram_blocks_repeats():
    assert run(REPEATS, beam_size=3)[0][0].tokens == [A, B_, A, B_]
    assert run(REPEATS, beam_size=3, no_repeat_ngram=3)[0][0].tokens == [A, B_, A, B_]  # B A B is new
    assert run(REPEATS, beam_size=3, no_repeat_ngram=2)[0][0].tokens == [A, B_, A, C]
    assert run(REPEATS, beam_size=3, no_repeat_ngram=1)[0][0].tokens == [A, B_]


def test_length_penalty_favours_longer_captions():
    (best,), _ = run(SHORT_LONG, beam_size=2)
    assert best.tokens == [A] and best.score == best.log_prob
    (best,), _ = run(SHORT_LONG, beam_size=2, length_penalty=1.0)
    assert best.tokens == [B_, C, D_, E] and best.length == 5  # words + <end>
    assert best.log_prob == pytest.approx(lp(0.45, 0.8, 0.8, 0.8, 0.8), abs=1e-6)
    assert best.score == pytest.approx(best.log_prob / ((5 + 5) / 6), rel=1e-9)


def test_n_best_is_sorted_distinct_and_starts_with_the_best():
    for table in (TRAP, EARLY_END, REPEATS, SHORT_LONG):
        (best,), _ = run(table, beam_size=4)
        hyps, _ = run(table, beam_size=4, n_best=4)
        assert hyps[0] == best and len(hyps) == 4
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 4


def test_toy_images_batched_finish_at_their_own_pace():
    tables = (TRAP, EARLY_END, REPEATS, SHORT_LONG)
    toy = ToyDecoder(*tables)
    batched = beam_search(toy, toy.features(), beam_size=3, n_best=2, length_penalty=0.5, no_repeat_ngram=2)
    for i, table in enumerate(tables):
        assert batched[i] == run(table, beam_size=3, n_best=2, length_penalty=0.5, no_repeat_ngram=2)[0]


def test_repeated_ngram_mask():
    history = torch.tensor([[A, B_, A], [A, C, D_]])
    banned = repeated_ngram_mask(history, 2, TOY_V)
    assert banned[0].nonzero().flatten().tolist() == [B_] and not banned[1].any()
    assert repeated_ngram_mask(history, 1, TOY_V)[1].nonzero().flatten().tolist() == [A, C, D_]
    assert repeated_ngram_mask(history, 4, TOY_V) is None


# ----------------------------------------------------------------------------- the decode entry point


def test_decode_dispatches_on_the_config():
    dec, feats = random_decoder("att_lstm", end_bias=3.0), features()
    seqs, log_probs = decode(dec, feats, DecodingConfig(max_len=MAX_LEN))
    g_seqs, g_lp = greedy_search(dec, feats, MAX_LEN)
    assert seqs == g_seqs and torch.equal(log_probs, g_lp)
    config = DecodingConfig.from_beam(4, max_len=MAX_LEN, length_penalty=0.6)
    seqs, log_probs = decode(dec, feats, config)
    hyps = beam_search(dec, feats, beam_size=4, max_len=MAX_LEN, length_penalty=0.6)
    assert seqs == [h[0].tokens for h in hyps] and log_probs.tolist() == [h[0].log_prob for h in hyps]
    assert DecodingConfig.from_beam(1).strategy == "greedy"
    assert config.describe() == {"strategy": "beam", "beam_size": 4, "max_len": MAX_LEN, "min_len": 1,
                                 "allow_unk": False, "length_penalty": 0.6, "no_repeat_ngram": 0}
    assert DecodingConfig(allow_unk=True).resolved(30).describe() == {"strategy": "greedy", "max_len": 30, "min_len": 1,
                                                                      "allow_unk": True}


@pytest.mark.parametrize("bad", [dict(strategy="sample"), dict(beam_size=0), dict(max_len=0), dict(min_len=5, max_len=3),
                                 dict(min_len=3, max_len=3), dict(max_len=1), dict(no_repeat_ngram=-1)])
def test_bad_decoding_configs_are_one_line_errors(bad):
    with pytest.raises(CapcacheError):
        DecodingConfig(**bad)


def test_cached_image_captions_use_the_decoding_config(capsys):
    class Cache:  # the two things caption_cached_images reads from a FeatureCache
        def __init__(self, feats):
            self.feats = feats

        def rows(self, ids):
            return [int(i) for i in ids]

        def __getitem__(self, row):
            return self.feats[row].numpy()

    class Words:
        def decode(self, ids):
            return " ".join(map(str, ids))

    dec, feats = random_decoder("transformer", end_bias=3.0), features()
    ids = [str(i) for i in range(B)]
    config = DecodingConfig.from_beam(3, max_len=MAX_LEN)
    captions = caption_cached_images(dec, Cache(feats), ids, Words(), torch.device("cpu"), batch_size=4, decoding=config,
                                     progress=True)
    expected = [" ".join(map(str, h[0].tokens)) for h in beam_search(dec, feats, beam_size=3, max_len=MAX_LEN)]
    assert [captions[i] for i in ids] == expected
    assert f"{B}/{B}" in capsys.readouterr().err  # the progress bar counts images


def test_eval_records_the_decoding_config(tmp_path, monkeypatch):
    """`capcache eval --beam 3` path: eval/<split>.json says how the captions were decoded."""
    import json

    import pipeline.evaluation.scorers as scorers
    from pipeline.data.manifest import Manifest
    from pipeline.data.synthetic import SyntheticConfig, generate_dataset
    from pipeline.evaluation.evaluate_run import evaluate_run
    from pipeline.extract import extract
    from pipeline.training.config import resolve_config
    from pipeline.training.loop import train

    monkeypatch.setattr(scorers, "score_captions", lambda c, r, **kw: scorers.ScoreResult(scores={"BLEU-4": 0.0}))
    manifest = generate_dataset(tmp_path / "data", SyntheticConfig(n_train=16, n_val=4, n_test=6, image_size=64))
    cache = extract(Manifest.load(manifest), "tiny-cnn", cache_dir=tmp_path / "cache", workers=0, progress=False)
    config = resolve_config("demo", None, [f"data.manifest={manifest}", f"data.cache={cache.path}", "epochs=1",
                                           "batch_size=16", "model.embed_dim=16", "model.hidden_dim=16",
                                           "model.attention_dim=16", "max_decode_len=12"])
    train(config, tmp_path / "run", progress=False)
    report = evaluate_run(tmp_path / "run", "test", device="cpu", decoding=DecodingConfig.from_beam(3, no_repeat_ngram=2))
    saved = json.loads((tmp_path / "run" / "eval" / "test.json").read_text())
    assert saved["decoding"] == report["decoding"] == {
        "method": "beam", "strategy": "beam", "beam_size": 3, "max_len": 12, "min_len": 1, "allow_unk": False,
        "length_penalty": 0.0, "no_repeat_ngram": 2, "batch_size": 64}
    assert len(saved["captions"]) == 6
    assert saved["diversity"]["captions"] == 6 and 1 <= saved["diversity"]["distinct"] <= 6
    assert 0.0 <= saved["diversity"]["novel_share"] <= 1.0
    greedy = evaluate_run(tmp_path / "run", "test", device="cpu", max_len=5)
    assert greedy["decoding"] == {"method": "greedy", "strategy": "greedy", "max_len": 5, "min_len": 1,
                                  "allow_unk": False, "batch_size": 64}



@pytest.mark.parametrize("name", available_decoders())
def test_beam_search_runs_inside_inference_mode(name):
    """Captioning new images encodes them under inference_mode; beam search must take such features."""
    dec, feats = random_decoder(name), features()
    expected = beam_search(dec, feats, beam_size=3)
    with torch.inference_mode():
        got = beam_search(dec, feats.clone(), beam_size=3)
    assert [h[0].tokens for h in got] == [h[0].tokens for h in expected]
