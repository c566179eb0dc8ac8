"""SAM 2 (Meta's ``sam2`` package) built without Hydra's global state, and box prompts -> one union mask per image.

``import sam2`` calls ``hydra.initialize_config_module("sam2")`` when GlobalHydra is not initialised yet, which
makes a later ``@hydra.main`` / ``initialize_config_dir`` in the same process fail. ``import_sam2`` undoes exactly
that, and the model is built from its packaged YAML with OmegaConf + ``hydra.utils.instantiate`` (no ``compose``),
so it works the same inside and outside a Hydra app.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fgdd.errors import CheckpointError, ConfigError, ModelUnavailableError
from fgdd.foreground.grounding_dino import hub_offline

# What build_sam2(apply_postprocessing=True) adds, as the Grounded-SAM-2 demo builds it: with
# multimask_output=False, an unstable single mask falls back to the best of the three multimask outputs.
POSTPROCESSING = {
    "model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability": True,
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta": 0.05,
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh": 0.98,
}


def import_sam2() -> Any:
    """``sam2.sam2_image_predictor``, leaving GlobalHydra as it was before the import."""
    from hydra.core.global_hydra import GlobalHydra

    was_initialized = GlobalHydra.instance().is_initialized()
    try:
        import sam2.sam2_image_predictor as predictor_module
    except ImportError as error:
        raise ModelUnavailableError(
            "the grounded_sam2 segmenter needs Meta's sam2 package: "
            "`SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0` (after torch)"
        ) from error
    finally:
        if not was_initialized and GlobalHydra.instance().is_initialized():
            GlobalHydra.instance().clear()  # sam2's own initialisation, nobody else's
    return predictor_module


def sam2_config_path(config: str) -> Path:
    """A YAML path as given, else relative to the installed sam2 package ("configs/sam2.1/sam2.1_hiera_t.yaml")."""
    given = Path(config).expanduser()
    if given.is_file():
        return given
    spec = importlib.util.find_spec("sam2")  # locates the package without running its __init__
    locations = list(spec.submodule_search_locations or []) if spec else []
    packaged = Path(locations[0]) / config if locations else None
    if packaged is None or not packaged.is_file():
        raise ConfigError(
            f"SAM 2 model config {config!r} is neither a file nor inside the sam2 package; use one of "
            "configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml (segmenter.sam2_config)"
        )
    return packaged


def build_sam2_model(
    config: str,
    checkpoint: str | Path | None,
    overrides: Mapping[str, Any] | None = None,
    postprocessing: bool = True,
) -> nn.Module:
    """SAM2Base in eval mode. ``overrides``: dotted keys from the YAML root ("model.image_size") or nested dicts,
    applied after the postprocessing keys. ``checkpoint=None`` keeps random weights (tests only)."""
    import_sam2()
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(sam2_config_path(config))
    for key, value in {**(POSTPROCESSING if postprocessing else {}), **dict(overrides or {})}.items():
        OmegaConf.update(cfg, key, OmegaConf.to_container(value) if OmegaConf.is_config(value) else value, merge=True)
    OmegaConf.resolve(cfg)
    model = instantiate(cfg.model, _recursive_=True)
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state = state.get("model", state) if isinstance(state, dict) else state
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise CheckpointError(
                f"SAM 2 checkpoint {checkpoint} does not fit the model config {config} (with overrides "
                f"{dict(overrides or {})}); pick the config of the same size (segmenter.sam2_config): {error}"
            ) from error
    return model.eval()


def resolve_sam2_checkpoint(checkpoint: str, filename: str, cache_dir: str | None) -> Path:
    """A local file as given, else ``filename`` from the hub repo ``checkpoint`` through the Hugging Face cache."""
    local = Path(checkpoint).expanduser()
    if local.is_file():
        return local
    if local.suffix in (".pt", ".pth") or local.is_absolute():
        raise ModelUnavailableError(
            f"SAM 2 checkpoint file {local} does not exist; set segmenter.sam2_checkpoint=<path to the .pt file> "
            "or a hub id such as facebook/sam2.1-hiera-tiny"
        )
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(checkpoint, filename, cache_dir=cache_dir, local_files_only=hub_offline()))
    except Exception as error:  # offline cache miss, no network, unknown repo or file: all fixed the same way
        where = f"the cache folder {cache_dir}" if cache_dir else "the Hugging Face cache (HF_HOME)"
        raise ModelUnavailableError(
            f"cannot load the SAM 2 checkpoint {checkpoint}/{filename} ({type(error).__name__}: {error}). "
            f"Either run once with network access to fill {where} (segmenter.cache_dir=<folder> chooses the folder), "
            f"or download {filename} elsewhere and set segmenter.sam2_checkpoint=<path to {filename}>"
        ) from error


class Sam2BoxMasker:
    """Box prompts -> union of SAM 2's single-mask outputs per image. Images without boxes are not encoded."""

    def __init__(self, model: nn.Module, batch_size: int, mask_threshold: float = 0.0, bf16: bool = True) -> None:
        predictor_module = import_sam2()
        self.model = model
        self.batch_size = batch_size
        self.bf16 = bf16  # bf16 autocast on CUDA (never on the CPU)
        self.predictor = predictor_module.SAM2ImagePredictor(model, mask_threshold=mask_threshold)
        # The predictor hard-codes the 1024-input feature sizes; derive them from the model so that a smaller
        # image_size (fast tests) reshapes its features correctly.
        e = model.sam_image_embedding_size  # image_size // 16
        self.predictor._bb_feat_sizes = [(4 * e, 4 * e), (2 * e, 2 * e), (e, e)]

    def to(self, device: torch.device) -> Sam2BoxMasker:
        self.model.to(device)
        return self

    @torch.inference_mode()
    def masks(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``images``: uint8 (H, W, 3) RGB; ``boxes``: (n_i, 4) xyxy pixels -> bool (H, W), False where n_i = 0."""
        out = [np.zeros(image.shape[:2], dtype=bool) for image in images]
        prompted = [i for i, b in enumerate(boxes) if len(b)]
        device = self.predictor.device
        for start in range(0, len(prompted), self.batch_size):
            chunk = prompted[start : start + self.batch_size]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16 and device.type == "cuda"):
                self.predictor.set_image_batch([images[i] for i in chunk])
                masks, _, _ = self.predictor.predict_batch(
                    box_batch=[np.asarray(boxes[i], dtype=np.float32) for i in chunk], multimask_output=False
                )
            for i, m in zip(chunk, masks, strict=True):
                h, w = images[i].shape[:2]
                out[i] = (m.reshape(-1, h, w) > 0.5).any(axis=0)  # (1, h, w) or (n, 1, h, w) 0/1 floats -> union
        self.predictor.reset_predictor()  # drop the last batch's features
        return out
