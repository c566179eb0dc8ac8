"""RDED's ConvNet-D (the DC/MTT ConvNet with batch norm): the observer/teacher for the small-resolution protocols."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from fgdd.errors import ConfigError

Norm = Literal["batch", "instance", "none"]


def _norm_layer(norm: Norm, width: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(width, affine=True)
    if norm == "instance":
        # DC/MTT/RDED write instance norm as one group per channel, so its parameters are named like GroupNorm's
        return nn.GroupNorm(width, width, affine=True)
    raise ConfigError(f"ConvNet norm={norm!r} is not one of 'batch', 'instance', 'none'")


class ConvNet(nn.Module):
    """``depth`` blocks of conv3x3 -> norm -> ReLU -> avg-pool 2x2, then one linear layer.

    Module layout mirrors RDED's ``synthesize/models.py`` (an ``nn.ModuleDict`` of ``nn.ModuleList``s), so its
    checkpoints load strictly: ``layers.conv.{i}``, ``layers.norm.{i}`` (absent for ``norm="none"``), ``classifier``.
    """

    def __init__(
        self,
        num_classes: int,
        input_size: int,
        depth: int = 3,
        width: int = 128,
        norm: Norm = "batch",
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ConfigError(f"ConvNet depth must be >= 1, got {depth}")
        feature_size = input_size >> depth  # each avg-pool halves (floor) the side
        if feature_size < 1:
            raise ConfigError(
                f"ConvNet-{depth} needs input_size >= {2**depth}, got {input_size}; use a smaller depth"
            )
        if norm not in ("batch", "instance", "none"):
            raise ConfigError(f"ConvNet norm={norm!r} is not one of 'batch', 'instance', 'none'")
        self.depth = depth
        self.input_size = input_size
        convs = [nn.Conv2d(in_channels if i == 0 else width, width, kernel_size=3, padding=1) for i in range(depth)]
        norms = [_norm_layer(norm, width) for _ in range(depth)] if norm != "none" else []
        self.layers = nn.ModuleDict(
            {
                "conv": nn.ModuleList(convs),
                "norm": nn.ModuleList(norms),
                "act": nn.ModuleList(nn.ReLU() for _ in range(depth)),
                "pool": nn.ModuleList(nn.AvgPool2d(kernel_size=2, stride=2) for _ in range(depth)),
            }
        )
        self.classifier = nn.Linear(width * feature_size * feature_size, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # (n, c, s, s) -> (n, width * (s / 2^depth)^2)
        has_norm = len(self.layers["norm"]) > 0
        for i in range(self.depth):
            x = self.layers["conv"][i](x)
            if has_norm:
                x = self.layers["norm"][i](x)
            x = self.layers["act"][i](x)
            x = self.layers["pool"][i](x)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # (n, num_classes)
