"""Training speed from the cache, measured side by side in one run.

* cache vs RAM: the same decoder, same batches, features streamed from the HDF5 file (default
  DataLoader settings, i.e. `data.workers` = 0) vs the whole cache loaded into memory first;
* cache vs end to end: one epoch over a small image set, features from the cache vs recomputed
  through a frozen ResNet-50 for every batch (what training without a cache costs);
* memory: peak RSS of a fresh process streaming a cache larger than its RAM budget.

The training step is the library's own (`caption_loss`, the registered decoder, `CaptionPairs`).
Prints one JSON object as its last line; defaults finish in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import peak_rss_mb, print_result, timer  # noqa: I001  (puts the repo on sys.path)

import numpy as np
import torch
from torch.utils.data import DataLoader

from pipeline.cache.key import CacheSpec
from pipeline.cache.reader import FeatureCache
from pipeline.cache.writer import CacheWriter
from pipeline.data.manifest import ImageRecord, Manifest
from pipeline.data.synthetic import SyntheticConfig, generate_dataset
from pipeline.data.vocab import Vocabulary
from pipeline.decoders import build_decoder
from pipeline.decoders.config import DecoderConfig
from pipeline.encoders import build_encoder
from pipeline.extract.images import load_image
from pipeline.training.data import CaptionPairs, collate
from pipeline.training.loop import caption_loss


def random_cache(path: Path, ids: list[str], n_tokens: int, dim: int, seed: int = 0) -> Path:
    """A complete cache of random float16 features (the speed of reading does not depend on values)."""
    spec = CacheSpec({"encoder": "random-features", "tokens": n_tokens, "dim": dim}, "float16", path.stem, path.stem, len(ids))
    rng = np.random.default_rng(seed)
    with CacheWriter(path, spec, ids, n_tokens, dim) as writer:
        for start in range(0, len(ids), 256):
            rows = np.arange(start, min(start + 256, len(ids)))
            writer.write(rows, rng.standard_normal((len(rows), n_tokens, dim), dtype=np.float32))
    return path


def train_step(decoder, optimizer: torch.optim.Optimizer, feats: torch.Tensor, tokens: torch.Tensor) -> None:
    """One teacher-forced step on feats [B, L, D] and tokens [B, T], the same in every variant measured."""
    loss, _ = caption_loss(decoder, feats, tokens, 1.0, 0.0)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def steps_per_s(decoder, pairs: CaptionPairs, batch_size: int, steps: int) -> float:
    """Training steps/s of ``decoder`` on batches from ``pairs`` (after one warm-up step)."""
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-4)
    loader = iter(DataLoader(pairs, batch_size=batch_size, collate_fn=collate))
    decoder.train()
    start = 0.0
    for i in range(steps + 1):
        if i == 1:  # step 0 is the warm-up
            start = time.perf_counter()
        train_step(decoder, optimizer, *next(loader))
    return steps / (time.perf_counter() - start)


def epoch_end_to_end(decoder, manifest: Manifest, vocab: Vocabulary, batch_size: int, encoder_name: str) -> float:
    """Seconds for one epoch where every batch's images go through the frozen encoder first."""
    encoder = build_encoder(encoder_name, "random").to(memory_format=torch.channels_last)
    transform = encoder.preprocessing.transform()
    pairs = [(r, c) for r in manifest.images for c in r.captions]
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-4)
    decoder.train()
    with timer() as t:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            images = torch.stack([load_image(manifest.image_path(r), transform) for r, _ in chunk])  # [B, 3, 224, 224]
            with torch.inference_mode():
                feats = encoder(images.contiguous(memory_format=torch.channels_last))  # [B, L, D], 49x2048 for ResNet-50
            train_step(decoder, optimizer, feats.clone(), _tokens(chunk, vocab))
    return t["s"]


def _tokens(chunk: list[tuple[ImageRecord, str]], vocab: Vocabulary) -> torch.Tensor:
    """Padded token ids [B, T] of the chunk's captions, exactly as the cached path builds them."""
    _, tokens = collate([(np.zeros(1, np.float16), vocab.encode(c, 30)) for _, c in chunk])
    return tokens


def epoch_from_cache(decoder, pairs: CaptionPairs, batch_size: int) -> float:
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-4)
    decoder.train()
    with timer() as t:
        for feats, tokens in DataLoader(pairs, batch_size=batch_size, collate_fn=collate):
            train_step(decoder, optimizer, feats, tokens)
    return t["s"]


def rss_streaming(cache: Path, manifest_path: Path, batch_size: int, steps: int) -> float:
    """Peak RSS (MiB) of a fresh process training ``steps`` steps while streaming ``cache``."""
    code = f"""
import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
from common import peak_rss_mb
from train import *
manifest = Manifest.load({str(manifest_path)!r})
vocab = Vocabulary.build((c for r in manifest.images for c in r.captions), 1)
cache = FeatureCache({str(cache)!r}, in_memory=False)
decoder = build_decoder("att_lstm", DecoderConfig(), cache.dim, cache.n_tokens, len(vocab))
steps_per_s(decoder, CaptionPairs(cache, manifest.images, vocab, 30), {batch_size}, {steps})
print(peak_rss_mb())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", default="att_lstm")
    parser.add_argument("--images", type=int, default=2000, help="images in the cache for cache-vs-RAM")
    parser.add_argument("--tokens", type=int, default=49)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="alternating cache/RAM measurements; best of each")
    parser.add_argument("--e2e-images", type=int, default=16, help="images in the end-to-end epoch comparison")
    parser.add_argument("--e2e-encoder", default="resnet50", help="frozen encoder of the end-to-end loop")
    parser.add_argument("--big-cache-gb", type=float, default=1.0, help="size of the streamed cache for the RSS probe")
    args = parser.parse_args()
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory(prefix="capcache-bench-") as tmp:
        tmp = Path(tmp)
        data = Manifest.load(generate_dataset(tmp / "data", SyntheticConfig(n_train=args.images, n_val=0, n_test=0)))
        records = data.images
        vocab = Vocabulary.build((c for r in records for c in r.captions), 1)
        cache_path = random_cache(tmp / "features.h5", [r.image_id for r in records], args.tokens, args.dim)
        config = DecoderConfig()

        def fresh_decoder():
            torch.manual_seed(0)
            return build_decoder(args.decoder, config, args.dim, args.tokens, len(vocab))

        streamed = CaptionPairs(FeatureCache(cache_path, in_memory=False), records, vocab, 30)
        in_ram = CaptionPairs(FeatureCache(cache_path, in_memory=True), records, vocab, 30)
        for pairs in (streamed, in_ram):
            pairs.set_epoch(0, 0, 1)
        ram, cached = 0.0, 0.0
        for round_ in range(args.rounds):  # alternate, keep each one's best: machine noise hits both alike
            order = [("ram", in_ram), ("cache", streamed)][:: 1 if round_ % 2 == 0 else -1]
            for label, pairs in order:
                rate = steps_per_s(fresh_decoder(), pairs, args.batch_size, args.steps)
                ram, cached = (max(ram, rate), cached) if label == "ram" else (ram, max(cached, rate))

        small = Manifest("e2e", data.image_root, records[: args.e2e_images])
        small_pairs = CaptionPairs(FeatureCache(cache_path, in_memory=False), small.images, vocab, 30)
        small_pairs.set_epoch(0, 0, 0)  # every caption, as the end-to-end loop does
        e2e_s = min(epoch_end_to_end(fresh_decoder(), small, vocab, args.batch_size, args.e2e_encoder)
                    for _ in range(args.rounds))
        cache_s = min(epoch_from_cache(fresh_decoder(), small_pairs, args.batch_size) for _ in range(args.rounds))
        peak = peak_rss_mb()

        big_n = int(args.big_cache_gb * 2**30 / (args.tokens * args.dim * 2))
        big_ids = [f"big{i}" for i in range(big_n)]
        big = random_cache(tmp / "big.h5", big_ids, args.tokens, args.dim)
        big_manifest = Manifest("big", data.image_root, [ImageRecord(i, records[k % len(records)].file, "train",
                                                                     records[k % len(records)].captions)
                                                         for k, i in enumerate(big_ids)])
        big_manifest.save(tmp / "big.json")
        rss_big = rss_streaming(big, tmp / "big.json", args.batch_size, args.steps)

        print_result({
            "decoder": args.decoder, "feature_shape": [args.tokens, args.dim], "batch_size": args.batch_size,
            "threads": torch.get_num_threads(), "images": args.images,
            "rounds": args.rounds, "steps_s_cache": round(cached, 3), "steps_s_ram": round(ram, 3), "ratio_cache_vs_ram": round(cached / ram, 3),
            "e2e_images": args.e2e_images, "e2e_encoder": args.e2e_encoder, "epoch_s_cache": round(cache_s, 3), "epoch_s_end_to_end": round(e2e_s, 3),
            "ratio_vs_end_to_end": round(e2e_s / cache_s, 2), "peak_rss_mb": round(peak, 1),
            "streamed_cache_mb": round(big.stat().st_size / 2**20, 1), "streamed_peak_rss_mb": round(rss_big, 1),
        })


if __name__ == "__main__":
    main()
