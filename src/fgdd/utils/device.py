from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; anything else is passed to ``torch.device``."""
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
