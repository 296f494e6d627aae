"""Where this process stands in a data-parallel launch (``torchrun`` / ``accelerate launch``).

:func:`dist_context` reads RANK / WORLD_SIZE / LOCAL_RANK; :func:`init_distributed` also joins the
process group (NCCL on GPU, gloo on CPU). A plain ``python`` run is rank 0 of a world of 1 and
never touches ``torch.distributed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nlpkit.errors import ConfigError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DistContext:
    """Rank of this process, its GPU index on the node, and the number of processes."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_context() -> DistContext:
    """Rank, local rank and world size from the environment; joins nothing."""
    try:
        return DistContext(rank=int(os.environ.get("RANK", "0")), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                           world_size=int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        raise ConfigError("RANK/WORLD_SIZE/LOCAL_RANK must be integers; launch with torchrun or accelerate launch.") from None


def init_distributed(device_type: str) -> DistContext:
    """:func:`dist_context`, and join the process group when there are several processes.

    ``device_type`` ``"cuda"``: NCCL, with this process's GPU (LOCAL_RANK) made the current one
    first, so that collectives do not all land on GPU 0; anything else: gloo.
    """
    ctx = dist_context()
    if ctx.distributed:
        import torch
        import torch.distributed as td

        if device_type == "cuda":
            torch.cuda.set_device(ctx.local_rank)
        if not td.is_initialized():
            td.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return ctx


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (a no-op in a single process)."""
    if ctx.distributed:
        import torch.distributed as td

        td.barrier()


def max_over_ranks(value: float, ctx: DistContext, device: "torch.device") -> float:
    """The largest ``value`` over all ranks (so that a time budget ends on the same step everywhere)."""
    if not ctx.distributed:
        return value
    import torch
    import torch.distributed as td

    t = torch.tensor([value], dtype=torch.float64, device=device)
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return float(t.item())


def from_main(value: float, ctx: DistContext) -> float:
    """Rank 0's ``value`` on every rank: a decision only rank 0 can take (it alone holds the run records)."""
    if not ctx.distributed:
        return value
    import torch
    import torch.distributed as td

    device = torch.device("cuda", ctx.local_rank) if td.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([value if ctx.is_main else 0.0], dtype=torch.float64, device=device)
    td.broadcast(t, src=0)
    return float(t.item())
