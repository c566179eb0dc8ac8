"""Speed of every stage, in images per second and seconds, with the speed changes measured side by side.

Usage: .venv/bin/python benchmarks/speed.py [--device cpu|cuda] [--quick] [--repeats N] [--only STAGE ...] [--json FILE]

Stages (synthetic images of the real sizes; nothing is read from disk unless --data is given):
- teacher: training steps of RDED's teachers through the real loader (teacher_train_transform, no workers):
  ConvNet-3 at 32 px, ConvNet-4 at 64 px, ConvNet-5 at 128 px (from 213 x 160 sources, ImageNette-160's shape),
  ResNet-18 at 224 px with --device cuda. Optimiser and loss as fgdd's teacher recipe (SGD nesterov, label smoothing).
- occupancy: measure_occupancy with the teacher's CAM (images per segmenter call: 16, the old default, against the
  segmenter's own batch of 256), and Grounded SAM 2 built from random weights at its real sizes: Grounding DINO
  tiny's architecture (Swin-T, BERT-base, 900 queries) on images resized by its processor (shortest edge 800) and
  SAM 2.1 hiera-tiny at 1024 px, each model timed alone and the segmenter end to end.
- select: RDEDSelector.select (JPEG decode, K = 5 crops, teacher scoring, ranking) on in-memory JPEGs.
- student: SoftLabelEvaluator seconds per training epoch (the first epoch, which starts workers, and the last one,
  which validates, are left out).

Every before/after pair is measured in this one process, interleaved (before, after, before, after, ...), and
the table gives medians over --repeats. "projected s" is the measured rate applied to the protocol's workload
(named in the row); it is arithmetic, not a measurement. Printed as Markdown; --json writes every raw time.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import io
import json
import logging
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("FGDD_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars of the stages would bury the rows; read when tqdm is imported

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from fgdd.data.base import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from fgdd.data.spec import DatasetSpec  # noqa: E402
from fgdd.data.transforms import teacher_train_transform  # noqa: E402
from fgdd.evaluation import InMemoryTrainingSet, SoftLabelEvaluator  # noqa: E402
from fgdd.foreground.base import SegmentationContext  # noqa: E402
from fgdd.foreground.cam import CAMSegmenter  # noqa: E402
from fgdd.foreground.occupancy import OccupancyStore, cache_key, measure_occupancy  # noqa: E402
from fgdd.models.convnet import ConvNet  # noqa: E402
from fgdd.selection.rded import RDEDSelector  # noqa: E402

MEAN, STD = tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)


def bench_spec(classes: int, input_size: int, factor: int = 1) -> DatasetSpec:
    names = tuple(str(label) for label in range(classes))
    return DatasetSpec(name="bench", classes=names, class_names=names, input_size=input_size, mean=MEAN, std=STD,
                       factor=factor)
IMAGENETTE = (213, 160)  # width, height of most imagenette2-160 images

# protocol workloads the projections use
TEACHER_WORK = {32: ("CIFAR-10: 50,000 images x 15 epochs", 50_000 * 15),
                64: ("Tiny-ImageNet: 100,000 images x 15 epochs", 100_000 * 15),
                128: ("ImageNette: 9,469 images x 15 epochs", 9_469 * 15),
                224: ("ImageNet-1k: 1,281,167 images x 1 epoch", 1_281_167)}
SELECT_WORK = ("10 classes x mipc 300 = 3,000 images", 3_000)
STUDENT_EPOCHS = 300


# ----------------------------------------------------------------------------------------------------------------
# helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def raw_rate(step: Callable[[], None], batch: int, steps: int, device: torch.device) -> list[float]:
    """[images/s] of a training step: the median of ``steps`` timed calls after 3 warm-up calls (oneDNN primitive
    caches, the allocator)."""
    for _ in range(3):
        step()
    times = [timed(step, device) for _ in range(steps)]
    return [batch / statistics.median(times)]


def noise_images(n: int, size: tuple[int, int], seed: int) -> list[Image.Image]:
    """Smooth random colour fields (JPEG-compressible like photos, unlike white noise), ``size`` = (w, h)."""
    g = torch.Generator().manual_seed(seed)
    w, h = size
    out = []
    for _ in range(n):
        low = torch.rand(3, max(h // 8, 2), max(w // 8, 2), generator=g)
        field = F.interpolate(low[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        field = (field * 255 + 20 * torch.randn(3, h, w, generator=g)).clamp(0, 255).byte()
        out.append(Image.fromarray(field.permute(1, 2, 0).numpy()))
    return out


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class MemorySplit(torch.utils.data.Dataset):
    """An ImageSource over JPEG bytes held in memory: load_rgb decodes, as a real split does from disk."""

    def __init__(self, images: list[Image.Image], labels: list[int], classes: list[str],
                 transform: Callable | None = None) -> None:
        self.root = Path("/memory")
        self.blobs = [jpeg(im) for im in images]
        self.targets = labels
        self.classes = classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.blobs)

    def load_rgb(self, i: int) -> Image.Image:
        return Image.open(io.BytesIO(self.blobs[i])).convert("RGB")

    def relpath(self, i: int) -> str:
        return f"{self.classes[self.targets[i]]}/{i:06d}.jpg"

    def indices_of_class(self, label: int) -> list[int]:
        return [i for i, t in enumerate(self.targets) if t == label]

    def with_transform(self, transform: Callable | None) -> MemorySplit:
        other = MemorySplit.__new__(MemorySplit)
        other.__dict__.update(self.__dict__)
        other.transform = transform
        return other

    def __getitem__(self, i: int) -> tuple[Any, int]:
        image = self.load_rgb(i)
        return (self.transform(image) if self.transform else image), self.targets[i]


def split_of(n_per_class: int, classes: int, size: tuple[int, int], seed: int = 0) -> MemorySplit:
    names = [f"c{k}" for k in range(classes)]
    labels = [k for k in range(classes) for _ in range(n_per_class)]
    return MemorySplit(noise_images(len(labels), size, seed), labels, names)


def convnet(input_size: int, depth: int, classes: int = 10, seed: int = 0) -> ConvNet:
    torch.manual_seed(seed)
    return ConvNet(classes, input_size, depth)


class Results:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.pairs: list[dict[str, Any]] = []

    def row(self, stage: str, setting: str, images: float, times: list[float], work: tuple[str, float] | None = None,
            **extra: Any) -> dict[str, Any]:
        seconds = statistics.median(times)
        rate = images / seconds if seconds > 0 else None
        row = {"stage": stage, "setting": setting, "images": images, "images_per_s": rate, "seconds": seconds,
               "times": times, **extra}
        if work is not None and rate:
            row["projected_for"], row["projected_s"] = work[0], work[1] / rate
        self.rows.append(row)
        print(f"  {stage} | {setting}: {seconds:.3f} s, {rate or 0:.3g} images/s", flush=True)
        return row

    def pair(self, change: str, workload: str, before: dict[str, Any], after: dict[str, Any], names: tuple[str, str]
             ) -> None:
        self.pairs.append({"change": change, "workload": workload, "before": names[0], "after": names[1],
                           "before_value": before["images_per_s"],
                           "after_value": after["images_per_s"], "before_s": before["seconds"],
                           "after_s": after["seconds"]})


def interleaved(variants: dict[str, Callable[[], list[float] | float]], repeats: int) -> dict[str, list[float]]:
    """Runs every variant once per repeat, in turn, so load on a shared machine hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            result = fn()
            times[name] += result if isinstance(result, list) else [result]
    return times


# ----------------------------------------------------------------------------------------------------------------
# stages


def bench_teacher(res: Results, device: torch.device, quick: bool, repeats: int) -> None:
    print("teacher training", flush=True)
    # (input px, ConvNet depth or 0 = ResNet-18, source (w, h), batch); the recipe's batch is 256, smaller on CPU
    if quick:
        cases = [(32, 3, (32, 32), 32)]
    elif device.type == "cuda":
        cases = [(32, 3, (32, 32), 256), (64, 4, (64, 64), 256), (128, 5, IMAGENETTE, 256), (224, 0, (500, 375), 256)]
    else:
        cases = [(32, 3, (32, 32), 256), (64, 4, (64, 64), 128), (128, 5, IMAGENETTE, 64)]
    for input_size, depth, source, batch in cases:
        if depth:
            model, name = convnet(input_size, depth), f"ConvNet-{depth}"
        else:
            import torchvision

            model, name = torchvision.models.resnet18(num_classes=1000), "ResNet-18"
        # CPU: one batch through a loader without workers (the recipe's default); CUDA: 4 batches through 8
        # persistent workers, as a GPU run sets teacher.recipe.num_workers (decoding would starve the GPU otherwise)
        steps, workers = (4, 8) if device.type == "cuda" else (1, 0)
        split = split_of(batch * steps, 1, source).with_transform(teacher_train_transform(input_size, MEAN, STD))
        loader = torch.utils.data.DataLoader(split, batch_size=batch, shuffle=True, num_workers=workers,
                                             persistent_workers=workers > 0, drop_last=True)
        classes = 1000 if not depth else 10

        def trainer(channels_last: bool) -> Callable[[], float]:
            net = copy.deepcopy(model).to(device).train()
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            net = net.to(memory_format=fmt)
            optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)

            def step() -> None:
                for images, labels in loader:  # decode + augment + forward + backward + step
                    images = images.to(device).contiguous(memory_format=fmt)
                    labels = labels.to(device) % classes
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                        loss = F.cross_entropy(net(images), labels, label_smoothing=0.1)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()

            step()  # warm-up (allocator, cudnn autotune)
            return lambda: timed(step, device)

        times = interleaved({"NCHW": trainer(False), "channels_last": trainer(True)}, repeats)
        rows = [res.row("teacher", f"{name} {input_size} px, batch {batch}, {workers} workers, {fmt}", batch * steps, t,
                        TEACHER_WORK[input_size]) for fmt, t in times.items()]
        res.pair("teacher training: channels_last (applied: fgdd.training.classifier)",
                 f"batch {batch}, {name} {input_size} px", rows[0], rows[1], ("NCHW", "channels_last"))


def bench_cam_occupancy(res: Results, device: torch.device, quick: bool, repeats: int) -> None:
    print("occupancy (cam)", flush=True)
    cases = [(32, 3, (32, 32), 64 if quick else 512)]
    if not quick:
        cases.append((128, 5, IMAGENETTE, 256 if device.type == "cuda" else 64))
    for input_size, depth, source, n in cases:
        model = convnet(input_size, depth).to(device).eval()
        split = split_of(n, 1, source)
        dataset = SimpleNamespace(spec=bench_spec(1, input_size))
        variants = {}
        for per_call in (16, 256):
            def run(per_call: int = per_call) -> float:
                segmenter = CAMSegmenter()
                segmenter.setup(SegmentationContext(observer=model, dataset=dataset, device=device))
                with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()):  # no bars
                    store = OccupancyStore(tmp, cache_key("bench", split.classes, "/memory", segmenter))
                    return timed(lambda: measure_occupancy(segmenter, split, list(range(n)), split.classes, store,
                                                           batch_size=per_call), device)
            variants[f"{per_call} images per call"] = run
        times = interleaved(variants, repeats)
        rows = [res.row("occupancy", f"cam, ConvNet-{depth} {input_size} px, {name}", n, t, SELECT_WORK)
                for name, t in times.items()]
        res.pair("occupancy (cam): images per segmenter call = the segmenter's forward batch",
                 f"{n} images, ConvNet-{depth} {input_size} px", rows[0], rows[1], ("16 per call", "256 per call"))


def real_size_grounded_sam2(quick: bool) -> tuple[Any, Any, Any]:
    """(detector, processor, sam) with random weights: Grounding DINO tiny's and SAM 2.1 hiera-tiny's architectures
    at their real input sizes (quick: the test suite's tiny shapes)."""
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    from fgdd.foreground.sam2_masks import build_sam2_model

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "tench", "english", "springer", "dog", "cassette",
             "player", "chain", "saw", "church", "french", "horn", "garbage", "truck", "gas", "pump", "golf", "ball",
             "parachute"]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    torch.manual_seed(0)
    if quick:  # tests/test_foreground_grounded_sam2.py's tiny models
        processor = GroundingDinoProcessor(
            image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 96, "longest_edge": 128}),
            tokenizer=tokenizer)
        config = GroundingDinoConfig(
            backbone_config=SwinConfig(image_size=64, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                                       window_size=4, out_indices=[2, 3, 4]),
            text_config=BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, max_position_embeddings=64),
            d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_n_points=2, decoder_n_points=2,
            num_queries=10, max_text_len=32)
        sam_overrides = {"model.image_size": 128, "model.image_encoder.trunk.embed_dim": 16,
                         "model.image_encoder.trunk.stages": [1, 1, 2, 1],
                         "model.image_encoder.trunk.global_att_blocks": [3],
                         "model.image_encoder.neck.backbone_channel_list": [128, 64, 32, 16]}
    else:  # grounding-dino-tiny: transformers' defaults are its architecture; the processor resizes to 800 / 1333
        processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=tokenizer)
        config = GroundingDinoConfig()
        sam_overrides = {}
    detector = GroundingDinoForObjectDetection(config).eval()
    sam = build_sam2_model("configs/sam2.1/sam2.1_hiera_t.yaml", None, sam_overrides)
    return detector, processor, sam


def bench_grounded_sam2(res: Results, device: torch.device, quick: bool, repeats: int) -> None:
    print("occupancy (grounded_sam2, random weights)", flush=True)
    import importlib.util

    if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("sam2") is None:
        print("  skipped: transformers or sam2 is not installed", flush=True)
        return
    from fgdd.foreground.grounded_sam2 import GroundedSAM2Segmenter

    detector, processor, sam = real_size_grounded_sam2(quick)
    cuda = device.type == "cuda"
    batch, n = (8, 32) if cuda else (2, 2)

    def make(batch_size: int, bf16: bool) -> Any:
        segmenter = GroundedSAM2Segmenter.from_models(detector, processor, sam, batch_size=batch_size,
                                                      box_threshold=0.0, bf16=bf16)
        segmenter.setup(SegmentationContext(observer=None, dataset=None, device=device))
        # Random scores pass any box threshold for hundreds of the 900 queries, which no real image does: the
        # detector's boxes are cut to the 2 best per image (a real image's count) before SAM 2 sees them
        boxes = segmenter._detector.boxes
        segmenter._detector.boxes = lambda imgs, caps: [b[:2] for b in boxes(imgs, caps)]
        return segmenter

    segmenter = make(batch, bf16=True)
    images = noise_images(n, IMAGENETTE, seed=3)
    w, h = IMAGENETTE
    # SAM 2 alone is prompted with two boxes per image
    boxes = [np.array([[0.1 * w, 0.1 * h, 0.6 * w, 0.7 * h], [0.4 * w, 0.3 * h, 0.9 * w, 0.9 * h]], np.float32)] * n
    arrays = [np.array(im) for im in images]
    size = "tiny test shapes" if quick else "real sizes: DINO 800 x 1066, SAM 2 1024 x 1024"
    tag = "bf16 autocast" if cuda else "fp32"

    def end_to_end(seg: Any) -> Callable[[], float]:
        return lambda: timed(lambda: seg.masks(images, labels=[0] * n, prompts=["tench"] * n,
                                               sources=[str(i) for i in range(n)]), device)

    slow_cpu = not cuda and not quick  # about 40 s per image per call: no warm-up, at most 2 repeats
    if not slow_cpu:
        end_to_end(segmenter)()  # warm-up (cudnn autotune, allocator)
    runs = min(repeats, 2) if slow_cpu else repeats
    times = interleaved({"detect": lambda: timed(lambda: segmenter._detector.boxes(images, ["tench."] * n), device),
                         "mask": lambda: timed(lambda: segmenter._masker.masks(arrays, boxes), device)}, runs)
    res.row("occupancy", f"Grounding DINO tiny (random), {size}, batch {batch}, {tag}", n, times["detect"])
    res.row("occupancy", f"SAM 2.1 hiera-t (random), 2 boxes per image, batch {batch}, {tag}", n, times["mask"])
    label = "grounded_sam2 end to end (random weights, 2 boxes per image)"
    if not cuda:
        t = interleaved({"both": end_to_end(segmenter)}, 1 if slow_cpu else repeats)["both"]
        res.row("occupancy", f"{label}, batch {batch}, {tag}", n, t, SELECT_WORK)
        return
    variants = {f"batch {batch}, bf16": end_to_end(segmenter), "batch 1, bf16": end_to_end(make(1, True)),
                f"batch {batch}, fp32": end_to_end(make(batch, False))}
    for fn in list(variants.values())[1:]:
        fn()  # warm-up
    rows = {name: res.row("occupancy", f"{label}, {name}", n, t, SELECT_WORK)
            for name, t in interleaved(variants, repeats).items()}
    res.pair("occupancy (grounded_sam2): images batched per forward", f"{n} images, real sizes",
             rows["batch 1, bf16"], rows[f"batch {batch}, bf16"], ("batch 1", f"batch {batch}"))
    res.pair("occupancy (grounded_sam2): bf16 autocast on CUDA", f"{n} images, real sizes",
             rows[f"batch {batch}, fp32"], rows[f"batch {batch}, bf16"], ("fp32", "bf16"))


def bench_select(res: Results, device: torch.device, quick: bool, repeats: int) -> None:
    print("candidate scoring + selection", flush=True)
    if quick:
        cases = [(32, 3, 1, (32, 32), 8)]
    elif device.type == "cuda":
        cases = [(32, 3, 1, (32, 32), 300), (128, 5, 2, IMAGENETTE, 300)]
    else:
        cases = [(32, 3, 1, (32, 32), 64), (128, 5, 2, IMAGENETTE, 12)]
    for input_size, depth, factor, source, per_class in cases:
        classes = 2
        split = split_of(per_class, classes, source, seed=1)
        observer = convnet(input_size, depth).to(device).eval()
        n = per_class * classes

        def run(**options: Any) -> float:
            selector = RDEDSelector(factor=factor, mipc=per_class, **options)
            return timed(lambda: selector.select(split, observer, ipc=1, seed=0, spec=bench_spec(classes, input_size),
                                                 device=device), device)

        variants = {"channels_last=false": lambda: run(channels_last=False),
                    "channels_last=true": lambda: run(channels_last=True)}
        if input_size == 32:
            variants["one image per forward (5 candidates)"] = lambda: run(batch_images=1, channels_last=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            times = interleaved(variants, repeats)
        label = f"ConvNet-{depth} {input_size} px, factor {factor}, K=5"
        rows = {name: res.row("select", f"{label}, {name}", n, t, SELECT_WORK) for name, t in times.items()}
        workload = f"{n} images, ConvNet-{depth} {input_size} px"
        res.pair("scoring: padded candidate batches in channels_last memory order", workload,
                 rows["channels_last=false"], rows["channels_last=true"], ("NCHW", "channels_last"))
        if "one image per forward (5 candidates)" in rows:
            res.pair("scoring: candidates batched across images (in the code before this change too)", workload,
                     rows["one image per forward (5 candidates)"], rows["channels_last=true"],
                     ("5 per forward (1 image)", "320 per forward (64 images)"))


class EpochTimer:
    """Lightning callback: wall time of every training epoch."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
        sync(self.device)
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
        sync(self.device)
        self.times.append(time.perf_counter() - self._start)


def bench_student(res: Results, device: torch.device, quick: bool, repeats: int) -> None:
    print("student training", flush=True)
    import lightning as L

    class Timer(EpochTimer, L.Callback):
        pass

    if quick:
        cases = [(32, 3, 1, 10, 2, 10)]  # input, depth, factor, ipc, classes, batch
    elif device.type == "cuda":
        cases = [(32, 3, 1, 10, 10, 50), (128, 5, 2, 10, 10, 50)]
    else:
        cases = [(32, 3, 1, 10, 10, 50), (128, 5, 2, 1, 10, 10)]
    epochs = 3 if quick else 5  # timed: every epoch but the first (worker start-up) and the last (validation)
    accelerator = {"accelerator": "gpu", "devices": 1, "precision": "bf16-mixed"} if device.type == "cuda" else \
        {"accelerator": "cpu", "devices": 1}
    for input_size, depth, factor, ipc, classes, batch in cases:
        distilled = split_of(ipc, classes, (input_size, input_size), seed=2)
        items = [(distilled.load_rgb(i), distilled.targets[i]) for i in range(len(distilled))]
        val = split_of(2, classes, (input_size, input_size), seed=4)
        teacher = convnet(input_size, depth, classes, seed=5).to(device).eval()
        workers = 0 if quick else 4

        stored_bytes: list[float] = []

        def run(**options: Any) -> list[float]:
            timer = Timer(device)
            evaluator = SoftLabelEvaluator(epochs=epochs, batch_size=batch, **options)
            with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                result = evaluator.evaluate(
                    InMemoryTrainingSet(items, ipc=ipc, factor=factor), val, convnet(input_size, depth, classes, seed=6),
                    teacher, lr=1e-3, spec=bench_spec(classes, input_size, factor), seed=0,
                    trainer_kwargs={**accelerator, "enable_progress_bar": False, "callbacks": [timer]},
                )
            if options.get("soft_labels") == "stored":
                stored_bytes.append(result["cost/soft_label_bytes"])
            # the first epoch starts workers (stored: it is the recorded round); the last one validates
            return timer.times[1:-1]

        stored = "stored soft labels (default + replayed epochs)"
        old = {"pipeline": "loader", "precision": "fp32", "channels_last": False}  # the loop before issue 12
        variants = {
            "pipeline=loader, 0 workers, fp32, NCHW": lambda: run(num_workers=0, **old),
            **({f"pipeline=loader, {workers} workers, fp32, NCHW": lambda: run(num_workers=workers, **old)}
               if workers else {}),
            "pipeline=batched, fp32, NCHW": lambda: run(precision="fp32", channels_last=False),
            "pipeline=batched, fp32, channels_last": lambda: run(precision="fp32"),
            "default (batched, precision=auto, channels_last)": lambda: run(),
            stored: lambda: run(soft_labels="stored", soft_label_rounds=1),
        }
        times = interleaved(variants, repeats)
        label = f"ConvNet-{depth} {input_size} px, IPC {ipc} x {classes} classes, batch {batch}"
        n = ipc * classes
        work = (f"{STUDENT_EPOCHS} epochs", STUDENT_EPOCHS * n)
        rows = {name: res.row("student", f"{label}, {name}", n, t, work) for name, t in times.items()}
        rows[stored]["soft_label_bytes_per_round"] = stored_bytes[-1]  # rounds = 1: one epoch's labels (top-10)
        workload = f"{n} images, ConvNet-{depth} {input_size} px, one epoch"
        loader0, batched = "pipeline=loader, 0 workers, fp32, NCHW", "pipeline=batched, fp32, NCHW"
        default = "default (batched, precision=auto, channels_last)"
        res.pair("student: batched pipeline (set on the device, vectorised draws, no workers)", workload,
                 rows[loader0], rows[batched], ("loader, 0 workers", "batched"))
        res.pair("student: channels_last", workload, rows[batched], rows["pipeline=batched, fp32, channels_last"],
                 ("NCHW", "channels_last"))
        res.pair("student: bf16 autocast (precision=auto on a CPU with native bf16)", workload,
                 rows["pipeline=batched, fp32, channels_last"], rows[default], ("fp32", "bf16"))
        res.pair("student: all of the above", workload, rows[loader0], rows[default], ("before", "default"))
        res.pair("student: stored soft labels (replayed epochs skip the teacher)", workload,
                 rows[default], rows[stored], ("online", "stored, replayed epoch"))


# ----------------------------------------------------------------------------------------------------------------
# report


def markdown(res: Results) -> str:
    lines = ["| stage | setting | images | median s | images/s | projected s (workload) |", "|---|---|---|---|---|---|"]
    for r in res.rows:
        projected = f"{r['projected_s']:,.0f} ({r['projected_for']})" if "projected_s" in r else "-"
        extra = (f" ({r['soft_label_bytes_per_round']:,.0f} B of labels per round)"
                 if "soft_label_bytes_per_round" in r else "")
        lines.append(f"| {r['stage']} | {r['setting']}{extra} | {r['images']:g} | {r['seconds']:.3f} | "
                     f"{r['images_per_s']:.3g} | {projected} |")
    lines += ["", "| change | workload | before | after | before images/s | after images/s | speed-up |",
              "|---|---|---|---|---|---|---|"]
    for p in res.pairs:
        lines.append(f"| {p['change']} | {p['workload']} | {p['before']} | {p['after']} | {p['before_value']:.3g} | "
                     f"{p['after_value']:.3g} | {p['after_value'] / p['before_value']:.2f}x |")
    return "\n".join(lines)


STAGES = {"teacher": bench_teacher, "occupancy": bench_cam_occupancy, "grounded_sam2": bench_grounded_sam2,
          "select": bench_select, "student": bench_student}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="tiny workloads (a smoke test of the script)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats per variant (default 3; quick 1)")
    parser.add_argument("--only", nargs="*", choices=list(STAGES), default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device", file=sys.stderr)
        return 2
    repeats = args.repeats or (1 if args.quick else 3)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # no per-fit banners between the rows
    res = Results()
    started = time.perf_counter()
    for name in args.only or list(STAGES):
        STAGES[name](res, device, args.quick, repeats)
    header = (f"benchmarks/speed.py {shlex.join(sys.argv[1:])} | {datetime.date.today()} | {platform.node()} | "
              f"{device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'}, "
              f"{torch.get_num_threads()} threads) | torch {torch.__version__} | repeats {repeats} | "
              f"{time.perf_counter() - started:.0f} s")
    print("\n" + header + "\n\n" + markdown(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"header": header, "rows": res.rows, "pairs": res.pairs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
