"""Trained teachers keep their cache folders: the names below were computed by train_teacher at commit 3cc0a74 (before
the recipe became one settings object), from the real configs, so teachers cached by earlier runs (hours of training
each; the benchmark grid's ``imagenette-convnet5-01b2582874d2`` among them) are still found. Nothing is trained: the
key is caught where the cache entry is made. The distilled sets selected with them keep their keys too (computed by
fgdd.pipeline.distilled_key at the same commit; tests/test_cache_distilled_key.py pins the other groups')."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import fgdd
import fgdd.teacher
from fgdd.cache.keyed import key_digest
from fgdd.config import register_resolvers
from fgdd.pipeline import build_teacher_source, distilled_key
from fgdd.run import CONF_DIR
from fgdd.utils.precision import AUTO_OVERRIDE

NETTE = "experiment=rded_imagenette_conv5"
SHAPES = "shapes-convnet3-681f33e808780b0342a3f766e2721b3e336551d471d6cd65d5a39ebeb169ced4"  # the default teacher
KEYS = [  # (overrides, teacher folder: <dataset>-<arch>-<key_digest>, key_digest of the distilled sets' key)
    ([], SHAPES, "fc5ce9f27c27191735c55b204984481b09aca7e2e6b57b9246a299fd5fc0c7a4"),
    ([NETTE], "imagenette-convnet5-0bbb7a6a9ac2c285fb930b41b5b1a689e2379386ebde1dc6f1b4a92937397080",
     "12ab30950f3301b950070a3c38fa8689e0f5183b61fbfdd44143c74609e1a6fe"),
    ([NETTE, "teacher.recipe.crop_scale=[0.35,1]"],  # the numbers as written: [0.35, 1] and [0.35, 1.0] were two keys
     "imagenette-convnet5-334a36d281df71f7cfa6cd4de3122dbd87321b9ea24f177242ac6c22e44d0f0d",
     "18d6438a889490323a8d6420ef238b615823beb808b8feea1664061245a16814"),
    (["teacher.recipe.pipeline=loader"],
     "shapes-convnet3-028e670a4f9f2cf3910ffbd305c82f21ca0a81860e7f9fbe4b8e0d6562189cc5",
     "0c5fbaf5a11ff6a01e3c847acdfe0d092cb28af6c43c7ef31354685663fde639"),
    (["teacher.recipe.pipeline=loader", "teacher.recipe.num_workers=3"],  # the loader's workers join the key
     "shapes-convnet3-33e6950d4321fad93ddb638d51d74b8218ff3c13a6bd64fbf3c10dd74ed986c3",
     "5f59cd7106f1291e39cdd43184856050e02e9c97e736c08a625895906abd2829"),
    (["teacher.recipe.num_workers=3"], SHAPES,  # the batched pipeline draws nothing in workers: the same teacher
     "41b4ddf4e69ece390b4613f5a1841cdd5806c1e5af47bb9af5c44a59d64ff77d"),
    (["teacher.recipe.precision=bf16"],
     "shapes-convnet3-2268fc93fd7fbb42eb5106a80e8b41cef6bcec27d8545c6838af4d3bff8ad14a",
     "83c652fb2a09dad012b08aaa8bdb75cf05f33bb0c3d93a5a6e0f3be1fb5cf2c0"),
    (["teacher.recipe.max_decoded_gb=1e-9"],  # batched falls back to the loader: the loader's teacher
     "shapes-convnet3-028e670a4f9f2cf3910ffbd305c82f21ca0a81860e7f9fbe4b8e0d6562189cc5",
     "041e48dcc2a2c9b371e41bb8dc8574a617a169584e700a25c19deb6eb8557827"),
    (["teacher.recipe.augment=random_resized_crop", "teacher.recipe.pipeline=loader"],
     "shapes-convnet3-ca066fa511bc022d9febb88a44fb75f65fde70f006718c7b1e522b38d95e904d",
     "6de4a8c42610c8c9e4e6da0b2f2c117846f374fd7d8d60dc5a88ba15d52d9f2f"),
    (["dataset.aspect=squash"],  # squash: the key teachers had before the setting existed
     "shapes-convnet3-aeaadcceb1175e55a6ed1e8654563d765626f20e14d7e01403f4c0ae779d707b",
     "e15d581572d8ef4d51c9cb2d30af2fed8709d398fffab44c20bbac4099602aac"),
    (["teacher.recipe.seed=${seed}", "seed=2"],
     "shapes-convnet3-ff625899872e2b8dce734f8d0afe85f637effdbee6375b45b24e6ada3e01309b",
     "0bdc4ba165a1eb5f9ebbe26ad82ce0d0e77c2c2510baba944992c3be5b71b3d6"),
    (["teacher.recipe.lr=1", "teacher.recipe.label_smoothing=0", "teacher.recipe.seed=3", "teacher.recipe.epochs=2",
      "teacher.recipe.batch_size=64", "teacher.recipe.weight_decay=0.001", "teacher.recipe.momentum=0.8"],
     "shapes-convnet3-489a960a5e6d37f3e4713b345edbe9bb30ad7c58fe0be2ee6ee1e6f9a1cce980",
     "39303e70e79d607d777503df3f2d63e716ddb2a2fa5a07cc04a76c05d32d192f"),
    (["model@teacher.arch=resnet18_modified", "dataset=cifar10"],
     "cifar10-resnet18-eceb513935a416c9709334d22eb76804eaf7b7a0fcf90d4235f38fb79a52e85c",
     "44c390b77ca3cdeb2ef13dc212bdc68f206a3d7381f81a526cc41ec7e03b895b"),
    (["teacher.recipe.max_decoded_gb=16", "teacher.recipe.eval_batch_size=64"], SHAPES,  # in the distilled key only
     "daf337f72661b17f381bd0fcd90f4f87feee9d3dd1e3b48cc6476b31a822176a"),
]
IDS = [" ".join(o) or "default" for o, _, _ in KEYS]
WEIGHTS = "ab" * 32


class Keyed(Exception):
    def __init__(self, key: dict[str, Any], prefix: str) -> None:
        super().__init__(prefix)
        self.key, self.prefix = key, prefix


def _caught_key(cache_dir: Any, kind: str, key: dict[str, Any], *, prefix: str) -> None:
    assert kind == "teachers"
    raise Keyed(key, prefix)


class Split:  # a train split as the key reads it: a fixed root and image list (the key holds both)
    root = Path("/data/pinned/train")

    def __init__(self, classes: list[str]) -> None:
        self.targets = [i % len(classes) for i in range(2 * len(classes))]
        self.classes = classes

    def __len__(self) -> int:
        return len(self.targets)

    def relpath(self, i: int) -> str:
        return f"{self.classes[self.targets[i]]}/{i:04d}.png"


class Dataset:
    def __init__(self, name: str, input_size: int, aspect: str) -> None:
        self.name, self.aspect = name, aspect
        self.classes = [f"class{c}" for c in range(10)]
        self.spec = SimpleNamespace(input_size=input_size, num_classes=10)

    def train(self) -> Split:
        return Split(self.classes)


def composed(overrides: list[str]) -> DictConfig:
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="run", overrides=["data_root=/data", "cache_dir=/cache", *overrides])


def teacher_folder(overrides: list[str]) -> str:
    cfg = composed(overrides)
    dataset = Dataset(cfg.dataset.name, cfg.dataset.input_size, cfg.dataset.aspect)
    with pytest.raises(Keyed) as caught:
        build_teacher_source(cfg.teacher).obtain(dataset, "cpu", cache_dir="/cache", trainer_kwargs={})
    return f"{caught.value.prefix}-{key_digest(caught.value.key)}"


@pytest.mark.parametrize("overrides,folder,_", KEYS, ids=IDS)
def test_trained_teachers_keep_their_cache_folders(overrides: list[str], folder: str, _: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AUTO_OVERRIDE, "fp32")  # precision=auto resolves as on a CPU without native bf16
    monkeypatch.setattr(fgdd.teacher, "KeyedEntry", _caught_key)
    assert teacher_folder(overrides) == folder


@pytest.mark.parametrize("overrides,_,digest", KEYS, ids=IDS)
def test_the_sets_selected_with_these_teachers_keep_their_keys(overrides: list[str], _: str, digest: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fgdd, "__version__", "pinned")  # the key holds the version: a release changes every key
    assert key_digest(distilled_key(composed(overrides), "cpu", WEIGHTS)) == digest
