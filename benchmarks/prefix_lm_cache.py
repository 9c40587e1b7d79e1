"""The prefix LM's key/value cache against recomputing the whole sequence each step, side by side.

Both modes decode the same images with the same decoder (``kv_cache`` switched on the one
module): with the cache a step feeds one token against the cached keys and values; without it
every step reruns the LM over the prefix and all tokens so far, as ClipCap's own generation loop
does. Captions are held at exactly ``--length`` tokens (``<end>`` banned before the last step), the
length the target names, and decoded batched as `capcache eval` does (``--batch-size`` images per
call), greedy and with beam ``--beam-size``. The captions of both modes must be identical.

The decoder is the ``cpu-prefix-lm`` preset (a 3-layer 256-wide GPT-2 over a 3,000-id BPE, the
49 grid cells as its prefix) with random weights over random 7 x 7 x 1280 features
(efficientnet_lite0's grid), or ``--run RUN``'s trained decoder over its val images.
Prints one JSON object as its last line; about 2 minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import os

from common import peak_rss_mb, print_result, timer  # noqa: I001  (puts the repo on sys.path)

import numpy as np
import torch

from pipeline.data.subword import LmTokens
from pipeline.decoders import build_decoder
from pipeline.decoding import DecodingConfig, decode
from pipeline.training.config import resolve_config

GRID, FEATURE_DIM, VOCAB = 49, 1280, 3000


def preset_decoder(seed: int = 0):
    from pipeline.decoders.prefix_lm.language_model import with_scratch_lm
    torch.manual_seed(seed)
    config = resolve_config("cpu-prefix-lm")
    model = with_scratch_lm(config.model, LmTokens(offset=0, bos=1, eos=2, sep=4, size=VOCAB))
    decoder = build_decoder("prefix_lm", model, FEATURE_DIM, GRID, VOCAB).eval()
    return decoder, "cpu-prefix-lm preset, random weights"


def run_decoder(run: str, n: int):
    from pipeline.cache.reader import FeatureCache
    from pipeline.data.manifest import Manifest
    from pipeline.runs.load import load_trained

    trained = load_trained(run, device="cpu")
    records = Manifest.load(trained.config.data.manifest).split("val")[:n]
    cache = FeatureCache(trained.config.data.cache)
    feats = torch.from_numpy(np.stack([cache[int(r)] for r in cache.rows([r.image_id for r in records])])).float()
    return trained.decoder, feats, f"run {run}"


def timed_decode(decoder, chunks: list[torch.Tensor], config: DecodingConfig, cached: bool) -> tuple[float, list]:
    decoder.kv_cache = cached
    with torch.no_grad(), timer() as t:
        captions = [seq for chunk in chunks for seq in decode(decoder, chunk, config)[0]]
    return t["s"], captions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--length", type=int, default=20, help="tokens per caption, <end> included")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--beam-size", type=int, default=3)
    parser.add_argument("--run", default=None, help="a trained prefix_lm run: decode its val images")
    args = parser.parse_args()

    if args.run:
        decoder, feats, model = run_decoder(args.run, args.images)
    else:
        decoder, model = preset_decoder()
        feats = torch.randn(args.images, GRID, FEATURE_DIM, generator=torch.Generator().manual_seed(1))
    chunks = [feats[s:s + args.batch_size] for s in range(0, len(feats), args.batch_size)]
    fixed = {"max_len": args.length, "min_len": args.length - 1}  # every caption runs the full length
    greedy = DecodingConfig(strategy="greedy", **fixed)
    beam = DecodingConfig.from_beam(args.beam_size, **fixed)
    timed_decode(decoder, [chunks[0][:2]], greedy, True)  # warm-up (allocator, first-call dispatch)

    result = {"model": model, "device": "cpu", "threads": torch.get_num_threads(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "images": len(feats),
              "length": args.length, "batch_size": args.batch_size, "beam_size": args.beam_size}
    for name, config in (("greedy", greedy), ("beam", beam)):
        cached_s, cached = timed_decode(decoder, chunks, config, True)
        full_s, full = timed_decode(decoder, chunks, config, False)
        result.update({f"{name}_cached_s": round(cached_s, 3), f"{name}_recompute_s": round(full_s, 3),
                       f"{name}_speedup": round(full_s / cached_s, 2), f"{name}_identical": cached == full,
                       f"{name}_mean_tokens": round(float(np.mean([len(c) for c in cached])), 2)})
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print_result(result)


if __name__ == "__main__":
    main()
