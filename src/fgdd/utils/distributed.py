"""Multi-process runs (trainer=ddp under torchrun or SLURM srun): every rank runs the pipeline so that all of
them reach Lightning's fit together, but only rank 0 selects and writes the run folder; the others wait."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)
# torchrun sets RANK/LOCAL_RANK/WORLD_SIZE; SLURM sets SLURM_PROCID/SLURM_LOCALID/SLURM_NTASKS for srun tasks;
# Lightning's own launcher (a plain `python -m fgdd.run trainer=ddp` on one node) sets only LOCAL_RANK
_RANK = ("RANK", "SLURM_PROCID", "LOCAL_RANK")
_LOCAL_RANK = ("LOCAL_RANK", "SLURM_LOCALID")
_WORLD_SIZE = ("WORLD_SIZE", "SLURM_NTASKS")


def _first_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return default


def global_rank() -> int:
    return _first_int(_RANK, 0)


def local_rank() -> int:
    return _first_int(_LOCAL_RANK, 0)


def world_size() -> int:
    return _first_int(_WORLD_SIZE, 1)


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
