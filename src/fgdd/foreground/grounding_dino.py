"""Grounding DINO (transformers' zero-shot detector): images + captions in, xyxy pixel boxes out."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fgdd.errors import ModelUnavailableError


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted: a miss then fails at once instead of retrying."""
    flags = (os.environ.get(name, "").lower() for name in ("FGDD_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(flag in ("1", "true", "yes", "on") for flag in flags)


def load_grounding_dino(model_id: str, cache_dir: str | None) -> tuple[Any, Any]:
    """(model, processor) from a hub id (through the Hugging Face cache) or a local folder (save_pretrained)."""
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    local = Path(model_id).expanduser()
    source = str(local) if local.is_dir() else model_id
    try:
        processor = AutoProcessor.from_pretrained(source, cache_dir=cache_dir, local_files_only=hub_offline())
        model = AutoModelForZeroShotObjectDetection.from_pretrained(
            source, cache_dir=cache_dir, local_files_only=hub_offline()
        )
    except (OSError, ValueError) as error:  # offline cache miss, missing folder, no network, wrong repo
        where = f"the cache folder {cache_dir}" if cache_dir else "the Hugging Face cache (HF_HOME)"
        raise ModelUnavailableError(
            f"cannot load the Grounding DINO detector {model_id!r} ({type(error).__name__}: {error}). "
            f"Either run once with network access to fill {where} (segmenter.cache_dir=<folder> chooses the folder), "
            f"or point segmenter.detector=<folder> at a local copy (the files of {model_id} from the hub, or "
            "save_pretrained output with the processor)"
        ) from error
    return model.eval(), processor


class GroundingDinoDetector:
    """Boxes for one caption per image. Images are batched only with images of the same resized shape, so no image
    is padded and each image's boxes do not depend on which other images share its batch."""

    def __init__(
        self, model: Any, processor: Any, box_threshold: float, text_threshold: float, batch_size: int,
        bf16: bool = True,
    ) -> None:
        self.model = model
        self.processor = processor
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.batch_size = batch_size
        self.bf16 = bf16  # bf16 autocast on CUDA (never on the CPU)

    def to(self, device: torch.device) -> GroundingDinoDetector:
        self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def boxes(self, images: Sequence[Image.Image], captions: Sequence[str]) -> list[np.ndarray]:
        """One float32 (n_i, 4) array per image: xyxy in pixels of that image, score > box_threshold."""
        pixels = [self.processor.image_processor(images=image, return_tensors="pt")["pixel_values"] for image in images]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)  # resized (h, w) -> image indices
        for i, p in enumerate(pixels):
            groups[tuple(p.shape[-2:])].append(i)
        found: list[np.ndarray | None] = [None] * len(images)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                for i, b in zip(chunk, self._detect(pixels, images, captions, chunk), strict=True):
                    found[i] = b
        return [b for b in found if b is not None]

    def _detect(
        self, pixels: list[torch.Tensor], images: Sequence[Image.Image], captions: Sequence[str], chunk: list[int]
    ) -> list[np.ndarray]:
        device = self.device
        pixel_values = torch.cat([pixels[i] for i in chunk]).to(device)  # (b, 3, h, w), one shape per chunk
        text = self.processor.tokenizer(
            [captions[i] for i in chunk], padding=True, return_token_type_ids=True, return_tensors="pt"
        ).to(device)  # captions of different lengths: padded, masked by attention_mask
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16 and device.type == "cuda"):
            outputs = self.model(
                pixel_values=pixel_values,
                pixel_mask=torch.ones(pixel_values.shape[0], *pixel_values.shape[-2:], dtype=torch.long, device=device),
                **text,
            )
        outputs.logits = outputs.logits.float()  # bf16 on CUDA; thresholds compare in float32
        outputs.pred_boxes = outputs.pred_boxes.float()
        results = self.processor.post_process_grounded_object_detection(
            outputs,
            text["input_ids"],
            threshold=self.box_threshold,
            text_threshold=self.text_threshold,
            target_sizes=[(images[i].height, images[i].width) for i in chunk],
        )
        return [r["boxes"].detach().cpu().numpy().astype(np.float32).reshape(-1, 4) for r in results]
