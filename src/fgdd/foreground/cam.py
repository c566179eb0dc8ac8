"""Foreground from the run's own teacher: the class activation map (CAM) of the true class, thresholded.

No extra model and no download: the observer that scores RDED's crops also says where the class evidence is.
The map is coarse (a 32 px ConvNet-3 gives 4x4 cells, a 64 px ConvNet-4 4x4, a 128 px ConvNet-5 4x4), so the
masks are blobs; what matters for fgdd is the occupancy (the mask's area fraction), not its outline.

Supported observers, each with an exact decomposition of the true-class logit over feature positions:
- RDED's ConvNet (flattened features -> one Linear): logit_k = b_k + sum_{c,y,x} W[k, c*h*w + y*w + x] * f[c, y, x]
  (``flatten(1)`` of (c, h, w) is channel-major), so cam[y, x] = sum_c W[k, c, y, x] * f[c, y, x].
- global-average-pool + Linear networks (torchvision ResNet, MobileNetV2, EfficientNet, VGG with
  ``compact_head``): the classic CAM, cam[y, x] = sum_c W[k, c] * f[c, y, x] / (h * w).
In both cases sum_{y,x} cam + b_k equals the logit (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn

from fgdd.errors import ConfigError, FgddError
from fgdd.foreground.base import SegmentationContext
from fgdd.models.checkpoint import weights_sha256
from fgdd.models.convnet import ConvNet

SUPPORTED = (
    "fgdd.models.convnet.ConvNet (RDED's ConvNet-D), torchvision ResNet, MobileNetV2, EfficientNet, "
    "VGG with compact_head=true (global average pool + one Linear)"
)


@dataclass
class _CamHead:
    """Where the last feature map comes from and the Linear that reads it."""

    feature_module: nn.Module  # its forward output is the (n, c, h, w) map the head reads
    linear: nn.Linear
    pooled: bool  # True: global average pool before the Linear; False: flatten (ConvNet)


def _cam_head(model: nn.Module) -> _CamHead:
    if isinstance(model, ConvNet):
        return _CamHead(model.layers["pool"][model.depth - 1], model.classifier, pooled=False)
    tv = torchvision.models
    if isinstance(model, tv.ResNet) and isinstance(model.fc, nn.Linear):
        return _CamHead(model.layer4, model.fc, pooled=True)
    if isinstance(model, (tv.MobileNetV2, tv.EfficientNet)) and isinstance(model.classifier[-1], nn.Linear):
        # classifier = (Dropout, Linear); dropout is the identity in eval mode
        return _CamHead(model.features, model.classifier[-1], pooled=True)
    if (
        isinstance(model, tv.VGG)
        and isinstance(model.classifier, nn.Linear)
        and isinstance(model.avgpool, nn.AdaptiveAvgPool2d)
        and model.avgpool.output_size in (1, (1, 1))
    ):
        return _CamHead(model.features, model.classifier, pooled=True)
    raise ConfigError(
        f"segmenter=cam cannot compute a class activation map for {type(model).__name__}: supported observers are "
        f"{SUPPORTED}. Use another segmenter (grounded_sam2, mask_folder) or one of these teachers."
    )


def otsu_threshold(values: torch.Tensor, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1]: the cut that maximises the between-class variance."""
    hist = torch.histc(values.float(), bins=bins, min=0.0, max=1.0).double()  # (bins,)
    centres = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins
    weight0 = hist.cumsum(0)  # pixels at or below each bin
    weight1 = hist.sum() - weight0
    sum0 = (hist * centres).cumsum(0)
    mean0 = sum0 / weight0.clamp(min=1e-12)
    mean1 = (sum0[-1] - sum0) / weight1.clamp(min=1e-12)
    between = weight0 * weight1 * (mean0 - mean1) ** 2  # (bins,)
    best = int(torch.argmax(between))
    return float((best + 1) / bins)  # upper edge of the last background bin


class CAMSegmenter:
    def __init__(
        self,
        threshold: float | Literal["otsu"] = 0.4,  # on the per-image normalised CAM, in [0, 1)
        input_size_from: Literal["dataset"] = "dataset",
        batch_size: int = 256,
        normalize: Literal["max", "minmax"] = "max",  # "max": cam / max (negative evidence stays < 0); "minmax"
        name: str = "cam",
    ) -> None:
        # Defaults measured on Weizmann Horse (328 photos with hand-made masks, CIFAR-10 ConvNet-3 teacher,
        # benchmarks/foreground_weizmann.py, BENCHMARKS.md): max-normalised at 0.4 has the lowest occupancy error
        # (0.111 vs 0.135 for the best min-max threshold) and the highest correlation with the true occupancy
        # (0.16 vs <= 0.085 for every min-max threshold and otsu). Min-max stretches every map to [0, 1], so an
        # image whose class evidence is everywhere still gets a small mask; max keeps that evidence.
        if threshold != "otsu" and not (isinstance(threshold, (int, float)) and 0.0 <= float(threshold) < 1.0):
            raise ConfigError(f"cam threshold must be a number in [0, 1) or 'otsu', got {threshold!r}")
        if input_size_from != "dataset":
            # The teacher was trained at the dataset's input size (ConvNet's Linear even fixes it), so the CAM is
            # computed on images resized to it, exactly as the observer scores crops.
            raise ConfigError(f"cam input_size_from must be 'dataset', got {input_size_from!r}")
        if normalize not in ("minmax", "max"):
            raise ConfigError(f"cam normalize must be 'minmax' or 'max', got {normalize!r}")
        if batch_size < 1:
            raise ConfigError(f"cam batch_size must be >= 1, got {batch_size}")
        self.name = name
        self.threshold: float | str = threshold if threshold == "otsu" else float(threshold)
        self.input_size_from = input_size_from
        self.batch_size = int(batch_size)
        self.normalize = normalize
        self._model: nn.Module | None = None
        self._head: _CamHead | None = None
        self._fingerprint: str | None = None

    def setup(self, context: SegmentationContext) -> None:
        if context.observer is None:
            raise ConfigError("segmenter=cam needs the run's teacher (observer), but none was given")
        self._head = _cam_head(context.observer)
        self._model = context.observer
        self._device = torch.device(context.device)
        spec = context.spec
        self._input_size = int(spec.input_size)
        self._mean = [float(v) for v in spec.mean]
        self._std = [float(v) for v in spec.std]
        self._fingerprint = weights_sha256(context.observer, layout="state_dict")  # occupancy/ keys

    def cache_key(self) -> dict[str, Any]:
        if self._fingerprint is None:
            raise FgddError("CAMSegmenter.cache_key() needs setup(context) first (the key holds the teacher's weights)")
        return {
            "name": self.name,
            "method": "cam-v1",
            "threshold": self.threshold,
            "normalize": self.normalize,
            "input_size": self._input_size,
            "mean": self._mean,
            "std": self._std,
            "observer_sha256": self._fingerprint,
        }

    def _preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        # The whole image squashed to input x input (not cropped), so every pixel has a CAM value.
        size = [self._input_size, self._input_size]
        batch = [TF.normalize(TF.to_tensor(TF.resize(im.convert("RGB"), size)), self._mean, self._std) for im in images]
        return torch.stack(batch).to(self._device)  # (n, 3, s, s)

    @torch.inference_mode()
    def cams(self, images: Sequence[Image.Image], labels: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw CAMs of the given classes at the feature resolution, (n, h, w), and the model's logits (n, k)."""
        if self._model is None or self._head is None:
            raise FgddError("CAMSegmenter.masks() needs setup(context) first")
        model, head = self._model, self._head
        num_classes = head.linear.out_features
        bad = [int(label) for label in labels if not 0 <= int(label) < num_classes]
        if bad:
            raise FgddError(f"cam: labels {bad[:5]} outside the teacher's {num_classes} classes")
        captured: list[torch.Tensor] = []
        hook = head.feature_module.register_forward_hook(lambda _m, _i, out: captured.append(out))
        was_training = model.training
        model.eval()  # batch norm with running statistics, as the observer scores crops
        try:
            logits = model(self._preprocess(images))  # (n, k)
        finally:
            hook.remove()
            model.train(was_training)
        features = captured[-1].float()  # (n, c, h, w)
        n, c, h, w = features.shape
        label_index = torch.as_tensor([int(v) for v in labels], device=features.device)
        weight = head.linear.weight.float()[label_index]  # (n, in_features)
        if head.pooled:
            cam = torch.einsum("nc,nchw->nhw", weight, features) / (h * w)
        else:
            if weight.shape[1] != c * h * w:
                raise FgddError(f"cam: Linear has {weight.shape[1]} inputs but the feature map is {c}x{h}x{w}")
            cam = (weight.view(n, c, h, w) * features).sum(1)  # flatten(1) order: index = c*h*w + y*w + x
        return cam, logits.float()

    def _mask(self, cam: torch.Tensor, height: int, width: int) -> np.ndarray:
        # cam (h, w) -> bilinear to the image's own size -> per-image normalisation -> threshold
        up = F.interpolate(cam[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
        low, high = up.min(), up.max()
        if self.normalize == "max":
            if float(high) <= 0.0:
                return np.zeros((height, width), dtype=bool)  # no positive evidence for the class anywhere
            normalised = up / high  # <= 1; negative where the map argues against the class
        else:
            if float(high - low) <= 1e-12 * max(1.0, float(high.abs())):
                return np.zeros((height, width), dtype=bool)  # a flat map carries no location: no foreground
            normalised = (up - low) / (high - low)  # [0, 1]
        if self.threshold == "otsu":
            threshold = otsu_threshold(normalised.clamp(min=0.0))
        else:
            threshold = float(self.threshold)
        return (normalised > threshold).cpu().numpy()

    @torch.inference_mode()
    def masks(
        self,
        images: Sequence[Image.Image],
        *,
        labels: Sequence[int],
        prompts: Sequence[str],
        sources: Sequence[str],
    ) -> list[np.ndarray]:
        if len(labels) != len(images):
            raise FgddError(f"cam: {len(images)} images but {len(labels)} labels")
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            cams, _ = self.cams(chunk, labels[start : start + self.batch_size])  # (n, h, w)
            out.extend(self._mask(cam, im.height, im.width) for cam, im in zip(cams, chunk))
        return out
