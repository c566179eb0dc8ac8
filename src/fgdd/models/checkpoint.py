"""fgdd's checkpoint format (state dict + metadata) and loading of RDED / bare / DataParallel checkpoints."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import hydra.utils
import torch
from hydra.errors import InstantiationException
from torch import nn

from fgdd.errors import CheckpointError, ConfigError
from fgdd.utils.io import atomic_torch_save

log = logging.getLogger(__name__)

CONVNET_TARGET = "fgdd.models.convnet.ConvNet"

# How weights_sha256 writes each tensor's header: (names sorted?, header). Two layouts because two caches were
# keyed before the hash had one home, and their keys must not change: "sorted" keys teacher_accuracy/ and
# full_real/, "state_dict" (the state dict's own order) keys occupancy/ through segmenter=cam's observer_sha256.
WeightsLayout = Literal["sorted", "state_dict"]
_LAYOUTS: dict[str, tuple[bool, str]] = {
    "sorted": (True, "{name}\t{dtype}\t{shape}\n"),
    "state_dict": (False, "{name}|{dtype}|{shape}|"),
}


@dataclass
class ModelMeta:
    arch: dict[str, Any]  # the `net` config, with _target_
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classes: list[str]  # label order; empty = unknown (a bare checkpoint without sidecar)
    val_top1: float | None = None  # fraction in [0, 1]
    dataset: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)


def plain_arch(arch: Mapping[str, Any]) -> dict[str, Any]:
    return dict(arch)


def build_model(arch: Mapping[str, Any], num_classes: int, input_size: int) -> nn.Module:
    if "_target_" not in arch:
        raise ConfigError(f"model arch config {plain_arch(arch)} has no _target_ (e.g. {CONVNET_TARGET})")
    try:
        return hydra.utils.instantiate(arch, num_classes=num_classes, input_size=input_size)
    except InstantiationException as error:
        # hydra wraps the constructor's own error; surface fgdd's message when there is one
        if isinstance(error.__cause__, Exception) and type(error.__cause__).__module__.startswith("fgdd"):
            raise error.__cause__ from None
        raise ConfigError(f"cannot build model {plain_arch(arch)}: {error}") from error


_RDED_TORCHVISION = {
    "resnet18": {"_target_": "fgdd.models.resnet.resnet", "depth": 18},
    "resnet18_modified": {"_target_": "fgdd.models.resnet.resnet", "depth": 18, "low_res_stem": True},
    "resnet50": {"_target_": "fgdd.models.resnet.resnet", "depth": 50},
    "resnet101": {"_target_": "fgdd.models.resnet.resnet", "depth": 101},
    "resnet101_modified": {"_target_": "fgdd.models.resnet.resnet", "depth": 101, "low_res_stem": True},
    "mobilenet_v2": {"_target_": "fgdd.models.torchvision_zoo.mobilenet_v2"},
    "efficientnet_b0": {"_target_": "fgdd.models.torchvision_zoo.efficientnet_b0"},
    "vgg11": {"_target_": "fgdd.models.torchvision_zoo.vgg11"},
}


def rded_arch(name: str, norm: str = "batch", width: int = 128) -> dict[str, Any]:
    """RDED's model names (``conv3``, ``resnet18_modified`` ...) as fgdd arch configs."""
    match = re.fullmatch(r"conv(\d+)", name)
    if match:
        return {"_target_": CONVNET_TARGET, "depth": int(match.group(1)), "width": width, "norm": norm}
    key = name.lower().replace("-", "_")
    if key in _RDED_TORCHVISION:
        return dict(_RDED_TORCHVISION[key])
    raise CheckpointError(
        f"unknown RDED arch name {name!r}; known: conv<depth>, {sorted(_RDED_TORCHVISION)}. "
        "Write the fgdd arch config in the sidecar JSON as \"arch\": {\"_target_\": ...}"
    )


def weights_sha256(model: nn.Module, layout: WeightsLayout = "sorted") -> str:
    """sha256 of the state dict (names, dtypes, shapes and bytes), independent of the device it lives on: a
    different model or different weights give a different cache key."""
    sort, header = _LAYOUTS[layout]
    items = list(model.state_dict().items())
    digest = hashlib.sha256()
    for name, tensor in sorted(items) if sort else items:
        values = tensor.detach().cpu().contiguous().reshape(-1)  # 0-d buffers (num_batches_tracked) as (1,)
        digest.update(header.format(name=name, dtype=values.dtype, shape=tuple(tensor.shape)).encode())
        digest.update(values.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike[str], state_dict: dict[str, torch.Tensor], meta: ModelMeta) -> None:
    record = asdict(meta)
    record["arch"] = plain_arch(meta.arch)
    record["mean"], record["std"] = list(meta.mean), list(meta.std)
    weights = {k: v.detach().cpu() for k, v in state_dict.items()}
    atomic_torch_save(path, {"model": weights, "fgdd_meta": record})


def _extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):  # fgdd / RDED, then Lightning-style
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path} holds no state dict (expected fgdd's/RDED's {{'model': state_dict}} or a bare state_dict)"
        )
    if all(k.startswith("module.") for k in obj):  # saved from nn.DataParallel / DDP
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return dict(obj)


def _meta_from_sidecar(sidecar: Path) -> ModelMeta:
    try:
        info = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read checkpoint sidecar {sidecar}: {error}") from error
    arch = info.get("arch")
    if isinstance(arch, str):
        arch = rded_arch(arch, norm=info.get("norm", "batch"), width=int(info.get("width", 128)))
    if not isinstance(arch, dict):
        raise CheckpointError(f"sidecar {sidecar} has no usable 'arch' (an RDED name like 'conv3' or a config)")
    missing = [k for k in ("input_size", "mean", "std") if k not in info]
    if missing:
        raise CheckpointError(f"sidecar {sidecar} lacks {missing}")
    recipe = dict(info.get("recipe") or {})
    if "epochs_done" in info:
        recipe["epochs_done"] = info["epochs_done"]
    return ModelMeta(
        arch=arch,
        input_size=int(info["input_size"]),
        mean=tuple(float(x) for x in info["mean"]),  # type: ignore[arg-type]
        std=tuple(float(x) for x in info["std"]),  # type: ignore[arg-type]
        classes=[str(c) for c in info.get("classes") or []],
        val_top1=info.get("val_top1"),
        dataset=info.get("dataset"),
        recipe=recipe,
    )


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], ModelMeta | None]:
    """Meta comes from the file's ``fgdd_meta``, else from ``<stem>.json`` beside it, else is None."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check the teacher path setting")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated file, not a torch file, pickled custom classes
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    state_dict = _extract_state_dict(obj, path)
    if isinstance(obj, dict) and isinstance(obj.get("fgdd_meta"), dict):
        record = dict(obj["fgdd_meta"])
        record["mean"], record["std"] = tuple(record["mean"]), tuple(record["std"])
        return state_dict, ModelMeta(**record)
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        return state_dict, _meta_from_sidecar(sidecar)
    return state_dict, None


def _first(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def load_state_dict_strict(
    model: nn.Module, state_dict: dict[str, torch.Tensor], source: str, arch: Mapping[str, Any]
) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"missing keys: {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_first(unexpected)}")
        if wrong_shape:
            parts.append(f"shape mismatches (checkpoint vs model): {_first(wrong_shape, 3)}")
        raise CheckpointError(
            f"checkpoint {source} does not fit the model {plain_arch(arch)}: " + "; ".join(parts) + ". "
            "Set the teacher's arch (e.g. depth/width/norm of ConvNet, low_res_stem of ResNet) and the class count "
            "to what the checkpoint was trained with, or add a sidecar JSON with its arch"
        )
    model.load_state_dict(state_dict, strict=True)
