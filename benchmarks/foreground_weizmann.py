"""How well a segmenter's foreground occupancy matches hand-made masks: Weizmann Horse (328 photos, one class).

Usage: .venv/bin/python benchmarks/foreground_weizmann.py [--cam minmax:0.5 max:0.4 ...] [--saliency 0.5 ...]
[--out FILE] (CAM: about 1.5 min on 2 busy CPU cores; saliency: about 5 min more). Prints a Markdown table: mean
absolute occupancy error, Pearson correlation of the occupancies, mean IoU of the masks, images per second.

The CAM rows use the shared CIFAR-10 reference teacher (ConvNet-3, 32 px) with label = horse (CIFAR-10 has a horse
class; the ImageNette teacher has none, so it is not used). Each photo is squashed to 32x32 for the teacher, so the
CAM is a coarse 4x4 map upsampled to the photo: these numbers say how well the *occupancy* is estimated, not the
outline. Baselines give the numbers a scale: "mean occupancy" predicts the dataset's mean true occupancy for every
photo (no correlation, no mask), "centre box" is the centred box of half the width and half the height (area 0.25).

The saliency rows run U²-Net's u2netp (segmenter=saliency, fgdd.weights) once over the photos and threshold its
normalised maps at each value given; its images/s is that one pass (preprocessing included), with onnxruntime
limited to --threads threads. `--saliency` with no value skips it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import tarfile
import time
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fgdd.data.base import IMAGENET_MEAN, IMAGENET_STD
from fgdd.data.spec import DatasetSpec
from fgdd.foreground.base import SegmentationContext, occupancy
from fgdd.foreground.cam import CAMSegmenter
from fgdd.foreground.mask_folder import fit_mask
from fgdd.foreground.saliency import SaliencySegmenter, saliency_mask
from fgdd.teacher import load_teacher
from fgdd.weights import U2NETP, weights_dir

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FGDD_SHARED_DIR", REPO.parent / "shared"))
BENCH = Path(os.environ.get("FGDD_BENCH_DIR", Path.home() / ".cache" / "fgdd-bench"))
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def extract_once(name: str) -> Path:
    dest = BENCH / "data" / name
    if (dest / ".extracted").exists():
        return dest
    partial = BENCH / "data" / f".{name}.partial-{os.getpid()}"
    partial.mkdir(parents=True, exist_ok=True)
    with tarfile.open(SHARED / "data" / f"{name}.tar.gz") as tar:
        tar.extractall(partial, filter="data")
    (partial / ".extracted").touch()
    partial.rename(dest)
    return dest


def load_weizmann(root: Path) -> tuple[list[Image.Image], list[np.ndarray], list[str]]:
    photos, truths, names = [], [], []
    for path in sorted((root / "rgb").glob("horse*.jpg")):
        with Image.open(path) as image:
            photo = image.convert("RGB")
        with Image.open(root / "figure_ground" / path.name) as image:
            truth = np.asarray(image.convert("L")) > 127  # 1-channel JPEG mask, smaller than the photo
        photos.append(photo)
        truths.append(fit_mask(truth, photo.width, photo.height, path.name))  # nearest neighbour
        names.append(f"rgb/{path.name}")
    return photos, truths, names


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b)) / union if union else 1.0


def row(label: str, truths: list[np.ndarray], predicted_occ: np.ndarray, masks: list[np.ndarray] | None,
        images_per_s: float | None = None) -> str:
    true_occ = np.array([occupancy(t) for t in truths])
    mae = float(np.abs(predicted_occ - true_occ).mean())
    corr = "n/a" if np.ptp(predicted_occ) == 0 else f"{np.corrcoef(predicted_occ, true_occ)[0, 1]:.3f}"
    miou = "n/a" if masks is None else f"{np.mean([iou(m, t) for m, t in zip(masks, truths)]):.3f}"
    speed = "n/a" if images_per_s is None else f"{images_per_s:.2f}"
    return f"| {label} | {predicted_occ.mean():.3f} | {mae:.3f} | {corr} | {miou} | {speed} |"


def centre_box(width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[height // 4 : height - height // 4, width // 4 : width - width // 4] = True
    return mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cam", nargs="+", metavar="NORMALIZE:THRESHOLD",
        default=[f"{n}:{t}" for n in ("minmax", "max") for t in ("0.3", "0.4", "0.5", "0.6", "0.7", "otsu")],
        help="CAM settings to measure (normalize minmax or max, threshold a number or otsu)",
    )
    parser.add_argument("--teacher", default=str(SHARED / "teachers" / "cifar10_conv3.pth"))
    parser.add_argument("--saliency", nargs="*", metavar="THRESHOLD", default=["0.3", "0.4", "0.5", "0.6", "0.7"],
                        help="thresholds of the saliency segmenter's normalised map (none: skip it)")
    parser.add_argument("--weights", default=str(weights_dir() / U2NETP.filename), help="u2netp.onnx")
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()

    photos, truths, names = load_weizmann(extract_once("weizmann-horse"))
    true_occ = np.array([occupancy(t) for t in truths])
    spec = DatasetSpec(  # what load_teacher and the CAM read: the CIFAR-10 protocol
        name="cifar10", classes=tuple(CIFAR10), class_names=tuple(CIFAR10), input_size=32, factor=1,
        mean=IMAGENET_MEAN, std=IMAGENET_STD,
    )
    dataset = types.SimpleNamespace(spec=spec)
    device = torch.device("cpu")
    teacher, meta = load_teacher(args.teacher, None, spec, device)
    context = SegmentationContext(observer=teacher, dataset=dataset, device=device)
    horse = CIFAR10.index("horse")
    labels = [horse] * len(photos)

    lines = [
        "| segmenter | mean predicted occupancy | MAE occupancy | Pearson r | mean IoU | images/s |",
        "|---|---|---|---|---|---|",
        row("ground truth (for reference)", truths, true_occ, truths),
        row("baseline: mean true occupancy for every image", truths, np.full(len(photos), true_occ.mean()), None),
    ]
    boxes = [centre_box(p.width, p.height) for p in photos]
    lines.append(row("baseline: centre box (1/2 x 1/2)", truths, np.array([occupancy(b) for b in boxes]), boxes))
    for setting in args.cam:
        normalize, _, threshold = setting.partition(":")
        segmenter = CAMSegmenter(threshold="otsu" if threshold == "otsu" else float(threshold), normalize=normalize)
        segmenter.setup(context)
        began = time.perf_counter()
        masks = segmenter.masks(photos, labels=labels, prompts=["horse."] * len(photos), sources=names)
        speed = len(photos) / (time.perf_counter() - began)
        label = f"cam (cifar10_conv3, 4x4 map), normalize {normalize}, threshold {threshold}"
        lines.append(row(label, truths, np.array([occupancy(m) for m in masks]), masks, speed))
    if args.saliency:
        saliency = SaliencySegmenter(weights=args.weights, threads=args.threads)
        saliency.setup(context)
        began = time.perf_counter()
        maps = saliency.saliency(photos)  # (n, 320, 320) raw maps: one pass, thresholded below
        masks = [saliency_mask(m, p.height, p.width, saliency.threshold) for m, p in zip(maps, photos)]
        speed = len(photos) / (time.perf_counter() - began)  # as segmenter.masks() at its own threshold
        for threshold in args.saliency:
            masks = [saliency_mask(m, p.height, p.width, float(threshold)) for m, p in zip(maps, photos)]
            label = f"saliency (u2netp, onnxruntime {saliency.cache_key()['onnxruntime']}), threshold {threshold}"
            lines.append(row(label, truths, np.array([occupancy(m) for m in masks]), masks, speed))

    _, logits = segmenter.cams(photos, labels)  # (n, 10); how many photos the teacher itself calls horse
    top1 = float((logits.argmax(1) == horse).float().mean())
    seconds = time.time() - start
    header = [
        "## Foreground occupancy vs hand-made masks: Weizmann Horse (328 photos)",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {platform.node()} ({platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, onnxruntime {args.threads} threads), CPU only",
        f"- command: `{' '.join(shlex.quote(a) for a in [sys.executable.split('/')[-1], *sys.argv])}`",
        f"- teacher: {args.teacher} (val top-1 {meta.val_top1}); it calls {top1:.1%} of the photos `horse`",
        f"- true occupancy: mean {true_occ.mean():.3f}, min {true_occ.min():.3f}, max {true_occ.max():.3f}",
        f"- runtime: {seconds:.0f} s",
        "",
    ]
    table = "\n".join(header + lines) + "\n"
    print(table)
    if args.out:
        Path(args.out).write_text(table)


if __name__ == "__main__":
    main()
