"""Any timm architecture by name (timm is optional and imported only here)."""

from __future__ import annotations

from typing import Any

from torch import nn

from fgdd.errors import ModelUnavailableError


def timm_model(
    name: str,
    num_classes: int,
    input_size: int,
    pretrained: bool = False,
    model_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """``model_kwargs`` go to ``timm.create_model`` (e.g. ``{img_size: 32}`` for ViTs, whose position embeddings
    depend on the input size; CNNs reject that keyword, so it is not passed by default)."""
    try:
        import timm
    except ImportError as error:
        raise ModelUnavailableError(
            f"model {name!r} needs the optional package timm: `pip install timm` (or pick a torchvision model)"
        ) from error
    if not timm.is_model(name):
        raise ModelUnavailableError(f"timm has no model {name!r}; see timm.list_models()")
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **dict(model_kwargs or {}))
    except OSError as error:  # pretrained weights offline / missing from the Hugging Face cache
        raise ModelUnavailableError(
            f"cannot load pretrained timm weights for {name!r} ({error}); run once online to fill the Hugging Face "
            "cache (HF_HOME) or set pretrained=false"
        ) from error
