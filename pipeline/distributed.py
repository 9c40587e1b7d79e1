"""torchrun integration: one object that is a no-op for a single process and torch.distributed otherwise.

Code that runs under ``torchrun --nproc-per-node N`` asks this module who it is (rank, world
size, which GPU) and exchanges Python objects through it; started plainly it is rank 0 of 1 and
every collective returns at once, so there is one code path for both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist


@dataclass
class Collective:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when this object initialised the process group (and must end it)

    @classmethod
    def from_env(cls, backend: str = "gloo") -> "Collective":
        """Join the torchrun job described by the environment, or be a single process.

        gloo (the default) suits jobs that only exchange Python objects, as extraction does, GPUs or
        not; training passes nccl on GPUs for DDP's gradient all-reduce, and its few object
        exchanges then travel through NCCL on the rank's current device.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group(backend)
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """Each rank on its own GPU (cuda:LOCAL_RANK) when CUDA is used; CPU stays CPU."""
        if requested.type == "cuda" and self.world > 1:
            return torch.device("cuda", self.local_rank)
        return requested

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_sum(self, values: list[float], device: torch.device) -> list[float]:
        """The element-wise sum of ``values`` over all ranks, on every rank (one all-reduce: token
        counts that weight the loss, and a non-finite flag so that all ranks stop at the same step;
        a rank that stopped alone would leave the others waiting in their next all-reduce).
        ``device``: where the backend exchanges tensors (the rank's GPU for NCCL, CPU for gloo)."""
        if self.world == 1:
            return list(values)
        box = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(box, op=dist.ReduceOp.SUM)
        return box.tolist()

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` (in rank order) on rank 0; None elsewhere."""
        if self.world == 1:
            return [obj]
        out: list[Any] | None = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


R = TypeVar("R")


def in_process_group(device: str, body: Callable[[Collective], R]) -> R:
    """Run ``body`` as this process's part of the torchrun job (NCCL on CUDA, gloo otherwise; a plain
    single process without torchrun), and leave the job after, however ``body`` ends."""
    from pipeline.device import resolve_device

    comm = Collective.from_env("nccl" if resolve_device(device).type == "cuda" else "gloo")
    try:
        return body(comm)
    finally:
        comm.close()
