"""Determinism and failure handling of whole runs (fgdd.run.run, in process, on the tiny shapes set of test_run):
the same seed gives the same occupancy, distilled set and student accuracy whatever the loader workers; a resumed
teacher equals an uninterrupted one; a full disk, a too large IPC and a foreign teacher end cleanly."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch

from fgdd.errors import CheckpointError, ClassMismatchError, FgddError
from fgdd.models.checkpoint import load_checkpoint, save_checkpoint
from fgdd.run import run
from fgdd.teacher import train_teacher
from fgdd.training.classifier import ClassifierModule
from fgdd.training.teacher_recipe import TeacherRecipe
from tests.test_reliability_io import DiskFull
from tests.test_reliability_kill import comparable, distilled_files
from tests.test_run import tiny_cfg
from tests.test_teacher import CONV3, CPU, _folder_dataset, _write_toy_images

FGDD_CAM = ["selector=fgdd", "segmenter=cam", "evaluator.epochs=3"]  # occupancy from the teacher's CAM


def fresh_cache(base: Path, into: Path) -> Path:
    """A cache holding only the trained teacher: occupancy and the distilled set are computed again."""
    shutil.copytree(base / "cache" / "teachers", into / "cache" / "teachers")
    return into


def occupancy_values(tmp: Path) -> dict[str, float]:
    [path] = (tmp / "cache" / "occupancy").glob("*.json")
    return json.loads(path.read_text())["occupancy"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict, Path]:
    tmp = tmp_path_factory.mktemp("reliability-run")
    metrics = run(tiny_cfg(tmp, *FGDD_CAM), tmp / "run")
    return tmp / "run", metrics, tmp


def test_same_seed_same_occupancy_set_and_accuracy_with_any_number_of_loader_workers(reference, tmp_path) -> None:
    run_dir, metrics, tmp = reference
    other = fresh_cache(tmp, tmp_path)
    (other / "data").symlink_to(tmp / "data")
    again = run(tiny_cfg(other, *FGDD_CAM, "evaluator.num_workers=2"), other / "run")
    assert occupancy_values(other) == occupancy_values(tmp)  # measured again, the same values
    assert (other / "run" / "occupancy.json").read_bytes() == (run_dir / "occupancy.json").read_bytes()
    assert distilled_files(other / "run") == distilled_files(run_dir)  # manifest and every image, byte for byte
    assert comparable(again) == comparable(metrics)  # student accuracy with 2 loader workers = with none
    assert {"resize", "crop"} <= {json.loads(line)["path"] for line in
                                  (run_dir / "distilled" / "manifest.jsonl").read_text().splitlines()}


def test_a_resumed_teacher_equals_an_uninterrupted_one(tmp_path, monkeypatch) -> None:
    _write_toy_images(tmp_path / "data", per_class=12)  # 24 images, batch 8: 3 steps an epoch
    recipe, quiet = TeacherRecipe(epochs=3, batch_size=8, lr=0.05, seed=0), {"trainer_kwargs": CPU, "logger": False}
    arch = {**CONV3, "width": 8}

    def dataset():
        return _folder_dataset(tmp_path / "data", "toy", ["blue", "red"], 32)

    uninterrupted, _ = train_teacher(arch, dataset(), tmp_path / "once", recipe, **quiet)
    original = ClassifierModule.training_step

    def killed_in_second_epoch(self, batch, batch_idx):
        if self.current_epoch == 1 and batch_idx == 1:
            raise RuntimeError("killed")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(ClassifierModule, "training_step", killed_in_second_epoch)
    with pytest.raises(RuntimeError, match="killed"):
        train_teacher(arch, dataset(), tmp_path / "twice", recipe, **quiet)
    monkeypatch.undo()
    resumed, _ = train_teacher(arch, dataset(), tmp_path / "twice", recipe, **quiet)
    for (name, a), b in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name  # same shuffles and augmentations after the resume, not just "a teacher"


def test_disk_full_while_writing_metrics_leaves_no_metrics_and_the_rerun_completes(reference, monkeypatch) -> None:
    run_dir, metrics, tmp = reference
    out = tmp / "disk-full"
    DiskFull(monkeypatch, match="metrics.json")
    with pytest.raises(OSError) as error:
        run(tiny_cfg(tmp, *FGDD_CAM), out)
    assert error.value.errno == errno.ENOSPC
    assert not (out / "metrics.json").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".metrics.json")]  # no half-written file either
    monkeypatch.undo()
    assert comparable(run(tiny_cfg(tmp, *FGDD_CAM), out)) == comparable(metrics)


def test_an_ipc_larger_than_a_class_stops_with_one_message_and_no_set(reference) -> None:
    _, _, tmp = reference
    out = tmp / "ipc-too-large"
    with pytest.raises(FgddError, match=r"ipc=13 needs 13 images per class .*'circle' 12 \(1 short\).*"
                                        r"`selector.mipc=13` \(now 12\)"):
        run(tiny_cfg(tmp, "ipc=13"), out)  # 24 images a class, mipc 12 drawn: stopped before the teacher stage
    assert not (out / "distilled").exists() and not (out / "metrics.json").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".distilled")]  # no staging folder left


def test_a_teacher_checkpoint_from_another_dataset_or_architecture_is_refused(reference, tmp_path) -> None:
    _, _, tmp = reference
    [cached] = (tmp / "cache" / "teachers").glob("*/teacher.pth")
    state, meta = load_checkpoint(cached)
    other_classes = tmp_path / "other_dataset.pth"
    save_checkpoint(other_classes, state, meta.__class__(**{**meta.__dict__, "classes": ["cat", "dog"]}))
    with pytest.raises(ClassMismatchError, match=r"cat.*circle|circle.*cat"):
        run(tiny_cfg(tmp, f"teacher.checkpoint={other_classes}"), tmp_path / "a")
    bare = tmp_path / "bare.pth"  # no metadata: the configured arch is used, here a deeper ConvNet
    torch.save(state, bare)
    with pytest.raises(CheckpointError, match="Set the teacher's arch"):
        run(tiny_cfg(tmp, f"teacher.checkpoint={bare}", "teacher.arch.net.depth=2"), tmp_path / "b")
    assert not (tmp_path / "a" / "distilled").exists() and not (tmp_path / "b" / "distilled").exists()
