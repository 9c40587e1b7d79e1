"""`capcache import conceptual-captions` at Conceptual Captions' size: time and peak memory.

Generates a TSV of ``--rows`` lines (default 3,318,333, the size of Google's
Train_GCC-training.tsv) shaped like the real ones: captions of 8-15 lowercase words, URLs of
about 80 characters on a dozen hosts, one row in 50,000 malformed. Each import runs as the user
runs it, ``cli.py import conceptual-captions TSV --out DIR/cc.jsonl``, in a child process whose
own peak RSS comes from its rusage (``os.wait4``). The same import of the first tenth of the lines
runs beside it: bounded memory means both peaks are about the same (the interpreter and its
imports), where a manifest held in memory would grow tenfold. The TSV is written by another child,
so this process stays small: Linux carries a parent's resident size at fork into the child's
ru_maxrss, and ``parent_rss_mib`` (this process's peak) is that floor. Prints one JSON object as
its last line.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, peak_rss_mb, print_result  # noqa: I001  (puts the repo on sys.path)

WORDS = ("a man woman person dog cat car tree house street city beach sea sky cloud mountain river road building "
         "old young little big red blue green white black yellow front view of the in on at with and during "
         "walking sitting standing playing running holding looking wearing riding flying swimming smiling "
         "background sunset night morning winter summer snow rain water field park garden table window door "
         "food flowers bird horse boat train bridge tower church stage crowd player team game football").split()
HOSTS = ("i.pinimg.com", "lh6.googleusercontent.com", "farm5.staticflickr.com", "media.gettyimages.com",
         "78.media.tumblr.com", "www.lovethispic.com", "img.huffingtonpost.com", "cdn.images.express.co.uk",
         "thumb1.shutterstock.com", "static.independent.co.uk", "i.dailymail.co.uk", "ak6.picdn.net")


def write_tsv(path: Path, rows: int, seed: int = 0) -> None:
    """Realistic lines, one in 50,000 malformed (no tab), written in chunks so this process stays small."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        chunk = []
        for i in range(rows):
            caption = " ".join(rng.choices(WORDS, k=rng.randint(8, 15)))
            url = f"https://{rng.choice(HOSTS)}/{rng.getrandbits(64):016x}/{rng.getrandbits(96):024x}-photo.jpg"
            chunk.append(caption if i % 50_000 == 49_999 else f"{caption}\t{url}")
            if len(chunk) == 100_000:
                f.write("\n".join(chunk) + "\n")
                chunk = []
        if chunk:
            f.write("\n".join(chunk) + "\n")


def run_import(tsv: Path, out: Path) -> dict:
    """The CLI import in a child process: wall seconds and the child's own peak RSS (MiB)."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "import", "conceptual-captions", str(tsv),
                              "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    output = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"import failed ({child.returncode}):\n{output}")
    with open(out, "rb") as f:
        records = sum(1 for _ in f) - 1  # the header line
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "records": records,
            "manifest_mib": round(out.stat().st_size / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_318_333)
    parser.add_argument("--dir", type=Path, default=None, help="Where the TSVs and manifests go (default: a temp folder).")
    parser.add_argument("--write-tsv", type=Path, default=None, help=argparse.SUPPRESS)  # the writing child
    args = parser.parse_args()
    if args.write_tsv is not None:
        return write_tsv(args.write_tsv, args.rows)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        full, tenth = Path(tmp) / "Train_GCC-training.tsv", Path(tmp) / "tenth.tsv"
        subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--write-tsv", str(full)], check=True)
        with open(full, encoding="utf-8") as f, open(tenth, "w", encoding="utf-8") as g:
            g.writelines(line for _, line in zip(range(args.rows // 10), f))
        small = run_import(tenth, Path(tmp) / "tenth.jsonl")
        big = run_import(full, Path(tmp) / "cc.jsonl")
        print_result({"rows": args.rows, "tsv_mib": round(full.stat().st_size / 2**20, 1), **big,
                      "rows_per_s": round(args.rows / big["seconds"]),
                      "rows_tenth": args.rows // 10, "seconds_tenth": small["seconds"],
                      "peak_rss_mib_tenth": small["peak_rss_mib"],
                      "rss_ratio_full_vs_tenth": round(big["peak_rss_mib"] / small["peak_rss_mib"], 2),
                      "parent_rss_mib": round(peak_rss_mb(), 1), "load_average_1min": os.getloadavg()[0]})


if __name__ == "__main__":
    main()
