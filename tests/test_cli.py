"""The command line end to end: thin commands over the library, one-line errors, scripts-friendly output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli import app
from pipeline.cache.reader import FeatureCache
from pipeline.data.manifest import Manifest
from pipeline.decoders import build_decoder
from pipeline.decoding.captions import caption_cached_images
from pipeline.evaluation.scorers import METRICS, score_captions
from pipeline.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _cli(*args: str) -> subprocess.CompletedProcess:
    """Run `python cli.py ...` as a user would, in a fresh process."""
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=600)


def _untrained_cider(run: Path) -> float:
    """CIDEr on the test split of a decoder with the run's config but no training."""
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    cache, manifest = FeatureCache(config.data.cache), Manifest.load(config.data.manifest)
    vocab_size = len(json.loads((run / "vocab.json").read_text())["words"])
    torch.manual_seed(config.seed)
    decoder = build_decoder(config.decoder, config.model, cache.dim, cache.n_tokens, vocab_size)
    from pipeline.data.vocab import Vocabulary
    records = manifest.split("test")
    captions = caption_cached_images(decoder, cache, [r.image_id for r in records], Vocabulary.load(run / "vocab.json"),
                                     torch.device("cpu"), max_len=config.max_decode_len)
    refs = {r.image_id: r.captions for r in records}
    return score_captions(captions, refs, metrics=("CIDEr",)).scores["CIDEr"]


def test_demo_runs_end_to_end_and_learns(tmp_path):
    out = tmp_path / "demo"
    done = _cli("demo", "--out", str(out), "--train-images", "400", "--eval-images", "40", "--workers", "0",
                "--set", "epochs=3")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CIDEr" in done.stdout and f"run folder: {out}" in done.stdout
    report = json.loads((out / "eval" / "test.json").read_text())
    assert set(report["scores"]) | set(report["unavailable"]) >= set(METRICS)
    assert set(report["scores"]) >= {"BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"}
    assert len(report["captions"]) == 40 and all(c["references"] for c in report["captions"])
    for name in ("config.json", "vocab.json", "metrics.jsonl", "cache.json", "checkpoints/best.pt", "plots/overview.png"):
        assert (out / name).exists(), name
    untrained = _untrained_cider(out)
    assert report["scores"]["CIDEr"] > max(0.3, 3 * untrained), (report["scores"]["CIDEr"], untrained)

    again = _cli("demo", "--out", str(out), "--train-images", "400", "--eval-images", "40", "--workers", "0",
                 "--set", "epochs=3")  # everything done: reused, not redone
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert json.loads((out / "eval" / "test.json").read_text())["scores"] == report["scores"]


def test_import_prints_a_summary_and_writes_the_manifest(tmp_path, shared_data):
    text = shared_data / "flickr8k_text"
    lines = (text / "Flickr8k.token.txt").read_text().splitlines()[:50]  # the first 10 images
    names = sorted({line.split("#")[0] for line in lines})
    (tmp_path / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    for split, part in (("train", names[:6]), ("dev", names[6:8]), ("test", names[8:])):
        (tmp_path / f"Flickr_8k.{split}Images.txt").write_text("\n".join(part) + "\n")
    images = tmp_path / "images"
    images.mkdir()
    for name in names[:-1]:  # the last image is missing on disk
        (images / name).symlink_to(shared_data / "real_photos" / "chelsea.jpg")
    result = runner.invoke(app, ["import", "flickr8k", str(tmp_path / "Flickr8k.token.txt"), "--images", str(images),
                                 "--out", str(tmp_path / "f8k.json")])
    assert result.exit_code == 0, result.output
    assert "train" in result.output and "missing" in result.output.lower()
    manifest = Manifest.load(tmp_path / "f8k.json")
    assert len(manifest.images) == 9 and manifest.split_counts() == {"train": 6, "val": 2, "test": 1}


@pytest.mark.parametrize("args, message", [
    (["import", "flickr8k", "/nonexistent/Flickr8k.token.txt", "--images", "/tmp", "--out", "x"], "not found"),
    (["import", "yaml", "/tmp/x", "--images", "/tmp", "--out", "x"], "yaml"),
    (["extract", "/nonexistent/manifest.json", "--encoder", "tiny-cnn"], "manifest not found"),
    (["train", "--out", "/tmp/capcache-none", "--resume"], "not a capcache run"),
    (["train", "--out", "/tmp/capcache-none", "--set", "optim.lr=fast"], "expected float"),
    (["eval", "/nonexistent/run"], "not a capcache run folder"),
    (["caption", "/nonexistent/run", "/tmp"], "not a capcache run folder"),
    (["compare", "/nonexistent/run"], "not a capcache run folder"),
    (["report", "/nonexistent/run"], "not a capcache run folder"),
    (["metrics-check", "/nonexistent/flickr8k_text"], "not found"),
    (["cache", "info", "/nonexistent/x.h5"], "not found"),
    (["cache", "ls", "--cache-dir", "/nonexistent/cache"], "does not exist"),
])
def test_bad_input_is_one_line_without_traceback(args, message):
    done = runner.invoke(app, args)  # in-process: the same code path as the script, without a torch import per case
    assert done.exit_code == 1, done.output
    assert "Traceback" not in done.stderr and not done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr


def test_a_bad_input_error_from_the_real_script_is_one_line():
    done = _cli("eval", "/nonexistent/run")
    assert done.returncode == 1 and done.stderr.strip() == "error: /nonexistent/run is not a capcache run folder (no config.json)"


def test_train_help_names_every_preset():
    """A user finds the CPU recipes from `--help`, not only from the README."""
    from pipeline.training.config import PRESETS

    shown = runner.invoke(app, ["train", "--help"], terminal_width=240).output
    missing = [name for name in PRESETS if name not in shown]
    assert not missing, f"train --help does not name the presets {missing}"


def test_extract_prints_the_cache_path_last(tmp_path):
    from pipeline.data.synthetic import SyntheticConfig, generate_dataset
    manifest = generate_dataset(tmp_path / "data", SyntheticConfig(n_train=8, n_val=2, n_test=2, image_size=64))
    result = runner.invoke(app, ["extract", str(manifest), "--encoder", "tiny-cnn", "--cache-dir", str(tmp_path / "c"),
                                 "--workers", "0"])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.endswith(".h5") and Path(last).is_file() and len(FeatureCache(last)) == 12
