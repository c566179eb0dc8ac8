"""Loading teachers against a dataset (class order, input size, arch), accuracy on real images, train + cache + resume."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from fgdd.data import ImageFolderDataset, ImageSplit
from fgdd.errors import CheckpointError, ClassMismatchError, ConfigError
from fgdd.models.checkpoint import build_model, load_checkpoint
from fgdd.teacher import load_teacher, teacher_accuracy, train_teacher
from fgdd.training.classifier import ClassifierModule
from fgdd.training.teacher_recipe import TeacherRecipe

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
NETTE = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
         "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"]  # fmt: skip
CONV3 = {"_target_": "fgdd.models.convnet.ConvNet", "depth": 3, "width": 128, "norm": "batch"}
CPU = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False, "deterministic": True}
QUIET = {"trainer_kwargs": CPU, "logger": False}  # train_teacher's keywords beside the recipe


def _folder_dataset(root: Path, subdir: str, classes: list[str], input_size: int, val_dir: str = "val",
                    name: str = "toy") -> ImageFolderDataset:  # fmt: skip
    return ImageFolderDataset(root=str(root), subdir=subdir, classes=classes, input_size=input_size,
                              factor=1, val_dir=val_dir, name=name)  # fmt: skip


def _every_kth(split: ImageSplit, k: int) -> ImageSplit:
    # samples are sorted by class, so a stride keeps every class
    return ImageSplit(split.root, split.classes, split.samples[::k], base=split.base)


def test_shared_cifar10_teacher_scores_like_rded_on_real_images(shared_teachers: Path, shared_data) -> None:
    dataset = _folder_dataset(shared_data("cifar10-jpeg"), ".", CIFAR10, 32, val_dir="test", name="cifar10")
    model, meta = load_teacher(shared_teachers / "cifar10_conv3.pth", None, dataset.spec, "cpu")
    assert meta.classes == CIFAR10 and not model.training
    split = _every_kth(dataset.val(), 25)  # 400 of the 10,000 test images
    top1 = teacher_accuracy(model, split, dataset.spec, "cpu", batch_size=200)
    # 82.6 % on all 10,000 (84 % on these 400). About 75 % means eval_transform crops CIFAR: RDED resizes to
    # input // 7 * 8, which is 32 at 32 px (no crop), 72 at 64, 144 at 128, 256 at 224.
    assert 0.78 <= top1 <= 0.90, f"top-1 {top1:.3f}: check eval_transform's resize"


def test_shared_imagenette_teacher_scores_well_on_real_images(shared_teachers: Path, shared_data) -> None:
    dataset = _folder_dataset(shared_data("imagenette2-128"), ".", NETTE, 64, name="imagenette64")
    model, meta = load_teacher(shared_teachers / "imagenette64_conv4.pth", None, dataset.spec, "cpu")
    top1 = teacher_accuracy(model, _every_kth(dataset.val(), 15), dataset.spec, "cpu")
    assert top1 >= 0.72  # 79.5 % on all 3,925, 77 % on these 262


def test_class_order_mismatch_names_where_the_lists_differ(shared_teachers: Path, tmp_path: Path) -> None:
    shuffled = CIFAR10[1:] + CIFAR10[:1]
    dataset = _folder_dataset(tmp_path, "cifar", shuffled, 32)
    with pytest.raises(ClassMismatchError) as info:
        load_teacher(shared_teachers / "cifar10_conv3.pth", None, dataset.spec, "cpu")
    message = str(info.value)
    assert "teacher checkpoint" in message
    assert f"10 expected, 10 got; another order from position 0: expected {shuffled[0]!r}, got {CIFAR10[0]!r}" in message
    assert str(CIFAR10) not in message  # the difference, not both lists


def test_input_size_mismatch_is_a_checkpoint_error(shared_teachers: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="trained at 32 px"):
        load_teacher(shared_teachers / "cifar10_conv3.pth", None, _folder_dataset(tmp_path, "c", CIFAR10, 64).spec,
                     "cpu")


def test_bare_rded_checkpoint_needs_an_arch_and_warns_about_order(
    shared_teachers: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.copy(shared_teachers / "cifar10_conv3.pth", tmp_path / "bare.pth")  # no sidecar
    dataset = _folder_dataset(tmp_path, "c", CIFAR10, 32)
    with pytest.raises(CheckpointError, match="no metadata"):
        load_teacher(tmp_path / "bare.pth", None, dataset.spec, "cpu")
    with caplog.at_level(logging.WARNING, logger="fgdd.teacher"):
        model, meta = load_teacher(tmp_path / "bare.pth", CONV3, dataset.spec, "cpu")
    assert "label order cannot be verified" in caplog.text and meta.classes == []
    with pytest.raises(CheckpointError, match="unexpected keys"):  # arch given wrong: strict load names the keys
        load_teacher(tmp_path / "bare.pth", {**CONV3, "depth": 2}, dataset.spec, "cpu")
    with pytest.raises(CheckpointError, match=r"classifier\.weight \(10, 2048\) vs model \(9, 2048\)"):
        load_teacher(tmp_path / "bare.pth", CONV3, _folder_dataset(tmp_path, "c", CIFAR10[:9], 32).spec, "cpu")


def _write_toy_images(root: Path, per_class: int) -> None:
    # red-ish vs blue-ish noise: learnable in a couple of epochs
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", max(per_class // 2, 2))):
        for label, name in enumerate(["blue", "red"]):
            folder = root / "toy" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 120, size=(40, 40, 3))
                pixels[..., 2 - 2 * label] += 135
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:03d}.png")


def test_train_teacher_caches_reuses_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_toy_images(tmp_path / "data", per_class=12)
    dataset = _folder_dataset(tmp_path / "data", "toy", ["blue", "red"], 32)
    arch = {**CONV3, "width": 16}
    recipe = TeacherRecipe(epochs=2, batch_size=8, lr=0.05, seed=3)
    model, meta = train_teacher(arch, dataset, tmp_path / "cache", recipe, **QUIET)

    [folder] = (tmp_path / "cache" / "teachers").iterdir()
    assert folder.name.startswith("toy-convnet3-")
    assert {"teacher.pth", "last.ckpt", "cache_key.json", "epochs.jsonl"} <= {p.name for p in folder.iterdir()}
    curve = [json.loads(line) for line in (folder / "epochs.jsonl").read_text().splitlines()]
    # (the epoch's validation runs in the training precision, meta.val_top1 in fp32: equal only up to near-ties)
    assert [c["epoch"] for c in curve] == [0, 1] and 0.0 <= curve[-1]["teacher/val_top1"] <= 1.0
    assert all(c["seconds"] > 0 and "teacher/train_loss" in c for c in curve)
    assert json.loads((folder / "cache_key.json").read_text())["seed"] == 3
    assert meta.classes == ["blue", "red"] and meta.dataset == "toy" and 0.0 <= meta.val_top1 <= 1.0
    assert meta.val_top1 == teacher_accuracy(model, dataset.val(), dataset.spec, "cpu")
    state, saved = load_checkpoint(folder / "teacher.pth")
    assert saved == meta

    def no_training(*args, **kwargs):
        raise AssertionError("the cached teacher must be reused")

    monkeypatch.setattr(L.Trainer, "fit", no_training)
    again, meta_again = train_teacher(arch, dataset, tmp_path / "cache", recipe, **QUIET)
    assert meta_again == meta
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    monkeypatch.undo()

    # killed after the last epoch but before teacher.pth: resumes from last.ckpt without another training step
    (folder / "teacher.pth").unlink()
    monkeypatch.setattr(ClassifierModule, "training_step", no_training)
    resumed, _ = train_teacher(arch, dataset, tmp_path / "cache", recipe, **QUIET)
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), model.state_dict().values()))

    # another seed is another teacher
    monkeypatch.undo()
    train_teacher(arch, dataset, tmp_path / "cache", replace(recipe, seed=4, epochs=1), **QUIET)
    assert len(list((tmp_path / "cache" / "teachers").iterdir())) == 2


def test_teacher_augmentation_is_a_recipe_setting_in_the_cache_key(tmp_path: Path) -> None:
    _write_toy_images(tmp_path / "data", per_class=6)
    dataset = _folder_dataset(tmp_path / "data", "toy", ["blue", "red"], 32)
    recipe = TeacherRecipe(epochs=1, batch_size=8, lr=0.05)
    arch = {**CONV3, "width": 8}
    train_teacher(arch, dataset, tmp_path / "cache", recipe, **QUIET)
    _, meta = train_teacher(arch, dataset, tmp_path / "cache",
                            replace(recipe, augment="random_resized_crop", crop_scale=(0.35, 1.0)), **QUIET)
    keys = [json.loads(p.read_text())["recipe"]["augment"] for p in (tmp_path / "cache").rglob("cache_key.json")]
    # the default keeps the key it had before the setting existed: teachers cached then stay valid
    assert sorted(keys) == ["random_resized_crop[0.35, 1.0]", "teacher_train_transform"]
    assert meta.recipe["augment"] == "random_resized_crop[0.35, 1.0]"
    with pytest.raises(ConfigError, match="teacher.recipe.augment must be one of pad_crop_flip, random_resized_crop, "
                                          "got 'autoaugment'"):
        replace(recipe, augment="autoaugment")


def test_train_teacher_owns_epochs_and_checkpointing(tmp_path: Path) -> None:
    dataset = _folder_dataset(tmp_path, "toy", ["a"], 32)
    with pytest.raises(ConfigError, match="max_epochs"):
        train_teacher(CONV3, dataset, tmp_path, TeacherRecipe(epochs=1, batch_size=2, lr=0.1),
                      trainer_kwargs={"max_epochs": 5})


def test_teacher_accuracy_counts_correct_predictions(tmp_path: Path) -> None:
    _write_toy_images(tmp_path, per_class=4)
    dataset = _folder_dataset(tmp_path, "toy", ["blue", "red"], 32)
    model = build_model({**CONV3, "width": 4}, num_classes=2, input_size=32)
    with torch.no_grad():  # a constant "red" classifier is right on exactly the red half
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 1.0]))
    assert teacher_accuracy(model, dataset.val(), dataset.spec, "cpu", batch_size=3) == 0.5


def test_killed_training_resumes_from_the_last_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_toy_images(tmp_path / "data", per_class=8)  # 16 images, batch 8: 2 steps an epoch
    dataset = _folder_dataset(tmp_path / "data", "toy", ["blue", "red"], 32)
    recipe = TeacherRecipe(epochs=2, batch_size=8, lr=0.05, seed=0)
    arch = {**CONV3, "width": 8}
    original = ClassifierModule.training_step
    epochs_run: list[int] = []

    def killed_in_second_epoch(self, batch, batch_idx):
        epochs_run.append(self.current_epoch)
        if self.current_epoch == 1:
            raise RuntimeError("killed")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(ClassifierModule, "training_step", killed_in_second_epoch)
    with pytest.raises(RuntimeError, match="killed"):
        train_teacher(arch, dataset, tmp_path / "cache", recipe, **QUIET)
    [folder] = (tmp_path / "cache" / "teachers").iterdir()
    assert (folder / "last.ckpt").is_file() and not (folder / "teacher.pth").exists()

    def counted(self, batch, batch_idx):
        epochs_run.append(self.current_epoch)
        return original(self, batch, batch_idx)

    epochs_run.clear()
    monkeypatch.setattr(ClassifierModule, "training_step", counted)
    train_teacher(arch, dataset, tmp_path / "cache", recipe, **QUIET)
    assert epochs_run == [1, 1]  # only the second epoch ran
    assert (folder / "teacher.pth").is_file()
    # the curve kept beside the teacher continues: the killed epoch left no line
    assert [json.loads(line)["epoch"] for line in (folder / "epochs.jsonl").read_text().splitlines()] == [0, 1]


def test_unreadable_last_checkpoint_is_moved_aside(tmp_path: Path) -> None:
    _write_toy_images(tmp_path / "data", per_class=4)
    dataset = _folder_dataset(tmp_path / "data", "toy", ["blue", "red"], 32)
    recipe = TeacherRecipe(epochs=1, batch_size=8, lr=0.05, seed=0)
    arch = {**CONV3, "width": 8}
    train_teacher(arch, dataset, tmp_path / "cache", recipe, **QUIET)
    [folder] = (tmp_path / "cache" / "teachers").iterdir()
    (folder / "teacher.pth").unlink()
    (folder / "last.ckpt").write_bytes(b"truncated")
    train_teacher(arch, dataset, tmp_path / "cache", recipe, **QUIET)
    assert (folder / "last.ckpt.unreadable").read_bytes() == b"truncated"
    assert (folder / "teacher.pth").is_file()


def test_classifier_module_recipe_and_val_metric() -> None:
    torch.manual_seed(0)
    images, labels = torch.randn(16, 3, 32, 32), torch.arange(16) % 2
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=8)
    module = ClassifierModule(build_model({**CONV3, "width": 4}, 2, 32), lr=0.1)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_model_summary=False, **CPU)
    trainer.fit(module, loader, loader)
    assert 0.0 <= float(trainer.callback_metrics["teacher/val_top1"]) <= 1.0
    [optimizer] = trainer.optimizers
    assert optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.9
    assert optimizer.defaults["weight_decay"] == 5e-4 and module.label_smoothing == 0.1
    [config] = trainer.lr_scheduler_configs
    assert isinstance(config.scheduler, torch.optim.lr_scheduler.OneCycleLR) and config.interval == "step"
    assert config.scheduler.total_steps == 2


def test_classifier_trains_in_channels_last_and_hands_back_ordinary_weights() -> None:
    torch.manual_seed(0)
    images, labels = torch.randn(16, 3, 32, 32), torch.arange(16) % 2
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=8)
    model = build_model({**CONV3, "width": 4}, 2, 32)
    layouts: list[bool] = []
    model.layers["conv"][1].register_forward_pre_hook(
        lambda m, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_model_summary=False, **CPU)
    trainer.fit(ClassifierModule(model, lr=0.1), loader, loader)
    assert layouts and all(layouts)  # every training and validation batch ran in NHWC
    assert all(p.is_contiguous() for p in model.parameters())  # handed back in the default layout


def _teacher_source(*overrides: str):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from fgdd.run import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="run", overrides=["model@teacher.arch=convnet3", *overrides])
    return instantiate(cfg.teacher, _recursive_=False, _convert_="all")  # as fgdd.pipeline.obtain_teacher does


def test_teacher_configs_are_plugins_and_a_checkpoint_loads_from_either(shared_teachers: Path, tmp_path: Path) -> None:
    from omegaconf.errors import MissingMandatoryValue

    from fgdd.teacher import TeacherFromCheckpoint, TeacherTrainer

    trainer = _teacher_source("teacher=train")
    assert isinstance(trainer, TeacherTrainer) and trainer.recipe == TeacherRecipe() and trainer.checkpoint is None
    assert trainer.arch["net"]["_target_"] == CONV3["_target_"]  # the arch stays a config, built by the teacher
    path = shared_teachers / "cifar10_conv3.pth"
    dataset = _folder_dataset(tmp_path, "cifar", CIFAR10, 32)
    expected, _ = load_teacher(path, None, dataset.spec, "cpu")
    # teacher.checkpoint= on the default (train) group loads the file, as it always did; teacher=checkpoint too
    for overrides in ([f"teacher.checkpoint={path}"], ["teacher=checkpoint", f"teacher.checkpoint={path}"]):
        source = _teacher_source(*overrides)
        assert isinstance(source, TeacherFromCheckpoint if "teacher=checkpoint" in overrides else TeacherTrainer)
        model, meta = source.obtain(dataset, "cpu", cache_dir=tmp_path / "cache", trainer_kwargs={})
        assert meta.classes == CIFAR10 and not model.training
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), expected.state_dict().values()))
    assert not (tmp_path / "cache").exists()  # nothing trained
    with pytest.raises(MissingMandatoryValue, match="teacher.checkpoint"):
        _teacher_source("teacher=checkpoint")
