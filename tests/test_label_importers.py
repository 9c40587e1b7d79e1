"""Label importers: NUS-WIDE in its published layout, and the plain labels CSV.

The NUS-WIDE fixture is a 12-image copy of the real layout (Windows paths with CRLF in the image
lists, the three ways its labels are released, the 1k-tag matrix with tab separators), built in each
test; every image is a real tiny JPEG so the missing-file check of ``import_dataset`` runs for real.
The train list is in another order than Imagelist.txt, so a label read against the wrong list shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
from PIL import Image

from pipeline.data.importers import IMPORTERS, ImportResult, import_dataset
from pipeline.data.importers.intake import ImportOptions
from pipeline.data.importers.nus_wide import import_nus_wide
from pipeline.data.importers.splits import random_split
from pipeline.data.manifest import Manifest
from pipeline.errors import DataError

CONCEPTS = ["animal", "beach", "clouds", "sky", "water"]
TAGS = ["blue", "cat", "dog", "nature", "ocean", "sand", "sunset", "white"]
LAYOUTS = ("TrainTestLabels", "AllLabels", "AllLabels81")


@dataclass(frozen=True)
class Img:
    file: str  # relative to the Flickr folder
    split: str  # the official one
    labels: tuple[str, ...]
    tags: tuple[str, ...]

    @property
    def id(self) -> str:
        return PurePosixPath(self.file).stem


IMAGES = [
    Img("animal/0001_2124494179.jpg", "train", ("animal",), ("cat", "white")),
    Img("animal/0002_1000001.jpg", "test", ("animal", "sky"), ("dog",)),
    Img("beach/0001_1000002.jpg", "train", ("beach", "sky", "water"), ("blue", "ocean", "sand")),
    Img("beach/0002_1000003.jpg", "train", ("beach",), ()),  # no tag: kept
    Img("beach/0003_1000004.jpg", "test", ("beach", "water"), ("sand",)),
    Img("clouds/0001_1000005.jpg", "train", ("clouds", "sky"), ("blue", "white")),
    Img("clouds/0002_1000006.jpg", "train", (), ("nature",)),  # no label: left out
    Img("clouds/0003_1000007.jpg", "test", ("clouds",), ("sunset",)),
    Img("sky/0001_1000008.jpg", "train", ("sky",), ("blue", "sunset")),
    Img("sky/0002_1000009.jpg", "train", ("clouds", "sky"), ("nature",)),
    Img("water/0001_1000010.jpg", "test", (), ("ocean",)),  # no label: left out
    Img("water/0002_1000011.jpg", "train", ("animal", "water"), ("dog", "ocean")),
]
LABELLED = [i for i in IMAGES if i.labels]
TRAIN = [i for i in IMAGES if i.split == "train"][::-1]  # TrainImagelist.txt order, unlike Imagelist.txt's
TEST = [i for i in IMAGES if i.split == "test"]


def put(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def windows(file: str) -> str:
    return file.replace("/", "\\")


def bits(chosen: tuple[str, ...], names: list[str], sep: str) -> str:
    return sep.join("1" if name in chosen else "0" for name in names)


def column(images: list[Img], concept: str) -> str:
    return "".join(f"{int(concept in i.labels)}\n" for i in images)


def write_labels(folder: Path, layout: str) -> None:
    if layout == "TrainTestLabels":
        for concept in CONCEPTS:
            put(folder, f"Groundtruth/TrainTestLabels/Labels_{concept}_Train.txt", column(TRAIN, concept))
            put(folder, f"Groundtruth/TrainTestLabels/Labels_{concept}_Test.txt", column(TEST, concept))
    elif layout == "AllLabels":
        for concept in CONCEPTS:
            put(folder, f"Groundtruth/AllLabels/Labels_{concept}.txt", column(IMAGES, concept))
    else:
        put(folder, "Groundtruth/AllLabels81.txt", "".join(bits(i.labels, CONCEPTS, " ") + "\n" for i in IMAGES))


def write_nus_wide(root: Path, layout: str = "TrainTestLabels", concepts_at: str = "Concepts81.txt",
                   tag_names_at: str | None = "NUS_WID_Tags/TagList1k.txt") -> Path:
    folder = root / "NUS-WIDE"
    put(folder, "ImageList/Imagelist.txt", "".join(f"C:\\ImageData\\Flickr\\{windows(i.file)}\r\n" for i in IMAGES))
    put(folder, "ImageList/TrainImagelist.txt", "".join(f"{windows(i.file)}\r\n" for i in TRAIN))
    put(folder, "ImageList/TestImagelist.txt", "".join(f"{windows(i.file)}\r\n" for i in TEST))
    put(folder, concepts_at, "".join(f"{c}\n" for c in CONCEPTS))
    write_labels(folder, layout)
    if tag_names_at is not None:
        put(folder, "NUS_WID_Tags/AllTags1k.txt", "".join(bits(i.tags, TAGS, "\t") + "\t\r\n" for i in IMAGES))
        put(folder, tag_names_at, "".join(f"{t}\n" for t in TAGS))
    return folder


def write_photos(root: Path, files: list[str]) -> Path:
    folder = root / "Flickr"
    for n, file in enumerate(files):
        path = folder / file
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (20 * n, 100, 200)).save(path, "JPEG")
    return folder


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return write_photos(tmp_path, [i.file for i in IMAGES])


@pytest.fixture
def nus(tmp_path: Path) -> Path:
    return write_nus_wide(tmp_path)


def import_nus(folder: Path, photos: Path, **kwargs) -> ImportResult:
    return import_dataset("nus-wide", folder, photos, "nus", **kwargs)


def error_of(*args, **kwargs) -> str:
    with pytest.raises(DataError) as e:
        import_dataset(*args, **kwargs)
    return str(e.value)


def nus_error(folder: Path, photos: Path) -> str:
    return error_of("nus-wide", folder, photos, "nus")


def replace_line(path: Path, number: int, text: str | None) -> None:
    """Line ``number`` (1-based) replaced by ``text``, or removed for None."""
    lines = path.read_bytes().decode().splitlines(keepends=True)
    lines[number - 1:number] = [] if text is None else [text + "\n"]
    path.write_text("".join(lines))


def test_both_formats_are_registered():
    assert IMPORTERS["nus-wide"] is import_nus_wide
    assert IMPORTERS["labels-csv"].__name__ == "import_labels_csv"


# -- NUS-WIDE: what comes out ----------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_nus_wide_layouts_give_each_image_its_labels_and_tags(tmp_path: Path, photos: Path, layout: str):
    result = import_nus(write_nus_wide(tmp_path, layout), photos)
    m = result.manifest
    assert [r.image_id for r in m.images] == [i.id for i in LABELLED]  # Imagelist order, unlabelled left out
    assert [r.file for r in m.images] == [i.file for i in LABELLED]
    assert all(r.captions == [] for r in m.images)
    assert (m.labels.classes, m.labels.tags) == (CONCEPTS, TAGS)
    assert {k: (e.labels, e.tags) for k, e in m.labels.images.items()} == \
        {i.id: (list(i.labels), list(i.tags)) for i in LABELLED}
    assert m.source["format"] == m.labels.source["format"] == "nus-wide"
    assert m.source["labels"] == layout


@pytest.mark.parametrize("layout", LAYOUTS)
def test_nus_wide_keeps_the_official_test_split_and_draws_val_from_train(tmp_path: Path, photos: Path, layout: str):
    split = {r.image_id: r.split for r in import_nus(write_nus_wide(tmp_path, layout), photos).manifest.images}
    assert [k for k, s in split.items() if s == "test"] == [i.id for i in LABELLED if i.split == "test"]
    assert sorted(k for k, s in split.items() if s in ("train", "val")) == \
        sorted(i.id for i in LABELLED if i.split == "train")
    assert list(split.values()).count("val") == round(0.1 * 7)  # 7 labelled train images


def test_nus_wide_val_is_seeded_reproducible_and_sized_by_the_fraction(nus: Path):
    def val(seed: int, fraction: float = 0.1) -> list[str]:
        parsed = import_nus_wide(nus, ImportOptions(split_seed=seed), val_fraction=fraction)
        return [r.image_id for r in parsed.images if r.split == "val"]

    assert val(3) == val(3)
    assert len({tuple(val(seed)) for seed in range(10)}) > 1
    assert len(val(0, 0.5)) == round(0.5 * 7)
    assert val(0, 0.0) == []
    assert set(val(0, 0.5)) <= {i.id for i in LABELLED if i.split == "train"}
    with pytest.raises(DataError, match="val fraction"):
        val(0, 1.0)


def test_nus_wide_source_records_the_files_read(nus: Path, photos: Path):
    source = import_nus(nus, photos).manifest.labels.source
    assert source["files"][:4] == ["ImageList/Imagelist.txt", "ImageList/TrainImagelist.txt",
                                   "ImageList/TestImagelist.txt", "Concepts81.txt"]
    assert "Groundtruth/TrainTestLabels/Labels_water_Test.txt" in source["files"]
    assert source["files"][-2:] == ["NUS_WID_Tags/AllTags1k.txt", "NUS_WID_Tags/TagList1k.txt"]
    assert len(source["files"]) == 4 + 2 * len(CONCEPTS) + 2
    assert source["split"]["val"] == {"of": "train", "fraction": 0.1, "seed": 0}


def test_nus_wide_leaves_out_unlabelled_images_and_keeps_untagged_ones(nus: Path, photos: Path):
    result = import_nus(nus, photos)
    unlabelled = [i.id for i in IMAGES if not i.labels]
    assert result.skipped["no_label"] == 2
    assert not set(unlabelled) & set(result.manifest.labels.images)
    no_label = [w for w in result.warnings if "no label" in w]
    assert no_label == [f"{nus}: 2 images left out (no label among the 5 concepts): {', '.join(unlabelled)}"]
    assert result.manifest.labels.images["0002_1000003"].tags == []
    assert f"{nus / 'NUS_WID_Tags/AllTags1k.txt'}: 1 images have none of the 8 tags, kept (their tag input is " \
           "all zeros): 0002_1000003" in result.warnings


def test_nus_wide_names_may_sit_in_concepts_list(tmp_path: Path, photos: Path):
    folder = write_nus_wide(tmp_path, concepts_at="ConceptsList/Concepts81.txt",
                            tag_names_at="ConceptsList/TagList1k.txt")
    labels = import_nus(folder, photos).manifest.labels
    assert (labels.classes, labels.tags) == (CONCEPTS, TAGS)
    assert labels.images["0001_1000002"].tags == ["blue", "ocean", "sand"]


def test_nus_wide_without_tag_files_has_no_tag_modality(tmp_path: Path, photos: Path):
    labels = import_nus(write_nus_wide(tmp_path, tag_names_at=None), photos).manifest.labels
    assert labels.tags == [] and not labels.has_tags
    assert all(e.tags == [] for e in labels.images.values())
    assert labels.images["0001_1000002"].labels == ["beach", "sky", "water"]


@pytest.mark.parametrize("present, used", [(("TrainTestLabels", "AllLabels"), "TrainTestLabels"),
                                           (("AllLabels", "AllLabels81"), "AllLabels")])
def test_nus_wide_prefers_the_layouts_in_order(tmp_path: Path, photos: Path, present: tuple[str, str], used: str):
    folder = write_nus_wide(tmp_path, present[0])
    write_labels(folder, present[1])
    # the less preferred copy gives image 1 the label beach too; reading it would show
    other = {"AllLabels": "Groundtruth/AllLabels/Labels_beach.txt", "AllLabels81": "Groundtruth/AllLabels81.txt"}
    replace_line(folder / other[present[1]], 1, "1" if present[1] == "AllLabels" else "0 1 0 0 0")
    m = import_nus(folder, photos).manifest
    assert m.source["labels"] == used
    assert m.labels.images["0001_2124494179"].labels == ["animal"]


def test_nus_wide_leaves_out_images_in_no_split_list(tmp_path: Path, photos: Path):
    nus = write_nus_wide(tmp_path, "AllLabels")  # with TrainTestLabels, the test label files would be a line long
    replace_line(nus / "ImageList/TestImagelist.txt", 1, None)  # animal/0002_1000001.jpg
    result = import_nus(nus, photos)
    assert result.skipped["not_in_split"] == 1
    assert "0002_1000001" not in {r.image_id for r in result.manifest.images}
    assert any("1 images left out (in neither ImageList/TrainImagelist.txt nor ImageList/TestImagelist.txt): "
               "animal/0002_1000001.jpg" in w for w in result.warnings)


def test_nus_wide_missing_photos_are_dropped_with_their_labels(nus: Path, photos: Path):
    (photos / "sky/0001_1000008.jpg").unlink()
    (photos / "beach/0003_1000004.jpg").unlink()
    result = import_nus(nus, photos)
    gone = {"0001_1000008", "0003_1000004"}
    assert sorted(result.missing_files) == ["beach/0003_1000004.jpg", "sky/0001_1000008.jpg"]
    assert result.skipped["missing_file"] == 2
    assert [r.image_id for r in result.manifest.images] == [i.id for i in LABELLED if i.id not in gone]
    assert set(result.manifest.labels.images) == {i.id for i in LABELLED} - gone


def test_nus_wide_manifest_round_trips_with_its_labels(nus: Path, photos: Path, tmp_path: Path):
    result = import_nus(nus, photos, out=tmp_path / "nus.json")
    loaded = Manifest.load(tmp_path / "nus.json")
    assert loaded.images == result.manifest.images
    assert loaded.labels.to_dict() == result.manifest.labels.to_dict()
    ids = [r.image_id for r in loaded.images]
    assert (loaded.labels.label_matrix(ids) == result.manifest.labels.label_matrix(ids)).all()
    assert loaded.labels.tag_matrix(ids).sum() == sum(len(i.tags) for i in LABELLED)


# -- NUS-WIDE: errors --------------------------------------------------------------------------

def test_nus_wide_label_value_other_than_0_or_1(nus: Path, photos: Path):
    path = nus / "Groundtruth/TrainTestLabels/Labels_sky_Train.txt"
    replace_line(path, 3, "2")
    assert nus_error(nus, photos) == f"{path}:3: expected 0 or 1, got '2'"
    replace_line(path, 3, "1 0")
    assert nus_error(nus, photos) == f"{path}:3: expected 0 or 1, got '1 0'"


def test_nus_wide_blank_line_inside_a_label_file(nus: Path, photos: Path):
    path = nus / "Groundtruth/TrainTestLabels/Labels_sky_Test.txt"
    replace_line(path, 2, "")
    assert nus_error(nus, photos).startswith(f"{path}:2: blank line; expected one 0 or 1 per line")


def test_nus_wide_blank_lines_at_the_end_of_a_label_file_are_fine(nus: Path, photos: Path):
    path = nus / "Groundtruth/TrainTestLabels/Labels_sky_Test.txt"
    path.write_text(path.read_text() + "\n \n")
    assert len(import_nus(nus, photos).manifest.images) == len(LABELLED)


def test_nus_wide_label_files_short_and_long(nus: Path, photos: Path):
    path = nus / "Groundtruth/TrainTestLabels/Labels_beach_Train.txt"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))
    assert nus_error(nus, photos) == \
        f"{path}:7: 7 lines, expected 8: one per image of ImageList/TrainImagelist.txt, in its order"
    path.write_text("".join(lines) + "0\n")
    assert nus_error(nus, photos) == \
        f"{path}:9: 9 lines, expected 8: one per image of ImageList/TrainImagelist.txt, in its order"
    all_labels = write_nus_wide(nus.parent / "other", "AllLabels") / "Groundtruth/AllLabels/Labels_sky.txt"
    all_labels.write_text("")
    assert nus_error(all_labels.parents[2], photos) == \
        f"{all_labels}: 0 lines, expected 12: one per image of ImageList/Imagelist.txt, in its order"


def test_nus_wide_all_labels81_rows(tmp_path: Path, photos: Path):
    folder = write_nus_wide(tmp_path, "AllLabels81")
    path = folder / "Groundtruth/AllLabels81.txt"
    replace_line(path, 4, "0 1 0 0")
    assert nus_error(folder, photos) == f"{path}:4: 4 values, expected 5 (one per name in Concepts81.txt)"
    replace_line(path, 4, "0 10 0 0")  # five characters of 0/1, but "10" is one value
    assert nus_error(folder, photos) == f"{path}:4: expected 0 or 1, got '10'"
    replace_line(path, 4, "0 1 0 0 x")
    assert nus_error(folder, photos) == f"{path}:4: expected 0 or 1, got 'x'"


def test_nus_wide_tag_rows_with_other_spacing_are_read_alike(nus: Path, photos: Path):
    replace_line(nus / "NUS_WID_Tags/AllTags1k.txt", 5, "  0  0 0\t\t0 0 1   0 0 ")  # beach/0003_1000004: sand
    replace_line(nus / "NUS_WID_Tags/AllTags1k.txt", 6, "1 0 0 0 0 0 0 1")  # clouds/0001_1000005: blue, white
    labels = import_nus(nus, photos).manifest.labels
    assert (labels.images["0003_1000004"].tags, labels.images["0001_1000005"].tags) == (["sand"], ["blue", "white"])


def test_nus_wide_tag_rows(nus: Path, photos: Path):
    path = nus / "NUS_WID_Tags/AllTags1k.txt"
    replace_line(path, 5, "\t".join("0" * 7))
    assert nus_error(nus, photos) == f"{path}:5: 7 values, expected 8 (one per name in TagList1k.txt)"
    replace_line(path, 5, "\t".join("0" * 9))
    assert nus_error(nus, photos) == f"{path}:5: 9 values, expected 8 (one per name in TagList1k.txt)"
    replace_line(path, 5, "")
    assert nus_error(nus, photos).startswith(f"{path}:5: blank line; expected one line of 0/1 per image")
    replace_line(path, 5, None)
    assert nus_error(nus, photos) == \
        f"{path}:11: 11 lines, expected 12: one per image of ImageList/Imagelist.txt, in its order"


@pytest.mark.parametrize("name, looked, why", [
    ("ImageList/Imagelist.txt", ["ImageList/Imagelist.txt"], "the list of all images"),
    ("ImageList/TestImagelist.txt", ["ImageList/TestImagelist.txt"], "the official test images"),
    ("Concepts81.txt", ["Concepts81.txt", "ConceptsList/Concepts81.txt"], "the concept names"),
    ("Groundtruth/TrainTestLabels/Labels_clouds_Test.txt", ["Groundtruth/TrainTestLabels/Labels_clouds_Test.txt"],
     "the TrainTestLabels layout has one per concept and split"),
    ("NUS_WID_Tags/TagList1k.txt", ["NUS_WID_Tags/TagList1k.txt", "ConceptsList/TagList1k.txt"],
     "the names of the columns of NUS_WID_Tags/AllTags1k.txt"),
])
def test_nus_wide_missing_required_file(nus: Path, photos: Path, name: str, looked: list[str], why: str):
    (nus / name).unlink()
    where = " or ".join(str(nus / p) for p in looked)
    assert nus_error(nus, photos) == f"the NUS-WIDE layout needs {looked[0]} ({why}); not found at {where}"


def test_nus_wide_without_any_labels(nus: Path, photos: Path):
    for path in (nus / "Groundtruth/TrainTestLabels").iterdir():
        path.unlink()
    (nus / "Groundtruth/TrainTestLabels").rmdir()
    assert nus_error(nus, photos) == ("the NUS-WIDE layout needs labels: Groundtruth/TrainTestLabels/, Groundtruth/"
                                      f"AllLabels/ or Groundtruth/AllLabels81.txt; none of them is in {nus}")


def test_nus_wide_path_must_be_the_folder(nus: Path, photos: Path):
    assert error_of("nus-wide", nus / "ImageList/Imagelist.txt", photos, "nus").endswith(
        "Imagelist.txt: expected the NUS-WIDE folder (the one holding ImageList/ and Groundtruth/)")


def test_nus_wide_duplicate_image_id(nus: Path, photos: Path):
    path = nus / "ImageList/Imagelist.txt"
    path.write_text(path.read_text() + "C:\\ImageData\\Flickr\\sky\\0001_1000005.jpg\r\n")
    assert nus_error(nus, photos) == f"{path}:13: duplicate image id '0001_1000005' (first on line 6)"


def test_nus_wide_image_paths(nus: Path, photos: Path):
    imagelist = nus / "ImageList/Imagelist.txt"
    replace_line(imagelist, 2, "D:\\elsewhere\\0002_1000001.jpg")
    assert nus_error(nus, photos) == (f"{imagelist}:2: expected an image path such as C:\\ImageData\\Flickr\\"
                                      "actor\\0001_2124494179.jpg, got 'D:\\\\elsewhere\\\\0002_1000001.jpg'")
    replace_line(imagelist, 2, "C:\\ImageData\\Flickr\\animal\\0002_1000001.jpg")
    train = nus / "ImageList/TrainImagelist.txt"
    replace_line(train, 3, "sky\\9999_1.jpg")
    assert nus_error(nus, photos) == f"{train}:3: 'sky/9999_1.jpg' is not in ImageList/Imagelist.txt"
    replace_line(train, 3, "animal\\0002_1000001.jpg")  # a test image
    test = nus / "ImageList/TestImagelist.txt"
    assert nus_error(nus, photos) == f"{test}:1: 'animal/0002_1000001.jpg' is already in the train list"


def test_nus_wide_duplicate_concept_name(nus: Path, photos: Path):
    path = nus / "Concepts81.txt"
    path.write_text(path.read_text() + "sky\n")
    assert nus_error(nus, photos) == f"{path}:6: duplicate concept name 'sky' (first on line 4)"


# -- labels CSV --------------------------------------------------------------------------------

CSV_FILES = ["a.jpg", "b.jpg", "c.png", "d.jpg", "e.jpg", "sub/f.jpg"]


@pytest.fixture
def csv_photos(tmp_path: Path) -> Path:
    return write_photos(tmp_path, CSV_FILES)


def import_csv(tmp_path: Path, photos: Path, text: str, **kwargs) -> ImportResult:
    return import_dataset("labels-csv", put(tmp_path, "labels.csv", text), photos, "csv", **kwargs)


def csv_error(tmp_path: Path, photos: Path, text: str) -> str:
    return error_of("labels-csv", put(tmp_path, "labels.csv", text), photos, "csv")


FULL_CSV = """Image, Split ,TAGS,Labels
a.jpg,train,sunset; beach,sky;water
b.jpg,val,,dog
c.png,test,"cat;;cat ",cat; dog ;cat
sub/f.jpg,dev,beach,water
"""


def test_labels_csv_with_split_and_tags(tmp_path: Path, csv_photos: Path):
    m = import_csv(tmp_path, csv_photos, FULL_CSV).manifest
    assert [(r.image_id, r.file, r.split, r.captions) for r in m.images] == [
        ("a.jpg", "a.jpg", "train", []), ("b.jpg", "b.jpg", "val", []),
        ("c.png", "c.png", "test", []), ("sub/f.jpg", "sub/f.jpg", "val", [])]
    assert m.labels.classes == ["cat", "dog", "sky", "water"]
    assert m.labels.tags == ["beach", "cat", "sunset"]
    assert {k: (e.labels, e.tags) for k, e in m.labels.images.items()} == {
        "a.jpg": (["sky", "water"], ["sunset", "beach"]), "b.jpg": (["dog"], []),
        "c.png": (["cat", "dog"], ["cat"]), "sub/f.jpg": (["water"], ["beach"])}
    assert m.source["format"] == m.labels.source["format"] == "labels-csv"
    assert m.source["split"] == "split column"


def test_labels_csv_without_split_draws_a_seeded_split(tmp_path: Path, csv_photos: Path):
    text = "image,labels\n" + "".join(f"{f},x\n" for f in CSV_FILES)
    first = import_csv(tmp_path, csv_photos, text, split_seed=7, split_ratios=(0.5, 0.25, 0.25)).manifest
    again = import_csv(tmp_path, csv_photos, text, split_seed=7, split_ratios=(0.5, 0.25, 0.25)).manifest
    split = {r.image_id: r.split for r in first.images}
    assert split == random_split(CSV_FILES, (0.5, 0.25, 0.25), 7)
    assert split == {r.image_id: r.split for r in again.images}
    assert first.source["split"] == {"seed": 7, "ratios": [0.5, 0.25, 0.25]}
    assert first.labels.tags == [] and not first.labels.has_tags
    assert all(e.labels == ["x"] and e.tags == [] for e in first.labels.images.values())


def test_labels_csv_keeps_images_without_labels(tmp_path: Path, csv_photos: Path):
    result = import_csv(tmp_path, csv_photos, "image,labels,split\na.jpg,sky,train\nb.jpg, ; ,test\nd.jpg,,val\n")
    assert [r.image_id for r in result.manifest.images] == ["a.jpg", "b.jpg", "d.jpg"]
    assert result.manifest.labels.images["b.jpg"].labels == []
    assert result.manifest.labels.classes == ["sky"]
    assert f"{tmp_path / 'labels.csv'}: 2 images have no label, kept (as images none of the classes describes): " \
           "b.jpg, d.jpg" in result.warnings


def test_labels_csv_skips_names_that_are_no_image(tmp_path: Path, csv_photos: Path):
    result = import_csv(tmp_path, csv_photos, "image,labels,split\na.jpg,sky,train\nnotes.txt,sky,train\n")
    assert [r.image_id for r in result.manifest.images] == ["a.jpg"]
    assert result.skipped["bad_image_name"] == 1
    skipped = f"{tmp_path / 'labels.csv'}:3: 'notes.txt' is not an image file name; its row is skipped"
    assert skipped in result.warnings


def test_labels_csv_missing_photos_are_dropped_with_their_labels(tmp_path: Path, csv_photos: Path):
    (csv_photos / "b.jpg").unlink()
    result = import_csv(tmp_path, csv_photos, FULL_CSV)
    assert result.missing_files == ["b.jpg"]
    assert set(result.manifest.labels.images) == {"a.jpg", "c.png", "sub/f.jpg"}
    assert "b.jpg" not in {r.image_id for r in result.manifest.images}


def test_labels_csv_manifest_round_trips_with_its_labels(tmp_path: Path, csv_photos: Path):
    result = import_csv(tmp_path, csv_photos, FULL_CSV, out=tmp_path / "csv.json")
    loaded = Manifest.load(tmp_path / "csv.json")
    assert loaded.images == result.manifest.images
    assert loaded.labels.to_dict() == result.manifest.labels.to_dict()
    assert loaded.labels.images["c.png"].tags == ["cat"]


@pytest.mark.parametrize("text, line, message", [
    ("", None, "empty file; expected a header line 'image,labels', optionally with 'tags' and 'split' columns "
               "after 'image'"),
    ("labels,image\n", 1, "expected a header line 'image,labels', optionally with 'tags' and 'split' columns after "
                          "'image', got 'labels,image'"),
    ("image,tags\n", 1, "expected a header line 'image,labels', optionally with 'tags' and 'split' columns after "
                        "'image', got 'image,tags'"),
    ("image,labels,Colour\n", 1, "unknown column 'Colour'; the columns are image, labels, tags, split"),
    ("image,labels,tags,Tags\n", 1, "column 'tags' appears twice"),
    ("image,labels\na.jpg,sky\nb.jpg,dog,cat\n", 3,
     "expected 2 fields (image,labels), got 3; quote fields that contain commas"),
    ("image,labels,split\na.jpg,sky\n", 2,
     "expected 3 fields (image,labels,split), got 2; quote fields that contain commas"),
    ("image,labels\na.jpg,sky\nb.jpg,dog\na.jpg,cat\n", 4, "duplicate image 'a.jpg' (first on line 2)"),
    ("image,labels,split\na.jpg,sky,train\nb.jpg,dog,holdout\n", 3,
     "unknown split 'holdout'; use one of train, val, test, restval"),
    ("image,labels\na.jpg,\"sky;\nwater\"\n", 2,
     "a field runs over several lines (to line 3): the quote that opens here is unbalanced"),
    ("image,labels\na.jpg,sky\nb.jpg,\"dog\nc.png,cat\nd.jpg,x\n", 3,
     "malformed CSV (unexpected end of data; a quote opened here is still open at line 5)"),
    ("image,labels\na.jpg,\"sky\"x\n", 2, "malformed CSV (',' expected after '\"')"),
])
def test_labels_csv_errors(tmp_path: Path, csv_photos: Path, text: str, line: int | None, message: str):
    path = tmp_path / "labels.csv"
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert csv_error(tmp_path, csv_photos, text) == where + message
