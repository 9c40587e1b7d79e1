"""The demo set's tagging data: labels read off the scene, noisy tags drawn around them.

Labels are the shapes and colours in the picture (10 classes), exact by construction. Tags imitate
Flickr user tags (seed 004): each true label is tagged with probability ``KEEP``, each wrong one
with probability ``DISTRACT``, and every image gets a few of ``CHATTER``, words that say nothing
about the picture. Tags come from a random stream of their own, so they move no pixel or caption.
"""

from __future__ import annotations

import numpy as np

from pipeline.data.labels import ImageLabels, LabelSet
from pipeline.data.synthetic.scene import COLOURS, SHAPES, Scene

CLASSES = [*SHAPES, *COLOURS]
CHATTER = ("photo", "canon", "nikon", "2008", "art", "explore", "flickr", "favorite")
TAGS = [*CLASSES, *CHATTER]
KEEP, DISTRACT, CHATTER_PER_IMAGE = 0.7, 0.08, 2


def scene_labels(scene: Scene) -> list[str]:
    present = {o.shape for o in scene.objects} | {o.colour for o in scene.objects}
    return [c for c in CLASSES if c in present]


def noisy_tags(labels: list[str], rng: np.random.Generator) -> list[str]:
    true = set(labels)
    kept = {c for c in CLASSES if rng.random() < (KEEP if c in true else DISTRACT)}
    chatter = {str(w) for w in rng.choice(CHATTER, size=CHATTER_PER_IMAGE, replace=False)}
    return [t for t in TAGS if t in kept | chatter]


def demo_label_set(entries: dict[str, ImageLabels]) -> LabelSet:
    return LabelSet(list(CLASSES), entries, list(TAGS),
                    {"from": "synthetic scenes", "tags": {"keep": KEEP, "distract": DISTRACT,
                                                         "chatter_per_image": CHATTER_PER_IMAGE}})
