"""One set of banned tokens for every strategy: <pad>/<start> never, <unk> unless allowed, <end>
not before min_len; and what a caption cut at max_len looks like downstream (no <end> panel)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.data.vocab import END_ID, PAD_ID, START_ID, UNK_ID
from pipeline.decoders.base import CaptionDecoder, State
from pipeline.decoding import DecodingConfig, beam_search, decode, greedy_search
from pipeline.decoding.banned import banned_tokens, mask_banned
from pipeline.decoding.search import ended
from pipeline.errors import CapcacheError
from pipeline.report.attention import panel_labels

V, WORD, OTHER = 8, 4, 5


class StubDecoder(CaptionDecoder):
    """The same logits at every step: the banned specials highest, then <end>, then two words."""

    def __init__(self, logits: dict[int, float]):
        super().__init__()
        self.logits = torch.full((V,), -10.0).index_put_((torch.tensor(list(logits)),), torch.tensor(list(logits.values())))

    def init_state(self, features: torch.Tensor) -> State:
        return {"features": features}

    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        return self.logits.expand(tokens.size(0), V).log_softmax(-1), state  # [R, V]


SPECIALS_ON_TOP = {PAD_ID: 9.0, START_ID: 8.0, UNK_ID: 7.0, END_ID: 3.0, WORD: 2.0, OTHER: 1.0}


def strategies(**kw) -> list[DecodingConfig]:
    return [DecodingConfig(max_len=6, **kw), DecodingConfig.from_beam(3, max_len=6, **kw)]


@pytest.mark.parametrize("config", strategies(), ids=["greedy", "beam"])
def test_specials_with_the_highest_logits_are_never_emitted(config):
    stub = StubDecoder(SPECIALS_ON_TOP)
    seqs, log_probs = decode(stub, torch.zeros(2, 1, 1), config)
    assert seqs == [[WORD], [WORD]]  # min_len 1: one word, then <end> (the best token left)
    model = stub.logits.log_softmax(-1)  # [V]: the log-probs are the model's own, not renormalised
    assert log_probs.tolist() == pytest.approx([(model[WORD] + model[END_ID]).item()] * 2, abs=1e-6)


@pytest.mark.parametrize("config", strategies(allow_unk=True), ids=["greedy", "beam"])
def test_allow_unk_lets_it_through(config):
    seqs, _ = decode(StubDecoder(SPECIALS_ON_TOP), torch.zeros(1, 1, 1), config)
    assert UNK_ID in seqs[0] and not {PAD_ID, START_ID} & set(seqs[0])


@pytest.mark.parametrize("config", strategies(min_len=3), ids=["greedy", "beam"])
def test_min_len_holds_for_every_strategy(config):
    seqs, _ = decode(StubDecoder({END_ID: 5.0, WORD: 1.0}), torch.zeros(1, 1, 1), config)
    assert seqs == [[WORD] * 3]


def test_mask_banned_leaves_other_log_probs_exact():
    log_probs = torch.randn(3, V, dtype=torch.float64).log_softmax(-1)
    masked = mask_banned(log_probs, step=0, min_len=1)
    assert masked.dtype == torch.float32 and masked.shape == (3, V)
    assert set(banned_tokens(0, min_len=1)) == {PAD_ID, START_ID, UNK_ID, END_ID}
    assert set(banned_tokens(1, min_len=1, allow_unk=True)) == {PAD_ID, START_ID}
    for tok in range(V):
        column = masked[:, tok]
        if tok in (PAD_ID, START_ID, UNK_ID, END_ID):
            assert (column == -math.inf).all()
        else:
            assert torch.equal(column, log_probs[:, tok].float())


def test_cut_captions_are_told_apart_from_ended_ones():
    config = DecodingConfig(max_len=4)
    for logits, expect_end in (({END_ID: 5.0, WORD: 1.0}, True), ({WORD: 5.0}, False)):
        decoder, feats = StubDecoder(logits), torch.zeros(1, 1, 1)
        seqs, _ = greedy_search(decoder, feats, 4)
        (best,), = beam_search(decoder, feats, beam_size=2, max_len=4)
        assert ended(seqs[0], config.max_len) == best.ended == expect_end


def test_attention_panels_have_no_end_label_for_a_cut_caption():
    assert panel_labels(["a", "dog"], np.zeros((3, 4)), ended=True) == ["a", "dog", "<end>"]
    assert panel_labels(["a", "dog"], np.zeros((2, 4)), ended=False) == ["a", "dog"]
    with pytest.raises(CapcacheError, match="3 attention rows for the 2 tokens"):
        panel_labels(["a", "dog"], np.zeros((3, 4)), ended=False)


def test_min_len_must_leave_room_for_end():
    with pytest.raises(CapcacheError, match="below max_len"):
        DecodingConfig(max_len=5, min_len=5)
    with pytest.raises(CapcacheError, match="below max_len"):
        DecodingConfig(min_len=20).resolved(20)
    assert DecodingConfig(max_len=1, min_len=0).max_len == 1


def test_cli_says_what_max_len_counts_and_offers_allow_unk():
    from typer.testing import CliRunner

    from cli import app

    for command in ("eval", "caption"):
        shown = " ".join(CliRunner().invoke(app, [command, "--help"], terminal_width=200).output.split())
        assert "--allow-unk" in shown and "<end> included" in shown
