"""A cache is reused only when it is exactly what the request would compute (issue 14): leftover
reports, replaced images and weights, damaged bytes, missing folders, leftovers and bad options."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import pipeline.cache.writer as writer_module
import pipeline.extract.runner as runner
from cli import app
from pipeline.cache import hdf5
from pipeline.cache.inspect import list_caches, verify_cache
from pipeline.cache.key import CacheSpec
from pipeline.cache.reader import FeatureCache
from pipeline.cache.writer import CacheWriter
from pipeline.data.manifest import ImageRecord, Manifest
from pipeline.encoders import build_encoder
from pipeline.encoders import weights as weights_module
from pipeline.errors import CapcacheError
from pipeline.extract import extract
from pipeline.extract.images import load_image
from pipeline.io import atomic_write_text
from tests.helpers import extract_interrupted

cli = CliRunner()


def bmp(path: Path, seed: int) -> Path:
    """An uncompressed 48x40 image: any two of them have the same byte size and other content."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path, format="BMP")
    return path


@pytest.fixture()
def manifest(tmp_path: Path) -> Manifest:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        bmp(folder / f"{i}.bmp", i)
    return Manifest("six", str(folder), [ImageRecord(f"{i}.bmp", f"{i}.bmp", "train", ["x"]) for i in range(6)])


def run(manifest: Manifest, cache: Path, **kwargs):
    return extract(manifest, "tiny-cnn", cache_dir=cache, workers=0, progress=False, batch_size=2, **kwargs)


def interrupted(manifest: Manifest, cache: Path, monkeypatch, after_batches: int = 1) -> None:
    """An extraction stopped by Ctrl-C after ``after_batches`` batches were encoded."""
    extract_interrupted(monkeypatch, after_batches, lambda: run(manifest, cache))


def features(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[hdf5.FEATURES][:]


# 1. a leftover report never vouches for another file
def test_deleting_the_h5_then_interrupting_never_says_nothing_to_do(manifest, tmp_path, monkeypatch):
    first = run(manifest, tmp_path / "c")
    reference = features(first.path)
    first.path.unlink()  # as "delete it and extract again" says; the report stays
    interrupted(manifest, tmp_path / "c", monkeypatch)
    assert not first.path.with_suffix(".json").exists()  # creating the new file dropped the old report
    again = run(manifest, tmp_path / "c")
    assert not again.reused and 0 < again.extracted < 6
    np.testing.assert_array_equal(features(again.path), reference)


def test_a_leftover_complete_report_is_checked_against_the_h5(manifest, tmp_path, monkeypatch):
    first = run(manifest, tmp_path / "c")
    report = json.loads(first.path.with_suffix(".json").read_text())
    first.path.unlink()
    interrupted(manifest, tmp_path / "c", monkeypatch)
    first.path.with_suffix(".json").write_text(json.dumps(report))  # a stale "complete": true
    assert not run(manifest, tmp_path / "c").reused


# 2. a replaced image of the same size
def test_a_replaced_image_of_the_same_size_redoes_only_its_row(manifest, tmp_path):
    first = run(manifest, tmp_path / "c")
    image = Path(manifest.image_root) / "3.bmp"
    size = image.stat().st_size
    bmp(image, 99)
    assert image.stat().st_size == size
    again = run(manifest, tmp_path / "c")
    assert (again.path, again.extracted, again.changed) == (first.path, 1, ["3.bmp"])
    fresh = run(manifest, tmp_path / "fresh")
    np.testing.assert_array_equal(features(again.path), features(fresh.path))
    assert run(manifest, tmp_path / "c").reused


def test_touched_files_keep_their_rows_and_verify_deep_finds_a_hidden_change(manifest, tmp_path):
    first = run(manifest, tmp_path / "c")
    os.utime(Path(manifest.image_root) / "1.bmp")  # same content, new mtime
    assert run(manifest, tmp_path / "c").extracted == 0
    image = Path(manifest.image_root) / "2.bmp"
    before = image.stat()
    bmp(image, 77)
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))  # size and mtime as before: only the digest tells
    result = verify_cache(first.path, progress=False, deep=True)
    assert not result.ok and result.changed == ["2.bmp"]


# 3. local weights by content
def test_local_weights_are_keyed_by_content_and_hashed_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPCACHE_HOME", str(tmp_path / "home"))
    path = tmp_path / "best.pth"
    torch.save(build_encoder("tiny-cnn", "random:1").body.state_dict(), path)
    old = build_encoder("tiny-cnn", str(path)).describe()["weights"]
    torch.save(build_encoder("tiny-cnn", "random:2").body.state_dict(), path)  # same architecture, same size
    new = build_encoder("tiny-cnn", str(path)).describe()["weights"]
    assert old != new and new.startswith("file:best.pth:")
    monkeypatch.setattr(weights_module, "file_digest", lambda p: pytest.fail("hashed again"))
    assert build_encoder("tiny-cnn", str(path)).describe()["weights"] == new


# 4. checksums
def test_a_flipped_byte_is_named_by_verify_refused_by_training_and_repaired(manifest, tmp_path):
    first = run(manifest, tmp_path / "c")
    reference = features(first.path)
    with h5py.File(first.path, "r+") as f:
        row = f[hdf5.FEATURES][4]
        row.view(np.uint8).reshape(-1)[100] ^= 0x10
        f[hdf5.FEATURES][4] = row
    result = verify_cache(first.path, progress=False)
    assert not result.ok and result.corrupt == ["row 4 (4.bmp)"] and "--repair" in result.summary()
    with pytest.raises(CapcacheError, match=r"row 4 \(4.bmp\) of .* fails its checksum.*--repair") as e:
        FeatureCache(first.path, in_memory=True)[4]
    assert "\n" not in str(e.value)
    assert verify_cache(first.path, progress=False, repair=True).repaired
    assert run(manifest, tmp_path / "c").extracted == 1
    np.testing.assert_array_equal(features(first.path), reference)


# 5. a missing image folder
def test_a_missing_or_moved_image_folder_is_refused_at_once(manifest, tmp_path):
    moved = Manifest("six", str(tmp_path / "gone"), manifest.images)
    with pytest.raises(CapcacheError, match=r"image folder .*gone of manifest 'six' does not exist"):
        run(moved, tmp_path / "c")
    most_missing = Manifest("six", manifest.image_root, manifest.images + [
        ImageRecord(f"m{i}.jpg", f"m{i}.jpg", "train", ["x"]) for i in range(7)])
    with pytest.raises(CapcacheError, match=r"7 of 13 images .* are missing from .*images \(e.g. m0.jpg\)"):
        run(most_missing, tmp_path / "c")
    assert not (tmp_path / "c").exists()


# 6. the size estimate is an upper bound
@pytest.mark.parametrize("n, tokens, dim, pooled", [(1, 4, 8, None), (300, 49, 64, 32), (1500, 1, 16, 8)])
def test_the_size_estimate_is_an_upper_bound(tmp_path, n, tokens, dim, pooled):
    ids = [f"image_{i:06d}.jpg" for i in range(n)]
    spec = CacheSpec({"encoder": "x"}, "float16", "s", "n", n)
    CacheWriter(tmp_path / "c.h5", spec, ids, tokens, dim, pooled).close()
    estimate = hdf5.estimated_bytes(n, tokens, dim, pooled, "float16", 2 * sum(len(i) for i in ids))
    actual = (tmp_path / "c.h5").stat().st_size
    assert actual <= estimate < actual + 2 * 2**20


# 7. disk full when the report is written
def test_disk_full_while_writing_the_report_is_one_line_and_a_rerun_finishes(manifest, tmp_path, monkeypatch):
    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(runner, "atomic_write_json", full)
    with pytest.raises(CapcacheError, match=r"disk full at .*\.json; free .* and re-run \(it resumes\)"):
        run(manifest, tmp_path / "c")
    monkeypatch.undo()
    again = run(manifest, tmp_path / "c")
    assert again.extracted == 0 and again.reused


# 8. temporaries of killed runs
def test_leftover_temporaries_are_listed_then_removed_unless_their_process_lives(manifest, tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    dead = folder / ".tiny-cnn-six-0000.h5.999999999.0a1b2c3d.tmp"  # no such process
    live = folder / f".tiny-cnn-six-0000.h5.{os.getpid()}.0a1b2c3e.tmp"
    dead.write_bytes(b"x" * 1000)
    live.write_bytes(b"x")
    _, lines = list_caches(folder)
    assert any("leftover of a killed run (PID 999999999)" in line for line in lines)
    assert any(f"being written by PID {os.getpid()}" in line for line in lines)
    run(manifest, folder)
    assert not dead.exists() and live.exists()


# 9. the umask
def test_written_files_honour_the_umask(manifest, tmp_path):
    old = os.umask(0o002)
    try:
        text = atomic_write_text(tmp_path / "a.txt", "x")
        result = run(manifest, tmp_path / "c")
    finally:
        os.umask(old)
    for path in (text, result.path, result.path.with_suffix(".json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o664, path


# 10. options checked before anything is written
@pytest.mark.parametrize("option, message", [
    (["--device", "tpu"], "unknown device 'tpu'"), (["--batch-size", "0"], "batch-size"),
    (["--workers", "-1"], "workers"), (["--grid", "0"], "grid")])
def test_bad_options_are_refused_before_anything_is_written(manifest, tmp_path, option, message):
    path = manifest.save(tmp_path / "m.json")
    out = cli.invoke(app, ["extract", str(path), "--encoder", "tiny-cnn", "--cache-dir", str(tmp_path / "c"), *option])
    assert out.exit_code in (1, 2) and message in out.output and "Traceback" not in out.output
    assert not (tmp_path / "c").exists()


# 11. plot on a folder that is not a run
def test_plot_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notarun").mkdir()
    out = cli.invoke(app, ["plot", str(tmp_path / "notarun"), "--out", str(tmp_path / "plots")])
    assert out.exit_code == 1 and "is not a capcache run folder" in out.output
    assert not (tmp_path / "plots").exists()


# 13. EXIF orientation
def test_a_photo_stored_sideways_with_orientation_6_gives_the_upright_features(shared_data, tmp_path):
    photo = sorted((shared_data / "flickr8k_sample" / "images").glob("*.jpg"))[0]
    upright = Image.open(photo).convert("RGB")
    upright.save(tmp_path / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "sideways.png", exif=exif.tobytes())
    encoder = build_encoder("tiny-cnn")
    transform = encoder.preprocessing.transform()
    a, b = (load_image(tmp_path / name, transform) for name in ("upright.png", "sideways.png"))
    assert torch.equal(a, b)
    assert encoder.describe()["preprocessing"]["exif_orientation"] is True  # in the cache key


# 14. smaller ones
def test_cache_ls_says_who_is_writing_a_cache(tmp_path):
    code = ("import sys; from pipeline.cache.key import CacheSpec; from pipeline.cache.writer import CacheWriter; "
            "spec = CacheSpec({'encoder': 'x', 'weights': 'w'}, 'float16', 's', 'n', 2); "
            f"w = CacheWriter({str(tmp_path / 'w.h5')!r}, spec, ['a', 'b'], 2, 2); print('open', flush=True); "
            "sys.stdin.read()")
    other = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[1])
    try:
        assert other.stdout.readline().strip() == "open"
        _, lines = list_caches(tmp_path)
        with pytest.raises(CapcacheError, match=rf"another process is writing .*w.h5 \(PID {other.pid}: .*python"):
            CacheWriter(tmp_path / "w.h5", CacheSpec({"encoder": "x", "weights": "w"}, "float16", "s", "n", 2),
                        ["a", "b"], 2, 2)
    finally:
        other.kill()
        other.wait()
    assert len(lines) == 1 and lines[0].startswith(f"being written by PID {other.pid} (") and "w.h5" in lines[0]


def test_rows_computed_elsewhere_are_never_mixed_into_a_cache(tmp_path):
    spec = CacheSpec({"encoder": "x"}, "float16", "s", "n", 2)
    cpu = {"device": "cpu", "precision": "float32"}
    with CacheWriter(tmp_path / "w.h5", spec, ["a", "b"], 2, 2, compute=cpu) as writer:
        writer.write(np.array([0]), np.ones((1, 2, 2), np.float32))
    with CacheWriter(tmp_path / "w.h5", spec, ["a", "b"], 2, 2) as writer:
        writer.refuse_mixing(cpu)  # the same: fine
        with pytest.raises(CapcacheError, match=r"started on cpu \(float32\), this run computes on cuda .*--device cpu"):
            writer.refuse_mixing({"device": "cuda", "precision": "float16-autocast"})


def test_a_complete_cache_without_its_report_is_reused_without_writing(manifest, tmp_path, monkeypatch):
    first = run(manifest, tmp_path / "c")
    first.path.with_suffix(".json").unlink()
    monkeypatch.setattr(runner, "open_writer", lambda *a, **k: pytest.fail("opened for writing"))
    assert run(manifest, tmp_path / "c").reused


def test_adding_an_image_says_which_old_cache_is_left(manifest, tmp_path):
    first = run(manifest, tmp_path / "c")
    bmp(Path(manifest.image_root) / "6.bmp", 6)
    bigger = Manifest("six", manifest.image_root, manifest.images + [ImageRecord("6.bmp", "6.bmp", "train", ["x"])])
    result = run(bigger, tmp_path / "c")
    assert result.path != first.path and result.extracted == 1  # the old cache's rows were copied
    assert f"copied {first.n_images - len(first.bad)} rows from {first.path.name}" in result.summary()
    assert "delete the old cache once you no longer need it" in result.summary()


@pytest.fixture()
def small_disk(tmp_path: Path):
    """A 512 KiB file system (tmpfs; needs root), grown with ``grow()`` once the test has filled it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=16m", str(mount)], check=True)
    try:
        yield mount, grow
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_while_hdf5_creates_the_file_is_one_line(manifest, small_disk, monkeypatch):
    disk, _ = small_disk
    monkeypatch.setattr(writer_module, "_check_free_space", lambda *a: None)  # let h5py itself meet the full disk
    with pytest.raises(CapcacheError, match=r"^disk full at .*; free [\d.]+ MiB .*and re-run \(it resumes\)$"):
        many = [ImageRecord(f"{i}", f"{i % 6}.bmp", "train", ["x"]) for i in range(120)]
        run(Manifest("many", manifest.image_root, many), disk)  # ~1 MiB of features
    assert not list(disk.glob("*.h5")) and not list(disk.glob(".*.tmp"))


def test_the_user_path_end_to_end(manifest, tmp_path, small_disk, monkeypatch):
    """Build, delete only the .h5, re-extract and interrupt, re-run, replace an image, flip a byte, fill a disk."""
    first = run(manifest, tmp_path / "c")
    reference = features(first.path)
    first.path.unlink()
    interrupted(manifest, tmp_path / "c", monkeypatch)
    resumed = run(manifest, tmp_path / "c")
    assert not resumed.reused and "nothing to do" not in resumed.summary() and 0 < resumed.extracted < 6
    np.testing.assert_array_equal(features(resumed.path), reference)

    bmp(Path(manifest.image_root) / "5.bmp", 55)  # another image, the same size
    replaced = run(manifest, tmp_path / "c")
    assert (replaced.extracted, replaced.changed) == (1, ["5.bmp"])
    np.testing.assert_array_equal(features(replaced.path)[:5], reference[:5])

    with h5py.File(replaced.path, "r+") as f:
        row = f[hdf5.FEATURES][2]
        row.view(np.uint8).reshape(-1)[7] ^= 0x01
        f[hdf5.FEATURES][2] = row
    verify = cli.invoke(app, ["cache", "verify", str(replaced.path)])
    assert verify.exit_code == 1 and "row 2 (2.bmp)" in verify.output

    disk, grow = small_disk
    path = manifest.save(tmp_path / "m.json")
    command = [sys.executable, "cli.py", "extract", str(path), "--encoder", "tiny-cnn", "--cache-dir", str(disk),
               "--workers", "0"]
    full = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    lines = full.stderr.strip().splitlines()
    assert full.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: disk full at "), full.stderr
    assert "and re-run" in lines[0]
    grow()
    again = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert again.returncode == 0 and "extracted now: 6" in again.stdout
