"""FastDropout: the same distribution as nn.Dropout at a fraction of the CPU cost."""

import torch
from torch import nn

from pipeline.decoders import available_decoders
from pipeline.decoders.config import DecoderConfig
from pipeline.decoders.dropout import FastDropout, use_fast_dropout

from decoder_configs import build


def test_drop_rate_scale_and_gradient():
    torch.manual_seed(0)
    x = torch.ones(400_000, requires_grad=True)
    for p in (0.1, 0.5):
        y = FastDropout(p).train()(x)
        dropped = (y == 0).float().mean().item()
        assert abs(dropped - p) < 0.005, (p, dropped)  # binomial sd ~0.0008
        assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))
        (grad,) = torch.autograd.grad(y.sum(), x)
        assert torch.equal(grad, y.detach())  # d(x * mask / (1 - p)) / dx = mask / (1 - p)


def test_fields_of_one_random_word_are_independent():
    torch.manual_seed(1)
    kept = FastDropout(0.5).train()(torch.ones(4_000_000)).view(-1, 4) > 0  # the 4 fields of each word
    corr = torch.corrcoef(kept.float().T)
    assert (corr - torch.eye(4)).abs().max() < 0.005  # independent: sd of a correlation ~0.001


def test_eval_mode_and_zero_rate_are_identity_and_seeding_reproduces():
    x = torch.randn(3, 5, 7)
    assert torch.equal(FastDropout(0.5).eval()(x), x)
    assert torch.equal(FastDropout(0.0).train()(x), x)
    torch.manual_seed(3)
    a = FastDropout(0.3).train()(x)
    torch.manual_seed(3)
    assert torch.equal(FastDropout(0.3).train()(x), a)


def test_every_decoder_gets_it_everywhere():
    config = DecoderConfig(feature_proj="linear", proj_dim=32, grid_encoder_layers=1, heads=2, ff_dim=64,
                           embed_dim=16, hidden_dim=32, attention_dim=16, dropout=0.2)
    for name in available_decoders():
        model = build(name, config, 24, 9, 50)
        kinds = {type(m) for m in model.modules() if isinstance(m, nn.Dropout)}
        assert kinds == {FastDropout}, (name, kinds)
        assert all(m.p == 0.2 for m in model.modules() if isinstance(m, nn.Dropout))


def test_swap_keeps_rate_and_leaves_other_modules():
    model = use_fast_dropout(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.25), nn.Sequential(nn.Dropout(0.4))))
    assert isinstance(model[0], nn.Linear)
    assert isinstance(model[1], FastDropout) and model[1].p == 0.25
    assert isinstance(model[2][0], FastDropout) and model[2][0].p == 0.4
