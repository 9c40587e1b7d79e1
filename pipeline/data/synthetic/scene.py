"""What a synthetic image shows, decided before any pixel is drawn or word is written.

The scene is the single source of truth: the drawing and the captions are both derived from it,
so a caption can never mention an object that is not in the picture (and tests can check that).
Objects sit one per cell of a 3 x 3 grid, which rules out overlap by construction and gives every
object an unambiguous place name ("top left corner") and unambiguous relations to the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.data.synthetic.config import GRID

# Few, visually distant concepts: a frozen random-weight conv stem separates colours easily and
# shapes less so, so the palette is wider than the shape set. Names are caption words.
SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = ("red", "green", "blue", "yellow", "purple", "white")
SIZES = ("small", "large")


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    row: int  # 0 = top
    col: int  # 0 = left


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]  # in reading order (by row, then column), as people list them


def sample_scene(rng: np.random.Generator, min_objects: int, max_objects: int, repeat_prob: float) -> Scene:
    """Draw a random scene. Repeats are forced now and then so captions like "two red circles"
    are common enough to learn; independent draws from 24 colour-shape pairs would rarely repeat."""
    count = int(rng.integers(min_objects, max_objects + 1))
    cells = sorted(int(c) for c in rng.choice(GRID * GRID, size=count, replace=False))
    kinds: list[tuple[str, str]] = []
    for _ in range(count):
        if kinds and rng.random() < repeat_prob:
            kinds.append(kinds[int(rng.integers(len(kinds)))])
        else:
            kinds.append((str(rng.choice(SHAPES)), str(rng.choice(COLOURS))))
    objects = tuple(SceneObject(shape, colour, str(rng.choice(SIZES)), cell // GRID, cell % GRID)
                    for cell, (shape, colour) in zip(cells, kinds))
    return Scene(objects)
