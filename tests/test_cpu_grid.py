"""benchmarks/cpu_grid_table.py: the CPU grid's per-seed table, fgdd - rded per seed, and what it says of the runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import cpu_grid_table  # noqa: E402


def fake_run(folder: Path, selector: str, top1: float | None, *, failed: bool = False, epochs: int = 300,
             score: str = "student", rded_test: float | None = None, ipc: int = 10, model: str = "convnet4",
             teacher_arch: str | None = None) -> None:
    folder.mkdir(parents=True)
    selector_cfg = {"name": selector} if selector == "random_real" else {"name": selector, "mipc": 300,
                                                                          "crop_ratio": [1.0, 1.0]}
    config = {"dataset": {"name": "imagenette", "input_size": 64, "factor": 1}, "model": {"name": model},
              "ipc": ipc, "evaluator": {"epochs": epochs}, "selector": selector_cfg,
              "teacher": {"checkpoint": "/x/imagenette64_conv4.pth",
                          **({"arch": {"name": teacher_arch}} if teacher_arch else {})}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "run.json").write_text(json.dumps({"git": {"sha": "abcdef0123"}}))
    if failed:
        (folder / "failed.json").write_text(json.dumps({"stage": "student", "error": "X"}))
    elif top1 is not None:
        (folder / "metrics.json").write_text(json.dumps({
            f"{score}/top1_final": top1, f"{score}/top1_best_tail": top1 + 0.01, "teacher/val_top1": 0.795,
            "cost/distill_s": 61.4, "time/student_s": 900.2,
            **({} if rded_test is None else {f"{score}/top1_final_rded_test": rded_test})}))


def test_table_has_per_seed_numbers_and_fgdd_minus_rded_per_seed(tmp_path) -> None:
    grid = tmp_path / "imagenette"
    fake_run(grid / "random_real" / "seed0", "random_real", 0.50)
    fake_run(grid / "rded" / "seed0", "rded", 0.40)
    fake_run(grid / "rded" / "seed1", "rded", 0.44)
    fake_run(grid / "fgdd-saliency-q0.5" / "seed0", "fgdd", 0.43)
    fake_run(grid / "fgdd-saliency-q0.5" / "seed1", "fgdd", 0.42)
    fake_run(grid / "fgdd-saliency-q0.5" / "seed2", "fgdd", 0.47)  # no rded seed 2: no difference there
    fake_run(grid / "fgdd-cam-q0.7" / "seed0", "fgdd", None, failed=True)
    text = cpu_grid_table.table(grid, [0, 1, 2])
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert list(rows)[1:] == ["random_real", "rded", "fgdd (saliency, per-class 0.5-quantile, the default)",
                              "fgdd (cam, q = 0.7)"]
    fgdd = rows["fgdd (saliency, per-class 0.5-quantile, the default)"].split(" | ")
    assert fgdd[1] == "43.0 / 42.0 / 47.0" and fgdd[2] == "44.0 +- 2.6"
    assert fgdd[3] == "+3.0 / -2.0 / -" and fgdd[4] == "+0.5"  # 43 - 40, 42 - 44; mean over the paired seeds
    assert fgdd[6] == "61 / 61 / 61" and fgdd[7].startswith("900 / 900 / 900")
    assert rows["rded"].split(" | ")[1:3] == ["40.0 / 44.0 / -", "42.0 +- 2.8"]
    assert rows["fgdd (cam, q = 0.7)"].split(" | ")[1] == "failed / - / -"
    assert "300 student epochs, mipc 300 and crop ratio [1.0, 1.0] (rded, fgdd)" in text
    assert "imagenette64_conv4.pth, val top-1 79.5 %" in text and "commit abcdef0" in text
    assert "cells finished: 6 of 7 started" in text


def test_a_reduced_run_says_so_in_its_table(tmp_path) -> None:
    fake_run(tmp_path / "g" / "rded" / "seed0", "rded", 0.2, epochs=2)
    assert "2 student epochs" in cpu_grid_table.table(tmp_path / "g", [0])
    assert cpu_grid_table.table(tmp_path / "empty", [0]).startswith("No cell has finished yet.")


def test_holdout_table_reads_holdout_scores_only_and_names_the_choice(tmp_path) -> None:
    grid = tmp_path / "cifar10-holdout"
    fake_run(grid / "fgdd-saliency-q0.3" / "seed0", "fgdd", 0.50, score="holdout")
    fake_run(grid / "fgdd-saliency-q0.7" / "seed1", "fgdd", 0.47, score="holdout")
    text = cpu_grid_table.table(grid, [0, 1], score="holdout")
    assert "HOLDOUT top-1 (training split) final" in text
    assert "Chosen by the holdout: not yet" in text  # no seed where both cells finished
    fake_run(grid / "fgdd-saliency-q0.7" / "seed0", "fgdd", 0.52, score="holdout")
    fake_run(grid / "fgdd-saliency-q0.3" / "seed1", "fgdd", 0.49, score="holdout")
    fake_run(grid / "fgdd-saliency-q0.5" / "seed0", "fgdd", 0.90, score="holdout")  # no seed 1: only seed 0 compares
    text = cpu_grid_table.table(grid, [0, 1], score="holdout")
    assert "mean over seed(s) 0): **fgdd (saliency, per-class 0.5-quantile, the default)**" in text
    fake_run(grid / "fgdd-saliency-q0.5" / "seed1", "fgdd", 0.10, score="holdout")
    # 0.7: 49.5, 0.3: 49.5, 0.5: 50.0 -> 0.5; without it a tie would keep the grid's order (0.3 before 0.7)
    text = cpu_grid_table.table(grid, [0, 1], score="holdout")
    assert "mean over seed(s) 0, 1): **fgdd (saliency, per-class 0.5-quantile, the default)**" in text
    with pytest.raises(KeyError):  # a test-score table never reads holdout runs as test accuracies
        cpu_grid_table.table(grid, [0, 1], score="test")


SCRIPT = REPO / "benchmarks" / "cpu_grid.sh"


def cell_overrides(cell: str) -> list[str]:
    """What cpu_grid.sh passes for one cell: its cell_args function, run by bash."""
    function = re.search(r"^cell_args\(\) \{.*?^\}", SCRIPT.read_text(), flags=re.S | re.M).group(0)
    done = subprocess.run(["bash", "-c", f"{function}\ncell_args {cell}"], capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.parametrize("experiment,cell", [
    ("cpu_imagenette_conv4", "random_real"), ("cpu_imagewoof_conv4", "rded"),
    ("cpu_cifar10_conv3", "fgdd-saliency-q0.7"), ("cpu_cifar10_conv3", "fgdd-saliency-q0.3"),
    ("cpu_cifar10_conv3", "fgdd-saliency-always"), ("cpu_cifar10_conv3", "fgdd-cam-q0.7"),
])
def test_every_cell_of_the_script_composes_to_the_method_it_names(experiment: str, cell: str) -> None:
    from tests.test_experiments import compose_run

    cfg = compose_run([f"experiment={experiment}", "teacher.checkpoint=/x/t.pth", *cell_overrides(cell)])
    if cell.startswith("fgdd"):
        _, segmenter, threshold = cell.split("-")
        assert cfg.selector.name == "fgdd" and cfg.selector.segmenter.name == segmenter
        if threshold == "always":
            assert cfg.selector.threshold.name == "always"
        else:
            assert cfg.selector.threshold.name == "quantile" and cfg.selector.threshold.q == float(threshold[1:])
    else:
        assert cfg.selector.name == cell
    assert cfg.evaluator.epochs == 300 and cfg.ipc == 10


def test_regime_table_adds_rded_test_set_and_the_published_number(tmp_path) -> None:
    # the 128 px regime's cells carry student/top1_final_rded_test: a second table beside the full-val one
    grid = tmp_path / "imagenette-conv5-ipc10"
    fake_run(grid / "rded" / "seed0", "rded", 0.60, rded_test=0.62, model="convnet5")
    fake_run(grid / "fgdd-saliency-q0.5" / "seed0", "fgdd", 0.61, rded_test=0.656, model="convnet5")
    published = REPO / "experiments" / "rded_table2" / "published.csv"
    text = cpu_grid_table.table(grid, [0], published=published)
    assert "| method | full-val top-1 final (%), seed 0 |" in text
    rows = [line for line in text.split("RDED's test set top-1")[1].splitlines() if line.startswith("| ")]
    assert rows[0].split(" | ")[1:3] == ["62.0", "62.0 (1 seed)"]
    assert rows[0].split(" | ")[5] == "63.2 |"  # RDED's ImageNette ConvNet-5 IPC 10 beside the rded row
    assert rows[1].split(" | ")[3:5] == ["+3.6", "+3.6"]
    assert "student forward passes in fp32" in text


def test_no_published_number_beside_a_student_trained_on_another_architectures_sets(tmp_path) -> None:
    # RDED's ResNet-18 ImageNette numbers come from a ResNet-18 observer at 224 px: not the ConvNet-5 sets' protocol
    grid = tmp_path / "imagenette-conv5-ipc10-resnet18"
    fake_run(grid / "rded" / "seed0", "rded", 0.60, rded_test=0.62, model="resnet18", teacher_arch="convnet5")
    published = REPO / "experiments" / "rded_table2" / "published.csv"
    text = cpu_grid_table.table(grid, [0], published=published)
    rded = next(line for line in text.split("RDED's test set top-1")[1].splitlines() if line.startswith("| rded"))
    assert rded.split(" | ")[5] == "- (RDED's resnet18 number uses a resnet18 observer, not convnet5) |"
    assert "61.4" not in text  # RDED's ResNet-18 ImageNette IPC 10
    same = tmp_path / "imagenette-conv5-ipc10"
    fake_run(same / "rded" / "seed0", "rded", 0.60, rded_test=0.62, model="convnet5", teacher_arch="convnet5")
    assert "| 63.2 |" in cpu_grid_table.table(same, [0], published=published)


def test_a_kept_teacher_is_loaded_from_a_path_that_no_checkout_changes(tmp_path) -> None:
    # a cell begun from one worktree must resume from another: fgdd.run refuses a run folder whose recorded config
    # differs, so the teacher's path may not name the checkout; the script loads a copy under the bench folder instead
    bench, calls = tmp_path / "bench", tmp_path / "calls.txt"
    (bench / "data" / "imagewoof2-146").mkdir(parents=True)  # extracted already: the script skips the archive
    fake_python = tmp_path / "python"
    fake_python.write_text(f'#!/usr/bin/env bash\necho "$@" >> {calls}\n')
    fake_python.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "FGDD_BENCH_DIR": str(bench), "PYTHON": str(fake_python), "IPCS": "1",
           "SEEDS": "0", "CELLS": "rded", "BENCHMARKS": str(tmp_path / "B.md")}
    subprocess.run(["bash", str(REPO / "benchmarks" / "cpu_grid.sh"), "imagewoof-conv5"], env=env, check=True,
                   capture_output=True)
    run_call = next(line for line in calls.read_text().splitlines() if line.startswith("-m fgdd.run"))
    checkpoint = Path(re.search(r"teacher\.checkpoint=(\S+)", run_call).group(1))
    kept = REPO / "benchmarks" / "teachers" / "imagewoof_conv5.pth"
    assert checkpoint.parent.parent == bench / "teachers" and checkpoint.name == kept.name
    assert checkpoint.read_bytes() == kept.read_bytes() and "teacher=checkpoint" in run_call.split()


def test_another_student_trains_on_the_same_sets_into_its_own_group(tmp_path) -> None:
    # STUDENT=resnet18: only the student changes (model=...), so the selector's distilled-set cache key is the same and
    # the sets are reused; its run folders and its BENCHMARKS section are the group's own, apart from the protocol's
    bench, calls, benchmarks = tmp_path / "bench", tmp_path / "calls.txt", tmp_path / "B.md"
    (bench / "data" / "imagewoof2-146").mkdir(parents=True)
    fake_python = tmp_path / "python"
    fake_python.write_text(f'#!/usr/bin/env bash\necho "$@" >> {calls}\n')
    fake_python.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "FGDD_BENCH_DIR": str(bench), "PYTHON": str(fake_python), "IPCS": "1",
           "SEEDS": "0", "CELLS": "rded", "BENCHMARKS": str(benchmarks), "STUDENT": "resnet18"}
    subprocess.run(["bash", str(REPO / "benchmarks" / "cpu_grid.sh"), "imagewoof-conv5"], env=env, check=True,
                   capture_output=True)
    lines = calls.read_text().splitlines()
    run_call = next(line.split() for line in lines if line.startswith("-m fgdd.run"))
    grid = bench / "outputs" / "cpu-grid" / "imagewoof-conv5-ipc1-resnet18"
    assert "model=resnet18" in run_call and f"hydra.run.dir={grid}/rded/seed0" in run_call
    assert "experiment=rded_imagewoof_conv5" in run_call  # the protocol's teacher still selects and labels
    record_call = next(line for line in lines if line.startswith("benchmarks/record.py"))
    assert record_call.startswith("benchmarks/record.py cpu-grid-imagewoof-conv5-ipc1-resnet18 ")
    assert "IPCS=1 STUDENT=resnet18 EPOCHS=300" in record_call


def test_a_table_written_for_later_seeds_still_shows_the_seeds_finished_before(tmp_path) -> None:
    # cpu_grid.sh passes its own SEEDS; a grid resumed with SEEDS="1 2" must not drop seed 0 from the section
    grid = tmp_path / "imagewoof-conv5-ipc10"
    fake_run(grid / "rded" / "seed0", "rded", 0.44)
    fake_run(grid / "rded" / "seed1", "rded", 0.46)
    fake_run(grid / "rded" / "seed2.aside-worktree-path", "rded", 0.10)  # set aside: not a seed of the grid
    text = cpu_grid_table.table(grid, [1, 2])
    rded = next(line for line in text.splitlines() if line.startswith("| rded "))
    assert "top-1 final (%), seed 0 / 1 / 2 |" in text and rded.split(" | ")[1:3] == ["44.0 / 46.0 / -", "45.0 +- 1.4"]


def test_fgdd_rows_say_how_many_cells_are_whole_photos(tmp_path) -> None:
    grid = tmp_path / "imagewoof-conv5-ipc1"
    fake_run(grid / "rded" / "seed0", "rded", 0.20)
    fake_run(grid / "fgdd-saliency-q0.5" / "seed0", "fgdd", 0.22)
    fake_run(grid / "fgdd-saliency-q0.5" / "seed1", "fgdd", None)  # unfinished: no share
    manifest = grid / "fgdd-saliency-q0.5" / "seed0" / "distilled" / "manifest.jsonl"
    manifest.parent.mkdir()
    manifest.write_text("".join(json.dumps({"path": p}) + "\n" for p in ["resize", "crop", "resize", "resize"]))
    text = cpu_grid_table.table(grid, [0, 1])
    assert "- fgdd (saliency, per-class 0.5-quantile, the default): whole photos in 75 / - % of the cells" in text
    assert "- rded:" not in text


def test_the_code_line_names_the_commit_that_began_a_cell_and_every_one_that_resumed_it(tmp_path) -> None:
    grid = tmp_path / "imagewoof-conv5-ipc10"
    fake_run(grid / "rded" / "seed0", "rded", 0.44)
    fake_run(grid / "fgdd-saliency-q0.5" / "seed0", "fgdd", 0.45)
    record = grid / "fgdd-saliency-q0.5" / "seed0" / "run.json"
    record.write_text(json.dumps({"git": {"sha": "f580996aaa"}, "resumes": [{"git": {"sha": "aad2208bbb"}}]}))
    assert "code: commit aad2208, abcdef0, f580996" in cpu_grid_table.table(grid, [0])


def test_a_cell_stopped_by_a_signal_says_stopped_not_failed(tmp_path) -> None:
    grid = tmp_path / "imagenette-conv5-ipc10"
    fake_run(grid / "rded" / "seed0", "rded", 0.64)
    fake_run(grid / "rded" / "seed1", "rded", None, failed=True)
    fake_run(grid / "rded" / "seed2", "rded", None)
    (grid / "rded" / "seed2" / "failed.json").write_text(json.dumps({"stage": "student", "error": "SystemExit",
                                                                     "message": "143"}))
    rded = next(line for line in cpu_grid_table.table(grid, [0, 1, 2]).splitlines() if line.startswith("| rded "))
    assert rded.split(" | ")[1] == "64.0 / failed / stopped"
