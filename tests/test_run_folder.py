"""One run folder through a user's mistakes, with the real command line: a first attempt with a wrong data root
from FGDD_DATA_DIR fails, the corrected root retries in the same folder (the failed attempt kept aside), a rerun
of the finished run changes nothing in it (.hydra/ and run.log included), another root from the environment is
refused with an override that gets past it. The data is a user's copy: non-square images, one truncated val
image (left out and counted). No user file changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from PIL import Image

from tests.test_dataset_copies import tree_digest

REPO = Path(__file__).resolve().parents[1]
TINY_RUN = [
    "dataset=imagefolder", "dataset.subdir=mine", "dataset.classes=[a,b]", "dataset.input_size=32", "dataset.factor=1",
    "model=convnet3", "model.net.width=8", "model@teacher.arch=convnet3", "teacher.arch.net.width=8",
    "teacher.recipe.epochs=1", "teacher.recipe.batch_size=8", "ipc=1", "selector.mipc=6", "selector.num_candidates=2",
    "evaluator.epochs=1", "evaluator.num_workers=0", "logger=csv", "trainer.enable_progress_bar=false",
]


def users_copy(root: Path) -> Path:
    """mine/{train,val}/{a,b}: 8 train and 50 val images a class, 48x32 and 32x48 (none square); one val image
    truncated (1 of 100: within max_bad_fraction, so it is left out)."""
    for split, n in (("train", 8), ("val", 50)):
        for label, name in enumerate(("a", "b")):
            folder = root / "mine" / split / name
            folder.mkdir(parents=True)
            for k in range(n):
                size = (48, 32) if k % 2 else (32, 48)
                Image.new("RGB", size, (40 + 150 * label, 90, 200 - 150 * label)).save(folder / f"{k:03d}.jpg")
    bad = root / "mine" / "val" / "b" / "007.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    return bad


def fgdd_run(tmp_path: Path, data_dir: Path, *more: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FGDD_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO / "src"), "FGDD_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    env.pop("FGDD_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "fgdd.run", *TINY_RUN, f"cache_dir={tmp_path / 'cache'}",
                           f"output_root={tmp_path / 'outputs'}", *more], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600, check=False)


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failed_attempt_is_retried_a_finished_run_untouched_and_an_env_change_refused(tmp_path) -> None:
    data, wrong, other = tmp_path / "data", tmp_path / "wrong", tmp_path / "other"
    bad = users_copy(data)
    wrong.mkdir()
    other.mkdir()
    user_files = tree_digest(data)

    first = fgdd_run(tmp_path, wrong)  # FGDD_DATA_DIR points at an empty folder
    assert first.returncode == 2, first.stdout + first.stderr
    assert f"{wrong / 'mine' / 'train'} does not exist (the deepest folder that does: {wrong})" in first.stdout
    assert f"data root {wrong} comes from $FGDD_DATA_DIR" in first.stdout
    [run_dir] = (tmp_path / "outputs" / "runs" / "mine").iterdir()
    assert f"run folder (new): {run_dir}" in first.stdout  # a fresh run says where it writes
    assert json.loads((run_dir / "failed.json").read_text())["stage"] == "setup"

    second = fgdd_run(tmp_path, data)  # the corrected root maps to the same folder (its name hashes the command line)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"run folder (retried): {run_dir}" in second.stdout
    assert yaml.safe_load((run_dir / "config.1.yaml").read_text())["data_root"] == str(wrong)  # kept aside
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["data_root"] == str(data)
    assert (run_dir / "failed.1.json").exists() and (run_dir / "run.1.json").exists()
    assert not (run_dir / "failed.json").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data/val_images"] == 99 and metrics["data/val_unreadable"] == 1  # left out, not replaced
    record = json.loads((run_dir / "dataset.json").read_text())
    assert list(record["splits"]["val"]["unreadable_left_out"]) == ["val/b/007.jpg"]
    manifest = [json.loads(line) for line in (run_dir / "distilled" / "manifest.jsonl").read_text().splitlines()]
    assert all(r["source_size"] in ([48, 32], [32, 48]) for r in manifest)  # (width, height) of the source

    finished = snapshot(run_dir)
    third = fgdd_run(tmp_path, data)
    assert third.returncode == 0 and "run already finished" in third.stdout
    assert snapshot(run_dir) == finished  # .hydra/*.yaml and run.log included

    refused = fgdd_run(tmp_path, other)  # another root from the environment, same command line
    assert refused.returncode == 2
    output = refused.stdout + refused.stderr
    assert f"`data_root={other}`" in output and f"FGDD_DATA_DIR={data} again" in output
    assert snapshot(run_dir) == finished

    followed = fgdd_run(tmp_path, other, f"data_root={other}")  # the override the refusal names
    assert followed.returncode == 2 and "no data at" in followed.stdout + followed.stderr  # got past it: a new folder
    assert "different configuration" not in followed.stdout + followed.stderr
    assert len(list((tmp_path / "outputs" / "runs" / "mine").iterdir())) == 2
    assert snapshot(run_dir) == finished
    assert tree_digest(data) == user_files and bad.exists()


def test_a_config_refused_before_any_stage_leaves_no_run_folder_and_an_existing_one_untouched(tmp_path) -> None:
    data = tmp_path / "data"
    users_copy(data)
    for asked in (["ipc=0"], ["ipc=abc"], ["-m", "ipc=2,-1"], ["+selctor=rded"]):
        refused = fgdd_run(tmp_path, data, *asked)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.startswith("fgdd.run: ") and "Traceback" not in refused.stderr
        assert not (tmp_path / "outputs").exists(), asked  # Hydra never started: no run or sweep folder

    existing = tmp_path / "outputs" / "mine" / "kept"  # a folder of the user's that a refused command points at
    (existing / ".hydra").mkdir(parents=True)
    (existing / ".hydra" / "config.yaml").write_text("ipc: 1\n")
    (existing / "run.log").write_text("an earlier attempt\n")
    before = snapshot(existing)
    refused = fgdd_run(tmp_path, data, "ipc=0", f"hydra.run.dir={existing}")
    assert refused.returncode == 2 and "ipc must be at least 1, got 0" in refused.stderr
    assert snapshot(existing) == before


def test_a_resumed_run_keeps_its_first_record_and_adds_each_resuming_attempt(tmp_path) -> None:
    # a run begun from one commit (or machine) and finished from another says both; a finished run's rerun runs
    # nothing and records nothing
    from fgdd.run_folder import prepare_run_dir

    run_dir, config = tmp_path / "run", "seed: 0\n"
    assert prepare_run_dir(config, lambda: {"git": {"sha": "begun"}}, run_dir) == "new"
    assert prepare_run_dir(config, lambda: {"git": {"sha": "resumed"}}, run_dir) == "resumed"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["git"] == {"sha": "begun"}
    assert [attempt["git"]["sha"] for attempt in record["resumes"]] == ["resumed"] and record["resumes"][0]["time"]
    (run_dir / "metrics.json").write_text("{}")
    assert prepare_run_dir(config, lambda: {"git": {"sha": "rerun"}}, run_dir) == "resumed"
    assert json.loads((run_dir / "run.json").read_text()) == record
