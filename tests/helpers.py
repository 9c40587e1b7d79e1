"""What several test modules do alike: interrupt a training run or an extraction, read Flickr8k
captions, run a script under torchrun, make a manifest of many images from the few real photos."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

import pipeline.extract.loop as extract_loop
import pipeline.training.loop as loop

REPO = Path(__file__).resolve().parents[1]


def train_interrupted_after_first_epoch(monkeypatch, config, out: Path) -> None:
    """Train ``config`` into ``out`` and stop it like Ctrl-C right after epoch 1's checkpoint
    (``plot_runs`` is called once per epoch, after the checkpoints are written)."""
    real_plot, calls = loop.plot_runs, []

    def interrupt_after_first_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_plot(*args, **kwargs)

    monkeypatch.setattr(loop, "plot_runs", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        loop.train(config, out, progress=False)
    monkeypatch.setattr(loop, "plot_runs", real_plot)


def flickr8k_captions(path: Path, n_images: int) -> dict[str, list[str]]:
    """The first ``n_images`` images of a Flickr8k.token.txt, each with its captions in file order."""
    captions: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, caption = line.rstrip("\n").split("\t")
            image = key.split("#")[0]
            if image not in captions and len(captions) == n_images:
                break
            captions.setdefault(image, []).append(caption)
    return captions


def torchrun_two_processes(script: str, tmp_path: Path, out_name: str) -> Path:
    """Run ``script`` as 2 gloo ranks (argv: the output file, the tests folder); -> the output file."""
    path = tmp_path / "script.py"
    path.write_text(script)
    out = tmp_path / out_name
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(path), str(out), str(REPO / "tests")], cwd=REPO,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def linked_photos(folder: Path, real_photos: Path, n: int) -> Path:
    """A saved manifest of ``n`` images in ``folder``/images: links to the real photos, cycled."""
    from pipeline.data.manifest import ImageRecord, Manifest

    images = folder / "images"
    images.mkdir(parents=True)
    photos = sorted(p for p in real_photos.iterdir() if p.suffix in (".jpg", ".png"))
    records = []
    for i in range(n):
        source = photos[i % len(photos)]
        name = f"{i:05d}{source.suffix}"
        (images / name).symlink_to(source)
        records.append(ImageRecord(name, name, "train", ["a photo"]))
    path = folder / "many.json"
    Manifest("many", str(images), records).save(path)
    return path


def extract_interrupted(monkeypatch, after_batches: int, extraction: Callable[[], object]) -> None:
    """Run ``extraction`` and stop it like Ctrl-C once ``after_batches`` batches were encoded."""
    real, calls = extract_loop._encode, {"n": 0}

    def encode(*args):
        calls["n"] += 1
        if calls["n"] > after_batches:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(extract_loop, "_encode", encode)
    with pytest.raises(KeyboardInterrupt):
        extraction()
    monkeypatch.setattr(extract_loop, "_encode", real)


def wait_for_progress(proc: subprocess.Popen, at_least: int, total: int) -> int:
    """Read ``proc``'s progress bar from stderr until ``at_least`` of ``total`` images are done;
    return that count (fail the test if it ends first)."""
    seen = ""
    while proc.poll() is None:
        seen += os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
        counts = [int(n) for n in re.findall(rf"(\d+)/{total}", seen)]
        if counts and counts[-1] >= at_least:
            return counts[-1]
    pytest.fail(f"the process ended before it could be interrupted: {seen[-1500:]}")
