"""COCO caption tokenisation: Stanford's PTB tokenizer exactly as pycocoevalcap runs it, minus
pycocoevalcap's temporary file inside site-packages.

pycocoevalcap's ``PTBTokenizer`` writes its input beside its jar, which fails on read-only installs
(Kaggle, conda, system Python). ``ptb_tokenize`` runs the same Java class with the same flags on a
file in the system temp dir and removes the same punctuation, so tokens, and hence scores, are
identical to the official ones. It also collapses white space first: a caption holding "\\r"
would otherwise become two lines in Java and shift every later caption onto the wrong image.

Without Java the PTB tokenizer cannot run, and losing BLEU, ROUGE-L and CIDEr with it would be
worse than an approximation: ``approximate_ptb`` (``pipeline.data.text.ptb_words``, which the
``ptb`` training tokenizer also uses) reproduces what PTB does to ordinary English captions
(lower-casing, splitting off punctuation and clitics, naming brackets) but not every corner
("slip 'n' slide", "@home"), so ``tokenize`` reports when it was used.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pycocoevalcap.tokenizer import ptbtokenizer

from pipeline.data.text import ptb_words
from pipeline.evaluation.java import JavaToolError, require_java, stderr_reason

PTB_JAR = Path(ptbtokenizer.__file__).with_name(ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
_PTB_CLASS_AND_FLAGS = ("edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase")
_PTB_TIMEOUT_S = 600

@dataclass(frozen=True)
class Tokenized:
    captions: list[str]
    fallback_reason: str | None  # why approximate_ptb stood in for PTB; None when PTB ran


def tokenize(captions: Sequence[str]) -> Tokenized:
    """PTB tokens when Java can give them, else the approximation and the reason."""
    try:
        return Tokenized(ptb_tokenize(captions), None)
    except JavaToolError as exc:
        return Tokenized([approximate_ptb(c) for c in captions], str(exc))


def ptb_tokenize(captions: Sequence[str]) -> list[str]:
    lines = _run_ptb([" ".join(c.split()) for c in captions], require_java())
    return [_drop_punctuation(line) for line in lines]


def approximate_ptb(caption: str) -> str:
    return " ".join(ptb_words(caption))


def _run_ptb(lines: list[str], java: str) -> list[str]:
    """One tokenised line per input line; each line is newline-terminated so that a blank last
    caption still comes back as its own (blank) line and the count check below stays exact."""
    with tempfile.TemporaryDirectory(prefix="capcache-ptb-") as tmp:
        path = Path(tmp, "captions.txt")
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        command = [java, "-cp", str(PTB_JAR), *_PTB_CLASS_AND_FLAGS, str(path)]
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=_PTB_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise JavaToolError(f"PTB tokenizer gave no answer within {_PTB_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise JavaToolError(f"PTB tokenizer failed: {stderr_reason(done.stderr, f'exit status {done.returncode}')}")
    out = done.stdout.decode("utf-8").split("\n")
    if len(out) != len(lines) + 1:
        raise JavaToolError(f"PTB tokenizer returned {len(out) - 1} lines for {len(lines)} captions")
    return out[:-1]


def _drop_punctuation(line: str) -> str:
    """pycocoevalcap's own post-processing, token for token."""
    return " ".join(w for w in line.rstrip().split(" ") if w not in ptbtokenizer.PUNCTUATIONS)
