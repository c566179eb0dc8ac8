"""What a sweep prints, read from its captured output: each log line once per job, no warning a user cannot act on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from PIL import Image

from tests.test_run import TINY, TINY_SHAPES

# What used to fill the console, and where it came from.
NOISE = {
    "GPU available": "Lightning's hardware summary, once per Trainer",
    "litlogger": "Lightning's advertisement",
    "weights_only": "Lightning, once per teacher epoch (the checkpoint callback left weights_only unset)",
    "Trainer.fit` stopped": "Lightning's end-of-training notice",
    "does not have many workers": "Lightning's worker-count advice",
    "logging interval": "Lightning's per-step logging interval (fgdd logs per epoch)",
    "LeafSpec": "a torch deprecation inside Lightning",
}
LOG_LINE = re.compile(r"^\[\d\d:\d\d:\d\d\]\[(?P<level>[A-Z]+)\] (?P<message>.*)$")
WARNING_TEXT = re.compile(r"\.py:\d+: |Warning: ")  # how Python and Lightning print a warnings.warn


def progress_render(line: str) -> bool:
    # tqdm and rich redraw their bars; captured (not a terminal), every redraw is text of its own
    return "%|" in line or "━" in line or line.startswith(" " * 20) or not line.strip()


def jobs(output: str) -> list[list[str]]:
    """The captured output as screen lines (tqdm redraws with \\r), split at Hydra's '#N : overrides' job lines."""
    parts: list[list[str]] = [[]]
    for line in re.split(r"[\r\n]", output):
        if re.search(r"\[HYDRA\]\s+#\d+ : ", line):
            parts.append([])
        parts[-1].append(line)
    return parts[1:]


def test_a_sweep_prints_each_line_once_and_no_noise(tmp_path: Path) -> None:
    # the demo's shape (a multirun over selectors, one cached teacher), CPU-tiny; progress bars on as in the demo
    tiny = [o for o in TINY if not o.startswith("trainer.enable_progress_bar")]
    env = {**os.environ, "FGDD_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    result = subprocess.run(
        [sys.executable, "-m", "fgdd.run", "-m", "selector=rded,fgdd", *TINY_SHAPES, *tiny,
         f"data_root={tmp_path / 'data'}", f"cache_dir={tmp_path / 'cache'}", f"output_root={tmp_path / 'out'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path, timeout=600,
    )
    output = result.stdout
    assert result.returncode == 0, output[-3000:]

    for noise, origin in NOISE.items():
        assert noise not in output, f"{origin}: {noise!r} is printed"
    assert not WARNING_TEXT.search(output), f"a warning is printed:\n{output}"
    assert "INFO: " not in output, "Lightning's own console handler still prints (each of its lines twice)"

    per_job = jobs(output)
    assert len(per_job) == 2
    for lines in per_job:
        messages = [m.group("message") for line in lines if (m := LOG_LINE.match(line))]
        assert {"stage teacher ...", "stage select ...", "stage student ..."} <= set(messages)
        assert any(m.startswith("device cpu") for m in messages)
        others = [line for line in lines if not LOG_LINE.match(line) and not progress_render(line)]
        repeated = {line: n for line, n in Counter(messages + others).items() if n > 1}
        assert not repeated, f"printed more than once in one job: {repeated}"
    # the run folder's log keeps the full record, Lightning's notices included
    logs = sorted((tmp_path / "out").rglob("run.log"))
    assert len(logs) == 2 and all("GPU available" in p.read_text() for p in logs)


def test_the_student_bar_shows_a_small_loss_with_its_digits(shared_data) -> None:
    from lightning.pytorch.callbacks import Callback, RichProgressBar

    from fgdd.evaluation import SoftLabelEvaluator
    from tests.test_evaluation_evaluator import CPU, SPEC, ColourTeacher, FakeSplit, ListDataset, tiny_student

    class KeepTrainer(Callback):
        def on_train_end(self, trainer, pl_module) -> None:
            self.trainer = trainer

    archive = shared_data("imagenette2-128")
    items = [(Image.open(path).convert("RGB").resize((16, 16)), label)  # real photos, two classes
             for label, wnid in enumerate(("n01440764", "n02102040"))
             for path in sorted((archive / "val" / wnid).iterdir())[:8]]
    kept = KeepTrainer()
    SoftLabelEvaluator(epochs=1, batch_size=4).evaluate(
        ListDataset(items, ipc=8, factor=2), FakeSplit(items), tiny_student(), ColourTeacher(), lr=0.02, spec=SPEC,
        seed=0, trainer_kwargs={**CPU, "enable_progress_bar": True, "callbacks": [kept]})
    bar = kept.trainer.progress_bar_callback
    assert isinstance(bar, RichProgressBar)

    def shown(value: float) -> str:  # what the bar prints for a metric (Lightning's MetricsTextColumn)
        return f"{value:{bar.theme.metrics_format}}"

    assert shown(0.00013) == "0.00013" and shown(2.3456) == "2.35" and shown(0.8564) == "0.856"  # was 0.000
    loss = float(kept.trainer.progress_bar_metrics["student/train_loss"])
    assert abs(float(shown(loss)) - loss) <= 0.005 * loss  # 3 significant digits, whatever the loss
