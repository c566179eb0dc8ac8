"""Observer scoring as RDED does it: patches normalised, zero-padded to the full input, scored by cross-entropy."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fgdd.utils.normalise import channel_stats
from fgdd.utils.precision import Resolved, autocast


def pad_to_input(patches: torch.Tensor, input_size: int) -> torch.Tensor:
    """(n, c, p, p) -> (n, c, input, input), the patch centred on zeros (zero = the mean after normalising)."""
    p = patches.shape[-1]
    if p > input_size:
        raise ValueError(f"patch size {p} exceeds input size {input_size}")
    before = (input_size - p) // 2
    after = input_size - p - before
    return F.pad(patches, (before, after, before, after), value=0.0)


@torch.inference_mode()
def score_patches(
    observer: nn.Module,
    patches: torch.Tensor,
    labels: torch.Tensor,
    *,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device,
    batch_size: int = 256,
    channels_last: bool = False,
    precision: Resolved = "fp32",  # resolved selector.precision: bf16 autocast of the observer's forward passes
) -> torch.Tensor:
    """Cross-entropy of the true class for each patch; lower = more informative. patches (n, c, p, p) in [0, 1].

    ``channels_last``: the padded batch in NHWC memory order (the observer's weights stay as they are); convolutions
    pick faster kernels for it (benchmarks/speed.py), and the scores change only by float rounding. The
    cross-entropy is computed in fp32 whatever ``precision`` the forward passes ran in."""
    observer.eval()
    mean_t, std_t = channel_stats(mean, std, device)  # (1, c, 1, 1)
    scores = []
    for start in range(0, len(patches), batch_size):
        batch = patches[start : start + batch_size].to(device)  # (b, c, p, p)
        batch = pad_to_input((batch - mean_t) / std_t, input_size)  # (b, c, input, input)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast(precision, device):
            logits = observer(batch)  # (b, classes)
        target = labels[start : start + batch_size].to(device)
        scores.append(F.cross_entropy(logits.float(), target, reduction="none").cpu())
    return torch.cat(scores) if scores else torch.empty(0)
