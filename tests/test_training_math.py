"""The numbers a training step computes: grouped batches, the loss, DDP weighting, AMP skips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.data.vocab import END_ID, PAD_ID, START_ID
from pipeline.decoders import build_decoder
from pipeline.decoders.config import DecoderConfig
from pipeline.errors import CapcacheError
from pipeline.training.config import OptimConfig, resolve_config
from pipeline.training.data import Batch, collate
from pipeline.training.cross_entropy import caption_loss
from pipeline.training.loop import optimizer_step
from pipeline.training.schedules import Schedule

from decoder_configs import build, output_bias
from helpers import torchrun_two_processes

VOCAB, TOKENS, DIM = 40, 9, 24
DECODERS = {  # every registered kind, with the per-image work that grouping saves switched on
    "att_lstm": DecoderConfig(embed_dim=16, hidden_dim=24, attention_dim=16, dropout=0.0, feature_proj="conv",
                              proj_dim=16, grid_encoder_layers=1, heads=2, ff_dim=32),
    "att_gru": DecoderConfig(embed_dim=16, hidden_dim=24, attention_dim=16, dropout=0.0),
    "show_tell": DecoderConfig(embed_dim=16, hidden_dim=24, num_layers=2, dropout=0.0),
    "transformer": DecoderConfig(hidden_dim=16, num_layers=2, heads=2, ff_dim=32, dropout=0.0, feature_proj="linear",
                                 proj_dim=16, grid_encoder_layers=1),
    "prefix_lm": DecoderConfig(hidden_dim=16, heads=2, ff_dim=32, dropout=0.0, mapper="transformer", feature_proj="linear",
                               proj_dim=16, mapper_layers=1),
}


def _items(n_images: int, seed: int = 0) -> list[tuple[np.ndarray, list[list[int]], int]]:
    """Images with 1-3 captions of 2-7 words each: <start> w.. <end>."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((TOKENS, DIM)).astype(np.float16),
             [[START_ID, *rng.integers(4, VOCAB, rng.integers(2, 8)).tolist(), END_ID] for _ in range(rng.integers(1, 4))], i)
            for i in range(n_images)]


def _flat(batch: Batch) -> Batch:
    """The same pairs with each caption's features copied onto its own row (the old loader)."""
    return Batch(batch.features.index_select(0, batch.image_index), batch.tokens, torch.arange(len(batch.tokens)),
                 batch.images.index_select(0, batch.image_index))


def _loss_and_grads(decoder, batch: Batch, label_smoothing: float = 0.1) -> tuple[float, dict[str, torch.Tensor]]:
    decoder.zero_grad()
    terms = caption_loss(decoder, batch, 1.0, label_smoothing)
    loss = terms.scaled(terms.tokens, terms.captions)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in decoder.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_grouped_and_flat_batches_of_the_same_pairs_give_the_same_loss_and_gradients(name):
    torch.manual_seed(0)
    decoder = build(name, DECODERS[name], DIM, TOKENS, VOCAB)
    grouped = collate(_items(6))
    assert len(grouped.features) == 6 and len(grouped.tokens) > 6  # several captions share an image row
    loss_g, grads_g = _loss_and_grads(decoder, grouped)
    loss_f, grads_f = _loss_and_grads(decoder, _flat(grouped))
    assert loss_g == pytest.approx(loss_f, abs=1e-5)
    assert grads_g.keys() == grads_f.keys() and len(grads_g) > 4
    for n in grads_g:
        assert torch.allclose(grads_g[n], grads_f[n], atol=1e-5), n


@pytest.mark.parametrize("name", ["att_lstm", "transformer"])
def test_decoders_skip_finished_captions_without_changing_the_logits(name):
    """No output layer runs where no target follows (recurrent decoders: no step either, captions
    sorted longest first run only while they last); the real positions' logits equal a decoder
    stepped over the padded batch one step at a time, and the others are 0."""
    torch.manual_seed(0)
    decoder = build_decoder(name, DECODERS[name], DIM, TOKENS, VOCAB).eval()
    batch = collate(_items(5, seed=3))
    inputs = batch.tokens[:, :-1]
    out = decoder(batch.features, inputs, 1.0, batch.image_index)
    state = {k: v.index_select(0, batch.image_index) for k, v in decoder.init_state(batch.features).items()}
    mask = batch.tokens[:, 1:] != PAD_ID
    for t in range(inputs.size(1)):
        log_probs, state = decoder.step(state, inputs[:, t])
        real = mask[:, t]
        assert torch.allclose(out.logits[real, t].log_softmax(-1), log_probs[real], atol=1e-5)
        assert (out.logits[~real, t] == 0).all()


def test_train_loss_is_the_plain_cross_entropy_and_the_objective_is_smoothed():
    torch.manual_seed(0)
    decoder = build_decoder("transformer", DECODERS["transformer"], DIM, TOKENS, VOCAB)
    with torch.no_grad():
        output_bias(decoder)[5] = 6.0  # confident predictions, where smoothing changes the number most
    batch = collate(_items(4))
    terms = caption_loss(decoder, batch, 1.0, 0.1)
    logits = decoder(batch.features, batch.tokens[:, :-1], 1.0, batch.image_index).logits.flatten(0, 1)
    targets = batch.tokens[:, 1:].flatten()
    plain = F.cross_entropy(logits, targets, ignore_index=PAD_ID)
    smoothed = F.cross_entropy(logits, targets, ignore_index=PAD_ID, label_smoothing=0.1)
    assert terms.nll.item() / terms.tokens == pytest.approx(plain.item(), rel=1e-5)
    assert terms.objective.item() / terms.tokens == pytest.approx(smoothed.item(), rel=1e-5)
    assert abs(smoothed.item() - plain.item()) > 0.01  # the two differ: logging the objective would mislead


def test_val_metric_must_be_one_that_validation_computes():
    for bad in ("cider", "BLEU", "accuracy"):
        with pytest.raises(CapcacheError, match=f"unknown val_metric '{bad}'; choose one of BLEU-1, .*CIDEr, loss"):
            resolve_config("demo", None, [f"val_metric={bad}"])
    for good in ("METEOR", "ROUGE-L", "BLEU-1", "loss"):
        assert resolve_config("demo", None, [f"val_metric={good}"]).val_metric == good


def test_a_step_the_grad_scaler_skips_does_not_advance_the_schedule():
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    schedule = Schedule(optimizer, OptimConfig(schedule="cosine", warmup_steps=10), total_steps=100)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    x = torch.ones(4, 3)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)  # warm-up step 1 of 10
    _, taken = optimizer_step(model, model(x).sum() * float("inf"), optimizer, scaler, schedule, 1.0)
    assert not taken and optimizer.param_groups[0]["lr"] == pytest.approx(0.1)  # overflow: schedule stays
    assert scaler.get_scale() == 2.0 ** 7
    before = model.weight.detach().clone()
    _, taken = optimizer_step(model, model(x).sum(), optimizer, scaler, schedule, 1.0)
    assert taken and optimizer.param_groups[0]["lr"] == pytest.approx(0.2) and not torch.equal(before, model.weight)


DDP_GRADIENT = """
import sys, torch
from torch.nn.parallel import DistributedDataParallel
sys.path.insert(0, sys.argv[2])
from test_training_math import DECODERS, DIM, TOKENS, VOCAB, _items
from pipeline.decoders import build_decoder
from pipeline.distributed import Collective
from pipeline.training.config import TrainConfig
from pipeline.training.data import collate
from pipeline.training.cross_entropy import training_loss

comm = Collective.from_env("gloo")
config = TrainConfig()
config.optim.label_smoothing = 0.1
torch.manual_seed(0)
decoder = build_decoder("att_lstm", DECODERS["att_lstm"], DIM, TOKENS, VOCAB)
items = _items(5, seed=7)  # rank 0 gets images 0, 2, 4, rank 1 images 1, 3: unequal tokens
model = DistributedDataParallel(decoder)
loss, _ = training_loss(model, collate(items[comm.rank::comm.world]), config, comm, torch.device("cpu"))
loss.backward()
if comm.rank == 0:
    alone = build_decoder("att_lstm", DECODERS["att_lstm"], DIM, TOKENS, VOCAB)
    alone.load_state_dict(decoder.state_dict())
    single, _ = training_loss(alone, collate(items), config, Collective(), torch.device("cpu"))
    single.backward()
    worst = max((a.grad - b.grad).abs().max().item() for a, b in zip(decoder.parameters(), alone.parameters()))
    open(sys.argv[1], "w").write(repr(worst))
del model  # DDP's reducer goes before the process group it holds
torch.distributed.barrier()  # rank 1 waits here instead of tearing gloo down while rank 0 still computes
comm.close()
"""


def test_two_processes_give_the_single_process_gradient_of_the_global_batch(tmp_path):
    worst = float(torchrun_two_processes(DDP_GRADIENT, tmp_path, "worst.txt").read_text())
    assert worst < 1e-6, worst


def test_transformer_embeddings_start_small_so_positions_count_and_tied_logits_are_sane():
    torch.manual_seed(0)
    config = DecoderConfig(hidden_dim=512, num_layers=1, heads=8, ff_dim=512, dropout=0.0, tie_embeddings=True)
    vocab = 5000
    decoder = build_decoder("transformer", config, DIM, TOKENS, vocab)
    word = decoder.embedding.weight[7] * decoder.scale  # [d], as _logits scales it
    at0, at10 = word + decoder.positions[0], word + decoder.positions[10]
    assert F.cosine_similarity(at0, at10, dim=0) < 0.9  # was 0.9997 with N(0, 1) embeddings
    batch = collate(_items(8))
    with torch.no_grad():
        logits = decoder(batch.features, batch.tokens[:, :-1], 1.0, batch.image_index).logits
        terms = caption_loss(decoder, batch, 1.0, 0.0)
    assert logits.std() < 1.5  # was ~24: the tied output layer multiplies by the same N(0, 1) rows
    # ln V plus what the residual path gives the input word itself; was ~500
    assert terms.nll.item() / terms.tokens < 3 * math.log(vocab)
