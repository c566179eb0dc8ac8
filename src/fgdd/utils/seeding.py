"""Seeds derived from the run seed, one per stage, so stages stay reproducible independently of each other.

The seeding story of a run: every draw fgdd makes itself takes an explicit ``torch.Generator`` from ``generator``
(images per class, candidate crops, the student's augmentation, CutMix, loader order). The global RNGs are reseeded
once per stage that runs code drawing from them (Lightning training: the teacher's transforms, the student's
dropout), at that stage's start (fgdd.teacher ``teacher/init``, fgdd.evaluation.evaluator ``student-init``). Module
constructors take no generator, so a model's initial weights are drawn under ``seeded``, which leaves the global
stream untouched."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

# The stream names: the second part of every derive_seed/generator key, one per stage that draws. Their values are
# part of every draw (renaming one changes the distilled set, the student's augmentation, ...): never edit a value.
SELECT_IMAGES = "mipc"  # + class index: the images per class a selector may look at
CROPS = "crops"  # + image path: candidate crop boxes of one image
TEACHER = "teacher"  # + "init" (the global reseed), + "loader" (loader order); alone: the batched epochs' seed
TEACHER_EPOCH = "teacher-epoch"  # + epoch: the batched teacher pipeline's order and augmentation
STUDENT = "student"  # the student's initial weights (under ``seeded``)
STUDENT_INIT = "student-init"  # the student stage's one reseed of the global RNGs
STUDENT_DATA = "student-data"  # the student's epochs: order and per-sample augmentation seeds
STUDENT_EPOCH = "student-epoch"  # + epoch (or round): one epoch's order and augmentation
STUDENT_WORKERS = "student-workers"  # the loader workers' RNGs
STUDENT_CUTMIX = "student-cutmix"  # + rank: CutMix boxes
HOLDOUT = "lr-search-holdout"  # + class index: the training holdout evaluator=holdout chooses settings on
SHAPES = "shapes"  # + split, kind: the generated shapes dataset
FOREGROUND_SAMPLES = "foreground-samples"  # + class: the images a foreground figure shows


def derive_seed(seed: int, *names: object) -> int:
    """A 63-bit seed from the run seed and a stage name (e.g. ``derive_seed(0, SELECT_IMAGES, class_index)``)."""
    key = ":".join([str(seed), *map(str, names)]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


def generator(seed: int, *names: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *names))


def seed_everything(seed: int) -> None:
    # Not Lightning's seed_everything, which refuses seeds above 2**32 - 1 (numpy's range; fgdd's stage seeds are
    # 63-bit, derive_seed: measured, lightning 2.6 raises ValueError). With the seed folded into that range it would
    # seed Python's random (measured: another stream) and CUDA's Philox generators (keyed by all 64 bits) with
    # another value than fgdd always has, so a GPU student or teacher with dropout would train differently; and it
    # sets PL_GLOBAL_SEED, on which Lightning's DDP strategies reseed every rank at setup.
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside, torch's CPU RNG is seeded with ``seed`` (the stream ``torch.manual_seed(seed)`` gives); after, it is
    where it was: for CPU draws that accept no generator, such as building a model."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield
