"""Resumable training: one full Lightning checkpoint, replaced atomically at the end of every epoch, and the
training curve kept beside it."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

log = logging.getLogger(__name__)


class LastCheckpoint(Checkpoint):
    """The training's full state at the end of an epoch: every epoch, or with ``every_s`` at the end of the first
    epoch that ends that many seconds after the last save (and always at the last epoch), for trainings whose epochs
    are too short to pay a file each.

    Lightning's ModelCheckpoint writes last.ckpt in place (a kill mid-write leaves a truncated file) and, with
    save_top_k=0, only at the end of training; this writes a temporary file and renames it. A ``Checkpoint``, so
    that Lightning calls it after the module's own ``on_train_epoch_end`` (where the student validates: the file
    then holds that epoch's validation), and the Trainer needs ``enable_checkpointing=True`` (with this callback
    it adds no ModelCheckpoint of its own)."""

    def __init__(self, path: str | os.PathLike[str], every_s: float = 0.0) -> None:
        self.path = Path(path)
        self.every_s = every_s
        self._last_save = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_save = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        last_epoch = trainer.max_epochs is not None and trainer.current_epoch >= trainer.max_epochs - 1
        if not last_epoch and time.monotonic() - self._last_save < self.every_s:
            return
        self._last_save = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.partial")
        # every rank calls it, rank 0 writes; the full state (optimizer, loops, callbacks) is what a resume needs
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)


def usable_checkpoint(path: Path) -> Path | None:
    """``path`` when it holds a readable checkpoint to resume from; None when there is none, or when a run killed
    while writing it left it unreadable (moved aside as ``<name>.unreadable``, with a warning: training starts over)."""
    if not path.is_file():
        return None
    try:  # a run killed while Lightning wrote it leaves a truncated file
        torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        aside = path.with_name(f"{path.name}.unreadable")
        path.replace(aside)
        log.warning("cannot resume from %s (%s); moved it to %s and training from scratch", path, error, aside)
        return None
    return path


class EpochLog(L.Callback):
    """One JSON line per finished epoch appended to ``path`` (epoch, wall seconds, the logged metrics whose names
    start with ``prefix``): the training curve of a cached teacher, kept beside it. Appended, so a resumed training
    continues the file; the line of an epoch killed before its end is never written."""

    def __init__(self, path: str | os.PathLike[str], prefix: str) -> None:
        self.path = Path(path)
        self.prefix = prefix
        self._start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()
                   if name.startswith(self.prefix)}
        line = {"epoch": trainer.current_epoch, "seconds": round(time.perf_counter() - self._start, 3), **metrics}
        with self.path.open("a") as log_file:
            log_file.write(json.dumps(line) + "\n")
