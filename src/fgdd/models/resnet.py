"""torchvision ResNets, optionally with RDED's "modified" low-resolution stem for CIFAR / Tiny-ImageNet."""

from __future__ import annotations

from typing import Literal

import torchvision
from torch import nn

from fgdd.errors import ConfigError
from fgdd.models.pretrained import torchvision_state_dict


def resnet(
    num_classes: int,
    input_size: int,
    depth: Literal[18, 50, 101] = 18,
    low_res_stem: bool = False,
    weights: str | None = None,
) -> nn.Module:
    """``low_res_stem``: RDED's "resnet18_modified" (conv1 3x3 stride 1 padding 1, no max-pool), for 32/64 px inputs."""
    if depth not in (18, 50, 101):
        raise ConfigError(f"resnet depth must be 18, 50 or 101, got {depth}")
    name = f"resnet{depth}"
    if weights is not None and low_res_stem:
        raise ConfigError(
            f"{name}: pretrained weights have the ImageNet 7x7 stem and cannot load into low_res_stem=true; "
            "set one of weights=null or low_res_stem=false"
        )
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    if low_res_stem:
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    if weights is not None:
        model.load_state_dict(torchvision_state_dict(name, weights, num_classes))
    return model
