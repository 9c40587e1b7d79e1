"""Region ("bottom-up") features, seed 003 / issue 20: fasterrcnn_regions' box tokens, the decoders' box positions,
and the refusal of box positions over a grid cache.

Random weights at 160 px throughout (``size=SIZE``; the registered encoder works at the detector's 800 px, about
ten times the work): a Faster R-CNN forward on 2 CPU cores is then mostly its box head over ~1000 proposals.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from pipeline.cache.reader import FeatureCache
from pipeline.data.manifest import ImageRecord, Manifest
from pipeline.data.vocab import START_ID
from pipeline.decoders.config import DecoderConfig
from pipeline.decoding import greedy_search
from pipeline.encoders import build_encoder, downloads, registry
from pipeline.encoders import fasterrcnn_regions as regions_module
from pipeline.encoders.fasterrcnn_regions import BOX_FEATURE_DIM, FasterRCNNRegions, top_boxes
from pipeline.encoders.base import token_grid
from pipeline.encoders.weights import WeightsSpec
from pipeline.errors import CapcacheError
from pipeline.extract import extract
from pipeline.extract.images import load_image
from pipeline.extract.inference import encode_images, prepare_encoder
from pipeline.training.config import resolve_config
from pipeline.training.loop import train

from decoder_configs import build

SIZE = 160
N = 36  # the default number of boxes
DIM = BOX_FEATURE_DIM + 5


def small_encoder(grid: int | None = None, weights: str = "random") -> FasterRCNNRegions:
    return FasterRCNNRegions(WeightsSpec.parse(weights), grid, size=SIZE).freeze()


def shapes_image(seed: int) -> Image.Image:
    """A picture of a few coloured rectangles and ellipses on a plain background, 120 x 90."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (120, 90), tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x, y = rng.integers(0, 80), rng.integers(0, 60)
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape([int(x), int(y), int(x + rng.integers(15, 40)), int(y + rng.integers(15, 30))],
              fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return img


@pytest.fixture(scope="module")
def regions() -> FasterRCNNRegions:
    return small_encoder()


@pytest.fixture(scope="module")
def photos(regions) -> torch.Tensor:  # [2, 3, 160, 160], as extraction prepares them
    transform = regions.preprocessing.transform()
    return torch.stack([transform(shapes_image(seed)) for seed in (0, 1)])


@pytest.fixture(scope="module")
def encoded(regions, photos) -> tuple[torch.Tensor, torch.Tensor]:  # tokens [2, N, 1029], pooled [2, 1024]
    with torch.inference_mode():
        return regions.encode(photos)


# --- the encoder ---

def test_tokens_are_box_features_then_their_normalised_geometry(regions, encoded):
    tokens, pooled = encoded
    assert tokens.shape == (2, N, DIM) and pooled.shape == (2, BOX_FEATURE_DIM)
    assert (regions.feature_dim, regions.pooled_dim) == (DIM, BOX_FEATURE_DIM)
    torch.testing.assert_close(pooled, tokens[..., :BOX_FEATURE_DIM].mean(1))  # the mean box feature
    x1, y1, x2, y2, area = tokens[..., BOX_FEATURE_DIM:].unbind(-1)  # each [2, N]
    geometry = tokens[..., BOX_FEATURE_DIM:]
    assert geometry.min() >= 0 and geometry.max() <= 1
    assert torch.all(x2 > x1) and torch.all(y2 > y1)
    torch.testing.assert_close(area, (x2 - x1) * (y2 - y1))
    assert len({tuple(b) for b in geometry[0].tolist()}) == N  # N different boxes, none repeated
    assert regions.describe()["options"]["box_geometry"] == ["x1/W", "y1/H", "x2/W", "y2/H", "area/(W*H)"]
    assert not any(p.requires_grad for p in regions.parameters()) and not regions.training


def test_the_same_images_give_the_same_tokens_in_every_call_and_build(regions, photos, encoded):
    torch.rand(100)  # the caller's RNG state must not leak into the build or the box choice
    with torch.inference_mode():
        again = regions.encode(photos)[0]
        rebuilt = small_encoder().encode(photos)[0]
    assert torch.equal(again, encoded[0]) and torch.equal(rebuilt, encoded[0])


def test_n_is_set_by_grid_and_is_part_of_the_description(regions, photos, encoded):
    four = small_encoder(grid=4)
    with torch.inference_mode():
        tokens = four.encode(photos)[0]
    assert tokens.shape == (2, 4, DIM)
    torch.testing.assert_close(tokens, encoded[0][:, :4])  # the 4 best of the same ranking
    assert four.describe() != regions.describe() and four.describe()["options"]["boxes"] == 4
    assert small_encoder(grid=N).describe() == regions.describe()  # --grid 36 is the default, one cache
    with pytest.raises(CapcacheError, match="at most 1000 boxes") as e:
        build_encoder("fasterrcnn_regions", "random", grid=1001)
    assert "\n" not in str(e.value)


def test_boxes_are_nms_survivors_by_score_then_the_best_suppressed_proposals():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [51, 51, 61, 61], [100, 100, 110, 110]],
                         dtype=torch.float)
    scores = torch.tensor([0.9, 0.8, 0.3, 0.7, 0.1])  # 1 overlaps 0, and 2 overlaps 3, beyond IoU 0.5
    assert top_boxes(boxes, scores, 0.5, 3).tolist() == [0, 3, 4]  # the detections, best first
    assert top_boxes(boxes, scores, 0.5, 4).tolist() == [0, 3, 4, 1]  # then the suppressed, best first
    assert top_boxes(boxes, scores, 0.5, 10).tolist() == [0, 3, 4, 1, 2]  # never more than there are


def test_an_image_with_fewer_proposals_than_boxes_ends_in_zero_tokens():
    encoder = small_encoder(grid=1000)
    with torch.inference_mode():
        tokens = encoder(torch.zeros(1, 3, SIZE, SIZE))[0]  # [1000, 1029]: a blank image has fewer proposals
    empty = (tokens == 0).all(-1)  # [1000]
    real = int((~empty).sum())
    assert 0 < real < 1000 and empty[real:].all()  # the boxes first, then zero rows
    assert (tokens[:real, BOX_FEATURE_DIM + 4] > 0).all()  # every real box has an area


# --- published weights ---

@pytest.fixture
def empty_torch_hub(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(downloads.OFFLINE_ENV, "1")
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_coco_weights_offline_fail_in_one_line_before_building(empty_torch_hub, monkeypatch):
    monkeypatch.setattr(regions_module, "resnet_fpn_backbone", lambda **kw: pytest.fail("built before failing"))
    with pytest.raises(CapcacheError) as e:
        build_encoder("fasterrcnn_regions")  # DEFAULT = COCO_V1
    message = str(e.value)
    assert "\n" not in message and "FasterRCNN_ResNet50_FPN_Weights.COCO_V1" in message
    assert str(empty_torch_hub) in message and "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth" in message
    assert "--weights random" in message
    with pytest.raises(CapcacheError, match="unknown weights 'VG' for fasterrcnn_resnet50_fpn; valid: COCO_V1, DEF"):
        build_encoder("fasterrcnn_regions", "VG")


def test_the_coco_checkpoint_loads_strictly_under_its_resolved_name(regions, empty_torch_hub):
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    # torchvision loads COCO_V1 into a frozen-batch-norm model: these names, without num_batches_tracked
    reference = {k for k in fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()
                 if not k.endswith("num_batches_tracked")}
    assert set(regions.model.state_dict()) == reference
    empty_torch_hub.mkdir(parents=True)
    source = small_encoder(weights="random:3").model.state_dict()  # not seed 0, which every named build starts from
    torch.save(source, empty_torch_hub / "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth")  # stands in for COCO_V1's file
    loaded = FasterRCNNRegions(WeightsSpec.parse("DEFAULT"), None, size=SIZE).freeze()
    assert loaded.describe()["weights"] == "COCO_V1"  # the cache key names what DEFAULT meant
    assert all(torch.equal(v, source[k]) for k, v in loaded.model.state_dict().items())


# --- decoders over box tokens ---

SMALL = DecoderConfig(embed_dim=16, hidden_dim=32, attention_dim=16, dropout=0.0, heads=4, ff_dim=64,
                      proj_dim=32, token_positions="boxes")
DECODERS = {"att_lstm": SMALL,  # geometry embedded straight into the 1024 features
            "transformer": replace(SMALL, feature_proj="linear", grid_encoder_layers=1)}  # into the projection
V, T = 30, 5


@pytest.mark.parametrize("name", DECODERS)
def test_box_positions_train_and_decode_on_region_tokens(name, encoded):
    torch.manual_seed(0)
    dec = build(name, DECODERS[name], DIM, N, V)
    grid = dec.grid
    assert grid.positions is None and grid.box_embedding.in_features == 5
    if name == "transformer":  # the projection reads the 1024 features alone
        assert grid.proj[0].in_features == BOX_FEATURE_DIM and grid.out_dim == 32
    else:
        assert grid.out_dim == BOX_FEATURE_DIM
    feats = encoded[0].clone()  # [2, N, 1029]
    tokens = torch.randint(4, V, (2, T))
    tokens[:, 0] = START_ID
    before = {k: v.clone() for k, v in dec.state_dict().items()}
    optimizer = torch.optim.Adam(dec.parameters(), lr=1e-2)
    out = dec.train()(feats, tokens)
    loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1))
    loss.backward()
    assert grid.box_embedding.weight.grad.abs().sum() > 0  # the boxes take part in the loss
    optimizer.step()
    assert not torch.equal(before["grid.box_embedding.weight"], dec.state_dict()["grid.box_embedding.weight"])
    dec.eval()
    moved = feats.clone()
    moved[..., BOX_FEATURE_DIM:] = moved[..., BOX_FEATURE_DIM:].flip(1)  # the same features at other boxes
    with torch.no_grad():
        seqs, scores = greedy_search(dec, feats, max_len=6)
        assert not torch.allclose(dec.grid(moved), dec.grid(feats))  # where a box is counts
        torch.nn.init.zeros_(grid.box_embedding.weight)
        torch.nn.init.zeros_(grid.box_embedding.bias)
        torch.testing.assert_close(dec.grid(moved), dec.grid(feats))  # and is read as a position only
    assert len(seqs) == 2 and all(len(s) <= 6 for s in seqs) and scores.shape == (2,)


def test_learned_positions_stay_the_default_and_none_has_no_positions():
    learned = build("transformer", DecoderConfig(feature_proj="linear", proj_dim=32, heads=4, ff_dim=64, hidden_dim=32),
                    24, 9, V)
    assert learned.grid.positions.shape == (1, 9, 32) and learned.grid.box_embedding is None
    none = build("transformer", DecoderConfig(feature_proj="linear", proj_dim=32, heads=4, ff_dim=64, hidden_dim=32,
                                              token_positions="none"), 24, 9, V)
    assert none.grid.positions is None and none.grid.box_embedding is None
    with pytest.raises(CapcacheError, match="unknown model.token_positions 'slots'; use learned, boxes, none"):
        build("att_lstm", DecoderConfig(token_positions="slots"), 24, 9, V)


# --- the cache path, end to end ---

@pytest.fixture(scope="module")
def shapes_manifest(tmp_path_factory) -> Path:
    """Four small JPEGs with two captions each, all in the train split, saved as a manifest."""
    root = tmp_path_factory.mktemp("shapes")
    (root / "images").mkdir()
    records = []
    for i in range(4):
        shapes_image(10 + i).save(root / "images" / f"{i}.jpg", quality=90)
        records.append(ImageRecord(f"{i}", f"{i}.jpg", "train", ["some shapes on a plain background",
                                                                   f"a picture of shapes number {i}"]))
    return Manifest("shapes", str(root / "images"), records).save(root / "shapes.json")


def test_extraction_caches_region_tokens_and_training_reads_their_boxes(shapes_manifest, tmp_path, monkeypatch):
    monkeypatch.setitem(registry._BUILDERS, "fasterrcnn_regions", partial(FasterRCNNRegions, size=SIZE))  # 160 px
    manifest = Manifest.load(shapes_manifest)
    result = extract(manifest, "fasterrcnn_regions", weights="random", cache_dir=tmp_path / "cache", batch_size=2,
                     workers=0, progress=False)
    assert not result.bad
    cache = FeatureCache(result.path)
    assert (len(cache), cache.n_tokens, cache.dim, cache.pooled_dim) == (4, N, DIM, BOX_FEATURE_DIM)
    assert cache.spec.encoder["options"]["boxes"] == N and cache.spec.encoder["preprocessing"]["crop"] == SIZE

    encoder = prepare_encoder(small_encoder(), torch.device("cpu"))  # as extraction runs it, in its batches of 2
    files = [manifest.image_path(r) for r in manifest.images]
    images = torch.stack([load_image(f, encoder.preprocessing.transform()) for f in files])
    direct = torch.cat([encode_images(encoder, images[i:i + 2], torch.device("cpu"))[0] for i in (0, 2)])
    for row in range(4):
        stored = cache[cache.row_of[str(row)]]
        assert stored.dtype == np.float16
        np.testing.assert_allclose(stored.astype(np.float32), direct[row].numpy(), rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(cache.pooled(cache.row_of[str(row)]).astype(np.float32),
                                   stored[:, :BOX_FEATURE_DIM].astype(np.float32).mean(0), rtol=2e-3, atol=2e-3)

    fast = [f"data.manifest={shapes_manifest}", "epochs=1", "batch_size=4", "val_metric=loss", "model.embed_dim=16",
            "model.hidden_dim=32", "model.attention_dim=16", "model.token_positions=boxes"]
    run = train(resolve_config("demo", None, [*fast, f"data.cache={result.path}", "data.encoder=fasterrcnn_regions"]),
                tmp_path / "boxes", progress=False)
    assert run.steps >= 1
    assert json.loads((tmp_path / "boxes" / "config.json").read_text())["model"]["token_positions"] == "boxes"

    grid_cache = extract(manifest, "tiny-cnn", cache_dir=tmp_path / "cache", workers=0, progress=False).path
    with pytest.raises(CapcacheError, match="model.token_positions=boxes needs tokens ending in 5 box numbers, "
                                            "but cache .* holds tiny-cnn features without boxes; extract with "
                                            "--encoder fasterrcnn_regions") as e:
        train(resolve_config("demo", None, [*fast, f"data.cache={grid_cache}"]), tmp_path / "grid", progress=False)
    assert "\n" not in str(e.value) and not (tmp_path / "grid" / "config.json").exists()


def test_region_tokens_lie_on_no_grid_so_no_attention_map_pretends_they_do():
    described = build_encoder("fasterrcnn_regions", "random", 36).describe()
    assert token_grid(described, 36) is None  # 36 boxes in score order are not a 6 x 6 grid
    assert token_grid(build_encoder("tiny-cnn").describe(), 49) == (7, 7)
