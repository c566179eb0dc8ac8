from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        from fgdd.errors import ConfigError

        raise ConfigError(f"device={device!r} was asked for but CUDA is not available here; use device=cpu or auto")
    return resolved
