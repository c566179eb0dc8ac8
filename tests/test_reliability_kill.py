"""Kill ``python -m fgdd.run`` (SIGTERM, SIGKILL) inside each stage, rerun the same command, and check that finished
work is not redone and that the result equals an uninterrupted run with the same seed.

The run is the tiny shapes pipeline of test_run with ``selector=fgdd`` and true masks, read by a segmenter that can
be slowed down and records every image it segments (so a kill lands inside the occupancy stage, and a rerun shows
what it measured again). The uninterrupted reference runs once per module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fgdd.foreground.ground_truth import GroundTruthSegmenter
from tests.test_run import TINY, TINY_SHAPES

REPO = Path(__file__).resolve().parents[1]
DELAY_ENV, CALLS_ENV = "FGDD_TEST_SEGMENT_DELAY", "FGDD_TEST_SEGMENT_CALLS"
PER_CLASS_DRAWN, CLASSES = 12, 10  # selector.mipc x the shapes classes: every drawn image is segmented
ARGS = [
    *TINY_SHAPES, *TINY,
    "teacher.recipe.epochs=2",  # a kill after the first epoch leaves last.ckpt and one epoch to resume
    "evaluator.epochs=6",  # long enough for a kill to land inside the student's training
    "selector=fgdd", "segmenter=ground_truth", f"segmenter._target_={__name__}.SlowGroundTruth",
    "selector.segment_batch_size=8",  # 15 occupancy batches: a kill lands between two of them
    "figures.foreground_samples=0",  # that figure segments a few kept images again: not occupancy, not counted here
]


class SlowGroundTruth(GroundTruthSegmenter):
    """The shapes set's true masks, after a delay from $FGDD_TEST_SEGMENT_DELAY; appends every segmented image
    to the file named by $FGDD_TEST_SEGMENT_CALLS."""

    def masks(self, images, *, labels, prompts, sources):
        time.sleep(float(os.environ.get(DELAY_ENV, "0")))
        masks = super().masks(images, labels=labels, prompts=prompts, sources=sources)
        if os.environ.get(CALLS_ENV):
            with open(os.environ[CALLS_ENV], "a") as f:
                f.write("".join(f"{os.getpid()} {s}\n" for s in sources))
        return masks


class Case:
    """One command, run (and killed) repeatedly in its own output and cache folders."""

    def __init__(self, folder: Path, data_root: Path, extra: tuple[str, ...] = ()) -> None:
        self.folder = folder
        self.cache = folder / "cache"
        self.calls_file = folder / "calls.txt"
        folder.mkdir(parents=True, exist_ok=True)
        self.command = [sys.executable, "-m", "fgdd.run", *ARGS, f"data_root={data_root}", f"cache_dir={self.cache}",
                        f"output_root={folder / 'out'}", *extra]
        self.proc: subprocess.Popen | None = None
        self.log_start = 0
        self.attempt = 0

    def start(self, delay: float = 0.0) -> None:
        self.log_start = self.log_path.stat().st_size if self.log_path else 0
        self.attempt += 1
        env = {**os.environ, "FGDD_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "WANDB_MODE": "disabled", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               DELAY_ENV: str(delay), CALLS_ENV: str(self.calls_file)}
        self.output = open(self.folder / f"output-{self.attempt}.txt", "w")
        # a session of its own: the signal goes to the whole process group (loader workers included)
        self.proc = subprocess.Popen(self.command, cwd=self.folder, env=env, stdout=self.output,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_until(self, condition: Callable[[Case], bool], what: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if self.proc.poll() is not None:
                pytest.fail(f"run ended (rc {self.proc.returncode}) before {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                self.kill(signal.SIGKILL)
                pytest.fail(f"timed out waiting for {what}:\n{self.tail()}")
            time.sleep(0.02)

    def kill(self, sig: int) -> int:
        os.killpg(self.proc.pid, sig)
        rc = self.proc.wait(timeout=120)
        self.output.close()
        return rc

    def finish(self, timeout: float = 600) -> int:
        rc = self.proc.wait(timeout=timeout)
        self.output.close()
        return rc

    def tail(self) -> str:
        return (self.folder / f"output-{self.attempt}.txt").read_text()[-3000:]

    @property
    def run_dir(self) -> Path | None:
        found = list((self.folder / "out" / "runs").glob("shapes/*/config.yaml"))
        return found[0].parent if found else None

    @property
    def log_path(self) -> Path | None:
        return self.run_dir / "run.log" if self.run_dir and (self.run_dir / "run.log").exists() else None

    def new_log(self) -> str:
        """run.log as written since the last start (Hydra appends to it on every rerun)."""
        if self.log_path is None:
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(self.log_start)
            return f.read().decode(errors="replace")

    def teacher_dir(self) -> Path | None:
        found = list((self.cache / "teachers").glob("*/cache_key.json"))
        return found[0].parent if found else None

    def segmented(self) -> list[str]:
        """Every image segmented so far, in order, over all attempts."""
        if not self.calls_file.exists():
            return []
        return [line.split(" ", 1)[1] for line in self.calls_file.read_text().splitlines()]

    def stored_occupancy(self) -> dict[str, float]:
        """What the occupancy cache holds on disk (main file and batch chunks)."""
        values: dict[str, float] = {}
        folder = self.cache / "occupancy"
        for path in [*folder.glob("*.json"), *folder.glob("*.chunks/*.json")]:
            try:
                values.update(json.loads(path.read_text())["occupancy"])
            except (OSError, ValueError):  # written atomically, so only a file renamed away while we looked
                pass
        return values


def comparable(metrics: dict[str, float]) -> dict[str, float]:
    """Metrics without wall-clock durations."""
    return {k: v for k, v in metrics.items() if not (k.startswith("time/") or k.endswith(("_s", "_seconds")))}


def distilled_files(run_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted((run_dir / "distilled").rglob("*"))
            if p.is_file()}


def file_identities(folder: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) per file: a file rewritten, even with the same bytes, gets another."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file()}


def assert_complete_files_only(case: Case) -> None:
    """After a kill: every file under a name a reader uses is complete (temporary names start with a dot)."""
    for root in (case.cache, case.run_dir):
        if root is None or not root.exists():
            continue
        for path in root.rglob("*.json"):
            if not any(part.startswith(".") for part in path.relative_to(root).parts):
                json.loads(path.read_text())  # raises on a truncated file
    if case.run_dir is not None and (case.run_dir / "distilled").exists():
        assert (case.run_dir / "distilled" / "distilled.json").exists()


def assert_same_result(case: Case, reference: Path) -> None:
    run_dir = case.run_dir
    assert json.loads((run_dir / "metrics.json").read_text()) is not None
    assert comparable(json.loads((run_dir / "metrics.json").read_text())) == comparable(
        json.loads((reference / "metrics.json").read_text()))
    assert distilled_files(run_dir) == distilled_files(reference)  # manifest, distilled.json and every image
    assert (run_dir / "occupancy.json").read_bytes() == (reference / "occupancy.json").read_bytes()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("kill-data") / "data"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root) -> tuple[Path, Case]:
    """One uninterrupted run (it also generates the shared shapes data)."""
    case = Case(tmp_path_factory.mktemp("kill-reference"), data_root)
    case.start()
    assert case.finish() == 0, case.tail()
    assert len(case.segmented()) == PER_CLASS_DRAWN * CLASSES
    return case.run_dir, case


def test_kill_in_teacher_then_in_occupancy_then_resume_to_the_uninterrupted_result(reference, data_root, tmp_path):
    reference_dir, _ = reference
    case = Case(tmp_path / "chain", data_root)

    # 1. SIGKILL during teacher training, after its first epoch
    case.start()
    case.wait_until(STAGE_REACHED["teacher"], "the teacher's first epoch")
    assert case.kill(signal.SIGKILL) == -signal.SIGKILL
    assert not (case.teacher_dir() / "teacher.pth").exists()
    assert_complete_files_only(case)

    # 2. rerun: the teacher resumes from last.ckpt; SIGTERM once a few occupancy batches are stored
    case.start(delay=0.3)
    case.wait_until(STAGE_REACHED["occupancy"], "three stored occupancy batches")
    assert case.kill(signal.SIGTERM) != 0
    log = case.new_log()
    assert "resuming teacher training from" in log and "last.ckpt" in log
    teacher_identity = file_identities(case.teacher_dir())["teacher.pth"]
    kept = case.stored_occupancy()
    assert 24 <= len(kept) < PER_CLASS_DRAWN * CLASSES
    assert not (case.run_dir / "distilled").exists() and not (case.run_dir / "metrics.json").exists()
    assert_complete_files_only(case)

    # 3. rerun to the end: the cached teacher is loaded, only the images not yet stored are segmented, and the
    # result is the uninterrupted one
    segmented_before = len(case.segmented())
    case.start()
    assert case.finish() == 0, case.tail()
    log = case.new_log()
    assert "reusing cached teacher" in log and "resuming teacher" not in log
    assert f"({len(kept)} already cached" in log
    segmented_now = case.segmented()[segmented_before:]
    assert set(segmented_now).isdisjoint(kept)  # nothing measured twice
    assert set(segmented_now) | set(kept) == set(case.stored_occupancy())
    assert len(case.stored_occupancy()) == PER_CLASS_DRAWN * CLASSES
    assert file_identities(case.teacher_dir())["teacher.pth"] == teacher_identity  # not rewritten
    assert_same_result(case, reference_dir)


def test_a_student_killed_after_its_checkpoint_resumes_from_it_to_the_uninterrupted_result(
        reference, data_root, tmp_path) -> None:
    # a checkpoint at every epoch's end (the default waits 300 s): SIGKILL once one is written, then rerun
    reference_dir, _ = reference
    case = Case(tmp_path / "student", data_root, extra=("evaluator.checkpoint_every_s=0",))
    case.start()
    checkpoint = lambda c: c.run_dir is not None and (c.run_dir / "resume" / "student.ckpt").exists()  # noqa: E731
    case.wait_until(checkpoint, "the student's first checkpoint")
    assert case.kill(signal.SIGKILL) == -signal.SIGKILL
    assert not (case.run_dir / "metrics.json").exists(), "the run finished before the kill"
    case.start()
    assert case.finish() == 0, case.tail()
    log = case.new_log()
    assert "resuming student training from" in log and "resume/student.ckpt" in log
    assert_same_result(case, reference_dir)
    assert not (case.run_dir / "resume").exists()  # removed once metrics.json was written
    assert not (reference_dir / "resume").exists()


STAGE_REACHED = {
    "teacher": lambda case: case.teacher_dir() is not None and (case.teacher_dir() / "last.ckpt").exists(),
    "occupancy": lambda case: len(case.stored_occupancy()) >= 24,
    # the student's Trainer has been built ("GPU available" follows the stage line) and is training
    "student": lambda case: "GPU available" in case.new_log().partition("stage student ...")[2],
}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize("stage", list(STAGE_REACHED))
def test_kill_in_one_stage_then_resume(stage: str, sig: int, reference, data_root, tmp_path) -> None:
    reference_dir, _ = reference
    case = Case(tmp_path / stage, data_root)
    case.start(delay=0.3 if stage == "occupancy" else 0.0)
    case.wait_until(STAGE_REACHED[stage], f"the {stage} stage")
    if stage == "student":
        time.sleep(0.5)  # into the first epochs
    rc = case.kill(sig)
    assert not (case.run_dir / "metrics.json").exists(), "the run finished before the kill"
    assert rc != 0, "a killed run must not exit with status 0 (a scheduler would count it as done)"
    assert_complete_files_only(case)
    kept = case.stored_occupancy()
    before = file_identities(case.run_dir)
    segmented_before = len(case.segmented())

    case.start()
    assert case.finish() == 0, case.tail()
    log = case.new_log()
    if stage == "teacher":
        assert "resuming teacher training from" in log
    else:
        assert "reusing cached teacher" in log
    if stage == "occupancy":
        assert f"({len(kept)} already cached" in log
        assert set(case.segmented()[segmented_before:]).isdisjoint(kept)
    if stage == "student":
        assert "distilled set already written" in log
        assert len(case.segmented()) == segmented_before
        after = file_identities(case.run_dir)
        assert {k: v for k, v in after.items() if k.startswith("distilled/")} == {
            k: v for k, v in before.items() if k.startswith("distilled/")}
    assert_same_result(case, reference_dir)
