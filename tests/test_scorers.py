"""Caption metrics: identical to pycocoevalcap called directly, and still useful without Java.

METEOR's JVM takes ~10 s to start, so the Flickr8k sample is scored once per module (``scored``,
on a simulated read-only install) and once by pycocoevalcap directly (``direct``); the other
tests use two-image inputs or fail the JVM on purpose.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from subprocess import Popen
from types import SimpleNamespace
from typing import Callable, Iterator

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer import ptbtokenizer
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from pipeline.errors import CapcacheError
from pipeline.evaluation import meteor as meteor_module
from pipeline.evaluation import spice as spice_module
from pipeline.evaluation.agreement import kendall_tau_c
from pipeline.evaluation.java import JavaToolError
from pipeline.evaluation.ptb import approximate_ptb, ptb_tokenize
from pipeline.evaluation.scorers import METRICS, score_captions

from helpers import flickr8k_captions

PACKAGE_DIR = Path(ptbtokenizer.__file__).resolve().parents[1]  # site-packages/pycocoevalcap
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="Java not installed")

REFERENCES = {
    "dog": ["A brown dog runs across the grass .", "A dog is running on a lawn .", "The dog sprints outside ."],
    "bike": ["A man rides a bicycle down the street .", "A cyclist on a city road .", "A person riding a bike ."],
}
CANDIDATES = {"dog": "a dog running on the grass", "bike": "a man riding a bike on a street"}


# ---------------------------------------------------------------- Flickr8k sample, scored twice

@pytest.fixture(scope="module")
def sample(shared_data: Path) -> SimpleNamespace:
    """Candidate = an image's first caption, references = its other four; plus a candidate equal to
    a reference, an empty one and another image's caption, all against the first image's refs."""
    captions = flickr8k_captions(shared_data / "flickr8k_text" / "Flickr8k.token.txt", 50)
    first, other = list(captions)[:2]
    candidates = {image: caps[0] for image, caps in captions.items()}
    references = {image: caps[1:] for image, caps in captions.items()}
    for extra, candidate in (("perfect", captions[first][1]), ("empty", ""), ("unrelated", captions[other][0])):
        candidates[extra], references[extra] = candidate, captions[first][1:]
    return SimpleNamespace(candidates=candidates, references=references, first=first)


_read_only_dirs: list[Path] = []


def _refuse_writes_under_read_only_dirs(event: str, args: tuple) -> None:
    """An audit hook: sees every file Python opens or directory it makes, however it is done
    (open, os.open, pathlib, tempfile), which monkeypatching one function would not."""
    if not _read_only_dirs or event not in ("open", "os.mkdir") or isinstance(args[0], int):
        return
    if event == "open":
        mode, flags = args[1] or "", args[2] or 0
        if not (set(mode) & set("wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
            return
    path = Path(os.fsdecode(args[0])).resolve()
    if any(path.is_relative_to(directory) for directory in _read_only_dirs):
        raise PermissionError(errno.EROFS, "Read-only file system (simulated)", str(path))


sys.addaudithook(_refuse_writes_under_read_only_dirs)


@contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """Refuse Python's writes under ``directory``, as a read-only install would; unlike chmod,
    this also holds when the tests run as root."""
    _read_only_dirs.append(directory)
    try:
        yield
    finally:
        _read_only_dirs.remove(directory)


def _package_files() -> set[str]:
    return {str(Path(root, name)) for root, _, names in os.walk(PACKAGE_DIR) for name in names}


@pytest.fixture(scope="module")
def java() -> None:
    if shutil.which("java") is None:
        pytest.skip("Java not installed")


@pytest.fixture(scope="module")
def scored(sample: SimpleNamespace, java: None) -> SimpleNamespace:
    before = _package_files()
    with read_only(PACKAGE_DIR):
        result = score_captions(sample.candidates, sample.references, per_image=True)
    return SimpleNamespace(result=result, new_package_files=_package_files() - before)


@pytest.fixture(scope="module")
def direct(sample: SimpleNamespace, java: None) -> dict[str, tuple[float, dict[str, float]]]:
    """The COCOEvalCap recipe by hand: PTBTokenizer, then each scorer on the tokenised dicts."""
    tokenizer = PTBTokenizer()
    res = tokenizer.tokenize({i: [{"caption": c}] for i, c in sample.candidates.items()})
    gts = tokenizer.tokenize({i: [{"caption": r} for r in refs] for i, refs in sample.references.items()})
    bleu, bleu_per_image = Bleu(4).compute_score(gts, res, verbose=0)
    meteor = Meteor()
    scores = {"METEOR": meteor.compute_score(gts, res)}
    del meteor  # its __del__ ends the JVM
    scores.update({f"BLEU-{n + 1}": (bleu[n], bleu_per_image[n]) for n in range(4)})
    scores["ROUGE-L"] = Rouge().compute_score(gts, res)
    scores["CIDEr"] = Cider().compute_score(gts, res)
    return {metric: (corpus, dict(zip(gts, per_image))) for metric, (corpus, per_image) in scores.items()}


@needs_java
def test_scores_equal_direct_pycocoevalcap(scored, direct):
    result = scored.result
    assert list(result.scores) == list(METRICS) and result.unavailable == {} and result.notes == []
    for metric in METRICS:
        corpus, per_image = direct[metric]
        assert result.scores[metric] == pytest.approx(corpus, abs=1e-6), metric
        for image_id, score in per_image.items():
            assert result.per_image[image_id][metric] == pytest.approx(score, abs=1e-6), (metric, image_id)


@needs_java
def test_corpus_bleu_is_cocos_not_a_mean_of_sentence_bleu(scored):
    result = scored.result
    sentence_mean = np.mean([scores["BLEU-4"] for scores in result.per_image.values()])
    assert abs(result.scores["BLEU-4"] - sentence_mean) > 1e-3


@needs_java
def test_per_image_scores_rank_candidates_sensibly(scored, sample):
    per_image = scored.result.per_image
    assert set(per_image) == set(sample.candidates)
    assert per_image["perfect"]["BLEU-1"] == pytest.approx(1.0, abs=1e-6)
    assert per_image["unrelated"]["CIDEr"] < per_image[sample.first]["CIDEr"]
    assert per_image["empty"] == dict.fromkeys(METRICS, 0.0)
    json.dumps(scored.result.to_dict())


@needs_java
def test_scoring_writes_nothing_into_a_read_only_pycocoevalcap(scored):
    assert scored.new_package_files == set()


def test_read_only_simulation_stops_pycocoevalcaps_own_tokenizer():
    with read_only(PACKAGE_DIR), pytest.raises(PermissionError):
        PTBTokenizer().tokenize({"a": [{"caption": "A dog ."}]})


# ---------------------------------------------------------------- without Java, or with a bad one

def test_without_java_meteor_and_spice_are_unavailable_and_the_rest_scored(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.warns(UserWarning) as caught:
        result = score_captions(CANDIDATES, REFERENCES, spice=True, per_image=True)
    assert set(result.unavailable) == {"METEOR", "SPICE"}
    assert all(reason.startswith("Java not found on PATH") for reason in result.unavailable.values())
    assert list(result.scores) == [m for m in METRICS if m != "METEOR"]
    assert all(score > 0 for score in result.scores.values())
    assert set(result.per_image["dog"]) == set(result.scores)
    assert len(result.notes) == 1 and "Python approximation" in result.notes[0]
    messages = [str(w.message) for w in caught]
    assert [m.split(":")[0] for m in messages] == [
        "captions were tokenised by a Python approximation of the PTB tokenizer, so scores may differ slightly "
        "from official COCO ones", "METEOR not scored", "SPICE not scored"]
    assert all("\n" not in m for m in messages)


@needs_java
def test_approximate_ptb_matches_ptb(sample):
    tricky = ['He said "hi" (twice) -- didn\'t he?', "The girl's dog cannot swim ...", "Washington D.C. at 10:30 a.m.",
              "Mr. Potato Head, $1,000.50, 50% & x-ray!!", "a [red] {ball} … “fun” — ok", "dogs' toys; yes: no"]
    captions = tricky + list(sample.candidates.values()) + [r for refs in sample.references.values() for r in refs]
    assert [approximate_ptb(c) for c in captions] == ptb_tokenize(captions)


def _sabotaged_meteor(sabotage: Callable[[Popen], None]) -> tuple[type[Meteor], list[Meteor]]:
    """A Meteor class whose JVM is sabotaged right after it starts, and the instances it made
    (the JVM an earlier test left running is stopped first, so the next call starts one of these)."""
    meteor_module.close_meteor()
    started: list[Meteor] = []

    class SabotagedMeteor(Meteor):
        def __init__(self):
            super().__init__()
            sabotage(self.meteor_p)
            started.append(self)

    return SabotagedMeteor, started


@needs_java
def test_one_jvm_serves_a_burst_of_calls_and_a_dead_or_idle_one_is_replaced(monkeypatch):
    counting, started = _sabotaged_meteor(lambda process: None)
    monkeypatch.setattr(meteor_module, "Meteor", counting)
    gts, res = {"a": ["a dog runs on the grass", "a brown dog"]}, {"a": ["a dog runs"]}
    first = meteor_module.meteor_score(gts, res)
    assert first[0] > 0 and meteor_module.meteor_score(gts, res) == first and len(started) == 1
    started[0].meteor_p.kill()  # a JVM that died between calls
    started[0].meteor_p.wait()
    assert meteor_module.meteor_score(gts, res) == first and len(started) == 2
    stale = threading.Thread(target=meteor_module._close_when_still_idle)  # a timer that fired before that call
    stale.start()
    stale.join()
    assert started[1].meteor_p.poll() is None  # the JVM the call just used is kept
    monkeypatch.setattr(meteor_module, "IDLE_S", 0.2)
    meteor_module.meteor_score(gts, res)
    deadline = time.monotonic() + 10
    while started[1].meteor_p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started[1].meteor_p.returncode is not None and len(started) == 2  # stopped once idle


@needs_java
def test_a_dying_meteor_is_reported_and_the_rest_scored(monkeypatch):
    dying, started = _sabotaged_meteor(Popen.kill)  # as when the JVM cannot reserve its heap
    monkeypatch.setattr(meteor_module, "Meteor", dying)
    with pytest.warns(UserWarning, match="METEOR not scored: METEOR process failed"):
        result = score_captions(CANDIDATES, REFERENCES)
    assert list(result.unavailable) == ["METEOR"]
    assert set(result.scores) == set(METRICS) - {"METEOR"}
    assert started[0].meteor_p.returncode is not None


@needs_java
def test_a_stalled_meteor_times_out_and_is_killed(monkeypatch):
    stalled, started = _sabotaged_meteor(lambda process: os.kill(process.pid, signal.SIGSTOP))
    monkeypatch.setattr(meteor_module, "Meteor", stalled)
    with pytest.raises(JavaToolError, match="METEOR gave no answer within 1 s"):
        meteor_module.meteor_score({"a": ["a dog runs"]}, {"a": ["a dog"]}, timeout_s=1)
    assert started[0].meteor_p.returncode is not None and not started[0].lock.locked()


def test_spice_without_its_models_is_unavailable_not_downloaded(monkeypatch, tmp_path):
    monkeypatch.setattr(spice_module, "CORENLP_JAR", tmp_path / "stanford-corenlp-3.6.0.jar")
    monkeypatch.setattr(spice_module, "require_java", lambda: "java")
    with pytest.raises(JavaToolError, match="get_stanford_models"):
        spice_module.spice_score({"a": ["a dog"]}, {"a": ["a dog"]})


# ---------------------------------------------------------------- inputs

@pytest.mark.parametrize("candidates, references, message", [
    ({"dog": "a dog", "cat": "a cat"}, {"dog": ["a dog"]}, "no reference captions for image 'cat'"),
    ({"dog": "a dog"}, {"dog": []}, "no reference captions for image 'dog'"),
    ({"dog": "a dog"}, {"dog": "a dog"}, "references for image 'dog' are a string"),
    ({}, {"dog": ["a dog"]}, "no candidate captions"),
])
def test_bad_inputs_are_named(candidates, references, message):
    with pytest.raises(CapcacheError, match=message):
        score_captions(candidates, references)


def test_unknown_metric_is_named():
    with pytest.raises(CapcacheError, match="unknown metric 'BLEU'; choose from BLEU-1"):
        score_captions(CANDIDATES, REFERENCES, metrics=("BLEU", "CIDEr"))


def test_a_metric_subset_does_not_start_meteor(monkeypatch):
    def no_meteor():
        raise AssertionError("METEOR started although not asked for")

    monkeypatch.setattr(meteor_module, "Meteor", no_meteor)
    result = score_captions(CANDIDATES, REFERENCES, per_image=True, metrics=("BLEU-4", "CIDEr"))
    assert list(result.scores) == ["BLEU-4", "CIDEr"] and result.unavailable == {}
    assert set(result.per_image["dog"]) == {"BLEU-4", "CIDEr"}


# ---------------------------------------------------------------- Kendall tau-c

def _tau_c_by_definition(x: np.ndarray, y: np.ndarray) -> float:
    n = len(x)
    s = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i in range(n) for j in range(i + 1, n))
    m = min(len(set(x)), len(set(y)))
    return 2 * s / (n * n * (m - 1) / m)


def test_kendall_tau_c_equals_its_definition_on_tie_heavy_data():
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(3, 80))
        x = rng.integers(1, 5, n).astype(float)  # like expert judgements: four levels
        y = rng.integers(0, int(rng.integers(2, 12)), n) / 4 if rng.random() < 0.5 else rng.random(n)
        if min(len(set(x)), len(set(y))) > 1:
            assert kendall_tau_c(x, y) == pytest.approx(_tau_c_by_definition(x, y), abs=1e-12)


def test_kendall_tau_c_bounds_and_degenerate_cases():
    assert kendall_tau_c([1, 1, 2, 2], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)  # 2 levels vs 4: tau-c, not tau-b
    assert kendall_tau_c([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau_c([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau_c([1, 2, 3], [1, float("nan"), 3]))
    with pytest.raises(ValueError):
        kendall_tau_c([1, 2], [1, 2, 3])
