"""Seeds derived from the run seed, one per stage, so stages stay reproducible independently of each other."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derive_seed(seed: int, *names: object) -> int:
    """A 63-bit seed from the run seed and a stage name (e.g. ``derive_seed(0, "select", class_index)``)."""
    key = ":".join([str(seed), *map(str, names)]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


def generator(seed: int, *names: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *names))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
