"""Training from a cache: the run folder, bit-identical resume, and clear stops on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pipeline.training.cross_entropy as cross_entropy
import pipeline.training.loop as loop
from pipeline.data.manifest import Manifest
from pipeline.data.synthetic import SyntheticConfig, generate_dataset
from pipeline.errors import CapcacheError
from pipeline.training.config import resolve_config
from pipeline.runs.metrics_log import read_metrics
from pipeline.training.plots import SEED_000_CURVES

from helpers import train_interrupted_after_first_epoch

FAST = ["epochs=3", "batch_size=16", "log_every=2", "model.embed_dim=32", "model.hidden_dim=48",
        "model.attention_dim=32", "val_max_images=10", "teacher_forcing=0.8"]


def _config(tiny_set, *extra: str):
    manifest, cache = tiny_set
    return resolve_config("demo", None, [f"data.manifest={manifest}", f"data.cache={cache}", *FAST, *extra])


def test_run_folder_holds_everything_to_reproduce(tiny_set, tmp_path):
    result = loop.train(_config(tiny_set), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert result.epochs == 3 and result.steps == 3 * 20  # 60 images, 5 captions each: 3 images (15 captions) a batch
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["hidden_dim"] == 48 and config["data"]["cache"] == str(tiny_set[1])
    assert json.loads((run / "cache.json").read_text())["key"] in tiny_set[1].name
    assert json.loads((run / "vocab.json").read_text())["words"][:4] == ["<pad>", "<start>", "<end>", "<unk>"]
    records = read_metrics(run / "metrics.jsonl")
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    assert all({"train_loss", "val_loss", "val_CIDEr", "val_BLEU-4"} <= set(r) for r in epochs)
    steps = [r for r in records if r["kind"] == "step"]
    assert all({"batch_train_loss", "learning_rate", "grad_norm", "epoch"} <= set(r) for r in steps)
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    for name in SEED_000_CURVES + ("val_CIDEr", "overview"):
        assert (run / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for which in ("last", "best"):
        ckpt = torch.load(run / "checkpoints" / f"{which}.pt", weights_only=False)
        assert {"model", "optimizer", "schedule", "rng", "progress"} <= set(ckpt)


@pytest.fixture(scope="module")
def straight(tiny_set, tmp_path_factory) -> Path:
    """A run never interrupted, saving within epochs too (saving changes nothing it computes)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    loop.train(_config(tiny_set, "checkpoint_every=5"), out, progress=False)
    return out


def test_interrupted_and_resumed_run_ends_with_identical_weights(tiny_set, straight, tmp_path, monkeypatch):
    train_interrupted_after_first_epoch(monkeypatch, _config(tiny_set), tmp_path / "resumed")
    torch.manual_seed(1234)  # a resumed process starts with other RNG state; the checkpoint must restore it
    result = loop.train(None, tmp_path / "resumed", resume=True, progress=False)
    assert result.epochs == 3
    a = torch.load(straight / "checkpoints/last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert drop(read_metrics(straight / "metrics.jsonl")) == drop(read_metrics(tmp_path / "resumed/metrics.jsonl"))
    again = loop.train(None, tmp_path / "resumed", resume=True, progress=False)  # finished: nothing to do
    assert again.steps == result.steps


def test_a_run_killed_within_an_epoch_resumes_from_its_last_step_checkpoint(tiny_set, straight, tmp_path, monkeypatch):
    every = "checkpoint_every=5"  # 20 steps per epoch: checkpoints at steps 5, 10, 15, (20: epoch end), 25, ...
    real_loss, trained = cross_entropy.caption_loss, []

    def counted(*args, stop_at: int | None = None):
        if torch.is_grad_enabled():  # a training step, not validation
            trained.append(1)
            if len(trained) == stop_at:
                raise KeyboardInterrupt
        return real_loss(*args)

    monkeypatch.setattr(cross_entropy, "caption_loss", lambda *a: counted(*a, stop_at=28))  # killed in step 28
    with pytest.raises(KeyboardInterrupt):
        loop.train(_config(tiny_set, every), tmp_path / "resumed", progress=False)
    kept = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=False)["progress"]
    assert (kept["step"], kept["epoch"], kept["batch_in_epoch"]) == (25, 1, 5)  # 5 batches into epoch 2

    trained.clear()
    monkeypatch.setattr(cross_entropy, "caption_loss", counted)
    torch.manual_seed(1234)  # a resumed process starts with other RNG state; the checkpoint must restore it
    result = loop.train(None, tmp_path / "resumed", resume=True, progress=False)
    assert result.steps == 60 and len(trained) == 60 - 25  # only the steps after the checkpoint are trained
    a = torch.load(straight / "checkpoints/last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert drop(read_metrics(straight / "metrics.jsonl")) == drop(read_metrics(tmp_path / "resumed/metrics.jsonl"))


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tiny_set, tmp_path, monkeypatch):
    real_loss, calls = cross_entropy.caption_loss, []

    def loss_goes_nan_at_step_25(*args):
        terms = real_loss(*args)
        if torch.is_grad_enabled():  # a training step, not validation
            calls.append(1)
            if len(calls) == 25:
                terms.objective = terms.objective * float("nan")
        return terms

    monkeypatch.setattr(cross_entropy, "caption_loss", loss_goes_nan_at_step_25)
    with pytest.raises(CapcacheError, match=r"loss became nan at step 25 \(epoch 2\).*epoch 1"):
        loop.train(_config(tiny_set), tmp_path / "run", progress=False)
    kept = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=False)
    assert kept["progress"]["epoch"] == 1 and all(torch.isfinite(v).all() for v in kept["model"].values())


def test_refuses_bad_setups_with_one_line_errors(tiny_set, tmp_path):
    manifest_path, cache_path = tiny_set
    loop.train(_config(tiny_set, "epochs=1"), tmp_path / "done", progress=False)
    with pytest.raises(CapcacheError, match="already holds a trained run"):
        loop.train(_config(tiny_set, "epochs=1"), tmp_path / "done", progress=False)
    with pytest.raises(CapcacheError, match="not a capcache run"):
        loop.train(None, tmp_path / "nothing", resume=True, progress=False)

    manifest = Manifest.load(manifest_path)
    no_train = Manifest("no-train", manifest.image_root, [r for r in manifest.images if r.split != "train"])
    no_train.save(tmp_path / "no_train.json")
    with pytest.raises(CapcacheError, match="no train split"):
        loop.train(_config(tiny_set, f"data.manifest={tmp_path / 'no_train.json'}"), tmp_path / "r1", progress=False)

    other = generate_dataset(tmp_path / "other", SyntheticConfig.tiny(seed=5))
    with pytest.raises(CapcacheError, match="another image set"):
        loop.train(_config(tiny_set, f"data.manifest={other}"), tmp_path / "r2", progress=False)
    with pytest.raises(CapcacheError, match="empty vocabulary"):
        loop.train(_config(tiny_set, "data.min_freq=100000"), tmp_path / "r3", progress=False)
    with pytest.raises(CapcacheError, match="holds tiny-cnn features but the config expects resnet50 .*--encoder resnet50"):
        loop.train(_config(tiny_set, "data.encoder=resnet50"), tmp_path / "r4", progress=False)


def test_glove_vectors_initialise_and_frozen_embeddings_stay_put(tiny_set, tmp_path):
    vocab_words = ["red", "blue", "circle", "left"]
    rows = {w: [round(0.01 * (i + 1) * (j + 1), 4) for j in range(32)] for i, w in enumerate(vocab_words)}
    glove = tmp_path / "glove.32d.txt"
    glove.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in {"zebra": [0.5] * 32, **rows}.items()))
    loop.train(_config(tiny_set, "epochs=1", f"model.glove_path={glove}", "model.freeze_embeddings=true"),
               tmp_path / "run", progress=False)
    state = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=False)["model"]
    words = json.loads((tmp_path / "run/vocab.json").read_text())["words"]
    for word, vector in rows.items():  # loaded, and untouched by a whole epoch of training
        assert torch.allclose(state["embedding.weight"][words.index(word)], torch.tensor(vector))

    with pytest.raises(CapcacheError, match="GloVe file .* not found"):
        loop.train(_config(tiny_set, f"model.glove_path={tmp_path / 'nope.txt'}"), tmp_path / "r1", progress=False)
    with pytest.raises(CapcacheError, match="holds 32-d vectors but the decoder's embeddings are 48-d"):
        loop.train(_config(tiny_set, f"model.glove_path={glove}", "model.embed_dim=48"), tmp_path / "r2", progress=False)
    broken = tmp_path / "broken.txt"
    broken.write_text(glove.read_text() + "circle 1 2 x\n".replace("1 2 x", " ".join(["1"] * 31 + ["x"])))
    with pytest.raises(CapcacheError, match=r"broken.txt:6: a vector value is not a number"):
        loop.train(_config(tiny_set, f"model.glove_path={broken}"), tmp_path / "r3", progress=False)


def test_torchrun_two_processes_train_one_run_with_the_global_batch(tiny_set, tmp_path):
    manifest, cache = tiny_set
    repo = Path(__file__).resolve().parents[1]
    sets = [a for item in FAST for a in ("--set", item)]
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(repo / "cli.py"), "train", "--out", str(tmp_path / "ddp"), "--preset", "demo",
                          "--manifest", str(manifest), "--cache", str(cache), *sets],
                         cwd=repo, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("trained 3 epochs, 60 steps") == 1  # same steps as one process; rank 0 reports
    epochs = [r for r in read_metrics(tmp_path / "ddp/metrics.jsonl") if r["kind"] == "epoch"]
    assert [r["processes"] for r in epochs] == [2, 2, 2] and epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    steps = [r["step"] for r in read_metrics(tmp_path / "ddp/metrics.jsonl") if r["kind"] == "step"]
    assert steps == sorted(set(steps))  # one writer: no line logged twice
    ckpt = torch.load(tmp_path / "ddp/checkpoints/last.pt", weights_only=False)
    assert not any(k.startswith("module.") for k in ckpt["model"])  # loads into a plain decoder


NAN_ON_RANK_1 = """
import os, sys, torch
import pipeline.training.cross_entropy as cross_entropy
import pipeline.training.loop as loop
from pipeline.errors import CapcacheError
from pipeline.training.config import resolve_config

real, calls = cross_entropy.caption_loss, []
def nan_on_rank_1(*args):  # only rank 1 sees the bad batch, at its 5th step
    terms = real(*args)
    if torch.is_grad_enabled() and os.environ["RANK"] == "1":
        calls.append(1)
        if len(calls) == 5:
            terms.objective = terms.objective * float("nan")
    return terms
cross_entropy.caption_loss = nan_on_rank_1
try:
    loop.train(resolve_config("demo", None, sys.argv[2:]), sys.argv[1], progress=False)
except CapcacheError as e:  # one file per rank: their stdout lines would interleave
    open(f"{sys.argv[1]}.rank{os.environ['RANK']}.txt", "w").write(str(e))
"""


def test_torchrun_ranks_stop_together_when_one_sees_a_nan_loss(tiny_set, tmp_path):
    """Were rank 1 to stop alone, rank 0 would fail in its next all-reduce (gloo: "Connection closed
    by peer") or, with NCCL, wait for the watchdog: both stop with the same one-line error instead."""
    manifest, cache = tiny_set
    script = tmp_path / "nan_on_rank_1.py"
    script.write_text(NAN_ON_RANK_1)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(script), str(tmp_path / "ddp"), f"data.manifest={manifest}", f"data.cache={cache}", *FAST],
                         cwd=Path(__file__).resolve().parents[1], env={**os.environ, "OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rank0, rank1 = ((tmp_path / f"ddp.rank{r}.txt").read_text() for r in (0, 1))
    assert rank0.startswith("loss became non-finite in another process at step 5 (epoch 1)")
    assert rank1.startswith("loss became nan at step 5 (epoch 1)")


def test_logs_the_rate_each_step_used_and_keeps_the_best_by_the_metric_asked_for(tiny_set, tmp_path):
    config = _config(tiny_set, "epochs=2", "log_every=1", "optim.warmup_steps=4", "val_metric=ROUGE-L")
    result = loop.train(config, tmp_path / "run", progress=False)
    records = read_metrics(tmp_path / "run/metrics.jsonl")
    rates = [r["learning_rate"] for r in records if r["kind"] == "step"][:4]
    assert rates == pytest.approx([config.optim.lr * k / 4 for k in (1, 2, 3, 4)])  # warm-up as the steps saw it
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert all("val_ROUGE-L" in r for r in epochs)  # computed, not replaced by the loss
    best = max(epochs, key=lambda r: r["val_ROUGE-L"])
    assert (result.best_metric, result.best_epoch) == (best["val_ROUGE-L"], best["epoch"])
