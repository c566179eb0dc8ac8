"""Stored soft labels (``evaluator.soft_labels=stored``): the teacher runs only during the first ``rounds`` epochs;
later epochs replay those epochs' batches with the soft labels kept from them, as FKD (Shen & Xing, ECCV 2022)
stores a label per pre-generated augmentation.

What it changes relative to RDED (whose teacher labels every augmented CutMix batch online):
- epoch e trains on exactly the batches of epoch e % rounds (same order, tile shuffle, crop, flip and CutMix), so a
  run sees ``rounds`` distinct augmentations of each image instead of ``epochs``; rounds = epochs keeps every
  augmentation but then saves no teacher forward.
- each label is the teacher's softmax at the training temperature, truncated to its ``topk`` classes in fp16; the
  remaining probability mass is spread evenly over the other classes (FKD's rule). With topk >= the number of
  classes only fp16 rounding remains.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from fgdd.errors import FgddError


class SoftLabelStore:
    def __init__(self, rounds: int, topk: int, temperature: float) -> None:
        self.rounds = rounds
        self.topk = topk
        self.temperature = temperature
        # (round, batch index) -> labels (n,), CutMix perm (n,), CutMix box (4,), top-k probabilities (n, k) fp16,
        # their classes (n, k)
        self.entries: dict[tuple[int, int], tuple[Tensor, Tensor, Tensor, Tensor, Tensor]] = {}
        self.num_classes = 0  # set by the first record

    def recording(self, epoch: int) -> bool:
        return epoch < self.rounds

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for entry in self.entries.values() for t in entry)

    def record(
        self, epoch: int, batch_idx: int, labels: Tensor, perm: Tensor, box: tuple[int, int, int, int],
        teacher_logits: Tensor,
    ) -> Tensor:
        """Keeps one batch's labels; returns the targets (n, k) exactly as a replay will give them."""
        num_classes = self.num_classes = teacher_logits.shape[1]
        probs = F.softmax(teacher_logits.float() / self.temperature, dim=1)  # (n, classes)
        values, classes = probs.topk(min(self.topk, num_classes), dim=1)  # (n, k) each, largest first
        small = torch.int16 if num_classes <= torch.iinfo(torch.int16).max else torch.int32
        index = torch.int16 if len(labels) <= torch.iinfo(torch.int16).max else torch.int32
        self.entries[(epoch, batch_idx)] = (
            labels.to(small), perm.to(labels.device, index), torch.tensor(box, dtype=torch.int32),
            values.half(), classes.to(small),
        )
        return self._targets(values.half(), classes, num_classes)

    def replay(self, epoch: int, batch_idx: int, labels: Tensor) -> tuple[Tensor, tuple[int, int, int, int], Tensor]:
        """(CutMix perm, CutMix box, targets (n, classes)) of the batch this one repeats."""
        key = (epoch % self.rounds, batch_idx)
        if key not in self.entries:
            raise FgddError(f"no stored soft labels for round {key[0]}, batch {key[1]} (epoch {epoch})")
        stored_labels, perm, box, values, classes = self.entries[key]
        if not torch.equal(stored_labels.long(), labels.long()):
            raise FgddError(
                f"epoch {epoch} batch {batch_idx} is not the batch stored for round {key[0]}: the loader did not "
                "replay its order (a distributed sampler reshuffles per epoch; stored soft labels need one device)"
            )
        return perm.long(), tuple(int(v) for v in box), self._targets(values, classes, self.num_classes)

    @staticmethod
    def _targets(values: Tensor, classes: Tensor, num_classes: int) -> Tensor:
        # top-k probabilities back to a distribution over all classes: the rest of the mass spread evenly
        values = values.float()  # (n, k)
        rest = num_classes - values.shape[1]
        fill = (1.0 - values.sum(1, keepdim=True)).clamp(min=0.0) / rest if rest else values.new_zeros(len(values), 1)
        targets = fill.expand(len(values), num_classes).clone()  # (n, classes)
        return targets.scatter_(1, classes.long(), values)
