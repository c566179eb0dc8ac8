"""Multi-process runs (trainer=ddp under torchrun or SLURM srun): every rank runs the pipeline so that all of
them reach Lightning's fit together, but only rank 0 selects and writes the run folder; the others wait."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)
# SLURM sets SLURM_LOCALID for srun tasks; torchrun and Lightning's own launcher set LOCAL_RANK
_LOCAL_RANK = ("LOCAL_RANK", "SLURM_LOCALID")


def global_rank() -> int:
    # Lightning's rank detection (RANK from torchrun, LOCAL_RANK from its own launcher, SLURM_PROCID from srun),
    # which its Trainer keeps up to date once it runs; imported here so that `fgdd.run --cfg job` stays quick
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return int(rank_zero_only.rank)


def local_rank() -> int:
    # which GPU of the node is this process's (Lightning reads it only inside its cluster environments)
    for name in _LOCAL_RANK:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def rank_and_world() -> tuple[int, int]:
    # this process's place in the initialised process group (DDP's data sharding); (0, 1) outside one
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return global_rank() == 0


def wait_for(path: Path, what: str, timeout_s: float = 24 * 3600.0, poll_s: float = 2.0) -> None:
    """Block until rank 0 has written ``path`` (a shared file system, as on any cluster)."""
    start = time.monotonic()
    while not path.exists():
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"rank {global_rank()} waited {timeout_s:.0f} s for rank 0 to write {what} ({path})")
        time.sleep(poll_s)
    log.info("rank %d: %s is ready (%s)", global_rank(), what, path)
