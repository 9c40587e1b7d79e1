"""Self-critical training's reward cost, measured side by side in one run (issue 15).

* reward share: the seconds spent computing CIDEr-D rewards as a share of whole SCST steps
  (sampling N = 5 captions per image, rewards, the teacher-forced re-scoring forward, backward,
  optimiser step) of the ``cpu-lstm-att`` decoder, 25 images a step (``batch_size`` 128 / 5),
  49 x 1280 features, against real Flickr8k references (``Flickr8k.token.txt``; the synthetic
  demo captions where the file is absent). A fresh decoder samples long, varied captions, so
  its rewards cost more than a trained one's: the share is an upper bound;
* fast CIDEr vs pycocoevalcap: the same candidates (other images' real captions, one per sample)
  scored by ``CiderReward`` (references prepared once, as during training: ``ratio_vs_pycocoevalcap``;
  and preparing them too: ``ratio_vs_pycocoevalcap_cold``) against pycocoevalcap's ``Cider`` on
  the same batch, which recounts the document frequencies and re-vectorises every reference.

Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from common import REPO, print_result, timer  # noqa: I001  (puts the repo on sys.path)

import numpy as np
import torch
from pycocoevalcap.cider.cider import Cider

from pipeline.data.text import karpathy_words
from pipeline.data.vocab import Vocabulary
from pipeline.decoders import build_decoder
from pipeline.distributed import Collective
from pipeline.evaluation.cider_d import DocumentFrequency
from pipeline.config import merge
from pipeline.training.config import SCST_FINETUNE, TrainConfig, resolve_config
from pipeline.training.data import Batch
from pipeline.data.word_ids import reference_ids
from pipeline.training.scst import CiderReward, scst_loss

TOKEN_FILE = REPO.parent / "shared" / "data" / "flickr8k_text" / "Flickr8k.token.txt"
TOKENS, DIM = 49, 1280  # efficientnet_lite0's 7 x 7 x 1280 grid


def load_captions(path: Path, images: int) -> list[list[str]]:
    """Per image its reference captions: Flickr8k's when the file is there, else the demo's synthetic ones."""
    if path.is_file():
        by_image: dict[str, list[str]] = defaultdict(list)
        for line in path.read_text(encoding="utf-8").splitlines():
            name, _, caption = line.partition("\t")
            by_image[name.split("#")[0]].append(caption)
        return list(by_image.values())[:images]
    from pipeline.data.synthetic import SyntheticConfig
    from pipeline.data.synthetic.generate import captions_for
    return [captions_for(SyntheticConfig(), i) for i in range(images)]


def scst_config() -> TrainConfig:
    """What `capcache finetune RUN --scst` makes of a cpu-lstm-att run."""
    return TrainConfig.from_dict(merge(resolve_config("cpu-lstm-att").to_dict(), SCST_FINETUNE)).check()


class TimedReward(CiderReward):
    """CiderReward that adds the seconds of each call to ``seconds``."""
    seconds = 0.0

    def __call__(self, *args, **kwargs):
        with timer() as t:
            out = super().__call__(*args, **kwargs)
        self.seconds += t["s"]
        return out


def reward_share(captions: list[list[str]], steps: int) -> dict:
    config = scst_config()
    vocab = Vocabulary.build((c for caps in captions for c in caps), config.data.min_freq)
    references = reference_ids(captions, vocab, config.scst.end_token)
    rewards = TimedReward(references, DocumentFrequency.from_references(references), config.scst.end_token)
    torch.manual_seed(0)
    decoder = build_decoder(config.decoder, config.model, DIM, TOKENS, len(vocab)).train()
    optimizer = torch.optim.Adam(decoder.parameters(), lr=config.optim.lr)
    images = config.batch_size // config.scst.samples
    rng = np.random.default_rng(0)
    total = 0.0
    for step in range(steps + 1):  # step 0 warms up (allocator, first reference vectors) and is not counted
        chosen = torch.from_numpy(rng.choice(len(captions), images, replace=False))
        batch = Batch(torch.randn(images, TOKENS, DIM), torch.zeros(images, 2, dtype=torch.long),
                      torch.arange(images), chosen)
        with timer() as t:
            out = scst_loss(decoder, batch, rewards, config, Collective(), torch.device("cpu"))
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
        if step == 0:
            rewards.seconds = 0.0
            continue
        total += t["s"]
    return {"reward_share": rewards.seconds / total, "scst_step_s": total / steps,
            "reward_s_per_step": rewards.seconds / steps, "images_per_step": images,
            "samples_per_step": images * config.scst.samples}


def fast_vs_pycocoevalcap(captions: list[list[str]], samples: int, rounds: int) -> dict:
    """Candidates: for each of ``samples`` samples, another image's first caption, scored against
    its own image's references (the other captions)."""
    vocab = Vocabulary.build((c for caps in captions for c in caps), 1)
    references = reference_ids([caps[1:] for caps in captions], vocab, end_token=False)
    df = DocumentFrequency.from_references(references)
    rng = np.random.default_rng(1)
    images = rng.choice(len(captions), samples).tolist()
    candidates = [captions[int(j)][0] for j in rng.choice(len(captions), samples)]
    candidate_ids = [reference_ids([[c]], vocab, False)[0][0] for c in candidates]
    gts = {k: [" ".join(karpathy_words(c)) for c in captions[i][1:]] for k, i in enumerate(images)}
    res = {k: [" ".join(karpathy_words(c))] for k, c in enumerate(candidates)}
    best = {"ours": float("inf"), "cold": float("inf"), "pycocoevalcap": float("inf")}
    for _ in range(rounds):
        warm = CiderReward(references, df, end_token=False)
        with timer() as cold:
            warm(images, candidate_ids, [True] * samples)  # prepares each image's references on first use
        with timer() as ours:
            CiderReward.__call__(warm, images, candidate_ids, [True] * samples)
        with timer() as theirs:
            Cider().compute_score(gts, res)
        best = {"ours": min(best["ours"], ours["s"]), "cold": min(best["cold"], cold["s"]),
                "pycocoevalcap": min(best["pycocoevalcap"], theirs["s"])}
    return {"ratio_vs_pycocoevalcap": best["pycocoevalcap"] / best["ours"],
            "ratio_vs_pycocoevalcap_cold": best["pycocoevalcap"] / best["cold"],
            "fast_cider_ms": best["ours"] * 1e3, "fast_cider_cold_ms": best["cold"] * 1e3,
            "pycocoevalcap_cider_ms": best["pycocoevalcap"] * 1e3, "candidates": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captions", type=Path, default=TOKEN_FILE, help="Flickr8k.token.txt")
    parser.add_argument("--images", type=int, default=6000, help="reference images (Flickr8k train: 6000)")
    parser.add_argument("--steps", type=int, default=10, help="timed SCST steps")
    parser.add_argument("--samples", type=int, default=125, help="candidates in the CIDEr comparison (one SCST batch)")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds in the CIDEr comparison")
    args = parser.parse_args()
    captions = load_captions(args.captions, args.images)
    result = {"reference_source": "flickr8k" if args.captions.is_file() else "synthetic", "images": len(captions),
              "threads": torch.get_num_threads()}
    result.update(fast_vs_pycocoevalcap(captions, args.samples, args.rounds))
    result.update(reward_share(captions, args.steps))
    print_result(result)


if __name__ == "__main__":
    main()
