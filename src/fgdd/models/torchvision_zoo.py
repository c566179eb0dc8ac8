"""The other torchvision architectures RDED evaluates cross-architecture (MobileNetV2, EfficientNet-B0, VGG-11)."""

from __future__ import annotations

import torchvision
from torch import nn

from fgdd.models.pretrained import torchvision_state_dict


def _maybe_load(model: nn.Module, name: str, weights: str | None, num_classes: int) -> nn.Module:
    if weights is not None:
        model.load_state_dict(torchvision_state_dict(name, weights, num_classes))
    return model


def mobilenet_v2(num_classes: int, input_size: int, weights: str | None = None) -> nn.Module:
    # stride 32 overall: 32 px inputs end at 1x1 before the global pool, as in RDED's CIFAR runs
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=num_classes)
    return _maybe_load(model, "mobilenet_v2", weights, num_classes)


def efficientnet_b0(num_classes: int, input_size: int, weights: str | None = None) -> nn.Module:
    model = torchvision.models.efficientnet_b0(weights=None, num_classes=num_classes)
    return _maybe_load(model, "efficientnet_b0", weights, num_classes)


def vgg11(
    num_classes: int,
    input_size: int,
    batch_norm: bool = False,
    compact_head: bool = False,
    weights: str | None = None,
) -> nn.Module:
    """RDED uses torchvision's plain ``vgg11`` at every resolution (at 32 px its 1x1 features are replicated to 7x7
    by the adaptive pool). ``compact_head`` swaps that for global pooling + one linear layer (the usual CIFAR VGG),
    ~120x fewer head parameters; it cannot take pretrained weights."""
    name = "vgg11_bn" if batch_norm else "vgg11"
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    if compact_head:
        if weights is not None:
            from fgdd.errors import ConfigError

            raise ConfigError("vgg11: compact_head=true has no pretrained weights; set weights=null")
        model.avgpool = nn.AdaptiveAvgPool2d(1)
        model.classifier = nn.Linear(512, num_classes)
    return _maybe_load(model, name, weights, num_classes)
