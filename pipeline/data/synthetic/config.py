"""The knobs of the synthetic set, saved beside it so the exact set can be regenerated anywhere.

Defaults (2,000 / 200 / 200 images, 96 px, 1-3 objects) are sized for `capcache demo` on two CPU
cores. 96 px is the tiny-cnn input size, so extraction never resamples and each of the 3 x 3 scene
cells covers exactly 2 x 2 cells of its 6 x 6 feature grid: colour and position reach the decoder
intact. A scene has 48 kinds of object (4 shapes x 6 colours x 2 sizes) in 9 cells; 2,000
training images show each kind about 80 times and each kind-in-a-cell about 9 times: enough for
the demo's attention LSTM to name colours and places after a few epochs, and few enough that an
epoch of the demo preset takes about a minute on two CPU cores. Generation itself takes 5-7 s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.errors import CapcacheError

GRID = 3  # scenes are laid out on GRID x GRID cells, one object per cell at most
MAX_NUMBER_WORD = 9  # captions spell counts out ("two", "three"); phrasing knows up to nine


@dataclass(frozen=True)  # frozen: safe as a default argument, hashable, comparable to a saved one
class SyntheticConfig:
    n_train: int = 2000
    n_val: int = 200
    n_test: int = 200
    image_size: int = 96  # pixels per side (square images)
    seed: int = 0
    min_objects: int = 1
    max_objects: int = 3
    repeat_prob: float = 0.3  # chance that a further object copies an earlier one's colour and shape
    noise: float = 6.0  # std of the pixel noise over the whole image (0-255 scale); 0 = clean
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if min(self.n_train, self.n_val, self.n_test) < 0 or self.n_train + self.n_val + self.n_test == 0:
            raise CapcacheError("synthetic set: split sizes must be >= 0 and not all 0")
        if self.image_size < 32:
            raise CapcacheError(f"synthetic set: image_size {self.image_size} is too small to draw shapes; use >= 32")
        if not 1 <= self.min_objects <= self.max_objects <= min(GRID * GRID, MAX_NUMBER_WORD):
            raise CapcacheError(f"synthetic set: need 1 <= min_objects <= max_objects <= {GRID * GRID}, "
                                f"got {self.min_objects}..{self.max_objects}")
        if not 0.0 <= self.repeat_prob <= 1.0 or self.noise < 0 or not 1 <= self.jpeg_quality <= 95:
            raise CapcacheError("synthetic set: need 0 <= repeat_prob <= 1, noise >= 0, 1 <= jpeg_quality <= 95")

    @classmethod
    def tiny(cls, seed: int = 0) -> "SyntheticConfig":
        """A set small enough for unit tests: generated in well under a second."""
        return cls(n_train=60, n_val=20, n_test=20, image_size=64, seed=seed)

    @property
    def total(self) -> int:
        return self.n_train + self.n_val + self.n_test

    def split_of(self, index: int) -> str:
        """Images are numbered train first, then val, then test."""
        if index < self.n_train:
            return "train"
        return "val" if index < self.n_train + self.n_val else "test"

    def to_dict(self) -> dict:
        return asdict(self)
