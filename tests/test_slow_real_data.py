"""Slow: the RDED baseline on real CIFAR-10 images, reduced (reference teacher, 60 student epochs, 2 seeds)."""

from __future__ import annotations

import statistics

import pytest
from hydra import compose, initialize_config_dir

from fgdd.run import CONF_DIR, run

pytestmark = pytest.mark.slow


def cifar_cfg(data_root, cache, teacher, selector: str, seed: int):
    overrides = [
        "dataset=cifar10", "dataset.subdir=cifar10-jpeg", f"data_root={data_root}", f"cache_dir={cache}",
        "model=convnet3", "model@teacher.arch=convnet3", "teacher=checkpoint", f"teacher.checkpoint={teacher}",
        "teacher.min_val_acc=0.8", f"selector={selector}", "ipc=10", f"seed={seed}",
        "evaluator.epochs=60", "evaluator.num_workers=0", "logger=none", "trainer.enable_progress_bar=false",
    ]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="run", overrides=overrides)


def test_rded_beats_random_real_on_cifar10(shared_data, shared_teachers, tmp_path) -> None:
    data_root = shared_data("cifar10-jpeg").parent
    teacher = shared_teachers / "cifar10_conv3.pth"
    top1 = {"rded": [], "random_real": []}
    for seed in (0, 1):
        for selector in top1:
            metrics = run(cifar_cfg(data_root, tmp_path / "cache", teacher, selector, seed),
                          tmp_path / f"{selector}-{seed}")
            assert metrics["teacher/val_top1"] > 0.8  # the reference teacher, measured on the 10,000 test images
            top1[selector].append(metrics["student/top1_final"])
    assert statistics.fmean(top1["rded"]) > statistics.fmean(top1["random_real"]), top1
