"""Training speed from the cache, measured side by side in one run.

* cache vs RAM: the same decoder, same batches, features streamed from the HDF5 file (default
  DataLoader settings, i.e. `data.workers` = 0) vs the whole cache loaded into memory first;
* cache vs end to end: one epoch over a small image set, features from the cache vs recomputed
  through a frozen ResNet-50 for every batch (what training without a cache costs);
* memory: peak RSS of a fresh process streaming a cache larger than its RAM budget;
* grouped vs flat (issue 12): the same decoder on the same (image, caption) pairs, 5 captions an
  image, batches of images with all their captions (per-image work done once) vs batches of
  independent pairs, for the ``resnet-lstm-att`` architecture (conv projection + 2-layer grid
  Transformer encoder) and the plain attention LSTM; captions/s, since a grouped batch of
  ``--group-batch-size`` captions rounds to whole images;
* fast vs torch dropout: the CPU presets' decoders (``cpu-transformer``, ``cpu-lstm-att``) with
  ``FastDropout`` (what every registered decoder gets) vs PyTorch's ``nn.Dropout``, grouped
  batches, same weights and pairs;
* FLOP share: each of those training steps' FLOP/s (``FlopCounterMode``, forward + backward) as a
  share of a large fp32 matmul's FLOP/s measured in the same run: how far the loop is from what
  the machine can do.

The training step is the library's own (`caption_loss`, the registered decoder, `CaptionGroups`).
Prints one JSON object as its last line; defaults finish in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

from common import peak_rss_mb, print_result, timer  # noqa: I001  (puts the repo on sys.path)

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from pipeline.cache.key import CacheSpec
from pipeline.cache.reader import FeatureCache
from pipeline.cache.writer import CacheWriter
from pipeline.data.manifest import ImageRecord, Manifest
from pipeline.data.synthetic import SyntheticConfig, generate_dataset
from pipeline.data.vocab import Vocabulary
from pipeline.decoders import build_decoder
from pipeline.decoders.config import DecoderConfig
from pipeline.decoders.dropout import FastDropout
from pipeline.encoders import build_encoder
from pipeline.extract.images import load_image
from pipeline.training.config import resolve_config
from pipeline.training.data import Batch, CaptionGroups, collate, items_per_batch
from pipeline.training.cross_entropy import caption_loss

MAX_WORDS = 30


def random_cache(path: Path, ids: list[str], n_tokens: int, dim: int, seed: int = 0) -> Path:
    """A complete cache of random float16 features (the speed of reading does not depend on values)."""
    spec = CacheSpec({"encoder": "random-features", "tokens": n_tokens, "dim": dim}, "float16", path.stem, path.stem, len(ids))
    rng = np.random.default_rng(seed)
    with CacheWriter(path, spec, ids, n_tokens, dim) as writer:
        for start in range(0, len(ids), 256):
            rows = np.arange(start, min(start + 256, len(ids)))
            writer.write(rows, rng.standard_normal((len(rows), n_tokens, dim), dtype=np.float32))
    return path


def fresh_decoder(name: str, config: DecoderConfig, n_tokens: int, dim: int, vocab: Vocabulary):
    """The same initial weights for every variant of a comparison (seeded just before building)."""
    torch.manual_seed(0)
    return build_decoder(name, config, dim, n_tokens, len(vocab))


def architectures() -> dict[str, tuple[str, DecoderConfig]]:
    """Issue 12's two speed targets, by field suffix -> (decoder, config): the ``resnet-lstm-att``
    preset's model (conv projection + 2-layer grid Transformer encoder, whose per-image work
    grouping saves) and the plain attention LSTM (only its attention keys are per image)."""
    preset = resolve_config("resnet-lstm-att")
    return {"lstm_att_grid": (preset.decoder, preset.model), "att_lstm": ("att_lstm", DecoderConfig())}


def train_step(decoder, optimizer: torch.optim.Optimizer, batch: Batch) -> None:
    """One teacher-forced step, the same in every variant measured; the loss is the training
    loop's (objective per token plus regularisation per caption, over this batch)."""
    terms = caption_loss(decoder, batch, 1.0, 0.0)
    optimizer.zero_grad()
    terms.scaled(terms.tokens, terms.captions).backward()
    optimizer.step()


@dataclass
class Rate:
    """One measurement of a training loop: its speed, and the work (FLOPs) each of its steps does."""

    steps_s: float
    captions_s: float
    flops_per_step: float  # forward + backward of one batch (the warm-up's), as FlopCounterMode counts them

    def gflops(self) -> float:
        """FLOP/s reached, in GFLOP/s: the FLOPs counted on one step times the steps timed per second."""
        return self.flops_per_step * self.steps_s / 1e9


def endless_batches(items: CaptionGroups, batch_items: int) -> Iterator[Batch]:
    """Batches of ``batch_items`` items in the epoch's order, starting over at its end, so that
    the number of steps measured never depends on the size of the set."""
    while True:
        yield from DataLoader(items, batch_size=batch_items, collate_fn=collate)


def train_rate(decoder, items: CaptionGroups, batch_items: int, steps: int) -> Rate:
    """Steps/s and captions/s of ``decoder`` over ``steps`` batches from ``items``, after one
    warm-up step whose FLOPs are counted (so the counter's overhead stays out of the timing)."""
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-4)
    batches = endless_batches(items, batch_items)
    decoder.train()
    counter = FlopCounterMode(display=False)
    with counter:
        train_step(decoder, optimizer, next(batches))
    captions, start = 0, time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
        captions += batch.tokens.size(0)
        train_step(decoder, optimizer, batch)
    seconds = time.perf_counter() - start
    return Rate(steps / seconds, captions / seconds, float(counter.get_total_flops()))


def best_alternating(variants: dict[str, Callable[[], Rate]], rounds: int) -> dict[str, Rate]:
    """Each variant measured once a round, the order reversed every other round, keeping each
    one's best (by captions/s): noise on a shared machine hits all of them alike, and the best
    run is the least disturbed one."""
    best: dict[str, Rate] = {}
    labels = list(variants)
    for round_ in range(max(rounds, 1)):
        for label in labels[:: 1 if round_ % 2 == 0 else -1]:
            rate = variants[label]()
            if label not in best or rate.captions_s > best[label].captions_s:
                best[label] = rate
    return best


def caption_items(cache: FeatureCache, records: list[ImageRecord], vocab: Vocabulary, captions_per_image: int,
                  grouped: bool) -> CaptionGroups:
    """Epoch 0 (seed 0) of ``records``: the same draw of pairs whether grouped or flat."""
    items = CaptionGroups(cache, records, vocab, MAX_WORDS)
    items.set_epoch(0, 0, captions_per_image, grouped)
    return items


def grouped_vs_flat(cache: FeatureCache, records: list[ImageRecord], vocab: Vocabulary,
                    decoder: tuple[str, DecoderConfig], batch_size: int, captions_per_image: int, steps: int,
                    rounds: int) -> dict[str, Rate]:
    """Best Rate of grouped and of flat batches over the same pairs, from the same initial weights;
    both batch ``batch_size`` captions (rounded to whole images when grouped, as training does)."""
    def measure(grouped: bool) -> Rate:
        items = caption_items(cache, records, vocab, captions_per_image, grouped)
        model = fresh_decoder(*decoder, cache.n_tokens, cache.dim, vocab)
        return train_rate(model, items, items_per_batch(batch_size, items.captions_per_item()), steps)

    return best_alternating({"grouped": partial(measure, True), "flat": partial(measure, False)}, rounds)


def with_torch_dropout(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with PyTorch's own dropout back in place of ``FastDropout`` (same rates): the
    subclass only overrides ``forward``, so resetting the class is the whole change."""
    for module in model.modules():
        if isinstance(module, FastDropout):
            module.__class__ = torch.nn.Dropout
    return model


def fast_vs_torch_dropout(cache: FeatureCache, records: list[ImageRecord], vocab: Vocabulary, preset: str,
                          captions_per_image: int, steps: int, rounds: int) -> dict[str, Rate]:
    """Best Rate of ``preset``'s decoder with each dropout, at the preset's batch size."""
    config = resolve_config(preset)

    def measure(fast: bool) -> Rate:
        items = caption_items(cache, records, vocab, captions_per_image, True)
        model = fresh_decoder(config.decoder, config.model, cache.n_tokens, cache.dim, vocab)
        model = model if fast else with_torch_dropout(model)
        return train_rate(model, items, items_per_batch(config.batch_size, items.captions_per_item()), steps)

    return best_alternating({"fast": partial(measure, True), "torch": partial(measure, False)}, rounds)


def matmul_gflops(size: int, reps: int, rounds: int) -> float:
    """Best fp32 GFLOP/s of ``reps`` [size, size] @ [size, size] products: what these cores reach
    on the work that suits them best, the denominator of ``flop_share``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best = 0.0
    for _ in range(max(rounds, 1)):
        with timer() as t:
            for _ in range(reps):
                a @ b
        best = max(best, 2 * size**3 * reps / t["s"] / 1e9)
    return best


def grouping_fields(rates: dict[str, dict[str, Rate]], peak_gflops: float, matmul_size: int) -> dict:
    """The JSON fields of the grouped-vs-flat comparison and of ``flop_share``, per architecture."""
    out: dict = {"flop_share": {"matmul_gflops": round(peak_gflops, 1), "matmul_size": matmul_size}}
    for arch, by_mode in rates.items():
        grouped, flat = by_mode["grouped"], by_mode["flat"]
        out[f"ratio_grouped_vs_flat_{arch}"] = round(grouped.captions_s / flat.captions_s, 3)
        out[f"ratio_grouped_vs_flat_steps_{arch}"] = round(grouped.steps_s / flat.steps_s, 3)
        out[f"captions_s_grouped_{arch}"] = round(grouped.captions_s, 1)
        out[f"captions_s_flat_{arch}"] = round(flat.captions_s, 1)
        out["flop_share"][arch] = {mode: {"gflop_per_step": round(r.flops_per_step / 1e9, 2),
                                          "gflops": round(r.gflops(), 2), "share": round(r.gflops() / peak_gflops, 4)}
                                   for mode, r in by_mode.items()}
    return out


def epoch_end_to_end(decoder, manifest: Manifest, vocab: Vocabulary, batch_size: int, encoder_name: str) -> float:
    """Seconds for one epoch where every batch's images go through the frozen encoder first
    (one pair per row, as the flat cached epoch it is compared with)."""
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
            tokens = _tokens(chunk, vocab)  # [B, T]
            rows = torch.arange(len(chunk))
            train_step(decoder, optimizer, Batch(feats.clone(), tokens, rows, rows))
    return t["s"]


def _tokens(chunk: list[tuple[ImageRecord, str]], vocab: Vocabulary) -> torch.Tensor:
    """Padded token ids [B, T] of the chunk's captions, exactly as the cached path builds them."""
    return collate([(np.zeros(1, np.float16), [vocab.encode(c, MAX_WORDS)], i) for i, (_, c) in enumerate(chunk)]).tokens


def epoch_from_cache(decoder, items: CaptionGroups, batch_size: int) -> float:
    """Seconds for one epoch over ``items`` read from the cache."""
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-4)
    decoder.train()
    with timer() as t:
        for batch in DataLoader(items, batch_size=batch_size, collate_fn=collate):
            train_step(decoder, optimizer, batch)
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
train_rate(decoder, caption_items(cache, manifest.images, vocab, 1, False), {batch_size}, {steps})
print(peak_rss_mb())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", default="att_lstm")
    parser.add_argument("--images", type=int, default=2000, help="images (cache/RAM, grouped/flat)")
    parser.add_argument("--tokens", type=int, default=49)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="alternating cache/RAM, grouped/flat runs; best of each")
    parser.add_argument("--e2e-images", type=int, default=16, help="images in the end-to-end epoch comparison")
    parser.add_argument("--e2e-encoder", default="resnet50", help="frozen encoder of the end-to-end loop")
    parser.add_argument("--big-cache-gb", type=float, default=1.0, help="size of the streamed cache for the RSS probe")
    parser.add_argument("--group-dim", type=int, default=1280, help="grouped-vs-flat feature size (efficientnet_lite0)")
    parser.add_argument("--group-batch-size", type=int, default=64, help="captions per batch for grouped-vs-flat")
    parser.add_argument("--captions-per-image", type=int, default=5, help="for grouped-vs-flat (the demo set has 5)")
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n fp32 matmul of flop_share")
    parser.add_argument("--matmul-reps", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory(prefix="capcache-bench-") as tmp:
        tmp = Path(tmp)
        data = Manifest.load(generate_dataset(tmp / "data", SyntheticConfig(n_train=args.images, n_val=0, n_test=0)))
        records = data.images
        vocab = Vocabulary.build((c for r in records for c in r.captions), 1)
        cache_path = random_cache(tmp / "features.h5", [r.image_id for r in records], args.tokens, args.dim)
        decoder = partial(fresh_decoder, args.decoder, DecoderConfig(), args.tokens, args.dim, vocab)

        streamed = caption_items(FeatureCache(cache_path, in_memory=False), records, vocab, 1, False)
        in_ram = caption_items(FeatureCache(cache_path, in_memory=True), records, vocab, 1, False)
        by_source = best_alternating({"ram": lambda: train_rate(decoder(), in_ram, args.batch_size, args.steps),
                                      "cache": lambda: train_rate(decoder(), streamed, args.batch_size, args.steps)},
                                     args.rounds)
        ram, cached = by_source["ram"].steps_s, by_source["cache"].steps_s

        group_path = cache_path if args.group_dim == args.dim else \
            random_cache(tmp / "group.h5", [r.image_id for r in records], args.tokens, args.group_dim)
        group_cache = FeatureCache(group_path, in_memory=True)  # training's default (data.in_memory)
        by_grouping = {arch: grouped_vs_flat(group_cache, records, vocab, spec, args.group_batch_size,
                                             args.captions_per_image, args.steps, args.rounds)
                       for arch, spec in architectures().items()}
        by_dropout = {preset: fast_vs_torch_dropout(group_cache, records, vocab, preset, args.captions_per_image,
                                                    args.steps, args.rounds)
                      for preset in ("cpu-transformer", "cpu-lstm-att")}
        peak_gflops = matmul_gflops(args.matmul_size, args.matmul_reps, args.rounds)

        small = Manifest("e2e", data.image_root, records[: args.e2e_images])
        small_pairs = caption_items(FeatureCache(cache_path, in_memory=False), small.images, vocab, 0, False)
        # every caption, one pair per row, as the end-to-end loop does
        e2e_s = min(epoch_end_to_end(decoder(), small, vocab, args.batch_size, args.e2e_encoder)
                    for _ in range(args.rounds))
        cache_s = min(epoch_from_cache(decoder(), small_pairs, args.batch_size) for _ in range(args.rounds))
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
            "group_feature_shape": [args.tokens, args.group_dim], "group_batch_size": args.group_batch_size,
            "captions_per_image": args.captions_per_image,
            **grouping_fields(by_grouping, peak_gflops, args.matmul_size),
            **{f"ratio_fast_vs_torch_dropout_{preset.replace('-', '_')}":
               round(rates["fast"].captions_s / rates["torch"].captions_s, 3) for preset, rates in by_dropout.items()},
        })


if __name__ == "__main__":
    main()
