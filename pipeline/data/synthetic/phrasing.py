"""Five reference captions per scene, phrased the way five different annotators might.

Each caption uses a different body (counts by kind, counts by shape only, sizes, places, a spatial
relation) behind a random opener, so the references disagree in wording and detail the way human
ones do while all being true of the scene. Objects are always listed in reading order: that is
how people scan a picture, and a consistent order is what lets a small decoder learn to produce it.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

import numpy as np

from pipeline.data.synthetic.scene import Scene, SceneObject

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PLACES = {  # (row, col) -> where it is; "{centre}" is filled with a synonym
    (0, 0): "in the top left corner", (0, 1): "at the top", (0, 2): "in the top right corner",
    (1, 0): "on the left", (1, 1): "in the {centre}", (1, 2): "on the right",
    (2, 0): "in the bottom left corner", (2, 1): "at the bottom", (2, 2): "in the bottom right corner",
}
CENTRE_WORDS = ("center", "middle")
OPENERS = ("", "there {be} ", "a picture of ", "an image of ", "this image shows ")


def describe(scene: Scene, rng: np.random.Generator) -> list[str]:
    """One caption per body, in random order (annotators are not numbered by style)."""
    captions = [_sentence(str(rng.choice(OPENERS)), body(scene, rng)) for body in BODIES]
    rng.shuffle(captions)
    return captions


# -- caption bodies: noun phrases that are true of the scene ---------------------------------------
def _by_kind(scene: Scene, rng: np.random.Generator) -> str:
    kinds = Counter((o.colour, o.shape) for o in scene.objects)  # keeps first-seen (reading) order
    return join_list([noun_phrase(n, [colour, shape]) for (colour, shape), n in kinds.items()])


def _by_shape(scene: Scene, rng: np.random.Generator) -> str:
    shapes = Counter(o.shape for o in scene.objects)
    return join_list([noun_phrase(n, [shape]) for shape, n in shapes.items()])


def _with_sizes(scene: Scene, rng: np.random.Generator) -> str:
    kinds = Counter((o.size, o.colour, o.shape) for o in scene.objects)
    return join_list([noun_phrase(n, list(kind)) for kind, n in kinds.items()])


def _with_places(scene: Scene, rng: np.random.Generator) -> str:
    return join_list([f"{_one(o)} {_place(o, rng)}" for o in scene.objects])


def _with_relation(scene: Scene, rng: np.random.Generator) -> str:
    """The first two objects related to each other, any others placed on the grid."""
    first, *rest = scene.objects
    if not rest:  # nothing to relate to: say where it is and how big instead
        return f"one {first.size} {first.colour} {first.shape} {_place(first, rng)}"
    second, *others = rest
    return join_list([_relation(first, second, rng)] + [f"{_one(o)} {_place(o, rng)}" for o in others])


BODIES: tuple[Callable[[Scene, np.random.Generator], str], ...] = (
    _by_kind, _by_shape, _with_sizes, _with_places, _with_relation)


def _relation(a: SceneObject, b: SceneObject, rng: np.random.Generator) -> str:
    """``a`` precedes ``b`` in reading order, so it is above ``b``, or in the same row and left of it;
    every true relation between them (stated from either side) is a candidate."""
    options = []
    if a.row < b.row:
        options += [(a, "above", b), (b, "below", a)]
    if a.col != b.col:
        left, right = (a, b) if a.col < b.col else (b, a)
        options += [(left, "to the left of", right), (right, "to the right of", left)]
    subject, relation, other = options[int(rng.integers(len(options)))]
    same = (subject.colour, subject.shape) == (other.colour, other.shape)
    reference = f"another {other.colour} {other.shape}" if same else _one(other)
    return f"{_one(subject)} {relation} {reference}"


def _one(obj: SceneObject) -> str:
    return noun_phrase(1, [obj.colour, obj.shape])


def _place(obj: SceneObject, rng: np.random.Generator) -> str:
    return PLACES[obj.row, obj.col].format(centre=rng.choice(CENTRE_WORDS))


# -- grammar ------------------------------------------------------------------------------------
def noun_phrase(count: int, words: list[str]) -> str:
    """``(2, ["red", "cross"])`` -> "two red crosses"; ``(1, ["orange", "circle"])`` -> "an orange circle"."""
    if count == 1:
        return " ".join([article(words[0]), *words])
    return " ".join([NUMBER_WORDS[count], *words[:-1], plural(words[-1])])


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def join_list(phrases: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _sentence(opener: str, body: str) -> str:
    """Sentence case, no final full stop; "there is" agrees with the first noun phrase."""
    be = "is" if body.split(" ", 1)[0] in ("a", "an", "one") else "are"
    text = opener.format(be=be) + body
    return text[0].upper() + text[1:]
