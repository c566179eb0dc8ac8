"""The student's optimizer and learning-rate schedule: RDED's (AdamW, a quarter cosine; fgdd's default) or
DD-Ranking's real-data recipe (SGD with momentum, weight decay on every parameter, the rate divided by 10 every
``lr_step`` epochs: ``REAL_DATA_TRAINING_CONFIG`` "CIFAR10-ConvNet-3" as its training loop uses it)."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

# the settings' defaults: fgdd's recipe. A full-real reference cached before they existed keeps its key (full_real)
DEFAULTS = {"optimizer": "adamw", "momentum": 0.9, "lr_step": None}
STEP_GAMMA = 0.1  # torch's StepLR factor, as DD-Ranking's get_lr_scheduler leaves it


def configure(model: nn.Module, *, optimizer: str, lr: float, weight_decay: float, momentum: float, epochs: int,
              lr_step: int | None) -> dict:
    """Lightning's ``configure_optimizers`` answer, the schedule stepped once per epoch."""
    from fgdd.evaluation.student import param_groups, rded_lr_factor  # student.py imports this module

    if optimizer == "sgd":  # DD-Ranking's get_optimizer: weight decay on every parameter
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                                                     weight_decay=weight_decay)
    else:  # RDED: AdamW, no decay on biases and norm scales
        opt = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999))
    if lr_step is None:
        scheduler: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.LambdaLR(
            opt, partial(rded_lr_factor, epochs=epochs))
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=lr_step, gamma=STEP_GAMMA)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
