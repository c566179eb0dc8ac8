"""Grounded SAM 2: Grounding DINO boxes for the class name, SAM 2 masks for the boxes, union per image.

As the Grounded-SAM-2 demo (IDEA-Research) does it: caption "<class name>.", every box scoring above
box_threshold prompts SAM 2 with multimask_output=False; no box means an all-background mask (occupancy 0).
Models load in ``setup`` (not in the constructor), so composing and instantiating the config is cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image
from torch import nn

from fgdd.errors import ConfigError
from fgdd.foreground.base import SegmentationContext, text_prompt
from fgdd.foreground.grounding_dino import GroundingDinoDetector, load_grounding_dino
from fgdd.foreground.sam2_masks import Sam2BoxMasker, build_sam2_model, resolve_sam2_checkpoint


class GroundedSAM2Segmenter:
    # masks depend on these packages' model code: their versions join the occupancy cache key
    packages = ("transformers", "sam2")

    def __init__(
        self,
        detector: str = "IDEA-Research/grounding-dino-tiny",
        box_threshold: float = 0.4,
        text_threshold: float = 0.3,
        sam2_config: str = "configs/sam2.1/sam2.1_hiera_t.yaml",
        sam2_checkpoint: str = "facebook/sam2.1-hiera-tiny",
        sam2_checkpoint_file: str = "sam2.1_hiera_tiny.pt",
        sam2_overrides: Mapping[str, Any] | None = None,
        sam2_postprocessing: bool = True,
        mask_threshold: float = 0.0,
        cache_dir: str | None = None,
        batch_size: int = 8,
        name: str = "grounded_sam2",
        bf16: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"segmenter.batch_size must be >= 1, got {batch_size}")
        self.name = name
        self.detector_id = detector
        self.box_threshold = float(box_threshold)
        self.text_threshold = float(text_threshold)
        self.sam2_config = sam2_config
        self.sam2_checkpoint = sam2_checkpoint
        self.sam2_checkpoint_file = sam2_checkpoint_file
        self.sam2_overrides = {str(k): _plain(v) for k, v in dict(sam2_overrides or {}).items()}
        self.sam2_postprocessing = sam2_postprocessing
        self.mask_threshold = float(mask_threshold)
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.bf16 = bf16
        self._detector: GroundingDinoDetector | None = None
        self._masker: Sam2BoxMasker | None = None

    @classmethod
    def from_models(
        cls,
        detector: nn.Module,
        processor: Any,
        sam_model: nn.Module,
        *,
        box_threshold: float = 0.4,
        text_threshold: float = 0.3,
        mask_threshold: float = 0.0,
        batch_size: int = 8,
        models_name: str = "in-memory",
        bf16: bool = True,
    ) -> GroundedSAM2Segmenter:
        """Already-built models (tests, notebooks); ``models_name`` stands for both models in ``cache_key``."""
        self = cls(
            detector=models_name,
            box_threshold=box_threshold,
            text_threshold=text_threshold,
            sam2_config=models_name,
            sam2_checkpoint=models_name,
            sam2_checkpoint_file=models_name,
            mask_threshold=mask_threshold,
            batch_size=batch_size,
            bf16=bf16,
        )
        self._detector = GroundingDinoDetector(
            detector.eval(), processor, self.box_threshold, self.text_threshold, batch_size, bf16
        )
        self._masker = Sam2BoxMasker(sam_model.eval(), batch_size, self.mask_threshold, bf16)
        return self

    def setup(self, context: SegmentationContext) -> None:
        if self._detector is None:  # hub/cache failures raise ModelUnavailableError here, before any work
            model, processor = load_grounding_dino(self.detector_id, self.cache_dir)
            self._detector = GroundingDinoDetector(
                model, processor, self.box_threshold, self.text_threshold, self.batch_size, self.bf16
            )
        if self._masker is None:
            checkpoint = resolve_sam2_checkpoint(self.sam2_checkpoint, self.sam2_checkpoint_file, self.cache_dir)
            sam = build_sam2_model(self.sam2_config, checkpoint, self.sam2_overrides, self.sam2_postprocessing)
            self._masker = Sam2BoxMasker(sam, self.batch_size, self.mask_threshold, self.bf16)
        self._detector.to(context.device)
        self._masker.to(context.device)

    def cache_key(self) -> dict[str, Any]:
        return {
            "segmenter": self.name,
            "detector": self.detector_id,
            "box_threshold": self.box_threshold,
            "text_threshold": self.text_threshold,
            "sam2_config": self.sam2_config,
            "sam2_checkpoint": self.sam2_checkpoint,
            "sam2_checkpoint_file": self.sam2_checkpoint_file,
            "sam2_overrides": self.sam2_overrides,
            "sam2_postprocessing": self.sam2_postprocessing,
            "mask_threshold": self.mask_threshold,
            "bf16": self.bf16,  # on CUDA the masks differ from fp32 ones by rounding at the mask boundary
        }

    def masks(
        self,
        images: Sequence[Image.Image],
        *,
        labels: Sequence[int],
        prompts: Sequence[str],
        sources: Sequence[str],
    ) -> list[np.ndarray]:
        if self._detector is None or self._masker is None:
            raise RuntimeError("GroundedSAM2Segmenter.setup(context) must run before masks()")
        if len(prompts) != len(images):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        rgb = [image.convert("RGB") for image in images]
        boxes = self._detector.boxes(rgb, [text_prompt(p) for p in prompts])  # (n_i, 4) xyxy pixels each
        return self._masker.masks([np.array(image) for image in rgb], boxes)


def _plain(value: Any) -> Any:
    """OmegaConf containers (from Hydra) -> plain lists/dicts, so cache_key serialises as JSON."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
