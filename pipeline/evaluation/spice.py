"""SPICE through pycocoevalcap, attempted only when its Stanford CoreNLP models are installed.

Building ``Spice()`` downloads Stanford CoreNLP 3.6.0 (a ~400 MB zip) into site-packages when the
models are missing. Mid-evaluation that hangs or fails offline and cannot succeed on a read-only
install, so SPICE is opt-in and, without the models, reported unavailable together with the
command that installs them instead of being attempted.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pycocoevalcap.spice import get_stanford_models as stanford
from pycocoevalcap.spice.spice import Spice

from pipeline.evaluation.java import JavaToolError, require_java

CORENLP_JAR = Path(stanford.SPICEDIR, stanford.SPICELIB, f"{stanford.JAR}.jar")


def spice_score(gts: dict[str, list[str]], res: dict[str, list[str]]) -> tuple[float, list[float]]:
    """Corpus SPICE F-score and the F-score per image in ``gts`` order, like the other scorers
    (NaN where SPICE could not parse a caption)."""
    require_java()
    if not CORENLP_JAR.is_file():
        raise JavaToolError(f"SPICE needs {CORENLP_JAR.name} in {CORENLP_JAR.parent}; install it once with "
                            "`python -m pycocoevalcap.spice.get_stanford_models` (a ~400 MB download)")
    try:
        average, scores = Spice().compute_score(gts, res)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise JavaToolError(f"SPICE failed: {exc}") from None
    by_image = dict(zip(sorted(gts), scores))  # Spice scores in sorted order, the others in gts order
    return float(average), [float(by_image[image_id]["All"]["f"]) for image_id in gts]
