"""RDED's test set (the first 50 val images a class, evaluator.rded_test_per_class): the subset and its score."""

from __future__ import annotations

import torch

from fgdd.evaluation.eval_images import EvalImages, top1


def test_first_per_class_keeps_split_order_within_each_class() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    images = torch.arange(9, dtype=torch.uint8).view(9, 1, 1, 1).expand(9, 3, 2, 2).contiguous()
    subset = EvalImages(images, labels).first_per_class(2)
    assert subset.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert subset.images[:, 0, 0, 0].tolist() == [0, 1, 3, 4, 5, 6]


def test_top1_scores_the_subset_as_the_model_predicts() -> None:
    labels = torch.tensor([0, 1, 1, 0])
    # channel 0 bright -> class 0; the model predicts class 0 where channel 0 is high
    images = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    images[[0, 2], 0] = 255

    class Brightness(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            score = x[:, 0].mean(dim=(1, 2))  # (n,)
            return torch.stack([score, -score], dim=1)  # (n, 2)

    assert top1(Brightness(), EvalImages(images, labels), (0.5,) * 3, (0.25,) * 3, "cpu") == 0.5  # hits: 0 and 1
    assert top1(Brightness(), EvalImages(images, labels).first_per_class(1), (0.5,) * 3, (0.25,) * 3, "cpu") == 1.0


def test_a_run_reports_rded_test_beside_the_full_val_split(tmp_path) -> None:
    # shapes (10 classes, 8 val images a class): RDED's test set of 3 a class, scored by the same final student
    import json

    from fgdd.run import run
    from tests.test_run import tiny_cfg

    metrics = run(tiny_cfg(tmp_path, "evaluator.rded_test_per_class=3"), tmp_path / "run")
    assert metrics["data/rded_test_images"] == 3 * 10 and metrics["data/val_images"] == 8 * 10
    assert 0.0 <= metrics["student/top1_final_rded_test"] <= 1.0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == metrics
