"""The offline demo set: coloured shapes on a 3 x 3 grid with five captions saying what is where.

No image can be downloaded on the development machine, yet the whole pipeline (image files ->
frozen CNN features -> decoder -> BLEU/CIDEr) needs a set a decoder can really learn. This one is
generated in seconds, deterministically from a seed, with concepts (colour, place, size, shape)
big enough for a random-weight conv stem to keep apart. Modules: ``config`` (the knobs),
``scene`` (what is in a picture), ``draw`` (its pixels), ``phrasing`` (its captions) and
``generate`` (the files on disk).
"""

from pipeline.data.synthetic.config import SyntheticConfig
from pipeline.data.synthetic.generate import captions_for, generate_dataset, image_for, scene_for
from pipeline.data.synthetic.scene import Scene, SceneObject

__all__ = ["SyntheticConfig", "generate_dataset", "scene_for", "image_for", "captions_for", "Scene", "SceneObject"]
