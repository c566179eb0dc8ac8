"""RDED's student loop as a plain PyTorch reference, and the benchmark that races fgdd's student stage against it.

The reference does what RDED's validation code does (LINs-lab/RDED, "relabel + eval"), written here from the
protocol in notes/method.md, not copied: the distilled images decoded once and kept in memory as PIL images;
per-sample torchvision transforms (ToTensor, tile shuffle, RandomResizedCrop(input, scale=(1/factor, 1)),
horizontal flip, Normalize) in 4 DataLoader workers that are started again every epoch (no persistent workers);
CutMix on every batch (lambda ~ Beta(1, 1)); an extra no-grad student forward in train mode before the teacher
labels the batch; the teacher's soft labels on every CutMix batch; KL(student/T || teacher/T) at T = 20 with no T^2;
AdamW (no decay on biases and norms) with the quarter-cosine LR per epoch; fp32; a validation pass (images decoded
from the split each time, 4 workers) every 10 epochs of the last 20 %.

Benchmark (one process, the variants interleaved: reference, fgdd, reference, fgdd, ...; medians of --repeats):
  training images/s of each loop on the same distilled set and teacher (every epoch timed start to start, the first
  epoch of a run and the one that validates left out), their ratio, the levers of fgdd's loop one by one, a
  validation pass of each, and the raw training-step limit (student forward + backward + teacher forward on
  synthetic tensors at the same batch: fp32 / channels_last / bf16 / bf16 + channels_last).

Usage:
  PYTHONPATH=src python benchmarks/reference_loop.py [--case 32 64] [--repeats 5] [--epochs 6] [--threads 1]
      [--distilled32 DIR] [--teacher32 PTH] [--val32 DIR] [--distilled64 DIR] [--teacher64 PTH] [--val64 DIR]
      [--json FILE] [--quick]
  --case 32: ConvNet-3, 32 px, factor 1, IPC 10 x 10 classes, batch 50 (CIFAR-10); --case 64: ConvNet-4, 64 px,
  factor 2 (the ImageNette-64 stand-in), same IPC and batch. Without --distilled/--teacher/--val the images are
  synthetic and the networks random (speed does not depend on either).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import logging
import os
import platform
import shlex
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("FGDD_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from speed import noise_images, raw_rate  # noqa: E402  (benchmarks/speed.py: synthetic photos, the raw-step timer)
from torch import Tensor, nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision import transforms as T  # noqa: E402

from fgdd.data.base import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from fgdd.data.spec import DatasetSpec  # noqa: E402
from fgdd.data.transforms import eval_transform  # noqa: E402
from fgdd.evaluation import InMemoryTrainingSet, SoftLabelEvaluator  # noqa: E402
from fgdd.evaluation.eval_images import EvalImages, decode_eval_images  # noqa: E402
from fgdd.evaluation.student import native_bf16, param_groups, rded_lr_factor  # noqa: E402
from fgdd.models.convnet import ConvNet  # noqa: E402

MEAN, STD = tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)
TEMPERATURE = 20.0
# (input px, ConvNet depth, factor, ipc, classes, batch); 128: RDED's ImageNette/ImageWoof protocol (for GPUs)
CASES = {32: (32, 3, 1, 10, 10, 50), 64: (64, 4, 2, 10, 10, 50), 128: (128, 5, 2, 10, 10, 50)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------------------------
# the reference loop


class StripShuffle:
    """RDED's tile shuffle on a (c, h, w) tensor: the factor column strips in a random order, then the row strips."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, image: Tensor) -> Tensor:
        if self.factor == 1:
            return image
        _, h, w = image.shape
        for axis, size in ((2, w), (1, h)):
            step = size // self.factor
            bounds = [(k * step, (k + 1) * step if k < self.factor - 1 else size) for k in range(self.factor)]
            pieces = [image.narrow(axis, a, b - a) for a, b in bounds]
            image = torch.cat([pieces[k] for k in torch.randperm(self.factor).tolist()], dim=axis)
        return image


class InMemoryImages(Dataset):
    def __init__(self, images: list[Image.Image], labels: list[int], transform: Callable) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.transform(self.images[i]), self.labels[i]


def cutmix_batch(images: Tensor) -> Tensor:
    # one box for the whole batch, pasted from a shuffled copy; side sqrt(1 - lambda), lambda ~ Beta(1, 1)
    n, _, h, w = images.shape
    lam = np.random.beta(1.0, 1.0)
    cut = np.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = np.random.randint(h), np.random.randint(w)
    y1, y2 = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h)
    x1, x2 = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)
    mixed = images.clone()
    mixed[:, :, y1:y2, x1:x2] = images[torch.randperm(n)][:, :, y1:y2, x1:x2]
    return mixed


class ReferenceLoop:
    """What RDED's relabel + eval runs for one student; ``epoch_starts`` records the wall clock at each epoch start."""

    def __init__(self, images: list[Image.Image], labels: list[int], val: Any, student: nn.Module,
                 teacher: nn.Module, *, input_size: int, factor: int, batch_size: int, epochs: int,
                 lr: float = 1e-3, workers: int = 4, device: torch.device = torch.device("cpu")) -> None:
        self.device = device
        train_transform = T.Compose([
            T.ToTensor(), StripShuffle(factor), T.RandomResizedCrop(input_size, scale=(1.0 / factor, 1.0)),
            T.RandomHorizontalFlip(), T.Normalize(MEAN, STD),
        ])
        # persistent_workers=False (the default): every epoch's iteration starts its workers again
        self.loader = DataLoader(InMemoryImages(images, labels, train_transform), batch_size=batch_size, shuffle=True,
                                 num_workers=workers)
        self.val_loader = DataLoader(val.with_transform(eval_transform(input_size, MEAN, STD)), batch_size=256,
                                     num_workers=workers)
        self.student, self.teacher = student.to(device), teacher.to(device).eval()
        self.epochs = epochs
        self.optimizer = torch.optim.AdamW(param_groups(student, 0.01), lr=lr, betas=(0.9, 0.999))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda e: rded_lr_factor(e, epochs))
        self.epoch_starts: list[float] = []
        self.val_top1: list[float] = []

    def train_epoch(self) -> None:
        self.student.train()
        for images, _ in self.loader:
            images = cutmix_batch(images.to(self.device, non_blocking=True))
            with torch.no_grad():
                self.student(images)  # RDED's extra forward: batch-norm statistics move twice per step
                soft = self.teacher(images)
            out = self.student(images)
            loss = F.kl_div(F.log_softmax(out / TEMPERATURE, dim=1), F.softmax(soft / TEMPERATURE, dim=1),
                            reduction="batchmean")
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.scheduler.step()

    @torch.no_grad()
    def validate(self) -> float:
        self.student.eval()
        correct = total = 0
        for images, labels in self.val_loader:
            correct += int((self.student(images.to(self.device)).argmax(1).cpu() == labels).sum())
            total += len(labels)
        return correct / total

    def run(self) -> None:
        for epoch in range(self.epochs):
            sync(self.device)
            self.epoch_starts.append(time.perf_counter())
            self.train_epoch()
            if (epoch + 1) % 10 == 0 and epoch > 0.8 * self.epochs or epoch == self.epochs - 1:
                self.val_top1.append(self.validate())
        sync(self.device)
        self.epoch_starts.append(time.perf_counter())


# ----------------------------------------------------------------------------------------------------------------
# inputs


class PILSplit(Dataset):
    """An ImageSplit stand-in over PIL images in memory (with_transform, targets, root)."""

    def __init__(self, images: list[Image.Image], labels: list[int], transform: Callable | None = None) -> None:
        self.images, self.targets, self.transform = images, labels, transform
        self.root = Path("/memory")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        image = self.images[i]
        return (self.transform(image) if self.transform else image), self.targets[i]

    def with_transform(self, transform: Callable | None) -> PILSplit:
        return PILSplit(self.images, self.targets, transform)


def load_case(size: int, depth: int, ipc: int, classes: int, distilled: str | None, teacher: str | None,
              val: str | None, val_count: int) -> tuple[list[Image.Image], list[int], Any, nn.Module]:
    """(distilled PIL images, labels, val split, teacher in eval mode)."""
    if distilled:
        from fgdd.selection import DistilledSet

        folder = DistilledSet(Path(distilled))
        items = [folder[i] for i in range(len(folder))]
        images, labels = [im for im, _ in items], [int(y) for _, y in items]
    else:
        images = noise_images(ipc * classes, (size, size), seed=2)
        labels = [k for k in range(classes) for _ in range(ipc)]
    if val:
        from fgdd.data import ImageFolderDataset

        root = Path(val)
        names = sorted(p.name for p in root.iterdir() if p.is_dir())
        dataset = ImageFolderDataset(root=str(root.parent), subdir=".", classes=names, input_size=size, factor=1,
                                     train_dir=root.name, val_dir=root.name, name="val")
        split = dataset.val()
    else:
        split = PILSplit(noise_images(val_count, (size, size), seed=4), [i % classes for i in range(val_count)])
    if teacher:
        from fgdd.models.checkpoint import build_model, load_checkpoint, load_state_dict_strict

        state, meta = load_checkpoint(teacher)
        arch = meta.arch if meta is not None else {"_target_": "fgdd.models.convnet.ConvNet", "depth": depth}
        net = build_model(arch, num_classes=classes, input_size=size)
        load_state_dict_strict(net, state, teacher, arch)
    else:
        torch.manual_seed(5)
        net = ConvNet(classes, size, depth)
    return images, labels, split, net.eval()


# ----------------------------------------------------------------------------------------------------------------
# measurements


def median_rate(images_per_epoch: int, epoch_seconds: Sequence[float]) -> float:
    return images_per_epoch / statistics.median(epoch_seconds)


def steady_epochs(starts: Sequence[float]) -> list[float]:
    # start-to-start times of every epoch but the first (warm-up) and the last (it validates)
    times = [b - a for a, b in zip(starts, starts[1:])]
    return times[1:-1]


class EpochStarts:
    """Lightning callback: the wall clock at each training epoch's start (and at the end of fit)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.starts: list[float] = []

    def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
        sync(self.device)
        self.starts.append(time.perf_counter())

    def on_fit_end(self, trainer: Any, module: Any) -> None:
        sync(self.device)
        self.starts.append(time.perf_counter())


def fgdd_run(items: list[tuple[Image.Image, int]], val: Any, teacher: nn.Module, *, size: int, depth: int,
             factor: int, ipc: int, classes: int, batch: int, epochs: int, device: torch.device,
             **options: Any) -> list[float]:
    import lightning as L

    class Timer(EpochStarts, L.Callback):
        pass

    timer = Timer(device)
    teacher = teacher.to(device)
    accelerator = {"accelerator": "gpu", "devices": [device.index or 0]} if device.type == "cuda" else \
        {"accelerator": "cpu", "devices": 1}
    torch.manual_seed(6)
    student = ConvNet(classes, size, depth)
    evaluator = SoftLabelEvaluator(epochs=epochs, batch_size=batch, **options)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        names = tuple(str(label) for label in range(classes))
        spec = DatasetSpec(name="bench", classes=names, class_names=names, input_size=size, mean=MEAN, std=STD,
                           factor=factor)
        evaluator.evaluate(InMemoryTrainingSet(items, ipc=ipc, factor=factor), val, student, teacher, lr=1e-3,
                           spec=spec, seed=0,
                           trainer_kwargs={**accelerator, "enable_progress_bar": False,
                                           "deterministic": device.type == "cpu", "callbacks": [timer]})
    return steady_epochs(timer.starts)


def reference_run(images: list[Image.Image], labels: list[int], val: Any, teacher: nn.Module, *, size: int,
                  depth: int, factor: int, batch: int, epochs: int, classes: int, device: torch.device) -> list[float]:
    torch.manual_seed(6)
    loop = ReferenceLoop(images, labels, val, ConvNet(classes, size, depth), teacher, input_size=size, factor=factor,
                         batch_size=batch, epochs=epochs, device=device)
    loop.run()
    return steady_epochs(loop.epoch_starts)


def raw_step_rates(size: int, depth: int, classes: int, batch: int, repeats: int,
                   device: torch.device) -> dict[str, float]:
    """Images/s of one training step on synthetic tensors: student forward + backward + AdamW, teacher forward."""
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size, device=device)
    rates = {}
    for name, channels_last, bf16 in (("fp32", False, False), ("channels_last", True, False), ("bf16", False, True),
                                      ("bf16 + channels_last", True, True)):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        student = ConvNet(classes, size, depth).to(device, memory_format=fmt)
        teacher = ConvNet(classes, size, depth).eval().to(device, memory_format=fmt)
        optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
        batch_in = x.contiguous(memory_format=fmt)

        def step() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                with torch.no_grad():
                    soft = teacher(batch_in)
                out = student(batch_in)
            loss = F.kl_div(F.log_softmax(out.float() / TEMPERATURE, 1), F.softmax(soft.float() / TEMPERATURE, 1),
                            reduction="batchmean")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        rates[name] = raw_rate(step, batch, repeats, device)[0]
    return rates


def validation_rates(val: Any, size: int, depth: int, classes: int, repeats: int,
                     device: torch.device) -> dict[str, float]:
    """Images/s of one validation pass: the reference (decode + transform per image in 4 workers, fp32) against
    fgdd's (the decoded tensor, normalised per batch, channels_last, bf16 where native), plus the one decode."""
    from fgdd.utils.normalise import normalise

    torch.manual_seed(6)
    student = ConvNet(classes, size, depth).eval().to(device)
    reference_loader = DataLoader(val.with_transform(eval_transform(size, MEAN, STD)), batch_size=256, num_workers=4)
    bf16 = native_bf16(device)
    fast = ConvNet(classes, size, depth).eval().to(device, memory_format=torch.channels_last)
    times: dict[str, list[float]] = {"reference": [], "fgdd": [], "decode once": []}
    decoded: EvalImages | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            for images, _ in reference_loader:
                student(images.to(device))
        sync(device)
        times["reference"].append(time.perf_counter() - start)
        start = time.perf_counter()
        decoded = decode_eval_images(val, size)
        times["decode once"].append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            for pixels, _ in decoded.batches(256):
                fast(normalise(pixels.to(device), MEAN, STD).contiguous(memory_format=torch.channels_last))
        sync(device)
        times["fgdd"].append(time.perf_counter() - start)
    return {name: len(val) / statistics.median(t) for name, t in times.items()}


def bench_case(key: int, args: argparse.Namespace, out: dict[str, Any]) -> None:
    size, depth, factor, ipc, classes, batch = CASES[key]
    images, labels, val, teacher = load_case(size, depth, ipc, classes, getattr(args, f"distilled{key}"),
                                             getattr(args, f"teacher{key}"), getattr(args, f"val{key}"),
                                             256 if args.quick else 1000)
    items = list(zip(images, labels))
    tiny_val = decode_eval_images(PILSplit(images[:classes], labels[:classes]), size)  # fgdd's last-epoch val: tiny
    n = len(images)
    device = torch.device(args.device)
    common = dict(size=size, depth=depth, factor=factor, batch=batch, epochs=args.epochs, device=device)
    variants: dict[str, Callable[[], list[float]]] = {
        "reference (RDED's loop)": lambda: reference_run(images, labels, tiny_val_split(images, labels, classes),
                                                         teacher, classes=classes, **common),
        "fgdd default": lambda: fgdd_run(items, tiny_val, teacher, ipc=ipc, classes=classes, **common),
    }
    if not args.quick and device.type == "cuda":
        levers: dict[str, dict[str, Any]] = {"fgdd, precision=fp32": dict(precision="fp32")}
        if size == 128:  # compiling costs about a minute per mode: measured where the GPU target is (ConvNet-5)
            levers["fgdd, compile=default"] = dict(compile="default")
            levers["fgdd, compile=reduce-overhead (CUDA graphs)"] = dict(compile="reduce-overhead")
        for name, options in levers.items():
            variants[name] = lambda options=options: fgdd_run(items, tiny_val, teacher, ipc=ipc, classes=classes,
                                                              **common, **options)
    elif not args.quick:
        levers = {
            "fgdd, precision=fp32": dict(precision="fp32"),
            "fgdd, precision=fp32, channels_last=false": dict(precision="fp32", channels_last=False),
            "fgdd, pipeline=loader (0 workers), fp32, channels_last=false": dict(
                pipeline="loader", num_workers=0, precision="fp32", channels_last=False),
            "fgdd, extra_student_forward=true": dict(extra_student_forward=True),
        }
        for name, options in levers.items():
            variants[name] = lambda options=options: fgdd_run(items, tiny_val, teacher, ipc=ipc, classes=classes,
                                                              **common, **options)
    times: dict[str, list[float]] = {name: [] for name in variants}
    per_repeat: dict[str, list[float]] = {name: [] for name in variants}  # each repeat's median rate
    raw: list[dict[str, float]] = []  # the limit, measured in every repeat beside the loops (same load)
    required = {"reference (RDED's loop)", "fgdd default"}
    failed: dict[str, str] = {}
    for r in range(args.repeats):
        for name, fn in variants.items():
            if name in failed:
                continue
            try:
                epochs = fn()
            except Exception as error:  # a lever that fails here (e.g. compile on an unusual setup) is reported,
                if name in required:   # and the comparison itself goes on
                    raise
                failed[name] = f"{type(error).__name__}: {error}"[:300]
                print(f"  [{key} px] {name} failed: {failed[name]}", flush=True)
                continue
            times[name] += epochs
            per_repeat[name].append(median_rate(n, epochs))
            print(f"  [{key} px] repeat {r + 1}/{args.repeats} {name}: {per_repeat[name][-1]:.1f} images/s", flush=True)
        raw.append(raw_step_rates(size, depth, classes, batch, 1 if args.quick else 5, device))
        print(f"  [{key} px] repeat {r + 1}/{args.repeats} raw step: "
              + ", ".join(f"{k} {v:.1f}" for k, v in raw[-1].items()), flush=True)
    for name in failed:
        del variants[name], times[name], per_repeat[name]
    rates = {name: median_rate(n, t) for name, t in times.items()}
    # the ratio within each repeat (the variants ran back to back, under the same load), then its median: robust to
    # the load of a shared machine drifting between repeats
    reference_name = "reference (RDED's loop)"
    ratios = {name: statistics.median(a / b for a, b in zip(per_repeat[name], per_repeat[reference_name]))
              for name in variants}
    label = f"ConvNet-{depth}, {size} px, factor {factor}, IPC {ipc} x {classes} classes, batch {batch}"
    out["cases"].append({
        "case": label, "images_per_epoch": n,
        "loops": {name: {"images_per_s": rate, "ratio": ratios[name], "per_repeat_images_per_s": per_repeat[name],
                         "epoch_seconds": times[name]} for name, rate in rates.items()},
        "failed": failed,
        "raw_step": {k: statistics.median(r[k] for r in raw) for k in raw[0]},
        "raw_step_per_repeat": raw,
        "validation": validation_rates(val, size, depth, classes, 1 if args.quick else min(args.repeats, 3), device),
        "val_images": len(val),
    })


def tiny_val_split(images: list[Image.Image], labels: list[int], classes: int) -> PILSplit:
    # the reference's last epoch validates; it is left out of the timing, so a few images keep it short
    return PILSplit(images[:classes], labels[:classes])


def markdown(out: dict[str, Any]) -> str:
    lines = [out["header"], ""]
    for case in out["cases"]:
        lines += [f"**{case['case']}** ({case['images_per_epoch']} images an epoch)", "",
                  "| loop | training images/s (median of timed epochs) | vs reference (median of per-repeat ratios) |",
                  "|---|---|---|"]
        for name, row in case["loops"].items():
            lines.append(f"| {name} | {row['images_per_s']:.1f} | {row['ratio']:.2f}x |")
        for name, error in case.get("failed", {}).items():
            lines.append(f"| {name} | failed: {error} | - |")
        raw = case["raw_step"]
        lines.append("| limit: one training step on synthetic tensors (student fwd + bwd + AdamW, teacher fwd): "
                     + ", ".join(f"{k} {v:.0f}" for k, v in raw.items()) + " | - | - |")
        val = case["validation"]
        lines += ["", f"validation pass over {case['val_images']} images: reference {val['reference']:.0f} images/s, "
                      f"fgdd {val['fgdd']:.0f} images/s ({val['fgdd'] / val['reference']:.1f}x), the one decode per "
                      f"run {val['decode once']:.0f} images/s", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", type=int, nargs="*", choices=sorted(CASES), default=[32, 64])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per timed run (the first and last not timed)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    for key in CASES:
        parser.add_argument(f"--distilled{key}", default=None, help="a distilled set folder (fgdd's layout)")
        parser.add_argument(f"--teacher{key}", default=None, help="a teacher checkpoint")
        parser.add_argument(f"--val{key}", default=None, help="a val split folder (<class>/<images>)")
    parser.add_argument("--quick", action="store_true", help="one repeat, no levers, tiny val: a smoke test")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.epochs = 1, 3
    if args.epochs < 3:
        parser.error("--epochs must be >= 3 (the first and the last epoch are not timed)")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device here")
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    # RDED's 4 workers on a machine with fewer cores: torch warns at every epoch's start; the count is the protocol's
    warnings.filterwarnings("ignore", message=".*worker processes in total.*")
    started = time.perf_counter()
    out: dict[str, Any] = {"cases": []}
    for key in args.case:
        bench_case(key, args, out)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    out["header"] = (f"benchmarks/reference_loop.py {shlex.join(sys.argv[1:] if argv is None else argv)} | "
                     f"{datetime.date.today()} | {platform.node()} | {where}, "
                     f"{args.threads} torch thread(s), native bf16: {native_bf16(device)} | "
                     f"torch {torch.__version__} | repeats {args.repeats} x {args.epochs - 2} timed epochs | "
                     f"{time.perf_counter() - started:.0f} s")
    print("\n" + markdown(out))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
