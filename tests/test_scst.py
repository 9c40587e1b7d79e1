"""Self-critical sequence training: sampling, rewards, the policy gradient, and SCST runs."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

import pipeline.training.loop as loop
from pipeline.data.vocab import END_ID, PAD_ID, START_ID, UNK_ID, Vocabulary
from pipeline.decoders import available_decoders
from pipeline.decoders.config import DecoderConfig
from pipeline.decoding import greedy_search
from pipeline.decoding.sampling import draw, sample_captions
from pipeline.distributed import Collective
from pipeline.errors import CapcacheError
from pipeline.evaluation.compare import compare_runs, format_comparison
from pipeline.evaluation.evaluate_run import evaluate_run
from pipeline.evaluation.cider_d import DocumentFrequency
from pipeline.io import read_json
from pipeline.training.config import finetune_config, resolve_config
from pipeline.training.data import Batch
from pipeline.runs.metrics_log import read_metrics
from pipeline.data.word_ids import reference_ids
from pipeline.training.scst import CiderReward, load_or_count_document_frequency, scst_loss

from decoder_configs import build, output_bias
from helpers import torchrun_two_processes, train_interrupted_after_first_epoch

SMALL = DecoderConfig(embed_dim=16, hidden_dim=32, attention_dim=16, num_layers=2, dropout=0.0, feature_norm="layernorm",
                      feature_proj="linear", proj_dim=32, grid_encoder_layers=1, heads=4, ff_dim=64)
K, L, D, V = 4, 9, 24, 12
CPU = torch.device("cpu")


def _decoder(name: str = "att_lstm", seed: int = 0):
    torch.manual_seed(seed)
    return build(name, SMALL, D, L, V)


def _batch(images: int = K) -> Batch:
    features = torch.randn(images, L, D)
    tokens = torch.full((images, 3), END_ID)  # SCST ignores the batch's captions
    return Batch(features, tokens, torch.arange(images), torch.arange(images))


def test_samples_are_n_per_image_never_banned_and_padded_after_end():
    decoder = _decoder().eval()
    torch.manual_seed(1)
    samples = sample_captions(decoder, torch.randn(K, L, D), per_image=5, max_len=7)
    assert samples.tokens.shape[0] == K * 5 and samples.tokens.shape[1] <= 7
    assert not torch.isin(samples.tokens, torch.tensor([START_ID, UNK_ID])).any()
    for row, ended in zip(samples.tokens.tolist(), samples.ended.tolist()):
        assert ended == (END_ID in row)
        if ended:
            assert set(row[row.index(END_ID) + 1:]) <= {PAD_ID} and row.index(END_ID) >= 1  # min_len 1: never empty
        else:
            assert PAD_ID not in row
    assert len(set(map(tuple, samples.tokens.tolist()))) > 1  # they really are samples


def test_sampling_is_seeded_and_at_low_temperature_is_greedy():
    decoder = _decoder().eval()
    features = torch.randn(K, L, D)
    draws = []
    for _ in range(2):
        torch.manual_seed(7)
        draws.append(sample_captions(decoder, features, per_image=3, max_len=8).tokens)
    assert torch.equal(*draws)
    cold = sample_captions(decoder, features, per_image=1, max_len=8, temperature=1e-4).captions()
    assert cold == greedy_search(decoder, features, max_len=8)[0]


def test_draw_follows_the_distribution_and_never_picks_a_banned_token():
    probs = torch.tensor([0.0, 0.2, 0.5, 0.0, 0.3, 0.0])  # banned tokens first, in between and last
    logits = probs.log().expand(40_000, -1)  # [n, V], -inf where banned
    torch.manual_seed(0)
    counts = torch.bincount(draw(logits), minlength=probs.numel()).float() / logits.size(0)
    assert counts[probs == 0].sum() == 0
    assert torch.allclose(counts, probs, atol=0.01)  # 3 standard errors at n = 40,000 is < 0.007
    for only in (0, 5):  # one allowed token at either end of the vocabulary
        one = torch.full((100, 6), -math.inf)
        one[:, only] = 0.0
        assert (draw(one) == only).all()


def test_finished_samples_leave_the_batch():
    """Each step runs only the samples that have not drawn <end>: the state shrinks as they stop."""
    decoder = _decoder().eval()
    with torch.no_grad():
        output_bias(decoder)[END_ID] = 2.0  # samples of varied lengths, some stopping early
    rows, step = [], decoder.step

    def counting_step(state, tokens):
        rows.append(tokens.numel())
        return step(state, tokens)

    decoder.step = counting_step
    torch.manual_seed(3)
    samples = sample_captions(decoder, torch.randn(K, L, D), per_image=5, max_len=8)
    going = [(samples.tokens[:, :t] != END_ID).all(1).sum().item() for t in range(samples.tokens.size(1))]
    assert rows == going  # step t ran exactly the samples with no <end> before t
    assert rows[0] == K * 5 and rows[-1] < rows[0]


def _rewards_for(reference: list[int], images: int = K) -> CiderReward:
    refs = [[reference + [END_ID]] for _ in range(images)]
    others = [[[w, w + 1, END_ID]] for w in range(4, V - 1)]  # a corpus in which the reference is rare
    return CiderReward(refs, DocumentFrequency.from_references(refs[:1] + others), end_token=True)


def test_rewards_count_end_and_give_empty_captions_zero():
    rewards = _rewards_for([5, 6, 7, 8])
    full, cut, empty = rewards([0, 0, 0], [[5, 6, 7, 8], [5, 6, 7, 8], []], [True, False, True])
    assert full > cut > 0.0 and empty == 0.0  # stopping where the reference stops is worth something


@pytest.mark.parametrize("baseline, settings, lr", [("mean", [], 2e-2),
                                                     ("greedy", ["scst.entropy=0.02"], 1e-2)])  # see below
def test_a_decoder_learns_to_say_the_rewarded_caption(baseline, settings, lr):
    """Every image's only reference is "5 6 7 8": SCST alone, from random weights, must find it.

    With the greedy baseline a confident policy samples its greedy caption again and again, so the
    advantage vanishes before it finds where to stop ("5 6 7 8 6 7", cut); a small entropy bonus
    keeps it sampling (the mean baseline needs none).
    """
    decoder = _decoder("show_tell")
    config = resolve_config(None, None, ["max_decode_len=6", "scst.samples=8", f"scst.baseline={baseline}", *settings])
    rewards, batch = _rewards_for([5, 6, 7, 8]), _batch()
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    first, said = None, None
    for step_number in range(1, 301):
        step = scst_loss(decoder, batch, rewards, config, Collective(), CPU)
        first = step.record["batch_reward"] if first is None else first
        optimizer.zero_grad()
        step.loss.backward()
        optimizer.step()
        if step_number % 10 == 0:
            said = greedy_search(decoder.eval(), batch.features, max_len=6)[0]
            decoder.train()
            if said == [[5, 6, 7, 8]] * K:
                break
    assert said == [[5, 6, 7, 8]] * K
    assert step.record["batch_reward"] > first + 3.0


@pytest.mark.parametrize("name", available_decoders())
def test_every_decoder_takes_an_scst_step(name):
    decoder = _decoder(name).train()
    config = resolve_config(None, None, ["max_decode_len=6", "scst.entropy=0.01"])
    step = scst_loss(decoder, _batch(), _rewards_for([5, 6, 7]), config, Collective(), CPU)
    step.loss.backward()
    assert decoder.training  # restored after the eval-mode sampling
    assert torch.isfinite(step.loss) and all(torch.isfinite(torch.tensor(v)) for v in step.record.values())
    grads = [p.grad for p in decoder.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert {"batch_reward", "baseline", "entropy", "sample_length", "samples_cut"} <= set(step.record)


def test_scoring_with_dropout_changes_the_log_probabilities_not_the_samples():
    """``scst.dropout`` scores the eval-mode samples with the decoder's dropout on: the samples and
    their rewards are the on-policy step's, the loss is not. A decoder in eval mode has no dropout
    to turn on, so there the flag changes nothing."""
    torch.manual_seed(0)
    decoder = build("att_lstm", dataclasses.replace(SMALL, dropout=0.5), D, L, V)
    batch, rewards = _batch(), _rewards_for([5, 6, 7])

    def step(training: bool, dropout: bool):
        config = resolve_config(None, None, ["max_decode_len=6", f"scst.dropout={dropout}"])
        torch.manual_seed(3)
        result = scst_loss(decoder.train(training), batch, rewards, config, Collective(), CPU)
        assert decoder.training == training
        return result

    on_policy, with_dropout = step(True, False), step(True, True)
    assert on_policy.record["batch_reward"] == with_dropout.record["batch_reward"]
    assert on_policy.record["sample_length"] == with_dropout.record["sample_length"]
    assert not torch.isclose(on_policy.loss, with_dropout.loss)
    assert torch.equal(step(False, False).loss, step(False, True).loss)


def test_banned_tokens_get_no_gradient_so_their_probability_cannot_grow():
    """The samples are scored under the distribution they were drawn from (banned tokens at -inf):
    under the full softmax, pushing down a poor sample's words would raise <unk>, <pad> and <start>,
    never sampled and so never pushed down again (on Flickr8k the val loss went from 2.9 to 24)."""
    decoder = _decoder("show_tell").train()
    config = resolve_config(None, None, ["max_decode_len=6", "scst.entropy=0.01"])
    scst_loss(decoder, _batch(), _rewards_for([5, 6, 7]), config, Collective(), CPU).loss.backward()
    bias = output_bias(decoder).grad  # [V] the output layer's: one gradient entry per token
    assert torch.equal(bias[[PAD_ID, START_ID, UNK_ID]], torch.zeros(3)) and bias[4:].abs().sum() > 0


def test_references_keep_words_outside_the_vocabulary_apart():
    vocab = Vocabulary(["<pad>", "<start>", "<end>", "<unk>", "a", "dog"], 1)
    (refs,) = reference_ids([["a dog", "a zebra", "a yak"]], vocab, end_token=False)
    assert refs[0] == [4, 5] and refs[1][0] == 4 and refs[2][0] == 4
    assert refs[1][1] >= len(vocab) and refs[2][1] >= len(vocab) and refs[1][1] != refs[2][1]  # not one <unk>


def test_document_frequencies_are_kept_and_recounted_when_the_references_change(tmp_path):
    path = tmp_path / "cider_df.json.gz"
    refs = [[[4, 5, 2]], [[4, 6, 2]]]
    first = load_or_count_document_frequency(path, refs)
    assert path.is_file() and first.counts[(4,)] == 2 and first.images == 2
    stamp = path.stat().st_mtime_ns
    assert load_or_count_document_frequency(path, refs) == first and path.stat().st_mtime_ns == stamp  # reused
    other = load_or_count_document_frequency(path, refs + [[[7, 2]]])
    assert other.images == 3 and other.counts[(7,)] == 1  # another corpus: counted again, not reused


def test_settings_that_cannot_work_are_refused():
    with pytest.raises(CapcacheError, match="samples >= 2"):
        resolve_config(None, None, ["objective=scst", "scst.samples=1"])
    with pytest.raises(CapcacheError, match="unknown objective"):
        resolve_config(None, None, ["objective=rl"])
    with pytest.raises(CapcacheError, match="scst.baseline"):
        resolve_config(None, None, ["scst.baseline=beam"])


# Runs: cross-entropy first, then self-critical fine-tuning from its best checkpoint.
FAST = ["epochs=1", "batch_size=16", "log_every=2", "model.embed_dim=32", "model.hidden_dim=48",
        "model.attention_dim=32", "val_max_images=10"]


@pytest.fixture(scope="module")
def xe_run(tiny_set, tmp_path_factory):
    manifest, cache = tiny_set
    out = tmp_path_factory.mktemp("xe") / "run"
    loop.train(resolve_config("demo", None, [f"data.manifest={manifest}", f"data.cache={cache}", *FAST]), out,
               progress=False)
    return out


def _scst_config(xe_run, *extra: str):
    return finetune_config(read_json(xe_run / "config.json"), str(xe_run), True, ["optim.lr=1e-3", "epochs=2", *extra])


@pytest.fixture(scope="module")
def scst_run(xe_run, tmp_path_factory):
    """Two SCST epochs from the cross-entropy run's best checkpoint, never interrupted."""
    out = tmp_path_factory.mktemp("scst") / "run"
    loop.train(_scst_config(xe_run), out, progress=False)
    return out


def test_scst_fine_tuning_is_a_run_of_its_own(xe_run, scst_run):
    ckpt = torch.load(scst_run / "checkpoints/last.pt", weights_only=False)
    assert ckpt["progress"]["epoch"] == 2 and ckpt["progress"]["step"] == 2 * 20  # 60 images, 3 x 5 samples a batch
    assert json.loads((scst_run / "vocab.json").read_text()) == json.loads((xe_run / "vocab.json").read_text())
    config = read_json(scst_run / "config.json")
    assert config["objective"] == "scst" and config["init_from"] == str(xe_run)
    assert (scst_run / "cider_df.json.gz").is_file()
    epochs = [r for r in read_metrics(scst_run / "metrics.jsonl") if r["kind"] == "epoch"]
    assert all({"train_reward", "val_CIDEr", "val_loss", "val_repeated_2grams"} <= set(r) for r in epochs)
    assert "train_loss" not in epochs[0]
    steps = [r for r in read_metrics(scst_run / "metrics.jsonl") if r["kind"] == "step"]
    assert all({"batch_reward", "baseline", "entropy", "sample_length", "samples_cut"} <= set(r) for r in steps)
    for name in ("batch_reward", "entropy", "val_repeated_2grams"):
        assert (scst_run / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    start = torch.load(xe_run / "checkpoints/best.pt", weights_only=False)["model"]
    assert any(not torch.equal(start[k], v) for k, v in ckpt["model"].items())  # it trained from there


def test_scst_resumes_bit_for_bit(xe_run, scst_run, tmp_path, monkeypatch):
    train_interrupted_after_first_epoch(monkeypatch, _scst_config(xe_run), tmp_path / "resumed")
    torch.manual_seed(99)  # the checkpoint restores the sampling RNG
    loop.train(None, tmp_path / "resumed", resume=True, progress=False)
    a = torch.load(scst_run / "checkpoints/last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert drop(read_metrics(scst_run / "metrics.jsonl")) == drop(read_metrics(tmp_path / "resumed/metrics.jsonl"))


def test_a_source_with_another_model_is_refused(xe_run, tmp_path):
    with pytest.raises(CapcacheError, match="another model"):
        loop.train(_scst_config(xe_run, "model.hidden_dim=64"), tmp_path / "x", progress=False)
    with pytest.raises(CapcacheError, match="not a trained capcache run"):
        loop.train(finetune_config(read_json(xe_run / "config.json"), str(tmp_path), True), tmp_path / "y",
                   progress=False)


def test_compare_shows_the_cross_entropy_run_and_its_scst_fine_tuning_side_by_side(xe_run, scst_run):
    for run in (xe_run, scst_run):
        evaluate_run(run, "val", device="cpu")
    rows = compare_runs([xe_run, scst_run], "val")
    assert [r.objective for r in rows] == ["xe", f"scst from {xe_run.name}"]
    table = format_comparison(rows)
    assert "objective" in table.splitlines()[0] and "rep-2" in table.splitlines()[0]


DDP_SCST = """
import sys, torch
from torch.nn.parallel import DistributedDataParallel
sys.path.insert(0, sys.argv[2])
from test_scst import _batch, _decoder, _rewards_for
from pipeline.distributed import Collective
from pipeline.training.config import resolve_config
from pipeline.training.scst import scst_loss

comm = Collective.from_env("gloo")
config = resolve_config(None, None, ["max_decode_len=6"])
model = DistributedDataParallel(_decoder("att_lstm").train())  # the same weights on both ranks
torch.manual_seed(comm.rank)  # each rank its own images and samples
step = scst_loss(model, _batch(3 + comm.rank), _rewards_for([5, 6, 7], images=4), config, comm, torch.device("cpu"))
step.loss.backward()
grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
everyone = [torch.zeros_like(grads) for _ in range(comm.world)]
torch.distributed.all_gather(everyone, grads)
if comm.rank == 0:
    open(sys.argv[1], "w").write(repr(((everyone[0] - everyone[1]).abs().max().item(), grads.abs().sum().item())))
del model  # DDP's reducer goes before the process group it holds (gloo can abort at exit otherwise)
comm.close()
"""


def test_under_ddp_the_ranks_scst_gradients_are_averaged(tmp_path):
    """Sampling and scoring run in eval mode, through the DDP wrapper: its gradient hooks must still fire."""
    out = torchrun_two_processes(DDP_SCST, tmp_path, "out.txt")
    difference, size = eval(out.read_text())
    assert difference == 0.0 and size > 0  # the same averaged gradient on both ranks
