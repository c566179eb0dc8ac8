"""What a run's numbers depend on beyond its config: the CPU (model, kernels torch runs), bf16 support, threads,
the GPU. Recorded in run.json: the same seed gives the same numbers only on the same machine kind and precision."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

from fgdd.utils.precision import AUTO_OVERRIDE, native_bf16

# environment variables that change which kernels run or what precision=auto resolves to; recorded when set
KERNEL_SETTINGS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "OMP_NUM_THREADS", AUTO_OVERRIDE)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_record(device: torch.device) -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the vectorised kernels torch runs (AVX2, AVX512)
        "bf16_native": native_bf16(device),  # on the run's device
        "threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "env": {name: os.environ[name] for name in KERNEL_SETTINGS if name in os.environ},
    }
