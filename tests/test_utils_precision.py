"""fgdd.utils.precision: what auto | fp32 | bf16 resolve to per device, the one warning for emulated bf16, the
per-stage precisions a run records, and the selection's scoring under the resolved precision."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

import fgdd.utils.precision as precision
from fgdd.config import stage_precisions
from fgdd.errors import ConfigError
from fgdd.run import CONF_DIR
from fgdd.selection import RDEDSelector
from fgdd.selection.scoring import score_patches
from fgdd.utils.precision import autocast, native_bf16, resolve_precision

CPU = torch.device("cpu")


@pytest.fixture
def hardware(monkeypatch: pytest.MonkeyPatch):
    """``hardware(native)``: the CPU computes bf16 natively or not; no warning given yet, no auto override."""
    monkeypatch.delenv(precision.AUTO_OVERRIDE, raising=False)
    monkeypatch.setattr(precision, "_warned", set())

    def set_native(native: bool) -> None:
        monkeypatch.setattr(precision, "native_bf16", lambda device: native)

    return set_native


@pytest.mark.parametrize(("setting", "native", "expected"), [
    ("auto", True, "bf16"), ("auto", False, "fp32"), ("fp32", True, "fp32"), ("fp32", False, "fp32"),
    ("bf16", True, "bf16"), ("bf16", False, "bf16"),
])
def test_each_setting_resolves_by_the_device(hardware, setting: str, native: bool, expected: str) -> None:
    hardware(native)
    assert resolve_precision(setting, CPU, stage="student") == expected


def test_bf16_without_native_support_warns_once_per_stage_with_its_cost(hardware, caplog) -> None:
    hardware(False)
    with caplog.at_level(logging.WARNING, logger="fgdd"):
        for _ in range(3):
            resolve_precision("bf16", CPU, stage="student")
        resolve_precision("fp32", CPU, stage="select")
        resolve_precision("auto", CPU, stage="select")
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "evaluator.precision=bf16" in warning.getMessage() and "5-10x slower than fp32" in warning.getMessage()
    with caplog.at_level(logging.WARNING, logger="fgdd"):
        resolve_precision("bf16", CPU, stage="select")  # another stage: its own warning
    assert sum("selector.precision=bf16" in r.getMessage() for r in caplog.records) == 1


def test_native_bf16_gives_no_warning(hardware, caplog) -> None:
    hardware(True)
    with caplog.at_level(logging.WARNING, logger="fgdd"):
        assert resolve_precision("bf16", CPU, stage="student") == "bf16"
    assert not caplog.records


@pytest.mark.parametrize("stage", ["student", "select", "teacher"])
def test_an_invalid_setting_is_refused_with_the_allowed_values(stage: str) -> None:
    with pytest.raises(ConfigError, match=rf"{precision.SETTINGS[stage]} must be one of auto, fp32, bf16, got 'fp16'"):
        resolve_precision("fp16", CPU, stage=stage)


def test_the_auto_override_resolves_auto_only(hardware, monkeypatch: pytest.MonkeyPatch) -> None:
    hardware(True)
    monkeypatch.setenv(precision.AUTO_OVERRIDE, "fp32")
    assert resolve_precision("auto", CPU, stage="student") == "fp32"
    assert resolve_precision("bf16", CPU, stage="student") == "bf16"  # an explicit setting wins
    monkeypatch.setenv(precision.AUTO_OVERRIDE, "half")
    with pytest.raises(ConfigError, match="FGDD_AUTO_PRECISION must be fp32 or bf16"):
        resolve_precision("auto", CPU, stage="student")


def test_kernels_capped_below_avx512_make_cpu_bf16_emulated(monkeypatch: pytest.MonkeyPatch) -> None:
    # ATEN_CPU_CAPABILITY=avx2 leaves torch.cpu's CPUID checks at True: the resolver reads the capability itself
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert native_bf16(CPU)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not native_bf16(CPU)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert native_bf16(CPU)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not native_bf16(CPU)


def test_a_gpu_that_only_emulates_bf16_is_not_native(monkeypatch: pytest.MonkeyPatch) -> None:
    # torch.cuda.is_bf16_supported() counts emulation (pre-Ampere GPUs) unless told not to
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert not native_bf16("cuda")


def test_autocast_takes_a_resolved_precision_and_overrides_an_outer_one() -> None:
    layer = nn.Linear(4, 2)
    x = torch.randn(3, 4)
    with autocast("bf16", CPU):
        assert layer(x).dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16), autocast("fp32", CPU):
        assert layer(x).dtype == torch.float32  # fp32 means fp32 even inside a trainer's bf16-mixed
    with pytest.raises(ConfigError, match="resolved precision"):
        autocast("auto", CPU)  # type: ignore[arg-type]


def test_scoring_runs_the_observer_in_the_resolved_precision() -> None:
    dtypes: list[torch.dtype] = []
    observer = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    observer.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    patches, labels = torch.rand(4, 3, 4, 4), torch.tensor([0, 1, 2, 0])
    kwargs = dict(input_size=8, mean=[0.5] * 3, std=[0.25] * 3, device=CPU)
    fp32 = score_patches(observer, patches, labels, **kwargs)
    bf16 = score_patches(observer, patches, labels, precision="bf16", **kwargs)
    assert dtypes == [torch.float32, torch.bfloat16]
    assert fp32.dtype == bf16.dtype == torch.float32  # the cross-entropy itself stays fp32
    assert torch.allclose(fp32, bf16, atol=0.05)
    with pytest.raises(ConfigError, match="selector.precision"):
        RDEDSelector(factor=1, precision="half")


def compose_run(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="run", overrides=["dataset=shapes", *overrides])


def test_a_run_resolves_every_stage_up_front(hardware) -> None:
    hardware(True)
    # teacher.recipe.precision and evaluator.precision default to auto; selection to fp32 (manifests stay put)
    assert stage_precisions(compose_run(), CPU) == {"teacher": "bf16", "select": "fp32", "student": "bf16"}
    assert stage_precisions(compose_run("teacher=checkpoint", "teacher.checkpoint=x.pth", "selector=random_real",
                                        "evaluator.precision=fp32"), CPU) == {
        "teacher": "loaded", "select": "n/a", "student": "fp32"}
    assert stage_precisions(compose_run("selector=fgdd", "selector.precision=auto", "trainer.precision=bf16-mixed",
                                        "evaluator=hard_lr_search"), CPU) == {
        "teacher": "bf16", "select": "bf16", "student": "bf16"}  # a wrapping evaluator: its inner one's setting
    assert stage_precisions(compose_run("++teacher.recipe.precision=fp32"), CPU)["teacher"] == "fp32"
    hardware(False)
    assert stage_precisions(compose_run(), CPU) == {"teacher": "fp32", "select": "fp32", "student": "fp32"}


def test_run_json_records_the_machine_and_the_precisions(tmp_path: Path) -> None:
    from fgdd.pipeline import record_of

    record = record_of(compose_run("device=cpu", f"data_root={tmp_path}"))
    assert set(record["machine"]) == {"cpu", "cpu_capability", "bf16_native", "threads", "device", "gpu", "env"}
    assert record["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["machine"]["threads"] == torch.get_num_threads() and record["machine"]["gpu"] is None
    assert set(record["precision"]) == {"teacher", "select", "student"}
    expected = precision.auto_override() or ("bf16" if native_bf16(CPU) else "fp32")
    assert record["precision"]["student"] == expected
