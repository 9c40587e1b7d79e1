"""`capcache extract --plan` on a COCO-sized manifest: seconds from the command to the answer.

Builds a 123,287-image manifest (COCO train+val 2014's count, five captions each) whose files are
hard links to a few small JPEGs (real files, so every stat finds one), then runs the plan command in
fresh processes: once with an empty $CAPCACHE_HOME (the encoder is built and probed, torch and
torchvision imported) and twice more, when the encoder's facts are remembered (the case the
target is about: a plan needs no torch). Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, print_result, timer  # noqa: I001  (puts the repo on sys.path)

from PIL import Image

from pipeline.data.manifest import ImageRecord, Manifest


_MAX_LINKS = 60_000  # ext4 allows 65,000 links to one file


def coco_sized(folder: Path, n: int) -> Path:
    images = folder / "images"
    images.mkdir(parents=True)
    records = []
    for i in range(n):
        source = folder / f"{i // _MAX_LINKS}.jpg"
        if i % _MAX_LINKS == 0:
            Image.new("RGB", (640, 480), (90, 120, i % 255)).save(source)
        name = f"COCO_train2014_{i:012d}.jpg"
        os.link(source, images / name)
        records.append(ImageRecord(f"{i:012d}", name, "train", [f"a photo of scene {i} with a few objects"] * 5))
    path = folder / "coco.json"
    Manifest("coco", str(images), records).save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=123_287)
    parser.add_argument("--encoder", default="efficientnet_lite0")
    parser.add_argument("--processes", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="capcache-plan-") as tmp:
        tmp = Path(tmp)
        manifest = coco_sized(tmp, args.images)
        env = {**os.environ, "CAPCACHE_HOME": str(tmp / "home")}
        command = [sys.executable, str(REPO / "cli.py"), "extract", str(manifest), "--encoder", args.encoder,
                   "--plan", "--processes", str(args.processes), "--cache-dir", str(tmp / "cache")]
        seconds = []
        for _ in range(3):
            with timer() as t:
                run = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=REPO)
            seconds.append(round(t["s"], 2))
        print(run.stdout)
        print_result({"images": args.images, "encoder": args.encoder, "processes": args.processes,
                      "seconds_first_plan": seconds[0], "seconds_remembered": seconds[1:],
                      "cache_dir_written": (tmp / "cache").exists(), "load_average": os.getloadavg()[0]})


if __name__ == "__main__":
    main()
