"""What every rank of a DDP job must agree on before a step: the global batch's counts, and that
no rank's loss is broken.

Each training objective divides its sums by the token (and caption) counts of the whole global
batch, times the world size that DDP's gradient mean divides by again, so N processes give exactly
the gradient one process computes on the same batch however unevenly tokens fall between ranks.
"""

from __future__ import annotations

import math

from pipeline.distributed import Collective


class NonFiniteLoss(Exception):
    pass


def global_counts(comm: Collective, device, value: float, counts: list[int]) -> list[float]:
    """Sum ``counts`` over all ranks, divided by the world size (what DDP's mean divides by again).

    Raises NonFiniteLoss when ``value`` (this rank's loss) is not finite on any rank, on every rank
    at the same step, so the job stops together instead of hanging in the next collective.
    """
    here = not math.isfinite(value)
    *totals, bad = comm.all_sum([*counts, float(here)], device)
    if bad:
        raise NonFiniteLoss(value if here else "non-finite in another process")
    return [t / comm.world for t in totals]
