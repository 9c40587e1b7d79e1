"""Every registered decoder honours the shared contract that training and decoding rely on."""

from __future__ import annotations

import pytest
import torch

from pipeline.data.vocab import START_ID
from pipeline.decoders import available_decoders, build_decoder
from pipeline.decoders.base import select_state
from pipeline.decoders.config import DecoderConfig
from pipeline.decoding import greedy_search

from decoder_configs import build

SMALL = DecoderConfig(embed_dim=16, hidden_dim=32, attention_dim=16, num_layers=2, dropout=0.0, feature_norm="batchnorm",
                      feature_proj="linear", proj_dim=32, grid_encoder_layers=1, heads=4, ff_dim=64)
B, L, D, V, T = 3, 9, 24, 40, 6


def test_registry_lists_every_seed_decoder():
    assert {"show_tell", "show_tell_gru", "att_lstm", "att_gru", "transformer"} <= set(available_decoders())


@pytest.mark.parametrize("name", available_decoders())
def test_step_by_step_matches_teacher_forced_forward(name):
    """Decoding through ``step`` must compute exactly what training's ``forward`` computes."""
    torch.manual_seed(0)
    dec = build(name, SMALL, D, L, V).eval()
    feats, tokens = torch.randn(B, L, D), torch.randint(4, V, (B, T))
    tokens[:, 0] = START_ID
    with torch.no_grad():
        full = dec(feats, tokens).logits.log_softmax(-1)  # [B, T, V]
        state = dec.init_state(feats)
        for t in range(T):
            step, state = dec.step(state, tokens[:, t])
            torch.testing.assert_close(step, full[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", available_decoders())
def test_state_reordering_follows_the_batch(name):
    torch.manual_seed(0)
    dec = build(name, SMALL, D, L, V).eval()
    feats = torch.randn(B, L, D)
    with torch.no_grad():
        state = dec.init_state(feats)
        index = torch.tensor([2, 2, 0])
        picked, _ = dec.step(select_state(state, index), torch.full((3,), START_ID))
        direct, _ = dec.step(dec.init_state(feats[index]), torch.full((3,), START_ID))
    torch.testing.assert_close(picked, direct, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", available_decoders())
def test_gradients_reach_every_trainable_parameter(name):
    torch.manual_seed(0)
    dec = build(name, SMALL, D, L, V).train()
    tokens = torch.randint(4, V, (B, T))
    out = dec(torch.randn(B, L, D), tokens, teacher_forcing=0.7)
    assert out.logits.shape == (B, T, V)
    (out.logits.logsumexp(-1).mean() + dec.regularization(out, torch.ones(B, T))).backward()
    missing = [n for n, p in dec.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


def test_greedy_stops_and_scores():
    torch.manual_seed(0)
    dec = build_decoder("att_lstm", SMALL, D, L, V).eval()
    seqs, score = greedy_search(dec, torch.randn(B, L, D), max_len=7)
    assert len(seqs) == B and all(len(s) <= 7 for s in seqs) and score.shape == (B,)
    assert torch.all(score <= 0)


def test_attention_regularisation_is_zero_for_perfect_coverage():
    from pipeline.decoders.base import DecoderOutput
    dec = build_decoder("att_lstm", SMALL, D, L, V)
    att = torch.full((B, L, L), 1.0 / L)  # T = L steps, each spreading 1/L over L cells: coverage 1
    out = DecoderOutput(torch.zeros(B, L, V), att)
    assert dec.regularization(out, torch.ones(B, L)).item() == pytest.approx(0.0, abs=1e-7)


def test_show_tell_can_feed_the_image_as_its_first_word():
    """Vinyals et al. (seed 003's baseline): the image, at word-embedding size, is the input of a
    step before <start>, from a zero state; decoding still equals the teacher-forced forward."""
    from dataclasses import replace
    torch.manual_seed(0)
    first = build_decoder("show_tell", replace(SMALL, inject="first_word"), D, L, V).eval()
    assert first.image_proj[0].out_features == SMALL.embed_dim and not hasattr(first, "init_h")
    feats, tokens = torch.randn(B, L, D), torch.randint(4, V, (B, T))
    tokens[:, 0] = START_ID
    with torch.no_grad():
        full = first(feats, tokens).logits.log_softmax(-1)
        state = first.init_state(feats)
        for t in range(T):
            step, state = first.step(state, tokens[:, t])
            torch.testing.assert_close(step, full[:, t], atol=1e-5, rtol=1e-5)
        start = first.init_state(feats)
        other = first.init_state(torch.randn(B, L, D))
    assert not torch.allclose(start["h"], other["h"])  # the state after step -1 depends on the image
    with pytest.raises(Exception, match="inject"):
        build_decoder("show_tell", replace(SMALL, inject="middle"), D, L, V)
