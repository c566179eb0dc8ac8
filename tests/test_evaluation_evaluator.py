from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from fgdd.data.spec import DatasetSpec
from fgdd.errors import ClassMismatchError, ConfigError
from fgdd.evaluation import SoftLabelEvaluator
from fgdd.evaluation.student import RESUME_STATE, SoftLabelStudent

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SPEC = DatasetSpec(name="colours", classes=("a", "b"), class_names=("a", "b"), input_size=16, mean=MEAN, std=STD,
                   factor=2)
CPU = {"accelerator": "cpu", "devices": 1, "deterministic": True, "enable_progress_bar": False}
KEYS = {"student/top1_final", "student/top5_final", "student/top1_best_tail", "student/train_seconds",
        "student/epochs", "cost/soft_label_bytes", "student/bf16"}


def colour_images(per_class: int, size: int, seed: int) -> list[tuple[Image.Image, int]]:
    # class 0 = reddish, class 1 = bluish, with noise and a random dark square so images differ
    g = torch.Generator().manual_seed(seed)
    items = []
    for label, (r, b) in enumerate([(200, 40), (40, 200)]):
        for _ in range(per_class):
            base = torch.tensor([r, 90, b], dtype=torch.float32).view(3, 1, 1)
            pixels = (base + 30 * torch.randn(3, size, size, generator=g)).clamp(0, 255)
            y, x = torch.randint(0, size // 2, (2,), generator=g).tolist()
            pixels[:, y : y + size // 4, x : x + size // 4] = 0
            items.append((Image.fromarray(pixels.byte().permute(1, 2, 0).numpy()), label))
    return items


class ListDataset(Dataset):
    def __init__(self, items: list[tuple[Image.Image, int]], ipc: int = 1, factor: int = 1) -> None:
        self.items = items
        self.ipc, self.factor = ipc, factor  # what a DistilledSet reads from its distilled.json

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return self.items[i]


class FakeSplit(ListDataset):
    """Stands in for fgdd.data.ImageSplit: PIL images, with_transform."""

    def __init__(self, items: list[tuple[Image.Image, int]], transform: Callable | None = None) -> None:
        super().__init__(items)
        self.transform = transform

    def with_transform(self, transform: Callable) -> FakeSplit:
        return FakeSplit(self.items, transform)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        image, label = self.items[i]
        return (self.transform(image) if self.transform else image), label


class ColourTeacher(nn.Module):
    """A good teacher by construction: red minus blue of the mean colour. The batch norm has identity statistics,
    so it changes nothing in eval mode but would drift if training ever put it in train mode."""

    def __init__(self, scale: float = 10.0) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(3)
        self.head = nn.Linear(3, 2)
        with torch.no_grad():
            self.head.weight.copy_(scale * torch.tensor([[1.0, 0.0, -1.0], [-1.0, 0.0, 1.0]]))
            self.head.bias.zero_()
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return self.head(self.norm(x).mean(dim=(2, 3)))  # (n, 3) mean colour -> (n, 2)


def tiny_student(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 2),
    )


def run(evaluator: SoftLabelEvaluator, teacher: nn.Module | None, seed: int = 0, lr: float = 0.02,
        logger: Any = None, trainer_kwargs: dict | None = None, student: nn.Module | None = None,
        checkpoint: Path | None = None) -> dict[str, float]:
    return evaluator.evaluate(
        ListDataset(colour_images(8, 16, seed=1), ipc=8, factor=2),
        FakeSplit(colour_images(10, 16, seed=2)),
        tiny_student() if student is None else student,
        teacher,
        lr=lr, spec=SPEC, seed=seed,
        trainer_kwargs=CPU if trainer_kwargs is None else trainer_kwargs, logger=logger, checkpoint=checkpoint,
    )


def check_metrics(metrics: dict[str, float], epochs: int) -> None:
    assert set(metrics) == KEYS
    assert all(isinstance(v, float) for v in metrics.values())
    for key in ("student/top1_final", "student/top5_final", "student/top1_best_tail"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["student/top1_best_tail"] >= metrics["student/top1_final"]
    assert metrics["student/top5_final"] == 1.0  # 2 classes: the top 5 hold both
    assert metrics["student/epochs"] == epochs and metrics["student/train_seconds"] > 0


def test_same_seed_same_student() -> None:
    # accuracy on this easy task saturates, so compare the trained weights: they pin every random draw
    # (shuffle, tile shuffle, crop, flip, CutMix) and must not depend on the number of loader workers
    evaluator = SoftLabelEvaluator(epochs=2, batch_size=4)
    students = [tiny_student() for _ in range(3)]
    a, b = run(evaluator, ColourTeacher(), student=students[0]), run(evaluator, ColourTeacher(), student=students[1])
    check_metrics(a, 2)
    a.pop("student/train_seconds"), b.pop("student/train_seconds")
    assert a == b
    weights = [s.state_dict() for s in students]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not torch.equal(weights[0]["0.weight"], tiny_student().state_dict()["0.weight"])  # it did train
    run(evaluator, ColourTeacher(), seed=1, student=students[2])
    assert not torch.equal(weights[0]["0.weight"], weights[2]["0.weight"])  # another seed, other draws


@pytest.mark.parametrize("pipeline", ["batched", "loader"])
def test_a_student_killed_mid_training_resumes_to_the_uninterrupted_student(
        pipeline: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 6 epochs validated at the end of epochs 1, 3, 5 (eval_every 2, the whole run is the tail); killed in epoch 4:
    # the rerun resumes after epoch 3 with its validations, CutMix stream and the epoch's draws, and ends with the
    # uninterrupted student's weights and metrics
    evaluator = SoftLabelEvaluator(epochs=6, batch_size=4, eval_every=2, tail_fraction=1.0, pipeline=pipeline,
                                   checkpoint_every_s=0)
    reference, killed, resumed = tiny_student(), tiny_student(), tiny_student()
    expected = run(evaluator, ColourTeacher(), student=reference)
    checkpoint = tmp_path / "resume" / "student.ckpt"
    original = SoftLabelStudent.training_step
    epochs_run: list[int] = []

    def killed_in_epoch_4(self, batch, batch_idx):
        epochs_run.append(self.current_epoch)
        if self.current_epoch == 4:
            raise RuntimeError("killed")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(SoftLabelStudent, "training_step", killed_in_epoch_4)
    with pytest.raises(RuntimeError, match="killed"):
        run(evaluator, ColourTeacher(), student=killed, checkpoint=checkpoint)
    assert checkpoint.is_file()
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert state["epoch"] == 3 and [v["epoch"] for v in state[RESUME_STATE]["val_history"]] == [1.0, 3.0]
    assert not any(k.startswith("teacher.") for k in state["state_dict"])  # the run has its teacher

    def counted(self, batch, batch_idx):
        epochs_run.append(self.current_epoch)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(SoftLabelStudent, "training_step", counted)
    epochs_run.clear()
    teacher = ColourTeacher()
    got = run(evaluator, teacher, student=resumed, checkpoint=checkpoint)
    assert sorted(set(epochs_run)) == [4, 5]  # only the epochs after the checkpoint ran
    expected.pop("student/train_seconds"), got.pop("student/train_seconds")
    assert got == expected
    reference_weights = reference.state_dict()
    assert all(torch.equal(v, reference_weights[k]) for k, v in resumed.state_dict().items())
    assert torch.equal(teacher.head.weight, ColourTeacher().head.weight)  # the teacher was not loaded over

    # a rerun of the finished training (killed before its metrics were written) trains nothing and scores the same
    epochs_run.clear()
    again = run(evaluator, ColourTeacher(), student=tiny_student(), checkpoint=checkpoint)
    again.pop("student/train_seconds")
    assert epochs_run == [] and again == expected


def test_checkpoints_are_saved_at_most_every_checkpoint_every_s_and_at_the_last_epoch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved: list[int] = []
    original = SoftLabelStudent.on_save_checkpoint

    def counted(self, checkpoint):
        saved.append(self.current_epoch)
        return original(self, checkpoint)

    monkeypatch.setattr(SoftLabelStudent, "on_save_checkpoint", counted)
    run(SoftLabelEvaluator(epochs=4, batch_size=4, checkpoint_every_s=3600), ColourTeacher(),
        checkpoint=tmp_path / "a.ckpt")
    assert saved == [3]  # only the last epoch: an hour never passed
    saved.clear()
    run(SoftLabelEvaluator(epochs=4, batch_size=4, checkpoint_every_s=None), ColourTeacher(),
        checkpoint=tmp_path / "b.ckpt")
    assert saved == [] and not (tmp_path / "b.ckpt").exists()
    with pytest.raises(ConfigError, match="checkpoint_every_s"):
        SoftLabelEvaluator(checkpoint_every_s=-1)


def test_loader_workers_do_not_change_the_result() -> None:
    evaluator = SoftLabelEvaluator(epochs=1, batch_size=4, num_workers=2)
    single, multi = tiny_student(), tiny_student()
    run(SoftLabelEvaluator(epochs=1, batch_size=4), ColourTeacher(), student=single)
    run(evaluator, ColourTeacher(), student=multi)
    assert all(torch.equal(v, multi.state_dict()[k]) for k, v in single.state_dict().items())


def test_student_learns_from_good_teacher(tmp_path: Path) -> None:
    teacher = ColourTeacher().eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    evaluator = SoftLabelEvaluator(epochs=12, batch_size=8, eval_every=2, tail_fraction=0.5)
    metrics = run(evaluator, teacher, logger=CSVLogger(tmp_path, name="student"))
    check_metrics(metrics, 12)
    assert metrics["student/top1_final"] >= 0.9
    # a random student can already split red from blue, so check the student follows the teacher:
    # with the teacher's classes swapped it must learn the swapped rule
    swapped = run(evaluator, ColourTeacher(scale=-10.0))
    assert swapped["student/top1_final"] <= 0.1
    # the teacher ran in eval mode on every batch and is unchanged (batch-norm statistics included)
    assert teacher.modes and not any(teacher.modes)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not teacher.training and all(p.requires_grad for p in teacher.parameters())  # handed back as it came
    # per-epoch metrics went to the logger; validation only ran in the tail (epochs 7, 9, 11 0-based)
    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    val_epochs = [int(r["epoch"]) for r in rows if r.get("student/val_top1")]
    assert val_epochs == [7, 9, 11]
    assert len([r for r in rows if r.get("student/train_loss")]) == 12


def test_hard_label_mode_runs_without_teacher() -> None:
    metrics = run(SoftLabelEvaluator(epochs=3, batch_size=8, hard_labels=True), None, lr=0.05)
    check_metrics(metrics, 3)


def test_soft_labels_need_a_teacher() -> None:
    with pytest.raises(ConfigError, match="needs a teacher"):
        run(SoftLabelEvaluator(epochs=1), None)


def test_evaluator_owns_epochs_and_logger() -> None:
    with pytest.raises(ConfigError, match="max_epochs"):
        run(SoftLabelEvaluator(epochs=1), ColourTeacher(), trainer_kwargs={**CPU, "max_epochs": 5})


def test_bad_settings_are_errors() -> None:
    with pytest.raises(ConfigError):
        SoftLabelEvaluator(epochs=0)
    with pytest.raises(ConfigError):
        SoftLabelEvaluator(tail_fraction=1.5)
    with pytest.raises(ConfigError):
        SoftLabelEvaluator(batch_size=0)


def test_distilled_set_must_yield_pil_images() -> None:
    bad = ListDataset([(torch.zeros(3, 16, 16), 0)])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="PIL"):
        SoftLabelEvaluator(epochs=1).evaluate(
            bad, FakeSplit(colour_images(1, 16, 0)), tiny_student(), ColourTeacher(), lr=1e-3, spec=SPEC,
            seed=0, trainer_kwargs=CPU,
        )


def test_device_augmentation_trains_the_same_student() -> None:
    # the device path draws the same per-sample choices and applies them to whole batches: on the CPU the batches,
    # and so the trained weights, are identical to the per-image loader path
    students = [tiny_student(), tiny_student(), tiny_student()]
    loader = {"epochs": 2, "batch_size": 4, "pipeline": "loader"}
    run(SoftLabelEvaluator(**loader), ColourTeacher(), student=students[0])
    run(SoftLabelEvaluator(**loader, augment_on_device=True), ColourTeacher(), student=students[1])
    run(SoftLabelEvaluator(**loader, augment_on_device=True, num_workers=2), ColourTeacher(), student=students[2])
    reference = students[0].state_dict()
    for other in students[1:]:
        assert all(torch.equal(v, other.state_dict()[k]) for k, v in reference.items())


def test_online_soft_labels_store_nothing() -> None:
    assert run(SoftLabelEvaluator(epochs=1, batch_size=4), ColourTeacher())["cost/soft_label_bytes"] == 0.0


def test_stored_soft_labels_run_the_teacher_only_in_the_stored_rounds() -> None:
    teacher = ColourTeacher()
    evaluator = SoftLabelEvaluator(epochs=12, batch_size=8, eval_every=2, tail_fraction=0.5, soft_labels="stored",
                                   soft_label_rounds=3, soft_label_topk=5)
    metrics = run(evaluator, teacher)
    assert metrics["student/top1_final"] >= 0.9  # it learns from the stored labels
    # 16 images, batch 8: 2 batches per epoch; the teacher labelled 3 rounds, nothing afterwards
    assert len(teacher.modes) == 3 * 2
    # per batch: labels and CutMix perm int16 (8 x 2 B each), box int32 (16 B), top-2 (2 classes) fp16 + int16 (32 + 32 B)
    assert metrics["cost/soft_label_bytes"] == 3 * 2 * (16 + 16 + 16 + 32 + 32)
    # the stored labels follow the teacher: with its classes swapped the student learns the swapped rule
    assert run(evaluator, ColourTeacher(scale=-10.0))["student/top1_final"] <= 0.1


def test_stored_soft_labels_with_every_round_match_online_training(monkeypatch: pytest.MonkeyPatch) -> None:
    # rounds = epochs and top-k = all classes: the student sees exactly the online batches (CutMix included) and
    # the teacher's labels up to fp16 rounding
    import fgdd.evaluation.labels as student_module  # the losses the label sources call

    kl, target_kl = student_module.soft_label_kl, student_module.soft_target_kl

    def capture(stored: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        inputs: list[torch.Tensor] = []
        targets: list[torch.Tensor] = []
        monkeypatch.setattr(student_module, "soft_label_kl", lambda s, t, temp: (
            targets.append(torch.softmax(t.float() / temp, 1)), kl(s, t, temp))[1])
        monkeypatch.setattr(student_module, "soft_target_kl", lambda s, q, temp: (
            targets.append(q.clone()), target_kl(s, q, temp))[1])
        student = tiny_student()
        student.register_forward_pre_hook(lambda m, args: inputs.append(args[0].clone()) if m.training else None)
        evaluator = SoftLabelEvaluator(epochs=2, batch_size=4, soft_labels="stored" if stored else "online",
                                       soft_label_rounds=None)
        run(evaluator, ColourTeacher(), student=student)
        return inputs, targets

    online_inputs, online_targets = capture(stored=False)
    stored_inputs, stored_targets = capture(stored=True)
    assert len(online_inputs) == len(stored_inputs) == 2 * 4
    assert all(torch.equal(a, b) for a, b in zip(online_inputs, stored_inputs))
    for a, b in zip(online_targets, stored_targets, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-3)


def test_stored_soft_label_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="soft_labels"):
        SoftLabelEvaluator(soft_labels="cached")
    with pytest.raises(ConfigError, match="hard_labels"):
        SoftLabelEvaluator(soft_labels="stored", hard_labels=True)
    with pytest.raises(ConfigError):
        SoftLabelEvaluator(soft_labels="stored", soft_label_rounds=0)


def test_device_augmentation_needs_one_image_size() -> None:
    items = colour_images(2, 16, 0) + [(colour_images(1, 20, 0)[0][0], 1)]
    with pytest.raises(ConfigError, match="augment_on_device"):
        SoftLabelEvaluator(epochs=1, pipeline="loader", augment_on_device=True).evaluate(
            ListDataset(items), FakeSplit(colour_images(1, 16, 0)), tiny_student(), ColourTeacher(), lr=1e-3, spec=SPEC,
            seed=0, trainer_kwargs=CPU,
        )


def test_precision_setting_decides_the_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    import fgdd.utils.precision as precision_module

    monkeypatch.delenv(precision_module.AUTO_OVERRIDE, raising=False)  # the suite's fp32 run sets it
    dtypes: list[torch.dtype] = []
    student = tiny_student()
    student[0].register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    metrics = run(SoftLabelEvaluator(epochs=1, batch_size=8, precision="bf16"), ColourTeacher(), student=student)
    assert metrics["student/bf16"] == 1.0 and set(dtypes) == {torch.bfloat16}  # training and validation
    assert all(p.dtype == torch.float32 for p in student.parameters())  # weights stay fp32
    dtypes.clear()
    metrics = run(SoftLabelEvaluator(epochs=1, batch_size=8, precision="fp32"), ColourTeacher(), student=student)
    assert metrics["student/bf16"] == 0.0 and set(dtypes) == {torch.float32}
    # auto follows the hardware: fp32 where bf16 is not native
    monkeypatch.setattr(precision_module, "native_bf16", lambda device: False)
    assert run(SoftLabelEvaluator(epochs=1, batch_size=8), ColourTeacher())["student/bf16"] == 0.0
    monkeypatch.setattr(precision_module, "native_bf16", lambda device: True)
    assert run(SoftLabelEvaluator(epochs=1, batch_size=8), ColourTeacher())["student/bf16"] == 1.0
    with pytest.raises(ConfigError, match="precision"):
        SoftLabelEvaluator(precision="fp16")


def test_extra_student_forward_reproduces_rdeds_second_batch_norm_update() -> None:
    # RDED's loop runs the student twice per step in train mode (once without gradients): the batch-norm running
    # statistics move twice per step; the default runs it once
    def train(extra: bool) -> tuple[int, nn.Module]:
        student = tiny_student()
        calls: list[bool] = []
        student.register_forward_pre_hook(lambda m, args: calls.append(m.training) if m.training else None)
        run(SoftLabelEvaluator(epochs=2, batch_size=8, precision="fp32", extra_student_forward=extra),
            ColourTeacher(), student=student)
        return len(calls), student

    once, plain = train(False)
    twice, rded = train(True)
    assert (once, twice) == (2 * 2, 2 * 2 * 2)  # 16 images, batch 8: 2 steps an epoch, 2 epochs
    assert int(plain[1].num_batches_tracked) == 4 and int(rded[1].num_batches_tracked) == 8


def test_pipeline_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="pipeline"):
        SoftLabelEvaluator(pipeline="workers")
    with pytest.raises(ConfigError, match="augment_on_device belongs to pipeline=loader"):
        SoftLabelEvaluator(augment_on_device=True)
    with pytest.raises(ConfigError, match="compile"):
        SoftLabelEvaluator(compile="fast")


def test_batched_pipeline_needs_one_image_size() -> None:
    items = colour_images(2, 16, 0) + [(colour_images(1, 20, 0)[0][0], 1)]
    with pytest.raises(ConfigError, match="pipeline=loader"):
        SoftLabelEvaluator(epochs=1).evaluate(
            ListDataset(items), FakeSplit(colour_images(1, 16, 0)), tiny_student(), ColourTeacher(), lr=1e-3, spec=SPEC,
            seed=0, trainer_kwargs=CPU,
        )


def test_both_pipelines_learn_the_same_task() -> None:
    # another random stream, the same distributions: both pipelines follow the teacher, and the loader pipeline
    # keeps its own guarantees (tested above)
    for pipeline in ("batched", "loader"):
        evaluator = SoftLabelEvaluator(epochs=12, batch_size=8, eval_every=2, tail_fraction=0.5, pipeline=pipeline)
        assert run(evaluator, ColourTeacher())["student/top1_final"] >= 0.9
        assert run(evaluator, ColourTeacher(scale=-10.0))["student/top1_final"] <= 0.1


def test_training_set_classes_must_be_the_datasets() -> None:
    swapped = ListDataset(colour_images(2, 16, 0))
    swapped.classes = ["b", "a"]  # as a DistilledSet carries its own list
    with pytest.raises(ClassMismatchError, match="student's training set vs the dataset"):
        SoftLabelEvaluator(epochs=1).evaluate(swapped, FakeSplit(colour_images(1, 16, 0)), tiny_student(),
                                              ColourTeacher(), lr=1e-3, spec=SPEC, seed=0, trainer_kwargs=CPU)
