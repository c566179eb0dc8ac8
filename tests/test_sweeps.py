"""Sweeps: failed jobs do not stop a multirun, runs share distilled sets and teachers, W&B offline, submitit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from fgdd.errors import TeacherTooWeakError
from fgdd.run import run
from tests.test_run import TINY, TINY_SHAPES, tiny_cfg


def test_runs_that_differ_after_selection_share_one_distilled_set(tmp_path) -> None:
    first = run(tiny_cfg(tmp_path, "evaluator.epochs=1"), tmp_path / "convnet")
    # another student (a cross-architecture table): the set is copied from the cache, not selected again
    second = run(tiny_cfg(tmp_path, "evaluator.epochs=1", "model.net.width=8"), tmp_path / "narrow")
    reused = json.loads((tmp_path / "narrow" / "selection.json").read_text())
    made = json.loads((tmp_path / "convnet" / "selection.json").read_text())
    assert "reused_from" in reused and "reused_from" not in made
    assert reused["select_s"] == made["select_s"] == first["cost/distill_s"] == second["cost/distill_s"]
    assert second["time/select_s"] < first["time/select_s"]
    for name in ("manifest.jsonl", "circle/0000.jpg"):
        assert (tmp_path / "narrow" / "distilled" / name).read_bytes() == (
            tmp_path / "convnet" / "distilled" / name).read_bytes()
    # another seed is another set
    run(tiny_cfg(tmp_path, "evaluator.epochs=1", "seed=1"), tmp_path / "seed1")
    assert "reused_from" not in json.loads((tmp_path / "seed1" / "selection.json").read_text())
    assert len(list((tmp_path / "cache" / "teachers").glob("*/teacher.pth"))) == 1  # one teacher for both seeds
    assert first["cost/distilled_bytes"] > 0 and first["cost/soft_label_bytes"] == 0


def test_a_teacher_trained_at_another_precision_selects_its_own_set(tmp_path, monkeypatch) -> None:
    # the same config, the teacher trained in fp32 on one machine and in bf16 on another (precision=auto): two
    # teachers in the cache, so two distilled sets, never one teacher's set served to the other's runs
    monkeypatch.setenv("FGDD_AUTO_PRECISION", "fp32")
    run(tiny_cfg(tmp_path, "evaluator.epochs=1"), tmp_path / "fp32")
    monkeypatch.setenv("FGDD_AUTO_PRECISION", "bf16")
    run(tiny_cfg(tmp_path, "evaluator.epochs=1"), tmp_path / "bf16")
    assert len(list((tmp_path / "cache" / "teachers").glob("*/teacher.pth"))) == 2
    assert "reused_from" not in json.loads((tmp_path / "bf16" / "selection.json").read_text())
    # the same teacher again: its set is reused
    run(tiny_cfg(tmp_path, "evaluator.epochs=1", "model.net.width=8"), tmp_path / "bf16-narrow")
    assert "reused_from" in json.loads((tmp_path / "bf16-narrow" / "selection.json").read_text())


def test_a_failed_run_says_so_in_its_folder_and_a_retry_keeps_the_record(tmp_path) -> None:
    cfg = tiny_cfg(tmp_path, "teacher.min_val_acc=1.01")
    for _ in range(2):
        with pytest.raises(TeacherTooWeakError):
            run(cfg, tmp_path / "run")
    failed = json.loads((tmp_path / "run" / "failed.json").read_text())
    assert failed["stage"] == "teacher" and failed["error"] == "TeacherTooWeakError"
    assert "min_val_acc" in failed["message"]
    assert json.loads((tmp_path / "run" / "failed.1.json").read_text())["stage"] == "teacher"
    assert not (tmp_path / "run" / "metrics.json").exists()


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "FGDD_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", **(env or {})}
    return subprocess.run([sys.executable, "-m", "fgdd.run", "-m", *TINY_SHAPES, *TINY, f"data_root={cwd / 'data'}",
                           f"cache_dir={cwd / 'cache'}", f"output_root={cwd / 'out'}", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_multirun_finishes_the_other_jobs_after_one_fails_and_wandb_offline_logs_them(tmp_path) -> None:
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wandb-dir"),
           "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"), "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
           "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config")}
    result = cli("sweep_name=two", "logger=wandb", "teacher.min_val_acc=1.01,0.0", cwd=tmp_path, env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output  # the sweep reports its failure at the end ...
    runs = sorted((tmp_path / "out" / "sweeps" / "two" / "shapes").iterdir())
    assert len(runs) == 2, output
    failed = [r for r in runs if (r / "failed.json").exists()]
    done = [r for r in runs if (r / "metrics.json").exists()]
    assert len(failed) == 1 and len(done) == 1, output  # ... after running the job after the failed one
    assert json.loads((failed[0] / "failed.json").read_text())["error"] == "TeacherTooWeakError"

    [offline] = list((done[0] / "wandb").glob("offline-run-*"))
    assert list(offline.glob("files/media/images/figures/distilled_grid_*.png"))
    log = next(offline.glob("run-*.wandb")).read_bytes()
    assert b"distilled-set" in log and f"distilled-{done[0].name}".encode() in log  # the distilled set artifact
    assert b"manifest.jsonl" in log
    assert list((failed[0] / "wandb").glob("offline-run-*"))  # the failed job's W&B run was closed, not reused


def test_wandb_runs_of_a_sweep_share_its_group(tmp_path, monkeypatch) -> None:
    from fgdd.tracking import finish, make_logger

    monkeypatch.setenv("WANDB_MODE", "offline")
    for key in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(key, str(tmp_path / key.lower()))
    cfg = tiny_cfg(tmp_path, "logger=wandb", "sweep_name=table2")
    def settings(run_dir: Path, sweep_group: str | None) -> dict:  # what fgdd.pipeline.run passes
        return {"name": run_dir.name, "job_type": "rded", "tags": ["shapes", "rded", "ipc2"], "sweep_group": sweep_group,
                "hyperparams": OmegaConf.to_container(cfg, resolve=True)}

    logger = make_logger(OmegaConf.to_container(cfg.logger, resolve=True), tmp_path / "run",
                         **settings(tmp_path / "run", "table2"))
    try:
        assert logger.experiment.group == "table2"
        assert logger.experiment.config["ipc"] == 2  # the resolved config
        assert logger.experiment.config["selector"]["name"] == "rded"
    finally:
        finish(logger, {"student/top1_final": 0.5})
    single = make_logger(OmegaConf.to_container(cfg.logger, resolve=True), tmp_path / "single",
                         **settings(tmp_path / "single", None))
    try:
        assert not single.experiment.group
    finally:
        finish(single, {})


def test_submitit_local_launcher_runs_a_two_job_sweep(tmp_path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    result = cli("hydra/launcher=submitit_local", "sweep_name=local", "seed=0,1", "evaluator.epochs=1", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    metrics = sorted((tmp_path / "out" / "sweeps" / "local").rglob("metrics.json"))
    assert len(metrics) == 2, output
    assert {yaml.safe_load(p.parent.joinpath("config.yaml").read_text())["seed"] for p in metrics} == {0, 1}
    assert list((tmp_path / "out" / "sweeps" / "local").rglob("*_submitted.pkl"))  # it really went through submitit


def test_slurm_launcher_config_composes_with_its_documented_settings() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from fgdd.run import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="run", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                                                    "hydra.launcher.gpus_per_node=4"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.max_num_timeout) == ("gpu", 4, 3)
    assert launcher.timeout_min > 0 and launcher.array_parallelism > 0


def test_a_run_recorded_before_a_setting_existed_resumes_but_a_changed_value_is_refused(tmp_path) -> None:
    import shutil

    from fgdd.errors import FgddError

    cfg = tiny_cfg(tmp_path, "evaluator.epochs=1")
    metrics = run(cfg, tmp_path / "run")
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "run", old)
    recorded = yaml.safe_load((old / "config.yaml").read_text())
    del recorded["teacher"]["recipe"]["seed"]  # as written by an fgdd that did not have this setting yet
    (old / "config.yaml").write_text(yaml.safe_dump(recorded, sort_keys=True))
    assert run(cfg, old) == metrics  # finished: skipped, not refused
    recorded["teacher"]["recipe"]["epochs"] = 99
    (old / "config.yaml").write_text(yaml.safe_dump(recorded, sort_keys=True))
    with pytest.raises(FgddError, match="teacher.recipe.epochs"):
        run(cfg, old)


def test_an_ipc_larger_than_a_class_can_give_stops_before_any_stage(tmp_path, monkeypatch) -> None:
    import fgdd.pipeline as fgdd_pipeline
    from fgdd.errors import ConfigError

    monkeypatch.setattr(fgdd_pipeline, "obtain_teacher", lambda *a, **k: pytest.fail("a stage ran"))
    with pytest.raises(ConfigError, match=r"ipc=13 needs 13 images per class .*selector.mipc=12"):
        run(tiny_cfg(tmp_path, "ipc=13"), tmp_path / "run")
    assert json.loads((tmp_path / "run" / "failed.json").read_text())["stage"] == "setup"
