"""Resumable training: one full Lightning checkpoint, replaced atomically at the end of every epoch, and the
training curve kept beside it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import lightning as L


class LastCheckpoint(L.Callback):
    # Lightning's ModelCheckpoint writes last.ckpt in place (a kill mid-write leaves a truncated file) and, with
    # save_top_k=0, only at the end of training; this writes a temporary file and renames it.
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        tmp = self.path.with_name(f".{self.path.name}.partial")
        # every rank calls it, rank 0 writes; the full state (optimizer, loops, callbacks) is what a resume needs
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)


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
