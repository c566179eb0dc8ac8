"""OmegaConf resolvers used by conf/ and the checks that run before any work starts."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fgdd.errors import ConfigError, FgddError


def _accelerator(device: str) -> str:
    return "auto" if device == "auto" else ("gpu" if str(device).startswith("cuda") else "cpu")


def _devices(device: str) -> int | list[int]:
    device = str(device)
    return [int(device.split(":")[1])] if device.startswith("cuda:") else 1


def _convnet_depth(input_size: int) -> int:
    # RDED's ConvNet-D halves the map D times and ends at 4x4: 32 px -> 3, 64 -> 4, 128 -> 5; other sizes get
    # the deepest net whose last map is still at least 4x4 (224 -> 5, ending at 7x7)
    if int(input_size) < 8:
        raise ConfigError(f"input_size={input_size} is too small for a ConvNet; set model.net.depth")
    return int(math.floor(math.log2(int(input_size) / 4)))


def short_hash(text: str) -> str:
    # run folders are named by a hash of the command-line overrides: stable across reruns (so they resume),
    # different for different settings (so parallel jobs never share a folder)
    return hashlib.sha256(str(text).encode()).hexdigest()[:8]


def _weights_dir() -> str:
    # pretrained files fgdd fetches (python -m fgdd.weights): $FGDD_WEIGHTS_DIR, else ~/.cache/fgdd/weights
    from fgdd.weights import weights_dir

    return str(weights_dir())


def _hydra_subdir(output_dir: str) -> str | None:
    # Hydra's own record of a job (.hydra/) goes into a fresh run folder only: a rerun into a folder that holds a
    # recorded run (config.yaml), skipped, resumed or refused, leaves that run's files as they are
    from fgdd.run_folder import CONFIG

    return None if (Path(output_dir) / CONFIG).exists() else ".hydra"


def register_resolvers() -> None:
    resolvers = {
        "accelerator": _accelerator, "devices": _devices, "convnet_depth": _convnet_depth, "short_hash": short_hash,
        "weights_dir": _weights_dir, "hydra_subdir": _hydra_subdir,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def validate(cfg: DictConfig) -> None:
    """Type checks for the top-level settings (YAML and the command line give strings where ints are meant)."""
    for key in ("ipc", "seed"):
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, got {value!r} ({type(value).__name__})")
    if cfg.ipc < 1:
        raise ConfigError(f"ipc must be at least 1, got {cfg.ipc}")
    if not isinstance(cfg.device, str):
        raise ConfigError(f"device must be a string like auto, cpu or cuda:0; got {cfg.device!r}")


def build(node: DictConfig) -> Any:
    """Instantiate a config node (``_target_``); a constructor's own error (it names the remedy) reaches the user as
    itself, not wrapped in Hydra's InstantiationException with a traceback."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as error:
        if isinstance(error.__cause__, FgddError):
            raise error.__cause__ from None
        raise
