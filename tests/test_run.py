"""The whole pipeline through fgdd.run on the generated shapes set, and its error paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from PIL import Image

from fgdd.errors import (
    ClassMismatchError,
    DatasetNotFoundError,
    DownloadUnavailableError,
    FgddError,
    TeacherTooWeakError,
)
from fgdd.run import CONF_DIR, run

REPO = Path(__file__).resolve().parents[1]

# A CPU-tiny version of the demo: 24 train / 8 val images per class, narrow nets, 1 teacher and 2 student epochs.
TINY_SHAPES = ["dataset=shapes", "dataset.train_per_class=24", "dataset.val_per_class=8", "dataset.image_size=32"]
TINY = [
    "model=convnet3", "model.net.width=16", "model@teacher.arch=convnet3", "teacher.arch.net.width=16",
    "teacher.recipe.epochs=1", "teacher.recipe.batch_size=32",
    "ipc=2", "selector.mipc=12", "selector.num_candidates=3",
    "evaluator.epochs=2", "evaluator.num_workers=0", "logger=csv", "trainer.enable_progress_bar=false",
]


def tiny_cfg(tmp_path: Path, *overrides: str, dataset: list[str] = TINY_SHAPES):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="run", overrides=[*dataset, *TINY, f"data_root={tmp_path / 'data'}",
                                                     f"cache_dir={tmp_path / 'cache'}", *overrides])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, dict, Path]:
    tmp = tmp_path_factory.mktemp("run")
    metrics = run(tiny_cfg(tmp), tmp / "run")
    return tmp / "run", metrics, tmp


def test_run_folder_describes_itself(finished_run) -> None:
    run_dir, metrics, _ = finished_run
    assert {"config.yaml", "run.json", "metrics.json", "distilled"} <= {p.name for p in run_dir.iterdir()}
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    for key in ("teacher/val_top1", "student/top1_final", "student/top5_final", "student/top1_best_tail",
                "time/teacher_s", "time/select_s", "time/student_s"):
        assert key in metrics
    assert 0.0 <= metrics["student/top1_final"] <= 1.0
    record = json.loads((run_dir / "run.json").read_text())
    assert len(record["git"]["sha"]) == 40 or record["git"]["sha"].startswith("unknown")
    assert {"cpu", "cpu_capability", "bf16_native", "threads", "gpu"} <= set(record["machine"])
    assert set(record["precision"]) == {"teacher", "select", "student"}  # what each stage resolved to
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["ipc"] == 2 and config["selector"]["name"] == "rded"  # resolved, not interpolations
    manifest = [json.loads(line) for line in (run_dir / "distilled" / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 10 * 2  # 10 classes x ipc 2 x factor 1
    assert all(r["source"].startswith("train/") and r["path"] == "crop" for r in manifest)
    assert (run_dir / "logs").exists()  # the csv logger wrote per-epoch metrics


def test_rerun_of_a_finished_run_is_skipped(finished_run, monkeypatch) -> None:
    run_dir, metrics, tmp = finished_run
    import fgdd.pipeline as fgdd_pipeline

    monkeypatch.setattr(fgdd_pipeline, "obtain_teacher", lambda *a, **k: pytest.fail("finished run redone"))
    assert run(tiny_cfg(tmp), run_dir) == metrics


def test_rerun_with_another_config_is_refused_and_nothing_is_lost(finished_run) -> None:
    run_dir, _, tmp = finished_run
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with pytest.raises(FgddError, match="different configuration"):
        run(tiny_cfg(tmp, "ipc=3"), run_dir)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_same_seed_same_distilled_set_other_seed_another(finished_run, tmp_path) -> None:
    run_dir, metrics, tmp = finished_run
    again = tmp_path / "again"
    other = tmp_path / "other"
    # the first run trained its teacher in-process; this one loads it from the cache: same student regardless.
    # The cache of distilled sets is set aside so that this run selects again instead of copying the first set.
    (tmp / "cache" / "distilled").rename(tmp_path / "distilled-cache-aside")
    again_metrics = run(tiny_cfg(tmp), again)
    assert "reused_from" not in json.loads((again / "selection.json").read_text())
    assert {k: v for k, v in again_metrics.items() if not k.startswith(("time/", "cost/distill_s", "student/train_seconds"))} == {
        k: v for k, v in metrics.items() if not k.startswith(("time/", "cost/distill_s", "student/train_seconds"))}
    run(tiny_cfg(tmp, "evaluator.epochs=1", "seed=1", "teacher.checkpoint=" + str(_cached_teacher(tmp))), other)
    manifest = (run_dir / "distilled" / "manifest.jsonl").read_bytes()
    assert (again / "distilled" / "manifest.jsonl").read_bytes() == manifest
    assert (again / "distilled" / "circle" / "0000.jpg").read_bytes() == (
        run_dir / "distilled" / "circle" / "0000.jpg").read_bytes()
    assert (other / "distilled" / "manifest.jsonl").read_bytes() != manifest


def _cached_teacher(tmp: Path) -> Path:
    [path] = (tmp / "cache" / "teachers").glob("*/teacher.pth")
    return path


def test_teacher_below_min_val_acc_stops_the_run(finished_run, tmp_path) -> None:
    _, _, tmp = finished_run
    with pytest.raises(TeacherTooWeakError, match="min_val_acc"):
        run(tiny_cfg(tmp, "teacher.min_val_acc=1.01"), tmp_path / "weak")
    assert not (tmp_path / "weak" / "distilled").exists()


def test_teacher_of_another_dataset_is_refused(finished_run, shared_teachers, tmp_path) -> None:
    _, _, tmp = finished_run
    # the CIFAR-10 reference teacher (ConvNet-3, 32 px, airplane..truck) against the shapes classes
    with pytest.raises(ClassMismatchError) as error:
        run(tiny_cfg(tmp, f"teacher.checkpoint={shared_teachers / 'cifar10_conv3.pth'}"), tmp_path / "x")
    assert "airplane" in str(error.value) and "circle" in str(error.value)


def test_missing_dataset_folder_is_one_clear_error(tmp_path) -> None:
    cfg = tiny_cfg(tmp_path, dataset=["dataset=cifar10"])
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "data" / "cifar10")):
        run(cfg, tmp_path / "run")


def test_download_offline_is_one_clear_error(tmp_path) -> None:
    cfg = tiny_cfg(tmp_path, dataset=["dataset=cifar10", "dataset.download=true"])
    with pytest.raises(DownloadUnavailableError, match="cifar-10-python.tar.gz"):
        run(cfg, tmp_path / "run")


def run_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FGDD_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "fgdd.run", *args, f"output_root={tmp_path}"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


@pytest.mark.parametrize("typo, meant", [("selector.num_candidatez=3", "`selector.num_candidates=3`"),
                                         ("selctor=rded", "`selector=rded`"), ("+selctor=rded", "`selector=rded`"),
                                         ("++selctor=rded", "`selector=rded`")])
def test_cli_unknown_key_exits_with_the_key_meant_whatever_its_prefix(typo, meant, tmp_path) -> None:
    # Hydra's own hint for an unknown key is "To append to your config use +selctor=rded": followed, the run would
    # finish with the typo ignored. fgdd refuses the key with any prefix and names the key meant instead
    result = run_cli(typo, tmp_path=tmp_path)
    assert result.returncode == 2
    assert f"unknown key `{typo.lstrip('+').split('=')[0]}` in `{typo}`: did you mean" in result.stderr
    assert meant in result.stderr and "To append" not in result.stderr + result.stdout
    assert not any(tmp_path.iterdir())  # refused before Hydra made a run folder


def test_cli_wrong_evaluator_choice_is_refused_by_the_schema_before_anything_runs(tmp_path) -> None:
    result = run_cli("evaluator.pipeline=fast", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "evaluator.pipeline=fast: Invalid value 'fast', expected one of [batched, loader]" in result.stderr
    assert not any(tmp_path.iterdir())  # refused before Hydra made a run folder


def test_cli_wrong_teacher_recipe_choice_is_refused_by_the_schema_before_anything_runs(tmp_path) -> None:
    result = run_cli("teacher.recipe.augment=autoaugment", tmp_path=tmp_path)
    assert result.returncode == 2
    assert ("teacher.recipe.augment=autoaugment: Invalid value 'autoaugment', expected one of [pad_crop_flip, "
            "random_resized_crop]") in result.stderr
    assert not any(tmp_path.iterdir())  # refused before Hydra made a run folder


def test_cli_missing_data_exits_with_one_message(tmp_path) -> None:
    result = run_cli("dataset=imagenette", f"data_root={tmp_path / 'nowhere'}", tmp_path=tmp_path)
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "imagenette2-128" in output and "FGDD_DATA_DIR" in output
    assert "Traceback" not in output


def test_fgdd_with_threshold_never_reproduces_rded_through_the_run(finished_run, tmp_path) -> None:
    run_dir, _, tmp = finished_run
    run(tiny_cfg(tmp, "selector=fgdd", "threshold=never", "evaluator.epochs=1"), tmp_path / "never")
    assert (tmp_path / "never" / "distilled" / "manifest.jsonl").read_bytes() == (
        run_dir / "distilled" / "manifest.jsonl").read_bytes()


def test_fgdd_with_true_masks_records_occupancy_and_draws_its_figures(finished_run, tmp_path) -> None:
    _, _, tmp = finished_run
    out = tmp_path / "fgdd"
    run(tiny_cfg(tmp, "selector=fgdd", "segmenter=ground_truth", "threshold=median", "evaluator.epochs=1"), out)
    summary = json.loads((out / "occupancy.json").read_text())
    assert set(summary) == {"circle", "crescent", "cross", "diamond", "ellipse", "hexagon", "ring", "square", "star",
                            "triangle"}
    assert all(len(v["occupancy"]) == 12 for v in summary.values())  # the mipc images drawn per class
    records = [json.loads(line) for line in (out / "distilled" / "manifest.jsonl").read_text().splitlines()]
    assert {r["path"] for r in records} == {"crop", "resize"}
    for r in records:
        assert (r["path"] == "resize") == (r["occupancy"] >= r["threshold"])
    assert (out / "figures" / "occupancy.png").stat().st_size > 0
    assert (out / "figures" / "distilled_grid.png").stat().st_size > 0
    with Image.open(out / "figures" / "foreground_samples.png") as figure:  # 10 classes x up to 4 masked images
        assert figure.height > 1000 and figure.width > 400


def test_grounded_sam2_offline_stops_at_once_naming_the_model(finished_run, tmp_path) -> None:
    import time

    from fgdd.errors import ModelUnavailableError

    _, _, tmp = finished_run
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as error:
        run(tiny_cfg(tmp, "selector=fgdd", "segmenter=grounded_sam2", f"segmenter.cache_dir={tmp_path / 'hf'}"),
            tmp_path / "gsam")
    assert time.perf_counter() - start < 60  # the teacher is cached; no network wait on top
    assert "IDEA-Research/grounding-dino-tiny" in str(error.value)
    assert "segmenter.detector=" in str(error.value)
    assert not (tmp_path / "gsam" / "distilled").exists()
