"""The observer/teacher: load a checkpoint (fgdd, RDED or bare), or train one with a fixed recipe and cache it."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from fgdd.cache.keyed import KeyedEntry
from fgdd.data.base import ImageDataset, ImageSplit
from fgdd.data.spec import DatasetSpec
from fgdd.data.transforms import teacher_rrc_transform, teacher_train_transform
from fgdd.errors import CheckpointError, ClassMismatchError, ConfigError, FgddError
from fgdd.evaluation.augment import BatchAugment
from fgdd.evaluation.eval_images import EvalBatches, EvalImages, decode_eval_images, top1
from fgdd.models.checkpoint import (
    ModelMeta,
    build_model,
    load_checkpoint,
    load_state_dict_strict,
    plain_arch,
    save_checkpoint,
)
from fgdd.training.batches import BatchedEpochs, DeviceBatches, EpochDraws, PadCropFlip
from fgdd.training.callbacks import EpochLog, LastCheckpoint, usable_checkpoint
from fgdd.training.classifier import TRAINING_CODE_VERSION, ClassifierModule
from fgdd.training.teacher_recipe import Augment, TeacherRecipe
from fgdd.training.train_images import decode_train_images, decoded_bytes, storage_size
from fgdd.utils.choices import Pipeline, plain
from fgdd.utils.io import file_sha256
from fgdd.utils.precision import resolve_precision
from fgdd.utils.seeding import TEACHER, TEACHER_EPOCH, derive_seed, generator, seed_everything

log = logging.getLogger(__name__)

TEACHER_FILE = "teacher.pth"
LAST_CKPT = "last.ckpt"
EPOCHS_LOG = "epochs.jsonl"  # one line per finished epoch: seconds, train loss and top-1, val top-1


def _same_stats(a: Any, b: Any) -> bool:
    # sidecars store float32-rounded ImageNet stats (0.48500001...), so compare with a tolerance
    return len(a) == len(b) and all(math.isclose(float(x), float(y), abs_tol=1e-4) for x, y in zip(a, b))


def load_teacher(
    path: str | Path, arch: Mapping[str, Any] | None, spec: DatasetSpec, device: torch.device | str
) -> tuple[nn.Module, ModelMeta]:
    """Strict load, in eval mode on ``device``; its classes, input size and normalisation must be the dataset's
    (``spec``). The checkpoint's own arch (fgdd meta or sidecar) wins over ``arch``."""
    state_dict, meta = load_checkpoint(path)
    if meta is None:
        if arch is None:
            raise CheckpointError(
                f"{path} carries no metadata (no fgdd_meta, no {Path(path).with_suffix('.json').name} sidecar): "
                "set the teacher arch config (e.g. teacher.arch={_target_: fgdd.models.convnet.ConvNet, depth: 3})"
            )
        meta = ModelMeta(
            arch=plain_arch(arch),
            input_size=spec.input_size,
            mean=spec.mean,
            std=spec.std,
            classes=[],
        )
    elif arch is not None and plain_arch(arch) != plain_arch(meta.arch):
        log.warning("teacher %s: using the arch stored with it, %s, not %s", path, meta.arch, plain_arch(arch))

    if meta.classes and list(meta.classes) != list(spec.classes):
        raise ClassMismatchError(
            f"teacher checkpoint {path} vs dataset {spec.name}", list(spec.classes), list(meta.classes)
        )
    if not meta.classes:  # RDED's own checkpoints: the class count is checked by the strict load, the order cannot be
        log.warning(
            "teacher %s has no class list: its label order cannot be verified against dataset %s; "
            "add a sidecar JSON with 'classes' beside it to check it",
            path,
            spec.name,
        )
    if meta.input_size != spec.input_size:
        raise CheckpointError(
            f"teacher {path} was trained at {meta.input_size} px but dataset {spec.name} uses input_size "
            f"{spec.input_size}; use a teacher for this resolution or train one (teacher=train)"
        )
    if not (_same_stats(meta.mean, spec.mean) and _same_stats(meta.std, spec.std)):
        raise CheckpointError(
            f"teacher {path} expects mean/std {meta.mean}/{meta.std} but dataset {spec.name} normalises with "
            f"{spec.mean}/{spec.std}"
        )
    model = build_model(meta.arch, num_classes=spec.num_classes, input_size=spec.input_size)
    load_state_dict_strict(model, state_dict, str(path), meta.arch)
    return model.to(device).eval(), meta


def arch_name(arch: dict[str, Any]) -> str:
    name = str(arch.get("name") or arch["_target_"].rsplit(".", 1)[-1]).lower()
    return f"{name}{arch['depth']}" if "depth" in arch else name


def image_list_sha256(split: ImageSplit) -> str:
    """Hash of the split's (relpath, label) list: images added, removed or relabelled give another teacher."""
    digest = hashlib.sha256()
    for i in range(len(split)):
        digest.update(f"{split.relpath(i)}\t{split.targets[i]}\n".encode())
    return digest.hexdigest()


def teacher_cache_key(
    dataset: ImageDataset, train_root: Path, arch: dict[str, Any], recipe: dict[str, Any], seed: int,
    images: str | None = None, num_workers: int = 0,
) -> dict[str, Any]:
    """Everything a trained teacher depends on (the key of its cache folder, fgdd.cache.keyed)."""
    inputs = {
        "dataset": dataset.name,
        "classes": list(dataset.classes),
        "train_root": str(Path(train_root).resolve()),
        "arch": arch,
        "recipe": recipe,
        "seed": seed,
        "code": TRAINING_CODE_VERSION,
    }
    if images is not None:
        inputs["images"] = images
    if num_workers > 0:
        # augmentations drawn in loader workers follow the workers' own seeds: another worker count is another
        # (equally valid) teacher, so it gets its own cache entry (0, the default, adds nothing)
        inputs["loader_workers"] = num_workers
    return inputs


def _fitting_pipeline(pipeline: Pipeline, train_split: ImageSplit, size: int, max_decoded_gb: float) -> Pipeline:
    # the batched pipeline holds the decoded split in memory (and on the training device): above the budget, the loader
    nbytes = decoded_bytes(train_split, size)
    if pipeline is Pipeline.batched and nbytes > max_decoded_gb * 2**30:
        log.info("teacher training: the train split decoded at %d px is %.1f GiB, above teacher.recipe.max_decoded_gb="
                 "%g; training through the per-image loader instead (teacher.recipe.pipeline=loader)",
                 size, nbytes / 2**30, max_decoded_gb)
        return Pipeline.loader
    return pipeline


class ResumableRandomness(L.Callback):
    """Stores the random state with every checkpoint and restores it on resume, so a training resumed from
    ``last.ckpt`` draws the same shuffles, augmentations and worker seeds as one never interrupted (Lightning
    saves weights, optimizer and schedule, not the generators). Reading the state draws nothing, so an
    uninterrupted training is unchanged by this callback."""

    def __init__(self, loader_generator: torch.Generator) -> None:
        self.loader_generator = loader_generator

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        state = {"torch": torch.get_rng_state(), "loader": self.loader_generator.get_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["fgdd_rng"] = state

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("fgdd_rng")
        if state is None:
            log.warning("checkpoint has no random state (written by an older fgdd): the resumed teacher is a valid "
                        "teacher but not bit-identical to an uninterrupted training")
            return
        torch.set_rng_state(state["torch"])
        self.loader_generator.set_state(state["loader"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def train_teacher(
    arch: Mapping[str, Any],
    dataset: ImageDataset,
    cache_dir: str | Path,
    recipe: TeacherRecipe,
    *,
    trainer_kwargs: dict[str, Any] | None = None,
    logger: Any = None,
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, ModelMeta]:
    """Returns the teacher in eval mode on ``device`` (training itself runs where ``trainer_kwargs`` put it).
    Cached under ``<cache_dir>/teachers/<dataset>-<arch>-<key>/``: a killed run resumes from ``last.ckpt``
    (written every epoch); ``teacher.pth`` is written last, atomically, and reused by later calls.

    ``recipe.pipeline``: batched (the train split decoded once into a uint8 tensor on the training device, each
    batch's augmentation drawn vectorised and applied there: fgdd.training.batches) or loader (per-image transforms
    in DataLoader workers); batched falls back to loader, with a log line, when the decoded split would pass
    ``recipe.max_decoded_gb``."""
    trainer_kwargs = dict(trainer_kwargs or {})
    for key in ("max_epochs", "callbacks", "logger", "default_root_dir", "enable_checkpointing"):
        if key in trainer_kwargs:
            raise ConfigError(f"trainer_kwargs.{key} is set by train_teacher (epochs, its checkpointing); remove it")
    arch = plain_arch(arch)
    train_split = dataset.train()
    spec = dataset.spec
    augment, seed, num_workers = recipe.augment, recipe.seed, recipe.num_workers
    stored_px = storage_size(spec.input_size, augment)  # the size the batched pipeline decodes the split at
    pipeline = _fitting_pipeline(recipe.pipeline, train_split, stored_px, recipe.max_decoded_gb)
    resolved = resolve_precision(str(recipe.precision), device, stage="teacher")
    key_recipe = recipe.key(aspect=dataset.aspect, batched_px=stored_px if pipeline is Pipeline.batched else None,
                            precision=resolved)
    entry = KeyedEntry(cache_dir, "teachers", teacher_cache_key(
        dataset, train_split.root, arch, key_recipe, seed, images=image_list_sha256(train_split),
        num_workers=num_workers if pipeline is Pipeline.loader else 0,  # the batched pipeline's draws use no workers
    ), prefix=f"{dataset.name}-{arch_name(arch)}")
    folder, final = entry.path, entry.path / TEACHER_FILE
    if entry.folder_matches() and final.is_file():
        log.info("reusing cached teacher %s", final)
        return load_teacher(final, None, dataset.spec, device)
    entry.open_folder()  # trained in place: last.ckpt every epoch, teacher.pth (atomically) last

    seed_everything(derive_seed(seed, TEACHER, "init"))
    model = build_model(arch, num_classes=spec.num_classes, input_size=spec.input_size)
    size, mean, std = spec.input_size, spec.mean, spec.std
    val_split = dataset.val()
    # decoded once (and cached beside the teachers): every epoch's validation, the final accuracy and the run's
    # student validations read the same tensor
    val_images = decode_eval_images(val_split, size, num_workers=num_workers, cache_dir=cache_dir)
    loader_generator = generator(seed, TEACHER, "loader")
    callbacks: list[L.Callback] = [ResumableRandomness(loader_generator), LastCheckpoint(folder / LAST_CKPT),
                                   EpochLog(folder / EPOCHS_LOG, prefix="teacher/")]
    device_batches = None
    train_loader: Any
    if pipeline is Pipeline.batched:
        log.info("teacher training: batched pipeline (train split decoded once at %d px)", stored_px)
        pixels, labels = decode_train_images(train_split, stored_px, dataset.aspect,
                                             cache_dir=cache_dir, num_workers=num_workers)  # (N, 3, S, S) uint8
        batch_augment = (PadCropFlip(size, size // 8, mean, std) if augment is Augment.pad_crop_flip
                         else BatchAugment(size, 1, mean, std, scale=recipe.crop_scale))
        train_loader = BatchedEpochs(labels, pixels.shape[2], pixels.shape[3], batch_augment, recipe.batch_size,
                                     derive_seed(seed, TEACHER), TEACHER_EPOCH)
        callbacks.append(EpochDraws(train_loader))
        device_batches = DeviceBatches(pixels, batch_augment)
    else:
        # random_resized_crop draws its own box on the original image, so `aspect` applies to pad_crop_flip only
        train_transform = (teacher_train_transform(size, mean, std, dataset.aspect) if augment is Augment.pad_crop_flip
                           else teacher_rrc_transform(size, mean, std, recipe.crop_scale))
        train_loader = DataLoader(
            train_split.with_transform(train_transform),
            batch_size=recipe.batch_size,
            shuffle=True,
            num_workers=num_workers,
            generator=loader_generator,
            # workers are started every epoch with seeds drawn from loader_generator, whose state the checkpoint
            # carries: persistent workers would keep streams a resumed training cannot restore
            persistent_workers=False,
        )
    val_loader = EvalBatches(val_images, recipe.eval_batch_size, shard=False, mean=mean, std=std)
    module = ClassifierModule(model, recipe.lr, recipe.weight_decay, recipe.momentum, recipe.label_smoothing,
                              device_batches=device_batches, precision=resolved)
    trainer = L.Trainer(
        max_epochs=recipe.epochs,
        callbacks=callbacks,
        enable_checkpointing=True,  # LastCheckpoint's; with it Lightning adds no ModelCheckpoint of its own
        logger=logger if logger is not None else False,
        default_root_dir=folder,
        **{"enable_model_summary": False, **trainer_kwargs},
    )
    resume = usable_checkpoint(folder / LAST_CKPT)
    if resume is not None:
        log.info("resuming teacher training from %s", resume)
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume)
    if trainer.current_epoch < recipe.epochs:  # e.g. max_time in trainer_kwargs: never cache a partly trained teacher
        raise FgddError(
            f"teacher training stopped after {trainer.current_epoch} of {recipe.epochs} epochs; "
            f"rerun to resume from {folder / LAST_CKPT}"
        )

    train_device = trainer.strategy.root_device
    val_top1 = teacher_accuracy(model, val_images, spec, train_device, recipe.eval_batch_size, num_workers)
    meta = ModelMeta(
        arch=arch,
        input_size=size,
        mean=mean,
        std=std,
        classes=list(dataset.classes),
        val_top1=val_top1,
        dataset=dataset.name,
        recipe={**key_recipe, "seed": seed, "cache_key": entry.digest, "code": TRAINING_CODE_VERSION},
    )
    save_checkpoint(final, model.state_dict(), meta)
    log.info("teacher %s: val top-1 %.4f, saved %s", arch_name(arch), val_top1, final)
    return model.to(device).eval(), meta


def teacher_accuracy(
    model: nn.Module,
    split: ImageSplit | EvalImages,
    spec: DatasetSpec,  # input size and normalisation of the model's input
    device: torch.device | str,
    batch_size: int = 256,
    num_workers: int = 0,
) -> float:
    """Top-1 (fraction) with the evaluation transform, on a split (decoded here) or on its already decoded images
    (``fgdd.evaluation.eval_images``: what a run shares with the student's validations); the same floats as
    ``eval_transform`` gives. fp32; moves ``model`` to ``device`` and leaves it in eval mode."""
    images = split if isinstance(split, EvalImages) else decode_eval_images(split, spec.input_size,
                                                                            num_workers=num_workers)
    return top1(model, images, spec.mean, spec.std, device, batch_size=batch_size, desc="teacher val")


# The teacher plug-ins: conf/teacher/*.yaml each name one of these as `_target_`; fgdd.pipeline instantiates the
# group (not recursively: `arch` stays a config) and calls ``obtain``. Every teacher config has the same keys.


def _teacher_net(arch: Mapping[str, Any] | None) -> dict[str, Any] | None:
    # teacher.arch is a model config (conf/model/*.yaml: name, lr, net); the teacher is built from its `net`
    return None if arch is None else plain_arch(arch["net"])


class TeacherFromCheckpoint:
    """conf/teacher/checkpoint.yaml: a trained teacher read from ``checkpoint`` (fgdd's .pth, RDED's, Lightning's
    or a bare state dict; load_teacher checks its classes, resolution and normalisation against the dataset)."""

    def __init__(
        self,
        checkpoint: str,
        arch: Mapping[str, Any] | None = None,  # used only when the file carries no architecture of its own
        min_val_acc: float = 0.0,  # the run's gate on the teacher's val top-1, checked by fgdd.pipeline
        recipe: Mapping[str, Any] | None = None,  # a loaded teacher has none; the key exists in every teacher config
    ) -> None:
        self.checkpoint = str(checkpoint)
        self.arch = arch
        self.min_val_acc = min_val_acc
        self.recipe = recipe

    def key(self) -> dict[str, Any]:
        """What identifies this teacher in the keys of caches built on it (fgdd.cache.distilled): the file's hash,
        not its path (the same file moved is the same teacher), beside the config's arch and recipe, as every such
        key held them (tests/test_cache_distilled_key.py)."""
        return {"checkpoint_sha256": file_sha256(self.checkpoint), "arch": self.arch, "recipe": self.recipe}

    def obtain(
        self, dataset: ImageDataset, device: torch.device | str, *, cache_dir: str | Path,
        trainer_kwargs: dict[str, Any],
    ) -> tuple[nn.Module, ModelMeta]:
        return load_teacher(self.checkpoint, _teacher_net(self.arch), dataset.spec, device)


class TeacherTrainer:
    """conf/teacher/train.yaml: trained on the dataset's train split with ``recipe`` and cached (train_teacher). A
    ``checkpoint`` set on this group anyway (``teacher.checkpoint=...`` without ``teacher=checkpoint``, which users
    have always been able to write) is loaded instead, exactly as TeacherFromCheckpoint loads it."""

    def __init__(
        self,
        recipe: TeacherRecipe | Mapping[str, Any],  # the config's teacher.recipe becomes the record here, once
        arch: Mapping[str, Any],
        min_val_acc: float = 0.0,  # the run's gate on the teacher's val top-1, checked by fgdd.pipeline
        checkpoint: str | None = None,
    ) -> None:
        self.recipe = recipe if isinstance(recipe, TeacherRecipe) else TeacherRecipe(**recipe)
        self.arch = arch
        self.min_val_acc = min_val_acc
        self.checkpoint = checkpoint

    def key(self) -> dict[str, Any]:
        """What identifies this teacher in the keys of caches built on it (fgdd.cache.distilled): its arch and recipe
        (the weights' hash joins them there: the recipe alone does not fix the weights); a checkpoint set anyway is
        named by its file's hash, as TeacherFromCheckpoint's. The values every such key held
        (tests/test_cache_distilled_key.py). The teacher's own cache is keyed by train_teacher (TeacherRecipe.key)."""
        if self.checkpoint:
            return {"checkpoint_sha256": file_sha256(self.checkpoint), "arch": self.arch, "recipe": plain(self.recipe)}
        return {"checkpoint": self.checkpoint, "arch": self.arch, "recipe": plain(self.recipe)}

    def obtain(
        self, dataset: ImageDataset, device: torch.device | str, *, cache_dir: str | Path,
        trainer_kwargs: dict[str, Any],
    ) -> tuple[nn.Module, ModelMeta]:
        if self.checkpoint:
            loader = TeacherFromCheckpoint(self.checkpoint, self.arch, self.min_val_acc)
            return loader.obtain(dataset, device, cache_dir=cache_dir, trainer_kwargs=trainer_kwargs)
        return train_teacher(_teacher_net(self.arch), dataset, Path(cache_dir), self.recipe,
                             trainer_kwargs=trainer_kwargs, device=device)
