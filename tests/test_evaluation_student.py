from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fgdd.errors import ConfigError
from fgdd.evaluation import SoftLabelStudent, rded_batch_size
from fgdd.evaluation.labels import HardLabels, OnlineSoftLabels, StoredSoftLabels, label_source
from fgdd.evaluation.settings import StudentSettings
from fgdd.evaluation.student import (
    mixed_label_ce,
    param_groups,
    rded_lr_factor,
    soft_label_kl,
    validation_epochs,
)


def test_kl_matches_hand_computation() -> None:
    student = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    teacher = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    t = 2.0

    def softmax(row: list[float]) -> list[float]:
        e = [math.exp(v / t) for v in row]
        return [v / sum(e) for v in e]

    expected = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        p, q = softmax(s_row), softmax(t_row)
        expected += sum(qi * (math.log(qi) - math.log(pi)) for pi, qi in zip(p, q))
    expected /= 2  # batchmean, and no T^2 factor
    assert soft_label_kl(student, teacher, t).item() == pytest.approx(expected, rel=1e-6)


def test_kl_zero_when_student_equals_teacher() -> None:
    logits = torch.randn(4, 10)
    assert soft_label_kl(logits, logits.clone(), 20.0).item() == pytest.approx(0.0, abs=1e-7)


def test_mixed_label_ce_weights_by_lambda() -> None:
    logits = torch.randn(3, 4)
    labels = torch.tensor([0, 1, 2])
    perm = torch.tensor([2, 0, 1])
    ce = nn.functional.cross_entropy
    expected = 0.3 * ce(logits, labels) + 0.7 * ce(logits, labels[perm])
    assert mixed_label_ce(logits, labels, perm, 0.3).item() == pytest.approx(expected.item())


def test_lr_schedule_values() -> None:
    assert rded_lr_factor(0, 300) == pytest.approx(1.0)
    assert rded_lr_factor(150, 300) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))  # ~0.854
    assert rded_lr_factor(150, 300) == pytest.approx(0.8536, abs=1e-4)
    assert rded_lr_factor(300, 300) == pytest.approx(0.5)


def test_scheduler_steps_per_epoch() -> None:
    settings = StudentSettings(weight_decay=0.01, epochs=4)
    module = SoftLabelStudent(nn.Linear(4, 2), label_source(settings, nn.Linear(4, 2)), settings, lr=1e-3, seed=0)
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "epoch"
    assert optimizer.defaults["betas"] == (0.9, 0.999)
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([1e-3 * rded_lr_factor(e, 4) for e in range(5)])


def test_no_weight_decay_on_bias_and_norm() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.GroupNorm(2, 4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 5, 5))
    decay, no_decay = param_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    decayed = {id(p) for p in decay["params"]}
    names = {name for name, p in model.named_parameters() if id(p) in decayed}
    assert names == {"0.weight", "4.weight"}  # conv and linear kernels only
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_validation_epochs_rded_rule() -> None:
    # RDED, 300 epochs: epoch % 10 == 9 and epoch > 240 (0-based), plus the last
    assert validation_epochs(300, 10, 0.2) == [249, 259, 269, 279, 289, 299]
    assert validation_epochs(2, 10, 0.2) == [1]  # the final epoch is always validated
    assert validation_epochs(25, 10, 0.2) == [24]
    assert validation_epochs(20, 5, 0.5) == [14, 19]


def test_rded_batch_size_rule() -> None:
    assert [rded_batch_size(ipc, 10) for ipc in (1, 10, 50)] == [10, 50, 100]
    assert [rded_batch_size(ipc, 100) for ipc in (1, 10, 50)] == [20, 100, 200]
    assert [rded_batch_size(ipc, 1000) for ipc in (1, 10, 50)] == [20, 100, 200]
    assert [rded_batch_size(ipc, 200) for ipc in (1, 10, 50)] == [100, 100, 100]  # Tiny-ImageNet
    # other IPCs follow the nearest documented IPC on a log scale
    assert [rded_batch_size(ipc, 100) for ipc in (2, 3, 4, 20, 22, 23, 100)] == [20, 20, 100, 100, 100, 200, 200]
    # never larger than the distilled set (RDED caps at ipc * classes)
    assert rded_batch_size(1, 5) == 5
    with pytest.raises(ConfigError):
        rded_batch_size(0, 10)


def test_teacher_rules() -> None:
    with pytest.raises(ConfigError, match="needs a teacher"):
        label_source(StudentSettings(), None)
    hard = label_source(StudentSettings(hard_labels=True), nn.Linear(2, 2))
    assert isinstance(hard, HardLabels) and hard.teacher is None  # the run's teacher is not used
    assert isinstance(label_source(StudentSettings(), nn.Linear(2, 2)), OnlineSoftLabels)
    stored = label_source(StudentSettings(soft_labels="stored", soft_label_rounds=3, epochs=10), nn.Linear(2, 2))
    assert isinstance(stored, StoredSoftLabels) and stored.rounds == 3 and stored.nbytes == 0


def test_teacher_stays_frozen_in_eval_mode() -> None:
    teacher = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    settings = StudentSettings(epochs=1)
    module = SoftLabelStudent(nn.Linear(2, 2), label_source(settings, teacher), settings, lr=1e-3, seed=0)
    module.train()
    assert module.student.training and not teacher.training and not teacher[1].training
    assert all(not p.requires_grad for p in teacher.parameters())


def test_kl_to_given_targets_equals_kl_to_teacher_logits() -> None:
    from fgdd.evaluation.student import soft_label_kl, soft_target_kl

    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g) * 10
    expected = soft_label_kl(student, teacher, 20.0)
    assert torch.allclose(soft_target_kl(student, torch.softmax(teacher / 20.0, 1), 20.0), expected)
