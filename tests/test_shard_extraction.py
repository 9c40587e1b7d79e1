"""Extraction straight from img2dataset's webdataset shards (issue 20).

The same photo-like JPEGs are written by the img2dataset layout generator twice: as tars
(``--output_format webdataset``) and as shard folders (``--output_format files``), and each is
imported with ``capcache import img2dataset``. Both manifests have the same image ids in the same
order, so the shard cache must equal the folder cache row for row (features, status, digests,
checksums); only the per-row file stats differ, by design (a tar's rows have the tar's stats).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from itertools import groupby
from pathlib import Path

import h5py
import numpy as np
import pytest
from img2dataset_output import photo, write_img2dataset_output, write_tar

import pipeline.data.shard_stream as shard_stream
import pipeline.extract.loop as loop
import pipeline.extract.shard_images as shard_images
from pipeline.cache import hdf5
from pipeline.cache.inspect import verify_cache
from pipeline.cache.key import image_digests
from pipeline.cache.parts import parts_folder
from pipeline.data.importers import import_dataset
from pipeline.data.manifest import Manifest
from pipeline.errors import CapcacheError
from pipeline.extract import extract
from tests.helpers import REPO, extract_interrupted

ROWS = [(f"a photo of thing {i}", f"https://example.com/{i}.jpg") for i in range(36)]
FAILED = {5: ("failed_to_download", "HTTP Error 404: Not Found"), 20: ("failed_to_resize", "image file is truncated")}
PER_SHARD = 12  # 3 shards of 12 rows (keys of 7 digits: 0000003 is row 3 of shard 0), 11 + 11 + 12 images
N_IMAGES = len(ROWS) - len(FAILED)
SAME_ROWS = (hdf5.FEATURES, hdf5.STATUS, hdf5.DIGESTS, hdf5.CHECKSUMS)  # equal between shards and folders
ROW_DATASETS = (*SAME_ROWS, hdf5.STATS)  # equal between two extractions of the same shards


@pytest.fixture(scope="module")
def web(tmp_path_factory) -> Path:
    """img2dataset's webdataset output (3 tars) and its manifest, web.jsonl, beside it."""
    root = tmp_path_factory.mktemp("web")
    write_img2dataset_output(root / "out", ROWS, failures=FAILED, number_sample_per_shard=PER_SHARD, image=photo)
    return _imported(root)


@pytest.fixture(scope="module")
def folder_cache(tmp_path_factory) -> Path:
    """The cache of the same JPEGs in img2dataset's --output_format files layout."""
    root = tmp_path_factory.mktemp("files")
    write_img2dataset_output(root / "out", ROWS, failures=FAILED, number_sample_per_shard=PER_SHARD, image=photo,
                             output_format="files")
    return _extract(_imported(root), root / "cache").path


@pytest.fixture(scope="module")
def shard_cache(web: Path, tmp_path_factory) -> Path:
    """The shards extracted by 2 DataLoader workers (each takes whole tars)."""
    return _extract(web, tmp_path_factory.mktemp("shard-cache"), workers=2).path


def test_shards_extract_row_for_row_as_the_same_jpegs_in_a_folder(web, shard_cache, folder_cache):
    manifest = Manifest.load(web)
    assert manifest.images[0].shard == "00000.tar" and len(manifest.images) == N_IMAGES
    with h5py.File(shard_cache, "r") as s, h5py.File(folder_cache, "r") as f:
        assert hdf5.read_image_ids(s) == hdf5.read_image_ids(f)  # the two imports name every image alike
        for name in SAME_ROWS:
            np.testing.assert_array_equal(s[name][:], f[name][:], err_msg=name)
        assert (s[hdf5.STATUS][:] == hdf5.DONE).all()
        files = hdf5.read_strings(s, hdf5.FILES)
        tars = [web.parent / "out" / f"{n:05d}.tar" for n in range(3)]
        stats = [(t.stat().st_size, t.stat().st_mtime_ns) for t in tars]
        for row, name in enumerate(files):  # each row through its tar, with the tar's stats
            shard = int(name[:5])
            assert name == f"{shard:05d}.tar/{manifest.images[row].file}"
            assert tuple(s[hdf5.STATS][row]) == stats[shard]
        assert image_digests(manifest)[0] == _spec(s)["image_set"]  # what training checks against its manifest
    assert verify_cache(shard_cache, progress=False, deep=True).ok  # every member hashed again: unchanged
    again = _extract(web, shard_cache.parent)
    assert again.reused and again.path == shard_cache


def test_each_workers_short_last_batch_is_joined_with_the_others(web, tmp_path, monkeypatch):
    """Two workers take the tars 23 / 11 images each: every batch but the last reaches the encoder full
    (each of its batches runs as a full one, so a short batch per worker would cost a forward each)."""
    sizes, encode = [], loop.encode_images

    def counted(model, images, *args):
        sizes.append(len(images))
        return encode(model, images, *args)

    monkeypatch.setattr(loop, "encode_images", counted)
    _extract(web, tmp_path, workers=2)
    assert sum(sizes) == N_IMAGES and sizes[:-1] == [4] * (len(sizes) - 1) and sizes[-1] == N_IMAGES % 4


def test_a_corrupt_member_a_missing_member_and_a_cut_tar_are_reported_and_the_rest_extracted(
        web, folder_cache, tmp_path):
    out = _copy_output(web, tmp_path)
    manifest = _imported(tmp_path)  # then the shards are damaged (the importer would skip damaged ones)
    shards = sorted(out.glob("*.tar"))
    _rewrite(shards[0], lambda name, data: b"not a jpeg at all" if name == "0000003.jpg" else data)
    _rewrite(shards[1], lambda name, data: None if name == "0000107.jpg" else data)
    shards[2].write_bytes(shards[2].read_bytes()[:shards[2].stat().st_size // 2])  # cut mid-way
    result = _extract(manifest, tmp_path / "cache", workers=2)
    errors = {b["image_id"]: b["error"] for b in result.bad}
    assert errors["0000003"].startswith("UnidentifiedImageError: cannot identify image file")
    assert {b["image_id"]: b["file"] for b in result.bad}["0000003"] == "00000.tar/0000003.jpg"  # through its tar
    assert errors["0000107"] == f"MissingMember: {shards[1]} has no member 0000107.jpg; import the shard again"
    cut = [i for i in errors if i.startswith("00002")]
    assert cut and all(f"{shards[2]} is cut short" in errors[i] or f"{shards[2]} is not a readable tar" in errors[i]
                       for i in cut)
    assert set(errors) == {"0000003", "0000107", *cut} and result.extracted == N_IMAGES - len(errors)
    with h5py.File(result.path, "r") as got, h5py.File(folder_cache, "r") as want:
        ids = hdf5.read_image_ids(got)
        status = got[hdf5.STATUS][:]
        assert {ids[r] for r in np.flatnonzero(status == hdf5.BAD)} == set(errors)
        done = np.flatnonzero(status == hdf5.DONE)
        assert len(done) == N_IMAGES - len(errors)
        np.testing.assert_array_equal(got[hdf5.FEATURES][done], want[hdf5.FEATURES][done])
        np.testing.assert_array_equal(got[hdf5.DIGESTS][done], want[hdf5.DIGESTS][done])
    assert _extract(manifest, tmp_path / "cache").reused  # bad rows keep their tar's stats: asking again is instant


def test_an_interrupted_extraction_resumes_and_ends_equal(web, shard_cache, tmp_path, monkeypatch):
    extract_interrupted(monkeypatch, 3, lambda: _extract(web, tmp_path))  # 3 batches of 4 rows, then Ctrl-C
    opened = _spy_on_extraction_reads(monkeypatch)
    resumed = _extract(web, tmp_path)
    assert resumed.extracted == N_IMAGES - 12
    assert opened == [("00001.tar", 10), ("00002.tar", 12)]  # shard 0 is done: not opened again
    _assert_same_cache(resumed.path, shard_cache, ROW_DATASETS)


def test_parts_are_whole_shards_each_read_once(web, shard_cache, tmp_path, monkeypatch):
    opened = _spy_on_extraction_reads(monkeypatch)
    in_parts = extract(Manifest.load(web), "tiny-cnn", cache_dir=tmp_path, batch_size=4, workers=0, progress=False,
                       rows_per_part=8)  # tars of 11, 11 and 12 rows: each larger than a part, so a part each
    assert opened == [("00000.tar", 11), ("00001.tar", 11), ("00002.tar", 12)]
    assert json.loads((parts_folder(in_parts.path) / "partition.json").read_text())["starts"] == [0, 11, 22]
    _assert_same_cache(in_parts.path, shard_cache, ROW_DATASETS)


def test_a_shard_rewritten_with_one_image_changed_reextracts_only_that_image(web, shard_cache, tmp_path,
                                                                              monkeypatch):
    out = _copy_output(web, tmp_path)
    manifest = _imported(tmp_path)
    first = _extract(manifest, tmp_path / "cache")
    _assert_same_cache(first.path, shard_cache, SAME_ROWS)
    shard = out / "00001.tar"
    _rewrite(shard, lambda name, data: photo(1000) if name == "0000104.jpg" else data)  # a new tar, one image new
    reads = []
    real_read = shard_stream.read_members

    def read_members(tar, names):
        reads.append((tar.name, len(names)))
        return real_read(tar, names)

    monkeypatch.setattr(shard_stream, "read_members", read_members)
    verified = verify_cache(first.path, progress=False, deep=True)
    assert verified.changed == ["0000104"]
    assert reads == [("00000.tar", 11), ("00001.tar", 11), ("00002.tar", 12)]  # one pass per tar, not per row
    redone = _extract(manifest, tmp_path / "cache")
    assert redone.changed == ["0000104"] and redone.extracted == 1
    assert reads[3:] == [("00001.tar", 11)]  # the change check: one pass over the tar whose stats moved
    with h5py.File(redone.path, "r") as got, h5py.File(shard_cache, "r") as old:
        row = hdf5.read_image_ids(got).index("0000104")
        others = np.arange(N_IMAGES) != row
        np.testing.assert_array_equal(got[hdf5.FEATURES][others], old[hdf5.FEATURES][others])
        assert not np.array_equal(got[hdf5.FEATURES][row], old[hdf5.FEATURES][row])
        in_shard = [r for r, name in enumerate(hdf5.read_strings(got, hdf5.FILES)) if name.startswith("00001.tar/")]
        assert (got[hdf5.STATS][:][in_shard] == (shard.stat().st_size, shard.stat().st_mtime_ns)).all()
    assert _extract(manifest, tmp_path / "cache").reused


def test_two_torchrun_ranks_in_parts_spanning_shards_equal_the_one_process_cache(web, shard_cache, tmp_path):
    job = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(REPO / "cli.py"), "extract", str(web), "--encoder", "tiny-cnn", "--cache-dir",
                          str(tmp_path), "--batch-size", "4", "--workers", "0", "--part-rows", "8"],
                         cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=300)
    assert job.returncode == 0, job.stderr[-3000:]
    joined = Path(job.stdout.strip().splitlines()[-1])
    assert joined.name == shard_cache.name and f"extracted now: {N_IMAGES}" in job.stdout
    _assert_same_cache(joined, shard_cache, ROW_DATASETS)  # a part per tar: rank 0 writes two, rank 1 one


def test_a_tar_cut_between_members_is_told_from_one_that_lacks_a_member(web, tmp_path):
    whole = web.parent / "out" / "00000.tar"
    with tarfile.open(whole) as t:
        members = t.getmembers()  # a sample's .jpg, .json, .txt, then the next sample's
    first, second = members[0].name, members[3].name
    tar = tmp_path / "00000.tar"
    tar.write_bytes(whole.read_bytes()[:members[3].offset])  # cut on the second sample's header: the stream just ends
    assert [name for name, _ in shard_stream.read_members(tar, {first, second})] == [first]
    assert str(shard_stream.missing_member(tar, second)).startswith(f"{tar} is cut short")
    assert isinstance(shard_stream.missing_member(whole, "0000099.jpg"), shard_stream.MissingMember)


def test_without_webdataset_a_shard_manifest_is_one_line_saying_how_to_install_it(web, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "webdataset", None)  # as if it were not installed
    with pytest.raises(CapcacheError, match=r"^extracting images from img2dataset shards needs the webdataset "
                                            r"package \(.*\); install it with pip install 'capcache\[web\]'$"):
        _extract(web, tmp_path)


def _spy_on_extraction_reads(monkeypatch) -> list[tuple[str, int]]:
    """(tar, members asked for) of every tar the extraction's decoding opens (in this process: workers=0)."""
    opened, real = [], shard_images.read_members

    def read_members(tar, names):
        opened.append((tar.name, len(names)))
        return real(tar, names)

    monkeypatch.setattr(shard_images, "read_members", read_members)
    return opened


def _imported(root: Path) -> Path:
    import_dataset("img2dataset", [root / "out"], None, "web", out=root / "web.jsonl")
    return root / "web.jsonl"


def _extract(manifest: Path | Manifest, cache_dir: Path, workers: int = 0):
    manifest = Manifest.load(manifest) if isinstance(manifest, Path) else manifest
    return extract(manifest, "tiny-cnn", cache_dir=cache_dir, batch_size=4, workers=workers, progress=False)


def _copy_output(web: Path, tmp_path: Path) -> Path:
    shutil.copytree(web.parent / "out", tmp_path / "out")
    return tmp_path / "out"


def _rewrite(shard: Path, change) -> None:
    """Write ``shard`` again, member by member in its order, with ``change(name, bytes)``'s bytes (None: left out)."""
    with tarfile.open(shard) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar]
    kept = [(name, data) for name, data in ((n, change(n, d)) for n, d in members) if data is not None]
    samples = [(key, {name.split(".", 1)[1]: data for name, data in group})
               for key, group in groupby(kept, key=lambda m: m[0].split(".", 1)[0])]
    write_tar(shard, samples)


def _spec(f: h5py.File) -> dict:
    return json.loads(f.attrs[hdf5.ATTR_SPEC])


def _assert_same_cache(got: Path, want: Path, datasets: tuple[str, ...]) -> None:
    with h5py.File(got, "r") as g, h5py.File(want, "r") as w:
        assert g.attrs[hdf5.ATTR_KEY] == w.attrs[hdf5.ATTR_KEY]
        for name in (*datasets, hdf5.IMAGE_IDS, hdf5.FILES):
            np.testing.assert_array_equal(g[name][:], w[name][:], err_msg=name)
