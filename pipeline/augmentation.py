"""Augmented views of the images: what they are, without torch (``extract`` decides from these
whether a cache is done before it imports anything heavy).

Training from a cache never sees pixels, so seed 002's random crops and flips are done when the
features are made: ``extract --views K`` writes K more caches, views 1..K, each an ordinary cache
whose images went through a random resized crop and flips before the frozen encoder
(``pipeline.encoders.views`` makes them). A view's settings are part of its cache key
(``FrozenEncoder.describe()["view"]``). Training draws, each epoch, one of the clean features and
the K views of every image (``data.views``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.errors import CapcacheError


@dataclass(frozen=True)
class Augmentation:
    """How the views are made. The defaults are milder than ImageNet training's (scale 0.08-1):
    a caption describes the whole scene, and a crop that loses the people in it no longer matches
    its captions."""
    scale: tuple[float, float] = (0.6, 1.0)  # the crop's share of the image's area
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # the crop's width / height
    hflip: float = 0.5  # probability of a left-right mirror
    vflip: float = 0.0  # of an upside-down one (seed 002 uses 0.5; captions describe upright photos)
    seed: int = 0

    def __post_init__(self) -> None:
        low, high = self.scale
        if not 0 < low <= high <= 1:
            raise CapcacheError(f"view scale {low}-{high} is out of range; it is a share of the image's area, "
                                "0 < min <= max <= 1 (e.g. 0.6)")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise CapcacheError(f"view ratio {self.ratio} is out of range; it must be 0 < min <= max")
        for name, p in (("hflip", self.hflip), ("vflip", self.vflip)):
            if not 0 <= p <= 1:
                raise CapcacheError(f"view {name} probability {p} is out of range; it must be between 0 and 1")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class View:
    """View ``index`` (1..K) of every image, made with ``augmentation``; 0 would be the clean image."""
    index: int
    augmentation: Augmentation

    def __post_init__(self) -> None:
        if self.index < 1:
            raise CapcacheError(f"view index {self.index} is out of range; views are numbered from 1")

    def to_dict(self) -> dict:
        return {"index": self.index, **self.augmentation.to_dict()}
