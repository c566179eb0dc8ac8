"""benchmarks/keep_teacher.py: a trained teacher's cache entry kept in the repository, loadable as a checkpoint."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import keep_teacher  # noqa: E402

STORED = REPO / "tests" / "data" / "teachers" / "shapes32_convnet3_w16.pth"


def cache_entry(tmp_path: Path, *, finished: bool = True) -> Path:
    entry = tmp_path / "cache" / "teachers" / "shapes-convnet3-0123456789ab"
    entry.mkdir(parents=True)
    (entry / "cache_key.json").write_text(json.dumps({"dataset": "shapes", "recipe": {"epochs": 2},
                                                      "train_root": "/somewhere/local/train"}))
    curve = [{"epoch": e, "seconds": 10.0 + e, "teacher/train_loss": 1.0 - e / 10, "teacher/train_top1": 0.5,
              "teacher/val_top1": 0.4 + e / 10} for e in range(2)]
    (entry / "epochs.jsonl").write_text("".join(json.dumps(e) + "\n" for e in curve))
    if finished:
        shutil.copyfile(STORED, entry / "teacher.pth")
    return entry


def test_a_finished_entry_is_kept_with_its_training_record(tmp_path) -> None:
    weights, sidecar = keep_teacher.keep(cache_entry(tmp_path), tmp_path / "kept" / "shapes_conv3")
    assert weights.read_bytes() == STORED.read_bytes()
    record = json.loads(sidecar.read_text())
    assert record["key"] == {"dataset": "shapes", "recipe": {"epochs": 2}}  # no machine-local path
    assert record["epochs_trained"] == 2 and record["val_top1_final"] == pytest.approx(0.5)
    assert record["val_top1_fp32"] == pytest.approx(0.3)  # the checkpoint's own, measured in fp32 when it was saved
    assert record["logged_seconds"] == 21.0 and [e["epoch"] for e in record["curve"]] == [0, 1]
    assert keep_teacher.keep(cache_entry(tmp_path / "again"), tmp_path / "kept" / "shapes_conv3")  # same: fine


def test_a_curve_begun_mid_training_counts_the_epochs_trained(tmp_path) -> None:
    entry = cache_entry(tmp_path)
    (entry / "epochs.jsonl").write_text(json.dumps({"epoch": 29, "seconds": 5.0, "teacher/val_top1": 0.8}) + "\n")
    record = keep_teacher.training_record(entry)
    assert (record["epochs_trained"], record["epochs_logged"], record["logged_seconds"]) == (30, 1, 5.0)


def test_an_unfinished_entry_or_other_weights_under_the_name_are_refused(tmp_path) -> None:
    with pytest.raises(SystemExit, match="has not finished"):
        keep_teacher.keep(cache_entry(tmp_path, finished=False), tmp_path / "kept" / "x")
    assert not (tmp_path / "kept").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "x.pth").write_bytes(b"other weights")
    with pytest.raises(SystemExit, match="holds other weights"):
        keep_teacher.keep(cache_entry(tmp_path / "b"), tmp_path / "kept" / "x")
    assert (tmp_path / "kept" / "x.pth").read_bytes() == b"other weights"
