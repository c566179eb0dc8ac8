"""Resumable training: one full Lightning checkpoint, replaced atomically at the end of every epoch."""

from __future__ import annotations

import os
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
