"""Foreground as the most salient object: U²-Net's small variant (u2netp) run with onnxruntime.

A pretrained salient-object network, 4.6 MB, that runs offline on the CPU. It is class-agnostic: the mask is
whatever stands out most in the photo, which need not be the labelled class (a rider on the horse, several horses
where the label means one); class prompts are ignored. On Weizmann Horse it tracks hand-made masks closely
(BENCHMARKS.md), where the teacher's CAM hardly does.

Preprocessing as rembg feeds this export: the image resized to 320 x 320 (Lanczos), divided by its own maximum,
normalised with ImageNet's mean and std. The first output (the fused saliency map) is min-max normalised per image,
resized to the image's own size and thresholded. The weights are a file checked by sha256 (``fgdd.weights``);
onnxruntime is imported in ``setup`` only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fgdd.errors import ConfigError, FgddError, ModelUnavailableError
from fgdd.foreground.base import SegmentationContext
from fgdd.weights import U2NETP, check_weights

log = logging.getLogger(__name__)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # what U²-Net was trained with, whatever the dataset
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as error:
        raise ModelUnavailableError(
            "segmenter=saliency runs U²-Net with onnxruntime, which is not installed: "
            "pip install -e '.[saliency]' (or pip install onnxruntime; onnxruntime-gpu for CUDA)"
        ) from error
    return onnxruntime


def preprocess(images: Sequence[Image.Image], input_size: int) -> np.ndarray:
    """(n, 3, s, s) float32: each image resized (Lanczos), divided by its maximum, ImageNet-normalised."""
    batch = np.empty((len(images), 3, input_size, input_size), dtype=np.float32)
    for i, image in enumerate(images):
        pixels = np.asarray(image.convert("RGB").resize((input_size, input_size), Image.LANCZOS), dtype=np.float32)
        pixels = pixels / max(float(pixels.max()), 1.0)  # (s, s, 3); its brightest value -> 1 (a black image stays 0)
        batch[i] = ((pixels - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    return batch


def saliency_mask(saliency: np.ndarray, height: int, width: int, threshold: float) -> np.ndarray:
    """(s, s) raw map -> bool (height, width): min-max normalised, resized (bilinear, antialiased), thresholded."""
    low, high = float(saliency.min()), float(saliency.max())
    if high - low <= 1e-12:
        return np.zeros((height, width), dtype=bool)  # a flat map singles nothing out
    normalised = torch.from_numpy((saliency - low) / (high - low)).float()[None, None]  # (1, 1, s, s) in [0, 1]
    resized = F.interpolate(normalised, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return (resized[0, 0] > threshold).numpy()


class SaliencySegmenter:
    def __init__(
        self,
        weights: str,
        weights_sha256: str | None = U2NETP.sha256,  # None accepts any file (another export); the key holds its hash
        threshold: float = 0.5,  # on the min-max normalised map
        input_size: int = 320,  # u2netp's fixed input
        batch_size: int = 16,  # images preprocessed together (and per forward, when the model's batch is not fixed)
        threads: int | None = None,  # onnxruntime intra-op threads; None: its default (every core)
        name: str = "saliency",
    ) -> None:
        if not 0.0 <= float(threshold) < 1.0:
            raise ConfigError(f"segmenter.threshold must be in [0, 1), got {threshold!r}")
        if batch_size < 1 or input_size < 1:
            raise ConfigError(f"segmenter.batch_size and input_size must be >= 1, got {batch_size}, {input_size}")
        if threads is not None and threads < 1:
            raise ConfigError(f"segmenter.threads must be >= 1 or null, got {threads}")
        self.name = name
        self.weights = str(weights)
        self.weights_sha256 = weights_sha256
        self.threshold = float(threshold)
        self.input_size = int(input_size)
        self.batch_size = int(batch_size)
        self.threads = threads
        self._sha256: str | None = None
        self._session: Any = None
        self._device: str | None = None
        self._version = ""

    def _checked_sha256(self) -> str:
        # stops with the ways to provide the file when it is missing or another file
        if self._sha256 is None:
            self._sha256 = check_weights(self.weights, U2NETP, self.weights_sha256, config="segmenter")
        return self._sha256

    def setup(self, context: SegmentationContext) -> None:
        self._checked_sha256()
        device = torch.device(context.device)
        if self._session is not None and self._device == device.type:
            return
        ort = import_onnxruntime()
        providers: list[Any] = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
            else:
                log.warning("segmenter=saliency runs on the CPU: this onnxruntime has no CUDA provider "
                            "(pip install onnxruntime-gpu for it); the masks are the same up to rounding")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the export's unused-initialiser notices are noise
        if self.threads is not None:
            options.intra_op_num_threads = int(self.threads)
        session = ort.InferenceSession(str(self.weights), options, providers=providers)
        shape = session.get_inputs()[0].shape  # [batch, 3, s, s]; u2netp's export fixes all four (1, 3, 320, 320)
        if all(isinstance(d, int) for d in shape[2:]) and list(shape[2:]) != [self.input_size] * 2:
            raise ConfigError(f"segmenter.input_size={self.input_size}, but {self.weights} takes {shape[2]}x{shape[3]}")
        self._session, self._device, self._version = session, device.type, ort.__version__

    def cache_key(self) -> dict[str, Any]:
        if self._session is None:
            raise FgddError("SaliencySegmenter.cache_key() needs setup(context) first (the key names the runtime)")
        return {
            "name": self.name,
            "method": "u2net-saliency-v1",  # preprocessing and mask rule of this module
            "weights_sha256": self._checked_sha256(),  # the file, wherever it lives
            "threshold": self.threshold,
            "input_size": self.input_size,
            "onnxruntime": self._version,
            "provider": self._session.get_providers()[0],  # CUDA and CPU kernels round differently
        }

    def saliency(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, s, s) raw saliency maps (the fused output) for a list of images."""
        if self._session is None:
            raise FgddError("SaliencySegmenter.masks() needs setup(context) first")
        session = self._session
        fixed = session.get_inputs()[0].shape[0]
        step = fixed if isinstance(fixed, int) else self.batch_size  # u2netp's export takes one image per call
        batch = preprocess(images, self.input_size)  # (n, 3, s, s)
        input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name
        maps = [session.run([output_name], {input_name: batch[start : start + step]})[0][:, 0]  # (b, s, s)
                for start in range(0, len(batch), step)]
        return np.concatenate(maps) if maps else np.empty((0, self.input_size, self.input_size), np.float32)

    def masks(
        self,
        images: Sequence[Image.Image],
        *,
        labels: Sequence[int],
        prompts: Sequence[str],
        sources: Sequence[str],
    ) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            maps = self.saliency(chunk)  # (b, s, s)
            out.extend(saliency_mask(m, image.height, image.width, self.threshold) for m, image in zip(maps, chunk))
        return out
