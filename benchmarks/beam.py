"""Batched beam search vs the same beam search run one image at a time, side by side in one run.

* batched:   ``decode`` with beam k over chunks of ``--batch-size`` images (what `capcache eval --beam k`
             does): every beam of every image of a chunk goes through one decoder step per token;
* per-image: ``beam_search`` called with one image at a time (k rows per decoder step);
* greedy:    batched greedy over the same chunks, for scale.

The decoder is the demo preset's attention LSTM (128-d, 6 x 6 grid of 128-d features, like the
tiny-cnn cache), trained for ``--train-steps`` on synthetic features derived from the synthetic
demo scenes (each object's colour/shape/size vectors written into its 2 x 2 cells of the grid),
with the demo's captions; ``--train-steps 0`` keeps random weights. ``--run RUN`` decodes the
test split of a real trained run instead. ``*_decoder_step_s`` is the time spent inside
``decoder.step`` (the model's own work) in each mode. Prints one JSON object as its last line;
defaults take about 1 minute with OMP_NUM_THREADS=1 and 1-2 minutes with 2 threads on 2 busy cores
(almost all of it training the decoder).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

from common import peak_rss_mb, print_result, timer  # noqa: I001  (puts the repo on sys.path)

import numpy as np
import torch

from pipeline.data.synthetic.config import GRID, SyntheticConfig
from pipeline.data.synthetic.generate import captions_for, scene_for
from pipeline.data.synthetic.scene import COLOURS, SHAPES, SIZES
from pipeline.data.vocab import Vocabulary
from pipeline.decoders import build_decoder
from pipeline.decoders.base import CaptionDecoder
from pipeline.decoding import DecodingConfig, beam_search, decode
from pipeline.training.config import PRESETS, resolve_config
from pipeline.training.data import collate
from pipeline.training.cross_entropy import caption_loss

CELLS, DIM = 6, 128  # the tiny-cnn cache's grid: 6 x 6 cells of 128 channels


def synthetic_features(n: int, offset: int, seed: int = 0) -> tuple[torch.Tensor, list[list[str]]]:
    """n scenes of the demo set (from index ``offset``) -> features [n, 36, 128] and their captions."""
    proto = torch.Generator().manual_seed(seed)
    vectors = {w: torch.randn(DIM, generator=proto) for w in (*COLOURS, *SHAPES, *SIZES, "background")}
    noise = torch.Generator().manual_seed(seed + 1 + offset)
    config = SyntheticConfig(n_train=offset + n, n_val=0, n_test=0)
    feats = vectors["background"].repeat(n, CELLS, CELLS, 1)  # [n, 6, 6, D]
    captions = []
    scale = CELLS // GRID
    for i in range(n):
        for o in scene_for(config, offset + i).objects:
            cell = vectors[o.colour] + vectors[o.shape] + 0.5 * vectors[o.size]
            feats[i, o.row * scale:(o.row + 1) * scale, o.col * scale:(o.col + 1) * scale] = cell
        captions.append(captions_for(config, offset + i))
    feats = feats + 0.3 * torch.randn(feats.shape, generator=noise)
    return feats.view(n, CELLS * CELLS, DIM), captions


def trained_decoder(steps: int, batch_size: int = 64, seed: int = 0) -> tuple[CaptionDecoder, Vocabulary, int]:
    """The demo preset's att_lstm fitted for ``steps`` Adam steps on 2,000 synthetic scenes."""
    torch.manual_seed(seed)
    config = resolve_config("demo")
    feats, captions = synthetic_features(2000, 0, seed)
    vocab = Vocabulary.build((c for caps in captions for c in caps), min_freq=1)
    decoder = build_decoder(config.decoder, config.model, DIM, CELLS * CELLS, len(vocab))
    pairs = [(i, vocab.encode(c)) for i, caps in enumerate(captions) for c in caps]
    optimizer = torch.optim.Adam(decoder.parameters(), lr=PRESETS["demo"]["optim"]["lr"])
    decoder.train()
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        chosen = [pairs[j] for j in rng.choice(len(pairs), batch_size, replace=False)]
        batch = collate([(feats[i].numpy(), [t], i) for i, t in chosen])  # features [B, 36, 128], one row a caption
        terms = caption_loss(decoder, batch, 1.0, 0.0)
        optimizer.zero_grad()
        terms.scaled(terms.tokens, terms.captions).backward()
        torch.nn.utils.clip_grad_norm_(decoder.parameters(), 5.0)
        optimizer.step()
    return decoder.eval(), vocab, config.max_decode_len


def from_run(run: str, n: int) -> tuple[CaptionDecoder, torch.Tensor, int]:
    from pipeline.cache.reader import FeatureCache
    from pipeline.data.manifest import Manifest
    from pipeline.runs.load import load_trained

    trained = load_trained(run, device="cpu")
    records = Manifest.load(trained.config.data.manifest).split("test")[:n]
    cache = FeatureCache(trained.config.data.cache)
    rows = cache.rows([r.image_id for r in records])
    feats = torch.from_numpy(np.stack([cache[int(r)] for r in rows])).float()
    return trained.decoder, feats, trained.config.max_decode_len


def time_steps(decoder: CaptionDecoder) -> dict:
    """Wrap ``decoder.step`` to add up the seconds spent inside it (in the returned dict's "s")."""
    total, step = {"s": 0.0}, decoder.step

    def timed(state, tokens):
        start = time.perf_counter()
        try:
            return step(state, tokens)
        finally:
            total["s"] += time.perf_counter() - start

    decoder.step = timed
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64, help="images per batched call (capcache eval's default)")
    parser.add_argument("--max-len", type=int, default=None, help="default: the preset's / run's max_decode_len")
    parser.add_argument("--train-steps", type=int, default=200, help="0 = random weights")
    parser.add_argument("--run", default=None, help="a trained run folder: decode its test split instead")
    args = parser.parse_args()

    with timer() as setup:
        if args.run:
            decoder, feats, max_len = from_run(args.run, args.images)
            model = f"run {args.run}"
        else:
            decoder, _, max_len = trained_decoder(args.train_steps)
            feats, _ = synthetic_features(args.images, 10_000)  # held-out scenes
            model = f"att_lstm (demo preset) trained {args.train_steps} steps on synthetic features" if args.train_steps \
                else "att_lstm (demo preset), random weights"
    max_len = args.max_len or max_len
    beam = DecodingConfig.from_beam(args.beam_size, max_len=max_len)
    chunks = [feats[s:s + args.batch_size] for s in range(0, len(feats), args.batch_size)]

    decode(decoder, chunks[0][:2], beam)  # warm-up (allocator, first-call dispatch)
    with timer() as greedy_t:
        for chunk in chunks:
            decode(decoder, chunk, replace(beam, strategy="greedy"))
    in_step = time_steps(decoder)
    with timer() as batched_t:
        batched = [seq for chunk in chunks for seq in decode(decoder, chunk, beam)[0]]
    batched_step_s, in_step["s"] = in_step["s"], 0.0
    with timer() as per_image_t:
        per_image = [beam_search(decoder, feats[i:i + 1], beam_size=args.beam_size, max_len=max_len)[0][0]
                     for i in range(len(feats))]
    per_image_step_s = in_step["s"]
    same = [b == p.tokens for b, p in zip(batched, per_image)]
    print_result({
        "model": model, "device": "cpu", "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "images": len(feats), "beam_size": args.beam_size, "batch_size": args.batch_size, "max_len": max_len,
        "batched_s": round(batched_t["s"], 3), "per_image_s": round(per_image_t["s"], 3),
        "speedup": round(per_image_t["s"] / batched_t["s"], 2),
        "greedy_batched_s": round(greedy_t["s"], 3),
        # seconds inside decoder.step: the model's own work, which batching can only amortise so far
        "batched_decoder_step_s": round(batched_step_s, 3), "per_image_decoder_step_s": round(per_image_step_s, 3),
        "identical": all(same), "n_identical": sum(same),
        "mean_words": round(float(np.mean([len(p.tokens) for p in per_image])), 2),
        "ended": sum(p.ended for p in per_image),
        "setup_s": round(setup["s"], 1), "peak_rss_mb": round(peak_rss_mb(), 1),
    })


if __name__ == "__main__":
    main()
