"""Importers: the real Flickr8k text files end to end, published-format fixtures, and bad input.

The real files are used whole because their quirks (a stray key, images in no split, one-letter
captions, quoted commas) are exactly what small hand-made fixtures would leave out. No Flickr8k
JPEGs exist offline, so every image name is a symlink to one real photo: the missing-file check
runs for real, and a few names are left unlinked on purpose.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import pytest

from pipeline.data.importers import IMPORTERS, ImportResult, import_dataset
from pipeline.data.importers.splits import load_official_split, random_split
from pipeline.data.importers.streamed import StreamedImporter
from pipeline.data.manifest import Manifest
from pipeline.errors import DataError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "importers"
SHARED = Path(os.environ.get("CAPCACHE_SHARED_DATA") or REPO.parent / "shared" / "data")
FLICKR = SHARED / "flickr8k_text"
TOKENS = FLICKR / "Flickr8k.token.txt"
KAGGLE = FLICKR / "captions.txt"
PHOTO = SHARED / "real_photos" / "chelsea.jpg"

needs_shared = pytest.mark.skipif(
    not (TOKENS.is_file() and PHOTO.is_file()),
    reason=f"real data not found under {SHARED} (set CAPCACHE_SHARED_DATA to the shared/data folder)",
)

# Left without an image on purpose, one per official split, to see them reported missing.
UNLINKED = {"1000268201_693b08cb0e.jpg": "train", "1022454332_6af2c1449a.jpg": "val", "1056338697_4f7d7ce270.jpg": "test"}
STRAY = "2258277193_586949ec62.jpg.1"
NO_KAGGLE = "2258277193_586949ec62.jpg"  # the stray's image: in the token file, absent from captions.txt


def link_photos(folder: Path, files: list[str]) -> Path:
    for file in files:
        target = folder / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(PHOTO)
    return folder


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def error_of(*args, **kwargs) -> str:
    with pytest.raises(DataError) as e:
        import_dataset(*args, **kwargs)
    return str(e.value)


# -- the real Flickr8k files ------------------------------------------------------------------

@lru_cache(maxsize=1)
def token_keys() -> list[str]:
    """The keys' image parts as written, read independently of the importer."""
    return [line.split("\t")[0].rsplit("#", 1)[0] for line in TOKENS.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def flickr_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    names = sorted(set(token_keys()) - {STRAY} - set(UNLINKED))
    return link_photos(tmp_path_factory.mktemp("flickr8k_images"), names)


@pytest.fixture(scope="module")
def flickr(flickr_images: Path) -> ImportResult:
    return import_dataset("flickr8k", TOKENS, flickr_images, "flickr8k")


@pytest.fixture(scope="module")
def kaggle(flickr_images: Path) -> ImportResult:
    return import_dataset("kaggle", KAGGLE, flickr_images, "flickr8k_kaggle")


def by_id(result: ImportResult) -> dict:
    return {r.image_id: r for r in result.manifest.images}


@needs_shared
def test_real_token_file_names_8093_keys_one_of_them_stray() -> None:
    keys = token_keys()
    assert len(keys) == 40_460
    assert len(set(keys)) == 8_093
    assert STRAY in keys


@needs_shared
def test_real_flickr8k_official_split_and_quirks(flickr: ImportResult) -> None:
    m = flickr.manifest
    assert m.split_counts() == {"train": 5_999, "val": 999, "test": 999}
    assert sorted(flickr.missing_files) == sorted(UNLINKED)
    assert flickr.skipped == {"bad_image_name": 1, "not_in_split": 92, "missing_file": 3}
    # 8,093 keys = 8,092 images + the stray; 8,092 = 8,000 in the split lists + 92 in none.
    assert len(m.images) + flickr.skipped["missing_file"] + flickr.skipped["not_in_split"] == 8_092
    assert {len(r.captions) for r in m.images} == {5}
    assert sum(len(r.captions) for r in m.images) == 39_985
    stray = [w for w in flickr.warnings if STRAY in w]
    assert len(stray) == 1 and "Flickr8k.token.txt:6731:" in stray[0]
    assert any("92 images left out (in no split list)" in w for w in flickr.warnings)
    assert any("3 image files not found" in w and "1000268201_693b08cb0e.jpg" in w for w in flickr.warnings)


@needs_shared
def test_real_flickr8k_all_8092_images_with_one_split_list(tmp_path: Path, flickr_images: Path) -> None:
    """Every real image under one list: the stray is the only key lost, one-letter captions stay."""
    everything = sorted(set(token_keys()) - {STRAY})
    train = write(tmp_path, "all.txt", "\n".join(everything) + "\n")
    result = import_dataset("flickr8k", TOKENS, flickr_images, "all", check_files=False, split_files={"train": train})
    images = by_id(result)
    assert len(images) == 8_092
    assert sum(len(r.captions) for r in images.values()) == 40_459
    assert images["2428275562_4bde2bc5ea.jpg"].captions[0] == "A"
    assert images["3640443200_b8066f37f6.jpg"].captions[0] == "a"
    assert len(images[NO_KAGGLE].captions) == 4  # its caption #0 is the stray's
    one_letter = [w for w in result.warnings if "one-letter caption" in w]
    assert len(one_letter) == 2 and "Flickr8k.token.txt:9311:" in one_letter[0]


@needs_shared
def test_real_kaggle_captions_parse_quotes_and_take_the_official_split(kaggle: ImportResult) -> None:
    m = kaggle.manifest
    assert m.source["split"] == "official flickr8k"
    assert m.split_counts() == {"train": 5_999, "val": 999, "test": 999}
    assert kaggle.skipped == {"not_in_split": 91, "missing_file": 3}
    assert len(m.images) + 91 + 3 == 8_091
    assert (len(m.images) + 91 + 3) * 5 == 40_455
    images = by_id(kaggle)
    assert images["1056249424_ef2a2e041c.jpg"].captions[1] == (
        "Two boys , one with a yellow and orange ball , play in some water in front of a field .")
    assert images["934375844_dd149fed18.jpg"].captions[1] == 'A baby wearing a " my best buddy " shirt on a bed .'
    # The file has 2,447 captions with commas; 2,428 are on images kept here (split and on disk).
    assert sum("," in c for r in m.images for c in r.captions) == 2_428
    assert any("captions.txt:9307:" in w and "one-letter caption 'A'" in w for w in kaggle.warnings)


@needs_shared
def test_real_kaggle_and_flickr8k_agree_on_every_shared_image(flickr: ImportResult, kaggle: ImportResult) -> None:
    tokens, rows = by_id(flickr), by_id(kaggle)
    assert tokens.keys() == rows.keys()
    for image_id, rec in tokens.items():
        assert (rows[image_id].split, rows[image_id].captions) == (rec.split, rec.captions), image_id
    assert len(set(token_keys()) - {STRAY}) - 8_091 == 1  # the one image Kaggle lacks is the stray's


@needs_shared
def test_real_import_saves_manifest_that_loads_back(tmp_path: Path, flickr_images: Path) -> None:
    out = tmp_path / "data_manifests" / "flickr8k.json"
    result = import_dataset("flickr8k", TOKENS, flickr_images, "flickr8k", out=out)
    assert Manifest.load(out).to_dict() == result.manifest.to_dict()
    assert [p.name for p in out.parent.iterdir()] == ["flickr8k.json"]  # no temporary left behind


@needs_shared
def test_summary_reads_like_a_report(flickr: ImportResult) -> None:
    text = flickr.summary()
    assert "train 5,999, val 999, test 999" in text
    assert "captions per image: min 5, mean 5.00, max 5" in text
    assert "total captions: 39,985" in text
    assert "missing image files: 3 (1000268201_693b08cb0e.jpg" in text
    assert f"warnings: {len(flickr.warnings)}" in text and STRAY in text


def test_shipped_official_split_is_6000_1000_1000() -> None:
    split_of = load_official_split()
    counts = {s: list(split_of.values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 6_000, "val": 1_000, "test": 1_000}


@needs_shared
def test_shipped_official_split_matches_the_release_lists() -> None:
    split_of = load_official_split()
    for split, part in (("train", "train"), ("val", "dev"), ("test", "test")):
        names = (FLICKR / f"Flickr_8k.{part}Images.txt").read_text(encoding="utf-8").split()
        assert {split_of[n] for n in names} == {split}


def test_missing_official_split_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="official Flickr8k split is missing"):
        load_official_split(tmp_path / "flickr8k_split.json")


# -- Karpathy and COCO, from fixtures in the published formats ------------------------------

@needs_shared
def test_karpathy_flickr8k_matches_the_token_file(tmp_path: Path, flickr: ImportResult) -> None:
    names = ["2513260012_03d33305cf.jpg", "2090545563_a4e66ec76b.jpg", "3385593926_d3e9c21170.jpg"]
    result = import_dataset("karpathy", FIXTURES / "dataset_flickr8k.json", link_photos(tmp_path, names), "k8k")
    tokens = by_id(flickr)
    assert [r.image_id for r in result.manifest.images] == names
    for rec in result.manifest.images:
        assert (rec.file, rec.split, rec.captions) == (rec.image_id, tokens[rec.image_id].split, tokens[rec.image_id].captions)


@needs_shared
def test_karpathy_coco_uses_cocoid_filepath_and_restval(tmp_path: Path) -> None:
    files = ["val2014/COCO_val2014_000000391895.jpg", "val2014/COCO_val2014_000000522418.jpg",
             "train2014/COCO_train2014_000000184613.jpg", "val2014/COCO_val2014_000000318219.jpg"]
    result = import_dataset("karpathy", FIXTURES / "dataset_coco.json", link_photos(tmp_path, files), "kcoco")
    images = by_id(result)
    assert {i: (r.file, r.split) for i, r in images.items()} == {
        "391895": (files[0], "test"), "522418": (files[1], "restval"),
        "184613": (files[2], "train"), "318219": (files[3], "val")}
    assert images["391895"].captions[0] == "A man with a red helmet on a small moped on a dirt road."  # trailing space gone
    assert result.manifest.source == {"format": "karpathy", "dataset": "coco", "file": str(FIXTURES / "dataset_coco.json")}
    assert result.warnings == [] and result.skipped == {}


@needs_shared
def test_coco_captions_group_by_image_and_agree_with_karpathy(tmp_path: Path) -> None:
    images = link_photos(tmp_path, ["COCO_val2014_000000391895.jpg", "COCO_val2014_000000522418.jpg",
                                    "COCO_val2014_000000318219.jpg"])
    result = import_dataset("coco", FIXTURES / "captions_val2014.json", images, "coco_val")
    coco = by_id(result)
    assert list(coco) == ["391895", "522418", "318219"]
    assert {r.split for r in coco.values()} == {"val"}  # from the file name
    karpathy = json.loads((FIXTURES / "dataset_coco.json").read_text(encoding="utf-8"))["images"]
    for entry in karpathy:
        if str(entry["cocoid"]) in coco:
            assert coco[str(entry["cocoid"])].captions == [s["raw"].strip() for s in entry["sentences"]]


@needs_shared
def test_coco_test_image_list_has_images_without_captions(tmp_path: Path) -> None:
    images = link_photos(tmp_path, ["COCO_test2014_000000000001.jpg", "COCO_test2014_000000000014.jpg"])
    result = import_dataset("coco", FIXTURES / "image_info_test2014.json", images, "coco_test")
    assert [(r.image_id, r.split, r.captions) for r in result.manifest.images] == [("1", "test", []), ("14", "test", [])]
    assert "captions per image: min 0, mean 0.00, max 0" in result.summary()


def test_coco_split_argument_overrides_the_file_name() -> None:
    result = import_dataset("coco", FIXTURES / "captions_val2014.json", "unused", "c", check_files=False, split="train")
    assert {r.split for r in result.manifest.images} == {"train"}


# -- bad input: one clear DataError naming file and line, or a warning where one caption is lost

TOKEN_TEXT = "a.jpg#0\tA dog runs .\na.jpg#1\tA dog plays .\nb.jpg#0\tA cat sits .\n"


def flickr8k_files(folder: Path, tokens: str = TOKEN_TEXT) -> Path:
    write(folder, "Flickr_8k.trainImages.txt", "a.jpg\n")
    write(folder, "Flickr_8k.devImages.txt", "b.jpg\n")
    write(folder, "Flickr_8k.testImages.txt", "")
    return write(folder, "tokens.txt", tokens)


@pytest.mark.parametrize("line, why", [
    ("a.jpg#2 no tab here", "no tab"),
    ("a.jpg\tno caption index", "no #N"),
    ("a.jpg#x\tbad index", "index not a number"),
])
def test_flickr8k_malformed_line_names_file_and_line(tmp_path: Path, line: str, why: str) -> None:
    path = flickr8k_files(tmp_path, TOKEN_TEXT + line + "\n")
    assert "tokens.txt:4: expected 'IMAGE#N<TAB>caption'" in error_of("flickr8k", path, tmp_path, "x", check_files=False), why


def test_flickr8k_duplicate_caption_key_points_at_both_lines(tmp_path: Path) -> None:
    path = flickr8k_files(tmp_path, TOKEN_TEXT + "a.jpg#1\tAgain .\n")
    message = error_of("flickr8k", path, tmp_path, "x", check_files=False)
    assert "tokens.txt:4: duplicate caption 'a.jpg#1' (first on line 2)" in message


def test_flickr8k_empty_caption_is_warned_and_skipped(tmp_path: Path) -> None:
    path = flickr8k_files(tmp_path, TOKEN_TEXT + "a.jpg#2\t   \n")
    result = import_dataset("flickr8k", path, tmp_path, "x", check_files=False)
    assert result.skipped == {"empty_caption": 1}
    assert any("tokens.txt:4: empty caption for 'a.jpg'" in w for w in result.warnings)
    assert by_id(result)["a.jpg"].captions == ["A dog runs .", "A dog plays ."]


def test_flickr8k_unknown_split_name(tmp_path: Path) -> None:
    path = flickr8k_files(tmp_path)
    message = error_of("flickr8k", path, tmp_path, "x", check_files=False, split_files={"holdout": tmp_path / "x.txt"})
    assert "unknown split 'holdout'" in message


def test_flickr8k_explicit_split_files_accept_dev_for_val(tmp_path: Path) -> None:
    path = flickr8k_files(tmp_path)
    lists = {"train": tmp_path / "Flickr_8k.trainImages.txt", "dev": tmp_path / "Flickr_8k.devImages.txt"}
    result = import_dataset("flickr8k", path, tmp_path, "x", check_files=False, split_files=lists)
    assert {r.image_id: r.split for r in result.manifest.images} == {"a.jpg": "train", "b.jpg": "val"}


def test_flickr8k_image_in_two_split_lists(tmp_path: Path) -> None:
    path = flickr8k_files(tmp_path)
    write(tmp_path, "Flickr_8k.testImages.txt", "c.jpg\na.jpg\n")
    message = error_of("flickr8k", path, tmp_path, "x", check_files=False)
    assert "Flickr_8k.testImages.txt:2: duplicate image name 'a.jpg' (first on line 1 of Flickr_8k.trainImages.txt)" in message


def test_flickr8k_split_lists_not_beside_the_token_file(tmp_path: Path) -> None:
    path = write(tmp_path, "tokens.txt", TOKEN_TEXT)
    assert "Flickr_8k.trainImages.txt" in error_of("flickr8k", path, tmp_path, "x", check_files=False)


def test_flickr8k_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = flickr8k_files(tmp_path, TOKEN_TEXT)
    path.write_bytes(TOKEN_TEXT.encode() + b"b.jpg#1\tA caf\xe9 .\n")
    assert "tokens.txt:4: not UTF-8 text" in error_of("flickr8k", path, tmp_path, "x", check_files=False)


@needs_shared
def test_flickr8k_missing_image_is_warned_dropped_and_counted(tmp_path: Path) -> None:
    path = flickr8k_files(tmp_path)
    result = import_dataset("flickr8k", path, link_photos(tmp_path / "images", ["a.jpg"]), "x")
    assert [r.image_id for r in result.manifest.images] == ["a.jpg"]
    assert result.missing_files == ["b.jpg"] and result.skipped == {"missing_file": 1}
    assert any("1 image files not found, left out: b.jpg" in w for w in result.warnings)


KAGGLE_TEXT = 'image,caption\nx1.jpg,"A dog, running ."\nx1.jpg,A dog .\nx2.jpg,A cat .\n'


def test_kaggle_wrong_header_names_line_1(tmp_path: Path) -> None:
    path = write(tmp_path, "captions.csv", "filename,text\nx1.jpg,A dog .\n")
    assert "captions.csv:1: expected header 'image,caption'" in error_of("kaggle", path, tmp_path, "x", check_files=False)


@pytest.mark.parametrize("row, expected", [
    ("x3.jpg,A dog, unquoted .", "captions.csv:5: expected 2 fields"),
    ("x3.jpg", "captions.csv:5: expected 2 fields"),
    ('x3.jpg,"A dog "quoted" badly"', "captions.csv:5: malformed CSV"),
    ('x3.jpg,"An unbalanced quote', "captions.csv:5: malformed CSV"),
])
def test_kaggle_malformed_row_names_file_and_line(tmp_path: Path, row: str, expected: str) -> None:
    path = write(tmp_path, "captions.csv", KAGGLE_TEXT + row + "\n")
    assert expected in error_of("kaggle", path, tmp_path, "x", check_files=False)


def test_kaggle_quote_swallowing_rows_is_caught(tmp_path: Path) -> None:
    path = write(tmp_path, "captions.csv", KAGGLE_TEXT + 'x3.jpg,"A dog\nx4.jpg,A cat ."\n')
    assert "captions.csv:5: caption runs over several lines (to line 6)" in error_of("kaggle", path, tmp_path, "x",
                                                                                   check_files=False)


def test_kaggle_unbalanced_quote_is_reported_where_it_opens_not_at_the_end(tmp_path: Path) -> None:
    rows = "".join(f"y{i}.jpg,A dog .\n" for i in range(197))
    path = write(tmp_path, "captions.csv", 'image,caption\nx1.jpg,A dog .\nx2.jpg,A cat .\nx3.jpg,"An open quote .\n' + rows)
    error = error_of("kaggle", path, tmp_path, "x", check_files=False)
    assert "captions.csv:4: malformed CSV" in error and "still open at line 201" in error


def test_kaggle_empty_caption_warned_repeats_kept_bom_tolerated(tmp_path: Path) -> None:
    path = write(tmp_path, "captions.csv", ("\ufeff" + KAGGLE_TEXT + "x2.jpg,\nx2.jpg,A cat .\n").encode("utf-8"))
    result = import_dataset("kaggle", path, tmp_path, "x", check_files=False)
    assert any("captions.csv:5: empty caption for 'x2.jpg'" in w for w in result.warnings)
    images = by_id(result)
    assert images["x1.jpg"].captions == ["A dog, running .", "A dog ."]
    assert images["x2.jpg"].captions == ["A cat .", "A cat ."]


def test_kaggle_random_split_is_seeded_and_deterministic(tmp_path: Path) -> None:
    rows = "".join(f"img{i}.jpg,Caption {i} .\n" for i in range(100))
    path = write(tmp_path, "captions.csv", "image,caption\n" + rows)

    def splits(seed: int) -> dict[str, str]:
        result = import_dataset("kaggle", path, tmp_path, "x", check_files=False, split_seed=seed)
        return {r.image_id: r.split for r in result.manifest.images}

    assert splits(0) == splits(0)
    assert splits(0) != splits(1)
    assert sorted(splits(0).values()).count("train") == 80
    reversed_rows = write(tmp_path, "reversed.csv", "image,caption\n" + "".join(reversed(rows.splitlines(True))))
    again = import_dataset("kaggle", reversed_rows, tmp_path, "x", check_files=False)
    assert {r.image_id: r.split for r in again.manifest.images} == splits(0)


@pytest.mark.parametrize("ratios", [(0.5, 0.5), (0.8, 0.3, 0.1), (1.2, -0.1, -0.1)])
def test_bad_split_ratios(ratios: tuple) -> None:
    with pytest.raises(DataError, match="split ratios"):
        random_split(["a.jpg"], ratios, 0)


def karpathy_file(folder: Path, mutate) -> Path:
    data = json.loads((FIXTURES / "dataset_coco.json").read_text(encoding="utf-8"))
    mutate(data["images"])
    return write(folder, "dataset_coco.json", json.dumps(data))


@pytest.mark.parametrize("mutate, expected", [
    (lambda im: im[1].update(split="holdout"), "images[1]: unknown split 'holdout'"),
    (lambda im: im[2].update(cocoid=391895), "images[2]: duplicate image id '391895' (first at images[0])"),
    (lambda im: im[0]["sentences"][1].pop("raw"), "images[0].sentences[1]: missing 'raw'"),
    (lambda im: im[3].pop("filename"), "images[3]: missing 'filename'"),
    (lambda im: im[0].update(sentences="A dog ."), "images[0]: 'sentences' should be list, got str"),
])
def test_karpathy_bad_entries_name_file_and_entry(tmp_path: Path, mutate, expected: str) -> None:
    path = karpathy_file(tmp_path, mutate)
    assert f"dataset_coco.json: {expected}" in error_of("karpathy", path, tmp_path, "x", check_files=False)


def test_karpathy_empty_caption_warned_and_image_without_captions_left_out(tmp_path: Path) -> None:
    def mutate(images: list) -> None:
        images[0]["sentences"][0]["raw"] = "  "
        images[1]["sentences"] = []

    result = import_dataset("karpathy", karpathy_file(tmp_path, mutate), tmp_path, "x", check_files=False)
    assert result.skipped == {"empty_caption": 1, "no_captions": 1}
    assert any("dataset_coco.json: images[0].sentences[0]: empty caption" in w for w in result.warnings)
    assert "522418" not in by_id(result) and len(by_id(result)["391895"].captions) == 4


def coco_file(folder: Path, mutate, name: str = "captions_val2014.json") -> Path:
    data = json.loads((FIXTURES / "captions_val2014.json").read_text(encoding="utf-8"))
    mutate(data)
    return write(folder, name, json.dumps(data))


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["annotations"][3].update(id=d["annotations"][0]["id"]), "annotations[3]: duplicate annotation id"),
    (lambda d: d["images"][1].update(id=d["images"][0]["id"]), "images[1]: duplicate image id '391895' (first at images[0])"),
    (lambda d: d["annotations"][2].update(image_id=7), "annotations[2]: image_id 7 is not in this file's 'images'"),
    (lambda d: d["annotations"][0].pop("caption"), "annotations[0]: missing 'caption'"),
    (lambda d: d["images"][0].update(id=True), "images[0]: 'id' should be int or str, got bool"),
    (lambda d: d.pop("annotations"), "no 'annotations' in a val file"),
    (lambda d: d.pop("images"), "not a COCO captions (captions_*.json) file"),
])
def test_coco_bad_files_name_file_and_entry(tmp_path: Path, mutate, expected: str) -> None:
    path = coco_file(tmp_path, mutate)
    assert expected in error_of("coco", path, tmp_path, "x", check_files=False)
    assert "captions_val2014.json" in error_of("coco", path, tmp_path, "x", check_files=False)


def test_coco_empty_caption_is_warned_and_skipped(tmp_path: Path) -> None:
    path = coco_file(tmp_path, lambda d: d["annotations"][0].update(caption=""))
    result = import_dataset("coco", path, tmp_path, "x", check_files=False)
    assert result.skipped == {"empty_caption": 1}
    assert any("captions_val2014.json: annotations[0]: empty caption" in w for w in result.warnings)


def test_coco_split_unknown_or_not_in_file_name(tmp_path: Path) -> None:
    assert "unknown split 'holdout'" in error_of("coco", FIXTURES / "captions_val2014.json", tmp_path, "x",
                                                  check_files=False, split="holdout")
    path = coco_file(tmp_path, lambda d: None, name="captions.json")
    assert "cannot tell the split from the file name" in error_of("coco", path, tmp_path, "x", check_files=False)


@pytest.mark.parametrize("fmt", ["karpathy", "coco"])
def test_invalid_json_names_file_and_line(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path, "captions_val2014.json", '{\n "images": [\n  {"id": 1,}\n ]\n}\n')
    assert "captions_val2014.json:3: not valid JSON" in error_of(fmt, path, tmp_path, "x", check_files=False)


# -- the entry point ----------------------------------------------------------------------------

GARBAGE = {
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "json list": b"[1, 2, 3]",
    "json object": b'{"images": "none"}',
    "csv": b"image,caption\na.jpg,A dog .\n",
    "token lines": b"a.jpg#0\tA dog .\n",
}


@pytest.mark.parametrize("fmt", sorted(IMPORTERS))
@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_no_input_ends_in_a_traceback(tmp_path: Path, fmt: str, kind: str) -> None:
    """Whatever file a user points any importer at, the answer is a DataError naming it, or a manifest."""
    path = write(tmp_path, "input_val.txt", GARBAGE[kind])
    streamed = isinstance(IMPORTERS[fmt], StreamedImporter)  # no image folder; written as it is read
    try:
        if streamed:
            import_dataset(fmt, path, None, "x", out=tmp_path / "x.jsonl")
        else:
            import_dataset(fmt, path, tmp_path, "x", check_files=False)
    except DataError as e:
        assert "input_val.txt" in str(e)


def test_unknown_format_lists_the_formats(tmp_path: Path) -> None:
    assert "unknown format 'yaml'; use one of karpathy, flickr8k, kaggle, flickr30k-csv, coco" in error_of("yaml", tmp_path, tmp_path, "x")


def test_missing_caption_file_and_image_folder(tmp_path: Path) -> None:
    assert "nope.json: file not found" in error_of("coco", tmp_path / "nope.json", tmp_path, "x", check_files=False)
    assert "no_images: image folder not found" in error_of("coco", FIXTURES / "captions_val2014.json", tmp_path / "no_images", "x")


def test_options_for_another_format_are_refused(tmp_path: Path) -> None:
    assert "split applies to the coco format only" in error_of("karpathy", FIXTURES / "dataset_coco.json", tmp_path, "x", split="val")


def test_no_image_on_disk_is_an_error_not_an_empty_manifest(tmp_path: Path) -> None:
    message = error_of("coco", FIXTURES / "captions_val2014.json", tmp_path, "x")
    assert "none of its images is in the image folder" in message and "captions_val2014.json" in message
