"""Speed of RDED's 128 px regime (ConvNet-5, factor 2) against the limit: the teacher's epoch through fgdd's batched
pipeline and the student's epoch through fgdd's evaluator, each beside the raw training step of the same network,
batch and precision, measured in this one process with the variants interleaved (raw, loop, raw, loop, ...).

- teacher: ConvNet-5 at 128 px, RandomResizedCrop(0.08, 1) + flip cut from 144 px stored squares (the batched
  pipeline of teacher.recipe.augment=random_resized_crop), SGD nesterov, CE with label smoothing, channels_last,
  batch 64 (the recipe's 256 on a GPU). Raw step: forward + backward + SGD on a synthetic batch already on the device.
- student: SoftLabelEvaluator's default loop (batched, channels_last) at IPC 10 x 10 classes, batch 50, factor 2;
  raw step: student forward + backward + AdamW and the teacher's forward, on a synthetic batch.
Epoch rates are medians of steady epochs (the first, warm-up, and for the student the last, which validates, left
out); raw rates are medians of --steps timed steps after 3 warm-up steps. Every precision in --precisions is
measured (default: fp32, and bf16 where the device computes it natively). Synthetic images and random networks:
speed does not depend on either.

Usage: PYTHONPATH=src python benchmarks/regime_speed.py [--repeats 3] [--teacher-images 384] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import shlex
import statistics
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import lightning as L  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from speed import EpochTimer, bench_spec, interleaved, noise_images, raw_rate, split_of  # noqa: E402
from torchvision.transforms import functional as TF  # noqa: E402

from fgdd.evaluation import InMemoryTrainingSet, SoftLabelEvaluator  # noqa: E402
from fgdd.evaluation.augment import BatchAugment  # noqa: E402
from fgdd.evaluation.student import soft_label_kl  # noqa: E402
from fgdd.models.convnet import ConvNet  # noqa: E402
from fgdd.training.batches import BatchedEpochs, DeviceBatches, EpochDraws  # noqa: E402
from fgdd.training.classifier import ClassifierModule  # noqa: E402
from fgdd.training.train_images import storage_size  # noqa: E402
from fgdd.utils.precision import autocast, native_bf16  # noqa: E402
from fgdd.utils.seeding import TEACHER_EPOCH  # noqa: E402

SIZE, DEPTH, CLASSES, FACTOR = 128, 5, 10, 2
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Timer(EpochTimer, L.Callback):
    pass


def convnet(seed: int) -> ConvNet:
    torch.manual_seed(seed)
    return ConvNet(CLASSES, SIZE, DEPTH)


def teacher_raw(device: torch.device, precision: str, batch: int, steps: int) -> Callable[[], list[float]]:
    model = convnet(0).to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    images = torch.randn(batch, 3, SIZE, SIZE, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, CLASSES, (batch,), device=device)

    def step() -> None:
        with autocast(precision, device):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return lambda: raw_rate(step, batch, steps, device)


def teacher_loop(device: torch.device, precision: str, batch: int, images: int, epochs: int
                 ) -> Callable[[], list[float]]:
    stored = storage_size(SIZE, "random_resized_crop")
    photos = noise_images(images, (stored, stored), seed=1)
    pixels = torch.stack([TF.pil_to_tensor(photo) for photo in photos])  # (N, 3, 144, 144) uint8
    labels = torch.arange(images) % CLASSES
    augment = BatchAugment(SIZE, 1, MEAN, STD, scale=(0.08, 1.0))

    def run() -> list[float]:
        epochs_plan = BatchedEpochs(labels, stored, stored, augment, batch, seed=0, stream=TEACHER_EPOCH)
        module = ClassifierModule(convnet(0), device_batches=DeviceBatches(pixels, augment), precision=precision)
        timer = Timer(device)
        trainer = L.Trainer(max_epochs=epochs, callbacks=[EpochDraws(epochs_plan), timer], logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            limit_val_batches=0, accelerator="gpu" if device.type == "cuda" else "cpu", devices=1)
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            trainer.fit(module, epochs_plan)
        return [images / t for t in timer.times[1:]]  # the first epoch warms up

    return run


def student_raw(device: torch.device, precision: str, batch: int, steps: int) -> Callable[[], list[float]]:
    student = convnet(6).to(device, memory_format=torch.channels_last).train()
    teacher = convnet(5).to(device).eval()
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
    images = torch.randn(batch, 3, SIZE, SIZE, device=device).contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with autocast(precision, device):
            with torch.no_grad():
                soft = teacher(images)
            logits = student(images)
        loss = soft_label_kl(logits, soft, 20.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return lambda: raw_rate(step, batch, steps, device)


def student_loop(device: torch.device, precision: str, batch: int, ipc: int, epochs: int
                 ) -> Callable[[], list[float]]:
    n = ipc * CLASSES
    photos = noise_images(n, (SIZE, SIZE), seed=2)
    items = [(photo, k % CLASSES) for k, photo in enumerate(photos)]
    val = split_of(2, CLASSES, (SIZE, SIZE), seed=4)
    teacher = convnet(5).to(device).eval()
    accelerator = {"accelerator": "gpu", "devices": 1} if device.type == "cuda" else {"accelerator": "cpu", "devices": 1}

    def run() -> list[float]:
        timer = Timer(device)
        evaluator = SoftLabelEvaluator(epochs=epochs, batch_size=batch, precision=precision)
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            evaluator.evaluate(InMemoryTrainingSet(items, ipc=ipc, factor=FACTOR), val,
                               convnet(6), teacher, lr=1e-3, spec=bench_spec(CLASSES, SIZE, FACTOR), seed=0,
                               trainer_kwargs={**accelerator, "enable_progress_bar": False, "callbacks": [timer]})
        return [n / t for t in timer.times[1:-1]]  # the first epoch warms up, the last one validates

    return run


def cpu_description() -> dict[str, Any]:
    model = platform.processor()
    with contextlib.suppress(OSError):
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    return {"cpu": model, "capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "native_bf16": native_bf16(torch.device("cpu"))}


def markdown(out: dict[str, Any]) -> str:
    lines = ["| loop | precision | loop images/s | raw step images/s | loop / raw |", "|---|---|---|---|---|"]
    for row in out["rows"]:
        lines.append(f"| {row['loop']} | {row['precision']} | {row['loop_rate']:.2f} | {row['raw_rate']:.2f} | "
                     f"{100 * row['loop_rate'] / row['raw_rate']:.0f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", nargs="*", default=None, choices=["fp32", "bf16"])
    parser.add_argument("--teacher-images", type=int, default=384)
    parser.add_argument("--teacher-batch", type=int, default=64)
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--student-epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="timed raw steps per repeat")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    precisions = args.precisions or (["fp32", "bf16"] if native_bf16(device) else ["fp32"])
    out: dict[str, Any] = {"date": datetime.date.today().isoformat(), "command": shlex.join(sys.argv),
                           "torch": torch.__version__, **cpu_description(), "rows": []}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}), flush=True)
    for precision in precisions:
        for loop, raw, live in (
            ("teacher epoch (batched pipeline, ConvNet-5 128 px, batch 64)",
             teacher_raw(device, precision, args.teacher_batch, args.steps),
             teacher_loop(device, precision, args.teacher_batch, args.teacher_images, args.teacher_epochs)),
            ("student epoch (evaluator default, ConvNet-5 128 px, factor 2, IPC 10, batch 50)",
             student_raw(device, precision, 50, args.steps),
             student_loop(device, precision, 50, 10, args.student_epochs)),
        ):
            times = interleaved({"raw": raw, "loop": live}, args.repeats)
            row = {"loop": loop, "precision": precision, "raw_rate": statistics.median(times["raw"]),
                   "loop_rate": statistics.median(times["loop"]), "raw_rates": times["raw"],
                   "loop_rates": times["loop"]}
            out["rows"].append(row)
            print(f"{loop}, {precision}: loop {row['loop_rate']:.2f} images/s, raw {row['raw_rate']:.2f} "
                  f"({100 * row['loop_rate'] / row['raw_rate']:.0f} %)", flush=True)
    print(markdown(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
