"""Captioning new images with a run's own encoder, attention maps, and the comparison table."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.cache.reader import FeatureCache
from pipeline.data.manifest import Manifest
from pipeline.decoding import DecodingConfig
from pipeline.decoding.captions import caption_cached_images
from pipeline.inference.caption_images import caption_images
from pipeline.encoders import build_encoder
from pipeline.errors import CapcacheError
from pipeline.evaluation.compare import compare_runs, format_comparison
from pipeline.evaluation.evaluate_run import evaluate_run
from pipeline.extract.images import ImageFiles
from pipeline.extract.inference import encode_images, prepare_encoder
from pipeline.report.html import write_report
from pipeline.runs.load import load_trained

REPO = Path(__file__).resolve().parents[1]
@pytest.fixture(scope="module")
def runs(caption_runs) -> dict[str, Path]:
    """The session's two trained runs (tests/conftest.py)."""
    return caption_runs


def test_new_images_get_the_captions_their_cached_features_get(runs):
    manifest = Manifest.load(runs["manifest"])
    test = manifest.split("test")[:6]
    files = [manifest.image_path(r) for r in test]
    decoding = DecodingConfig.from_beam(3)
    result = caption_images(runs["att_lstm"], files, decoding, device="cpu")
    trained = load_trained(runs["att_lstm"], "best", "cpu")
    cache = FeatureCache(trained.config.data.cache)
    cached = caption_cached_images(trained.decoder, cache, [r.image_id for r in test], trained.vocab, trained.device,
                                   max_len=trained.config.max_decode_len, decoding=decoding)
    assert [i.caption for i in result.images] == [cached[r.image_id] for r in test]
    assert all(i.caption for i in result.images)


def test_a_new_image_is_encoded_bit_for_bit_as_its_cache_row(runs):
    """Same memory format (channels_last) and rounding as extraction: not one ulp apart."""
    manifest = Manifest.load(runs["manifest"])
    test = manifest.split("test")[:6]
    cache = FeatureCache(load_trained(runs["att_lstm"], "best", "cpu").config.data.cache)
    encoder = prepare_encoder(build_encoder("tiny-cnn", None, None), torch.device("cpu"))
    images = ImageFiles([manifest.image_path(r) for r in test], np.arange(6), encoder.preprocessing.transform(),
                        encoder.preprocessing.crop)
    fresh = encode_images(encoder, torch.stack([images[i][1] for i in range(6)]), torch.device("cpu"))[0]
    stored = np.stack([cache[cache.row_of[r.image_id]] for r in test])  # [6, L, D] float16
    assert np.array_equal(fresh.to(torch.float16).numpy(), stored)


def test_batches_of_only_unreadable_files_are_skipped_and_order_is_kept(runs, tmp_path):
    manifest = Manifest.load(runs["manifest"])
    good = [manifest.image_path(r) for r in manifest.split("test")[:3]]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    files = [broken, good[0], broken, good[1], good[2]]  # batch size 1: some batches hold nothing readable
    result = caption_images(runs["att_lstm"], files, batch_size=1, workers=0, device="cpu")
    assert [i.path for i in result.images] == good and list(result.skipped) == [str(broken)]


def test_caption_cli_folder_with_bad_files_attention_maps_and_json(runs, tmp_path):
    manifest = Manifest.load(runs["manifest"])
    folder = tmp_path / "photos"
    folder.mkdir()
    for r in manifest.split("test")[:3]:
        (folder / Path(r.file).name).write_bytes(manifest.image_path(r).read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    proc = subprocess.run([sys.executable, str(REPO / "cli.py"), "caption", str(runs["att_lstm"]), str(folder),
                           "--beam", "2", "--allow-unk", "--attention", str(tmp_path / "maps"), "--json", str(tmp_path / "c.json"),
                           "--device", "cpu"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3 and all(len(line.split("\t")) == 2 and line.split("\t")[1] for line in lines)
    assert "skipped" in proc.stderr and "broken.jpg" in proc.stderr
    maps = sorted((tmp_path / "maps").glob("*.png"))
    assert len(maps) == 3 and all(m.read_bytes()[:4] == b"\x89PNG" for m in maps)
    saved = json.loads((tmp_path / "c.json").read_text())
    assert len(saved["captions"]) == 3 and saved["decoding"]["beam_size"] == 2 and "broken.jpg" in next(iter(saved["skipped"]))
    assert saved["decoding"]["allow_unk"] is True


def test_captions_cut_at_max_len_get_no_end_attention_row(runs, tmp_path):
    manifest = Manifest.load(runs["manifest"])
    files = [manifest.image_path(r) for r in manifest.split("test")[:6]]
    result = caption_images(runs["att_lstm"], files, DecodingConfig(max_len=3), device="cpu", attention=True, workers=0)
    for item in result.images:
        assert item.ended == (len(item.tokens) < 3)
        assert len(item.attention) == len(item.tokens) + item.ended  # one row per emitted token
    assert not all(i.ended for i in result.images)  # the synthetic captions are longer than two words
    from pipeline.report.attention import save_attention_maps

    assert len(save_attention_maps(result, tmp_path / "maps")) == len(files)


def test_attention_maps_need_an_attention_decoder(runs):
    manifest = Manifest.load(runs["manifest"])
    with pytest.raises(CapcacheError, match="needs an attention decoder"):
        caption_images(runs["transformer"], [manifest.image_path(manifest.split("test")[0])], attention=True,
                       device="cpu")


def test_compare_table_of_evaluated_runs(runs, tmp_path):
    with pytest.raises(CapcacheError, match="has no test evaluation"):
        compare_runs([runs["att_lstm"]])
    evaluate_run(runs["att_lstm"], "test", device="cpu", decoding=DecodingConfig.from_beam(3))
    evaluate_run(runs["transformer"], "test", device="cpu")
    written = (runs["transformer"] / "eval" / "test.json").stat().st_mtime_ns
    again = evaluate_run(runs["transformer"], "test", device="cpu", reuse=True)  # same decoding: the stored report
    assert (runs["transformer"] / "eval" / "test.json").stat().st_mtime_ns == written and again["decoding"]["strategy"] == "greedy"
    evaluate_run(runs["transformer"], "test", device="cpu", reuse=True, decoding=DecodingConfig.from_beam(2))
    assert json.loads((runs["transformer"] / "eval" / "test.json").read_text())["decoding"]["beam_size"] == 2
    rows = compare_runs([runs["att_lstm"], runs["transformer"]])
    assert [r.name for r in rows] == ["att_lstm", "transformer"]
    assert rows[0].decoding == "beam 3" and rows[1].decoding == "beam 2"
    assert all(0 <= r.scores["CIDEr"] and r.params > 1000 and r.train_seconds > 0 for r in rows)
    assert "tiny-cnn (random:0)" in rows[0].cache
    assert all(0 < r.diversity["distinct"] <= 1 and r.diversity["vocab"] > 0 and 0 <= r.diversity["novel"] <= 1
               for r in rows)
    table = format_comparison(rows, markdown=True)
    assert table.splitlines()[0].startswith("| model | BLEU-1") and "| att_lstm |" in table and "params" in table
    assert "| distinct | vocab | Div-1 | Div-2 | novel |" in table.splitlines()[0]


def test_html_report_is_self_contained_and_loads_in_headless_chromium(runs, tmp_path):
    evaluate_run(runs["att_lstm"], "test", device="cpu")
    page = write_report(runs["att_lstm"], "test", gallery=6)
    text = page.read_text()
    assert "CIDEr" in text and "<h2>Training</h2>" in text and text.count("class='card'") == 6
    assert "<h2>Captions</h2>" in text and "<th>Div-2</th>" in text and "<th>novel</th>" in text
    assert re.findall(r"<img alt='([^']+)' src='data:image/png", text) == ["overview"]  # each curve shown once
    sources = re.findall(r"""src=['"]([^'"]+)""", text)
    assert sources and all(s.startswith("data:image/") for s in sources)  # nothing outside the file
    assert not re.search(r"""href=['"]http""", text)
    ciders = [float(x) for x in re.findall(r"CIDEr (\d+\.\d+)</span>", text)]
    assert ciders[:3] == sorted(ciders[:3], reverse=True) and min(ciders[:3]) >= max(ciders[3:])  # best first

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (make test installs it where apt-get is available)")
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-1000:]
    loaded = re.search(r'data-images-loaded="(\d+)"', dom.stdout)
    broken = re.search(r'data-images-broken="(\d+)"', dom.stdout)
    assert loaded and broken, dom.stdout[:500]
    assert int(loaded.group(1)) == len(sources) and int(broken.group(1)) == 0
