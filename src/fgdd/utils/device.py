from __future__ import annotations

import logging

import torch

log = logging.getLogger("fgdd")


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; anything else is passed to ``torch.device``. Logged once per run
    (in place of Lightning's per-Trainer hardware summary, which conf/hydra/job_logging keeps off the console)."""
    resolved = pick_device(device)
    log.info("device %s (device=%s; CUDA %s)", resolved, device,
             f"{torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() else "not available")
    return resolved


def pick_device(device: str) -> torch.device:
    """``resolve_device`` without the log line."""
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        from fgdd.utils.distributed import local_rank

        return torch.device("cuda", local_rank() % torch.cuda.device_count())  # one GPU per process under DDP
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        from fgdd.errors import ConfigError

        raise ConfigError(f"device={device!r} was asked for but CUDA is not available here; use device=cpu or auto")
    return resolved
