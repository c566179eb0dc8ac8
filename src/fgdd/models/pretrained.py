"""Pretrained torchvision weights, from torch hub's cache or downloaded; offline failures say where to put the file."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torch.hub import load_state_dict_from_url

from fgdd.errors import ConfigError, ModelUnavailableError


def _weights_entry(model_name: str, weights: str) -> torchvision.models.WeightsEnum:
    enum_cls = torchvision.models.get_model_weights(model_name)
    try:
        return enum_cls[weights]
    except KeyError:
        raise ConfigError(
            f"{model_name} has no torchvision weights {weights!r}; choose one of {list(enum_cls.__members__)}"
        ) from None


def torchvision_state_dict(model_name: str, weights: str, num_classes: int) -> dict[str, torch.Tensor]:
    """State dict of torchvision's ``<model_name>`` weights ``weights`` (e.g. ``IMAGENET1K_V1`` or ``DEFAULT``)."""
    entry = _weights_entry(model_name, weights)
    categories = entry.meta.get("categories") or []
    if categories and len(categories) != num_classes:
        raise ConfigError(
            f"{model_name} weights {weights} have a {len(categories)}-class head but num_classes={num_classes}; "
            "pretrained torchvision weights are for the full ImageNet-1k label set: set weights=null and train a "
            "teacher for this dataset instead"
        )
    cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(entry.url)
    try:
        return load_state_dict_from_url(entry.url, progress=False, check_hash=True, map_location="cpu")
    except Exception as error:  # offline: URLError/OSError; a corrupt file: RuntimeError
        raise ModelUnavailableError(
            f"cannot load torchvision weights {model_name}/{weights} ({type(error).__name__}: {error}). "
            f"Offline, download {entry.url} elsewhere and place it at {cache} (TORCH_HOME sets the folder), "
            "or set weights=null for a randomly initialised model"
        ) from error
