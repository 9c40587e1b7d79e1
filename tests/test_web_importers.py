"""Web-scale sets: Conceptual Captions TSVs and img2dataset output, streamed into JSON Lines manifests."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest
from img2dataset_output import write_img2dataset_output
from typer.testing import CliRunner

from cli import app
from pipeline.data.importers import import_dataset
from pipeline.data.importers.streamed import LISTED
from pipeline.data.manifest import ImageRecord, Manifest
from pipeline.errors import DataError
from pipeline.extract import extract

# Lines as Google's Train_GCC-training.tsv has them: caption<TAB>url, no header.
TRAIN = [
    ("sierra looked stunning in this top and this skirt while performing with person at their former university",
     "http://lh6.googleusercontent.com/-4s3IhYE6TK8/UWxMWSpazjI/AAAAAAAAA7U/Jt3mGQbk5hw/s640/1.jpg"),
    ("person and actor arrive at the premiere of the film",
     "https://i.pinimg.com/736x/66/01/6c/66016c3ba27c0e04f39e2bd81a934e3e--anna-bergen-aesthetic.jpg"),
    ("the trail climbs steadily uphill most of the way", "http://78.media.tumblr.com/3b133294bdc7c7784b7e55f3e8d2a4e3/tumblr_o.jpg"),
    ("a flock of sheep grazing in a field", "https://farm5.staticflickr.com/4000/4567_f2c3d8b9a1_b.jpg"),
]
VAL = [("author : a life in citations", "http://www.lovethispic.com/uploaded_images/12345-Author.jpg"),
       ("a very typical bus station", "http://media.gettyimages.com/photos/bus-station-picture-id99999")]


def tsv(path: Path, rows, header: bool = False) -> Path:
    path.write_text(("caption\turl\n" if header else "") + "".join(f"{c}\t{u}\n" for c, u in rows), encoding="utf-8")
    return path


def import_cc(tmp_path: Path, train: Path, val: Path | None = None, **kwargs):
    return import_dataset("conceptual-captions", train, None, "cc", out=tmp_path / "cc.jsonl",
                          val=[val] if val else (), **kwargs)


# -- Conceptual Captions ---------------------------------------------------------------------------

def test_every_row_is_an_image_with_its_caption_url_and_row_index_as_id(tmp_path: Path) -> None:
    result = import_cc(tmp_path, tsv(tmp_path / "train.tsv", TRAIN), tsv(tmp_path / "val.tsv", VAL))
    assert result.held is None  # streamed: never a list of records in memory
    m = result.manifest
    assert [(r.image_id, r.file, r.split, r.captions, r.url) for r in m.images] == [
        *((f"{i:09d}", f"{i:09d}.jpg", "train", [c], u) for i, (c, u) in enumerate(TRAIN)),
        *((f"val-{i:09d}", f"{i:09d}.jpg", "val", [c], u) for i, (c, u) in enumerate(VAL))]
    assert m.image_root == "" and m.source["format"] == "conceptual-captions"
    assert m.source["files"] == {"train": str(tmp_path / "train.tsv"), "val": str(tmp_path / "val.tsv")}
    assert "manifest 'cc' (conceptual-captions format): 6 images" in result.summary()
    assert "images per split: train 4, val 2" in result.summary()


def test_malformed_rows_are_listed_with_file_and_line_skipped_and_keep_their_index(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_bytes(b"caption\turl\n"  # the header img2dataset's instructions add: not a row
                     b"a dog on a beach\thttp://example.com/0.jpg\n"
                     b"no tab at all, just a caption\n"  # line 3
                     b"\n"  # blank: not a row
                     b"\thttp://example.com/2.jpg\n"  # line 5: empty caption
                     b"a photo\tftp://example.com/3.jpg\n"  # line 6: not http(s)
                     b"one\ttab\ttoo many\n"  # line 7
                     b"caf\xe9 latte\thttp://example.com/5.jpg\n"  # line 8: latin-1, not UTF-8
                     b"a cat on a sofa\thttps://example.com/6.jpg\r\n")
    result = import_cc(tmp_path, path)
    assert [(r.image_id, r.url) for r in result.manifest.images] == [
        ("000000000", "http://example.com/0.jpg"), ("000000006", "https://example.com/6.jpg")]
    assert result.skipped == {"malformed_row": 3, "empty_caption": 1, "bad_url": 1}
    warnings = "\n".join(result.warnings)
    for line, what in ((3, "expected caption<TAB>url, got 0 tabs"), (5, "empty caption"), (6, "URL is not http(s)"),
                       (7, "expected caption<TAB>url, got 2 tabs"), (8, "not UTF-8 (byte 0xe9)")):
        assert f"{path}:{line}: {what}" in warnings


def test_a_million_bad_rows_are_counted_but_only_a_bounded_number_listed(tmp_path: Path) -> None:
    rows = [("a caption", "not a url")] * (LISTED + 50) + TRAIN[:1]
    result = import_cc(tmp_path, tsv(tmp_path / "train.tsv", rows))
    assert result.skipped == {"bad_url": LISTED + 50}
    assert len(result.warnings) == LISTED + 1 and result.warnings[-1] == "... and 50 more bad_url not listed"
    assert [r.image_id for r in result.manifest.images] == [f"{LISTED + 50:09d}"]
    assert "skipped: bad_url 150" in result.summary()


def test_nothing_usable_is_an_error_and_leaves_no_manifest(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"train.tsv: no images with captions found \(first problem: .*train.tsv:1: "):
        import_cc(tmp_path, tsv(tmp_path / "train.tsv", [("a caption", "nope")]))
    assert not list(tmp_path.glob("*cc.jsonl*"))


@pytest.mark.parametrize("call,message", [
    (lambda t, p: import_dataset("conceptual-captions", p, t, "cc", out=t / "cc.jsonl"), "leave out --images"),
    (lambda t, p: import_dataset("conceptual-captions", p, None, "cc"), "give out (a .jsonl path)"),
    (lambda t, p: import_dataset("conceptual-captions", p, None, "cc", out=t / "cc.json"), "name it cc.jsonl"),
    (lambda t, p: import_dataset("conceptual-captions", [p, p], None, "cc", out=t / "cc.jsonl"), "give one per split"),
    (lambda t, p: import_dataset("conceptual-captions", p, None, "cc", out=t / "cc.jsonl", split="val", val=[p]),
     "the val split is given twice"),
    (lambda t, p: import_dataset("conceptual-captions", p, None, "cc", out=t / "cc.jsonl", split="dev"), "unknown split 'dev'"),
    (lambda t, p: import_dataset("conceptual-captions", t / "nope.tsv", None, "cc", out=t / "cc.jsonl"), "nope.tsv: file not found"),
    (lambda t, p: import_dataset("coco", p, t, "x", val=[p]), "val applies to the conceptual-captions format only"),
    (lambda t, p: import_dataset("coco", p, None, "x"), "needs the folder holding the image files (--images)"),
])
def test_wrong_calls_get_one_line_saying_what_to_do(tmp_path: Path, call, message: str) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        call(tmp_path, tsv(tmp_path / "train.tsv", TRAIN))


# -- the manifest forms ------------------------------------------------------------------------------

def test_a_streamed_manifest_is_a_header_line_then_one_record_per_line(tmp_path: Path) -> None:
    import_cc(tmp_path, tsv(tmp_path / "train.tsv", TRAIN))
    lines = (tmp_path / "cc.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == {"name": "cc", "image_root": "", "version": 1, "source": {
        "format": "conceptual-captions", "files": {"train": str(tmp_path / "train.tsv")}}}
    assert [json.loads(line) for line in lines[1:]] == [
        {"image_id": f"{i:09d}", "file": f"{i:09d}.jpg", "split": "train", "captions": [c], "url": u}
        for i, (c, u) in enumerate(TRAIN)]


# What `capcache import` wrote before JSON Lines existed: the records have no optional fields.
OLD_MANIFEST = """{
  "name": "old",
  "image_root": "%s",
  "images": [
    {
      "image_id": "1000268201_693b08cb0e.jpg",
      "file": "1000268201_693b08cb0e.jpg",
      "split": "train",
      "captions": [
        "A child in a pink dress is climbing up a set of stairs in an entry way ."
      ]
    },
    {
      "image_id": "1001773457_577c3a7d70.jpg",
      "file": "1001773457_577c3a7d70.jpg",
      "split": "test",
      "captions": []
    }
  ],
  "source": {
    "format": "flickr8k",
    "file": "Flickr8k.token.txt"
  },
  "version": 1
}
"""


def test_json_manifests_load_and_save_exactly_as_before(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(OLD_MANIFEST % tmp_path, encoding="utf-8")
    m = Manifest.load(old)
    assert m.images[0] == ImageRecord("1000268201_693b08cb0e.jpg", "1000268201_693b08cb0e.jpg", "train",
                                      ["A child in a pink dress is climbing up a set of stairs in an entry way ."])
    assert m.save(tmp_path / "again.json").read_bytes() == old.read_bytes()  # no "url": null appears
    relative = tmp_path / "sub" / "rel.json"
    relative.parent.mkdir()
    relative.write_text(OLD_MANIFEST % "../images", encoding="utf-8")
    assert Manifest.load(relative).image_root == str(tmp_path / "images")


def test_any_manifest_round_trips_through_json_lines(tmp_path: Path) -> None:
    from pipeline.data.synthetic import SyntheticConfig, generate_dataset  # a manifest with a labels section

    m = Manifest.load(generate_dataset(tmp_path / "demo", SyntheticConfig(n_train=8, n_val=2, n_test=2)))
    m.images[0].url, m.images[1].shard, m.images[1].key = "https://example.com/a.jpg", "00000.tar", "000000001"
    back = Manifest.load(m.save(tmp_path / "demo.jsonl"))
    assert back.to_dict() == m.to_dict() and back.images == m.images
    assert back.labels.to_dict() == m.labels.to_dict()
    assert "url" not in json.dumps(m.to_dict()["images"][2])


def test_a_damaged_json_lines_manifest_names_its_line(tmp_path: Path) -> None:
    import_cc(tmp_path, tsv(tmp_path / "train.tsv", TRAIN))
    path = tmp_path / "cc.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([*lines[:2], '{"image_id": "x", "file": "x.jpg", "colour": 3}', *lines[3:]]))
    with pytest.raises(DataError, match=r"cc.jsonl:3: not a manifest image record"):
        Manifest.load(path)
    path.write_text("\n".join([*lines[:3], '{"image_id": "x", "file": ', *lines[4:]]))
    with pytest.raises(DataError, match=r"cc.jsonl:4: not valid JSON"):
        Manifest.load(path)


# -- img2dataset ---------------------------------------------------------------------------------

ROWS = [(f"caption number {i} of a web image", f"https://example.com/images/{i}.jpg") for i in range(25)]
FAILED = {3: ("failed_to_download", "HTTP Error 404: Not Found"), 4: ("failed_to_download", "HTTP Error 404: Not Found"),
          11: ("failed_to_download", "<urlopen error [Errno -2] Name or service not known>"),
          17: ("failed_to_resize", "image file is truncated")}


def import_i2d(tmp_path: Path, *paths: Path, **kwargs):
    return import_dataset("img2dataset", list(paths), None, "web", out=tmp_path / "web.jsonl", **kwargs)


def test_samples_become_records_naming_shard_member_key_caption_and_url(tmp_path: Path) -> None:
    write_img2dataset_output(tmp_path / "out", ROWS, failures=FAILED, number_sample_per_shard=10)
    result = import_i2d(tmp_path, tmp_path / "out")
    m = result.manifest
    downloaded = [i for i in range(len(ROWS)) if i not in FAILED]
    assert [r.image_id for r in m.images] == [f"{i // 10:05d}{i % 10}" for i in downloaded]  # sorted in each shard
    rec = m.images[4]  # row 6: shard 0, index 6 (rows 3 and 4 failed)
    assert (rec.file, rec.shard, rec.key, rec.captions, rec.url) == (
        "000006.jpg", "00000.tar", "000006", [ROWS[6][0]], ROWS[6][1])
    assert m.image_root == str(tmp_path / "out") and {r.shard for r in m.images} == {"00000.tar", "00001.tar", "00002.tar"}
    assert result.skipped == {} and result.warnings == []
    downloads = m.source["downloads"]["train"]
    assert downloads == {"shards": 3, "count": 25, "successes": 21, "failed_to_download": 3, "failed_to_resize": 1,
                         "errors": {"HTTP Error 404: Not Found": 2, "image file is truncated": 1,
                                    "<urlopen error [Errno -2] Name or service not known>": 1}}
    summary = result.summary()
    assert ("train: img2dataset downloaded 21 of 25 rows in 3 shards; 3 failed to download, 1 failed to resize "
            "(most often 'HTTP Error 404: Not Found' 2") in summary
    assert "skipped: nothing" in summary


def test_img2dataset_ids_are_the_conceptual_captions_ids_of_the_same_tsv(tmp_path: Path) -> None:
    write_img2dataset_output(tmp_path / "out", TRAIN, failures={1: ("failed_to_download", "timed out")})
    from_shards = import_i2d(tmp_path, tmp_path / "out").manifest
    from_tsv = import_dataset("conceptual-captions", tsv(tmp_path / "t.tsv", TRAIN, header=True), None, "cc",
                              out=tmp_path / "cc.jsonl").manifest
    by_id = {r.image_id: r for r in from_tsv.images}
    assert [r.image_id for r in from_shards.images] == ["000000000", "000000002", "000000003"]
    for r in from_shards.images:
        assert (r.file, r.captions, r.url) == (by_id[r.image_id].file, by_id[r.image_id].captions, by_id[r.image_id].url)


def _cut(path: Path, at) -> None:
    """Cut the tar at ``at(members)`` bytes, members as tarfile lists them."""
    with tarfile.open(path) as tar:
        keep = at(tar.getmembers())
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize("damage,why", [
    (lambda p: _cut(p, lambda m: m[3].offset_data + 100), "truncated: member 0000"),  # inside the 2nd sample's JPEG
    (lambda p: _cut(p, lambda m: m[3].offset), "holds 1 images where its stats count 8 downloaded"),  # between samples
    (lambda p: p.write_bytes(b"\x89PNG not a tar at all" * 100), "not a readable tar"),
])
def test_a_damaged_tar_is_reported_and_skipped_and_the_others_imported(tmp_path: Path, damage, why: str) -> None:
    shards = write_img2dataset_output(tmp_path / "out", ROWS, failures=FAILED, number_sample_per_shard=10)
    damage(shards[1])
    result = import_i2d(tmp_path, tmp_path / "out")
    assert {r.shard for r in result.manifest.images} == {"00000.tar", "00002.tar"}
    assert result.skipped == {"damaged_shard": 1}
    assert result.warnings[0].startswith(f"{shards[1]}: ") and why in result.warnings[0]
    assert result.warnings[0].endswith("; shard skipped")


def test_a_shard_img2dataset_has_not_finished_is_skipped(tmp_path: Path) -> None:
    write_img2dataset_output(tmp_path / "out", ROWS, number_sample_per_shard=10)
    (tmp_path / "out" / "00002_stats.json").unlink()
    (tmp_path / "out" / "00001_stats.json").write_text('{"count": 10}')
    result = import_i2d(tmp_path, tmp_path / "out")
    assert {r.shard for r in result.manifest.images} == {"00000.tar"}
    assert result.skipped == {"unfinished_shard": 1, "bad_stats": 1}
    assert any("00001_stats.json: not an img2dataset stats file" in w for w in result.warnings)
    assert any(w.startswith(f"{tmp_path / 'out' / '00002.tar'}: no 00002_stats.json beside it") for w in result.warnings)
    assert result.manifest.source["downloads"]["train"]["shards"] == 1


def test_folders_with_their_split_each(tmp_path: Path) -> None:
    write_img2dataset_output(tmp_path / "cc" / "train", ROWS[:12], number_sample_per_shard=10)
    write_img2dataset_output(tmp_path / "cc" / "val", ROWS[12:15], failures={1: FAILED[3]})
    result = import_i2d(tmp_path, tmp_path / "cc" / "train", val=[tmp_path / "cc" / "val"])
    m = result.manifest
    assert m.image_root == str(tmp_path / "cc")
    assert m.split_counts() == {"train": 12, "val": 2}
    val = m.split("val")
    assert [(r.image_id, r.key, r.shard, r.file) for r in val] == [
        ("val-000000000", "000000000", "val/00000.tar", "000000000.jpg"),
        ("val-000000002", "000000002", "val/00000.tar", "000000002.jpg")]
    assert m.split("train")[0].shard == "train/00000.tar"
    assert set(m.source["downloads"]) == {"train", "val"} and m.source["downloads"]["val"]["failed_to_download"] == 1
    whole = import_dataset("img2dataset", [tmp_path / "cc" / "val"], None, "v", out=tmp_path / "v.jsonl", split="test")
    assert [r.image_id for r in whole.manifest.images] == ["test-000000000", "test-000000002"]


def test_shards_can_be_named_one_by_one_but_not_twice_in_a_split(tmp_path: Path) -> None:
    shards = write_img2dataset_output(tmp_path / "out", ROWS, number_sample_per_shard=10)
    result = import_i2d(tmp_path, shards[2], shards[0])
    assert [r.shard for r in result.manifest.images] == ["00002.tar"] * 5 + ["00000.tar"] * 10
    with pytest.raises(DataError, match="the train split has shard 00000 twice"):
        import_i2d(tmp_path, tmp_path / "out", shards[0])
    with pytest.raises(DataError, match="no img2dataset shards here"):
        import_i2d(tmp_path, tmp_path)


def test_samples_that_are_not_this_shards_are_skipped(tmp_path: Path) -> None:
    shard = tmp_path / "out" / "00000.tar"
    write_img2dataset_output(tmp_path / "out", ROWS[:3])
    with tarfile.open(shard, "a") as tar:  # a stray sample from elsewhere, and a caption without its image
        for name, data in (("000990001.jpg", b"\xff\xd8"), ("000990001.txt", b"a caption"), ("000000007.txt", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    stats = json.loads((tmp_path / "out" / "00000_stats.json").read_text())
    (tmp_path / "out" / "00000_stats.json").write_text(json.dumps({**stats, "successes": 4}))
    result = import_i2d(tmp_path, tmp_path / "out")
    assert [r.image_id for r in result.manifest.images] == ["000000000", "000000001", "000000002"]
    assert result.skipped == {"bad_sample": 2}
    assert any("sample 000990001: key does not start with the shard's number 00000" in w for w in result.warnings)


def test_an_unpacked_output_imports_as_image_files_that_extraction_can_read(tmp_path: Path) -> None:
    write_img2dataset_output(tmp_path / "out", ROWS, failures=FAILED, number_sample_per_shard=10, output_format="files")
    m = import_i2d(tmp_path, tmp_path / "out").manifest
    assert (m.images[0].file, m.images[0].shard, m.images[0].key) == ("00000/000000.jpg", None, "000000")
    assert all(m.image_path(r).is_file() for r in m.images) and len(m.images) == 21
    m.require_image_files()  # plain files: nothing to refuse


# -- extraction: URL lists refused, shards read -------------------------------------------------

def test_extraction_refuses_url_lists_in_one_line_saying_what_to_do_but_reads_shards(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="lists image URLs only, with no image folder; download the images with img2dataset"):
        extract(Manifest.load(import_cc(tmp_path, tsv(tmp_path / "t.tsv", TRAIN)).path), "tiny-cnn",
                cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # refused before anything is written
    write_img2dataset_output(tmp_path / "out", ROWS[:3])
    shards = import_i2d(tmp_path, tmp_path / "out").manifest
    shards.require_image_files()  # inside tars: extracted from them (tests/test_shard_extraction.py)
    assert extract(shards, "tiny-cnn", cache_dir=tmp_path / "cache", workers=0, progress=False).extracted == 3


# -- the command line ----------------------------------------------------------------------------

def test_cli_imports_both_formats_into_json_lines_manifests(tmp_path: Path, monkeypatch) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    tsv(tmp_path / "Train_GCC-training.tsv", TRAIN)
    tsv(tmp_path / "Validation_GCC-1.1.0-Validation.tsv", VAL)
    done = runner.invoke(app, ["import", "conceptual-captions", "Train_GCC-training.tsv",
                               "--val", "Validation_GCC-1.1.0-Validation.tsv", "--out", "cc3m"])
    assert done.exit_code == 0, done.output
    assert "manifest 'cc3m' (conceptual-captions format): 6 images" in done.output
    assert done.output.strip().endswith("manifest: data_manifests/cc3m.jsonl")
    assert len(Manifest.load(tmp_path / "data_manifests" / "cc3m.jsonl").images) == 6

    write_img2dataset_output(tmp_path / "cc3m", ROWS, failures=FAILED, number_sample_per_shard=10)
    done = runner.invoke(app, ["import", "img2dataset", "cc3m", "--out", "web.jsonl"])
    assert done.exit_code == 0, done.output
    assert "train: img2dataset downloaded 21 of 25 rows in 3 shards" in done.output
    assert len(Manifest.load(tmp_path / "web.jsonl").images) == 21

    refused = runner.invoke(app, ["import", "img2dataset", "cc3m", "--images", "cc3m", "--out", "web"])
    assert refused.exit_code == 1 and "leave out --images" in refused.output
