"""One resolver for every stage's precision setting: ``auto | fp32 | bf16`` -> what runs, ``"fp32"`` or ``"bf16"``.

``auto`` is bf16 autocast where the device computes bf16 natively (CUDA GPUs with bf16; CPUs with AVX512-BF16 or
AMX whose kernels torch is allowed to use), else fp32. The same seed then gives the same numbers only on the same
machine kind and precision (README "What fgdd guarantees"). A stage resolves its setting once, up front, and runs
its forward passes under ``autocast(resolved, device)``; run.json records what each stage resolved to.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Literal

import torch

from fgdd.errors import ConfigError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
Resolved = Literal["fp32", "bf16"]

# the setting each stage reads, for messages
SETTINGS = {"teacher": "teacher.recipe.precision", "select": "selector.precision", "student": "evaluator.precision"}

# What `auto` resolves to on every device when set (fp32 | bf16): the test suite's fp32 run
# (FGDD_AUTO_PRECISION=fp32 make test) computes what a CPU without native bf16 computes. Recorded in run.json.
AUTO_OVERRIDE = "FGDD_AUTO_PRECISION"

EMULATED_CPU_BF16 = (
    "bf16 autocast on a CPU without native bf16 is emulated: a ConvNet-5 128 px training step measured 5-10x slower "
    "than fp32 on an AVX2-only AMD EPYC; use precision=auto or fp32"
)

# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) below AVX512_CORE_BF16: its bf16 convolutions are then emulated
_ONEDNN_BELOW_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}

_warned: set[str] = set()  # stages warned about emulated bf16 in this process


def cpu_kernels_capped() -> bool:
    """ATEN_CPU_CAPABILITY=avx2 or ONEDNN_MAX_CPU_ISA=AVX2 make torch run AVX2 kernels on an AVX-512 CPU: bf16 is
    then emulated as on an AVX2-only CPU, although torch.cpu's CPUID checks still report it native."""
    onednn = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    return not torch.backends.cpu.get_cpu_capability().startswith("AVX512") or onednn in _ONEDNN_BELOW_BF16


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA GPUs with bf16 (Ampere and later), CPUs with AVX512-BF16 or
    AMX (oneDNN's bf16 kernels) whose kernels are not capped below AVX-512 (elsewhere bf16 is emulated and slower
    than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)  # True would count pre-Ampere emulation
    if device.type == "cpu":
        checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(check() for check in checks if check is not None) and not cpu_kernels_capped()
    return False


def check_precision(setting: str, stage: str) -> None:
    if setting not in PRECISIONS:
        raise ConfigError(f"{SETTINGS.get(stage, f'{stage} precision')} must be one of {', '.join(PRECISIONS)}, "
                          f"got {setting!r}")


def auto_override() -> Resolved | None:
    value = os.environ.get(AUTO_OVERRIDE)
    if not value:
        return None
    if value not in ("fp32", "bf16"):
        raise ConfigError(f"${AUTO_OVERRIDE} must be fp32 or bf16 (what precision=auto resolves to), got {value!r}")
    return value  # type: ignore[return-value]


def resolve_precision(setting: str, device: torch.device | str, *, stage: str) -> Resolved:
    """``setting`` (auto | fp32 | bf16) on ``device`` -> "fp32" | "bf16". bf16 on a device without native bf16 is
    kept (it was asked for) with one warning per stage and process."""
    check_precision(setting, stage)
    native = native_bf16(device)
    resolved = (auto_override() or ("bf16" if native else "fp32")) if setting == "auto" else setting
    if resolved == "bf16" and not native and stage not in _warned:
        _warned.add(stage)
        cost = EMULATED_CPU_BF16 if torch.device(device).type == "cpu" else (
            f"{device} has no native bf16: bf16 autocast is emulated and slower than fp32; use precision=auto or fp32")
        log.warning("%s=%s: %s", SETTINGS.get(stage, f"{stage} precision"), setting, cost)
    return resolved  # type: ignore[return-value]


def use_bf16(setting: str, device: torch.device | str, *, stage: str = "student") -> bool:
    return resolve_precision(setting, device, stage=stage) == "bf16"


def autocast(precision: Resolved, device: torch.device | str) -> contextlib.AbstractContextManager:
    """bf16 autocast of the forward passes for a resolved precision (weights, gradients, optimizer state and losses
    stay fp32). Explicitly disabled for fp32, so that an outer autocast (a trainer precision of bf16-mixed) does not
    decide behind the setting."""
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"autocast takes a resolved precision (fp32 | bf16), got {precision!r}: resolve the "
                          "setting first (resolve_precision)")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")
