"""``python -m fgdd.export RUN_DIR OUT``: a run's distilled set with the teacher's soft labels, in a format any
framework can read, and ``load_export`` to read it back.

RDED's student never sees stored labels: the teacher labels every augmented batch online. What another framework
can replay instead is the teacher's label of each image under N seeded augmentation rounds: round r is exactly the
augmentation fgdd's per-sample student pipeline (``evaluator.pipeline=loader``) draws for each image in epoch r (same
run seed, same sampler, same per-image draws; the default batched pipeline draws from the same distributions with
another random stream, so its epochs are other samples of the same augmentation), before CutMix, which mixes images
of a batch and is left to the consumer (mix the labels by area, as CutMix does).

Layout of OUT (written whole or not at all; an existing OUT is never touched)::

    images/<class>/<NNNN>.<jpg|png>   the distilled images, byte copies, class folders in label order
    images/distilled.json, manifest.jsonl   fgdd's own description of the set (classes, ipc, factor, patches)
    soft_labels.pt                    torch.save of a dict of plain tensors (torch.load(..., weights_only=True))
    export.json                       what every tensor holds, its shape and dtype, the classes, normalisation,
                                      augmentation and the seeds

``soft_labels.pt`` (R rounds, n images, k classes, f = the mosaic factor):

- ``files`` (list of n str): image paths under images/, the order of every tensor's n axis
- ``labels`` int64 (n,): hard labels
- ``sample_seeds`` int64 (R, n): the seed of each image's torch.Generator in round r (fgdd's own draws)
- ``col_strips`` / ``row_strips`` int8 (R, n, f): the order of the f vertical / horizontal strips (RDED's tile
  shuffle; strip k covers pixels [k*s, (k+1)*s) with s = size // f, the last strip also the remainder);
  identity when f = 1
- ``crop_boxes`` int32 (R, n, 4): (top, left, height, width) of the crop in the strip-shuffled image
- ``flips`` bool (R, n): horizontal flip after the crop
- ``logits`` float32 (R, n, k): the teacher's logits on that input (``--labels logits``), or
- ``topk_probs`` float16 (R, n, K) and ``topk_classes`` int16 (R, n, K): the K largest probabilities of
  softmax(logits / T), T = the run's temperature, as fgdd's stored soft labels keep them (``--labels topk``)

The input of image i in round r: uint8 -> [0, 1], columns then rows put in strip order, crop box, resized to
input_size x input_size (bilinear, antialiased), flipped if asked, normalised with export.json's mean and std.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fgdd.run_folder import CONFIG, DISTILLED
from fgdd.utils.io import file_sha256

if TYPE_CHECKING:
    from fgdd.evaluation.augment import StudentTrainTransform

FORMAT = "fgdd-soft-labels/1"
LABELS = "soft_labels.pt"
DESCRIPTION = "export.json"
IMAGES = "images"


@dataclass
class Augmentations:
    sample_seeds: Tensor  # (R, n) int64
    col_strips: Tensor  # (R, n, f) int8
    row_strips: Tensor  # (R, n, f) int8
    crop_boxes: Tensor  # (R, n, 4) int32
    flips: Tensor  # (R, n) bool


def draw_rounds(images: list[Tensor], seed: int, rounds: int, transform: StudentTrainTransform) -> Augmentations:
    """The augmentation of every image in fgdd's student epochs 0..rounds-1 for run ``seed``: the draws of the
    evaluator's own sampler and transform (``evaluator.pipeline=loader``)."""
    from fgdd.evaluation.loaders import SeededEpochSampler
    from fgdd.utils.seeding import STUDENT_DATA, derive_seed

    n, factor = len(images), transform.factor
    sampler = SeededEpochSampler(n, derive_seed(seed, STUDENT_DATA))  # the evaluator's sampler, same seed
    seeds = torch.zeros(rounds, n, dtype=torch.int64)
    cols = torch.zeros(rounds, n, factor, dtype=torch.int8)
    rows = torch.zeros(rounds, n, factor, dtype=torch.int8)
    boxes = torch.zeros(rounds, n, 4, dtype=torch.int32)
    flips = torch.zeros(rounds, n, dtype=torch.bool)
    for r in range(rounds):
        sampler.epoch = r
        for index, sample_seed in sampler:
            _, h, w = images[index].shape
            params = transform.draw(h, w, torch.Generator().manual_seed(sample_seed))
            seeds[r, index] = sample_seed
            cols[r, index] = params["cols"]
            rows[r, index] = params["rows"]
            boxes[r, index] = params["box"].to(torch.int32)
            flips[r, index] = bool(params["flip"])
    return Augmentations(seeds, cols, rows, boxes, flips)


def stored_params(col_strips: Tensor, row_strips: Tensor, crop_boxes: Tensor, flips: Tensor, r: int, i: int,
                  ) -> dict[str, Tensor]:
    """Image i's augmentation in round r, from the stored (R, n, ...) tensors, as ``StudentTrainTransform.apply``
    takes it."""
    return {"cols": col_strips[r, i].long(), "rows": row_strips[r, i].long(), "box": crop_boxes[r, i],
            "flip": flips[r, i]}


@torch.inference_mode()
def teacher_logits(teacher: nn.Module, images: list[Tensor], aug: Augmentations, transform: StudentTrainTransform,
                   device: torch.device, batch_size: int = 256) -> Tensor:
    """(R, n, k) float32: the teacher (eval mode) on every image of every round."""
    teacher.eval()
    rounds, n = aug.sample_seeds.shape
    out: list[Tensor] = []
    for r in range(rounds):
        inputs = torch.stack([transform.apply(images[i], stored_params(aug.col_strips, aug.row_strips,
                                                                       aug.crop_boxes, aug.flips, r, i))
                              for i in range(n)])  # (n, 3, s, s)
        out.append(torch.cat([teacher(chunk.to(device)).float().cpu() for chunk in inputs.split(batch_size)]))
    return torch.stack(out)  # (R, n, k)


def topk_probabilities(logits: Tensor, temperature: float, k: int) -> tuple[Tensor, Tensor]:
    """fgdd's stored-label form: the k largest of softmax(logits / T), fp16, and their classes, int16."""
    probs = F.softmax(logits.float() / temperature, dim=-1)
    values, classes = probs.topk(min(k, logits.shape[-1]), dim=-1)
    return values.half(), classes.to(torch.int16)


def export_run(run_dir: str | Path, out: str | Path, *, rounds: int, labels: str = "logits", topk: int = 10,
               device: str = "cpu", batch_size: int = 256) -> Path:
    """Write ``out`` from a finished run folder; returns ``out``. The teacher is the run's (loaded, or read from
    the cache of trained teachers)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from fgdd.errors import ConfigError, FgddError
    from fgdd.pipeline import obtain_teacher
    from fgdd.selection.distilled_set import DistilledSet
    from fgdd.utils.device import resolve_device

    run_dir, out = Path(run_dir), Path(out)
    if rounds < 1:
        raise ConfigError(f"--rounds must be >= 1, got {rounds}")
    if labels not in ("logits", "topk"):
        raise ConfigError(f"--labels must be logits or topk, got {labels!r}")
    if out.exists():
        raise FgddError(f"{out} already exists; fgdd.export never overwrites (choose another folder)")
    if not (run_dir / CONFIG).is_file() or not (run_dir / DISTILLED).is_dir():
        raise FgddError(f"{run_dir} is not a fgdd run folder with a distilled set (config.yaml, distilled/)")
    cfg = OmegaConf.load(run_dir / CONFIG)
    dataset = instantiate(cfg.dataset, _convert_="all")
    distilled = DistilledSet(run_dir / DISTILLED, classes=dataset.classes)
    where = resolve_device(device)
    teacher, _ = obtain_teacher(cfg, dataset, where, OmegaConf.to_container(cfg.trainer, resolve=True))
    teacher_cfg = OmegaConf.to_container(cfg.teacher, resolve=True)
    evaluator = OmegaConf.to_container(cfg.evaluator, resolve=True) if cfg.get("evaluator") else {}
    return export_set(distilled, dataset, teacher, out, seed=int(cfg.seed), temperature=student_temperature(evaluator),
                      teacher_record={"arch": teacher_cfg.get("arch", {}).get("name"),
                                      "checkpoint": teacher_cfg.get("checkpoint")},
                      source_run=run_dir, rounds=rounds, labels=labels, topk=topk, device=where, batch_size=batch_size)


def student_temperature(evaluator: Mapping[str, Any]) -> float:
    """The run's KL temperature (RDED: 20) from its evaluator's settings: an evaluator wrapping another (holdout, lr
    search, full real) holds it in its ``inner`` one."""
    return float((evaluator.get("inner") or evaluator).get("temperature", 20.0))


def export_set(distilled: Any, dataset: Any, teacher: nn.Module, out: Path, *, seed: int, temperature: float,
               teacher_record: dict[str, Any], source_run: Path, rounds: int, labels: str, topk: int,
               device: torch.device, batch_size: int) -> Path:
    """Write ``out`` from a distilled set (fgdd.selection.DistilledSet), its dataset and teacher; ``seed``: the run's,
    ``temperature``: its student's, ``teacher_record``: export.json's "teacher" (arch name, checkpoint)."""
    from fgdd.evaluation.augment import StudentTrainTransform, pil_to_uint8
    from fgdd.utils.seeding import STUDENT_DATA

    images = [pil_to_uint8(distilled[i][0]) for i in range(len(distilled))]
    transform = StudentTrainTransform(dataset.input_size, distilled.factor, dataset.mean, dataset.std)
    aug = draw_rounds(images, seed, rounds, transform)
    logits = teacher_logits(teacher, images, aug, transform, device, batch_size)
    tensors: dict[str, Any] = {
        "format": FORMAT,
        "files": [path.relative_to(distilled.root).as_posix() for path, _ in distilled.samples],
        "labels": torch.tensor(distilled.targets, dtype=torch.int64),
        "sample_seeds": aug.sample_seeds, "col_strips": aug.col_strips, "row_strips": aug.row_strips,
        "crop_boxes": aug.crop_boxes, "flips": aug.flips,
    }
    if labels == "logits":
        tensors["logits"] = logits
    else:
        tensors["topk_probs"], tensors["topk_classes"] = topk_probabilities(logits, temperature, topk)
    description = {
        "format": FORMAT,
        "source_run": str(source_run.resolve()),
        "dataset": dataset.name,
        "classes": list(dataset.classes),
        "num_images": len(images),
        "ipc": distilled.ipc,
        "factor": distilled.factor,
        "input_size": dataset.input_size,
        "normalisation": {"mean": list(dataset.mean), "std": list(dataset.std), "scale": "pixels / 255 first"},
        "rounds": rounds,
        "labels": labels,
        "temperature": temperature,  # the run's KL temperature (RDED: 20); apply it to the logits yourself
        "topk": topk if labels == "topk" else None,
        "seeds": {
            "run_seed": seed,
            "rule": "round r = fgdd student epoch r with evaluator.pipeline=loader: sampler seed "
                    f"derive_seed(run_seed, {STUDENT_DATA!r}); image i's "
                    "draws from torch.Generator().manual_seed(sample_seeds[r, i]) in the order column strips, row "
                    "strips (f > 1 only), crop box (RandomResizedCrop, scale (1/f, 1), ratio (3/4, 4/3)), flip (p 0.5)",
        },
        "augmentation": "uint8 -> [0, 1]; columns, then rows, put in strip order; crop (top, left, height, width); "
                        "resize to input_size (bilinear, antialias); horizontal flip; normalise (mean, std). "
                        "CutMix, which RDED applies on top, is not in the labels",
        "teacher": teacher_record,
        "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
                    for k, v in tensors.items() if isinstance(v, Tensor)},
    }
    return _write(out, distilled.root, tensors, description)


def _write(out: Path, images_from: Path, tensors: dict[str, Any], description: dict[str, Any]) -> Path:
    from fgdd.utils.io import publish_folder

    with publish_folder(out) as staging:
        shutil.copytree(images_from, staging / IMAGES)
        torch.save(tensors, staging / LABELS)
        description["soft_labels_sha256"] = file_sha256(staging / LABELS)
        (staging / DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n")
    return out


@dataclass
class ExportedSet:
    root: Path
    description: dict[str, Any]
    tensors: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return list(self.description["classes"])

    def distilled(self) -> Any:
        """The images as fgdd's DistilledSet ((PIL image, label) pairs), for fgdd's evaluators."""
        from fgdd.selection.distilled_set import DistilledSet

        return DistilledSet(self.root / IMAGES, classes=self.classes)

    def images(self) -> list[Tensor]:
        """(3, h, w) uint8 per image, in the order of the tensors' n axis, decoded by PIL as fgdd decodes them
        for its teacher (another JPEG decoder may differ by a grey level in a few pixels)."""
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        decoded = []
        for name in self.tensors["files"]:
            with Image.open(self.root / IMAGES / name) as image:
                decoded.append(pil_to_tensor(image.convert("RGB")))
        return decoded

    def inputs(self, r: int, images: list[Tensor] | None = None) -> Tensor:
        """(n, 3, s, s): round r's augmented, normalised inputs, rebuilt from the stored parameters."""
        from fgdd.evaluation.augment import StudentTrainTransform

        images = images if images is not None else self.images()
        d, t = self.description, self.tensors
        transform = StudentTrainTransform(d["input_size"], d["factor"], d["normalisation"]["mean"],
                                          d["normalisation"]["std"])
        return torch.stack([transform.apply(img, stored_params(t["col_strips"], t["row_strips"], t["crop_boxes"],
                                                               t["flips"], r, i))
                            for i, img in enumerate(images)])

    def targets(self, r: int, temperature: float | None = None) -> Tensor:
        """(n, k) probabilities of round r: softmax(logits / T) (T: the run's unless given), or the stored top-k
        with the rest of the mass spread evenly over the other classes (FKD's rule, as fgdd's stored labels)."""
        k = len(self.classes)
        if "logits" in self.tensors:
            t = temperature if temperature is not None else self.description["temperature"]
            return F.softmax(self.tensors["logits"][r].float() / t, dim=-1)
        values = self.tensors["topk_probs"][r].float()
        classes = self.tensors["topk_classes"][r].long()
        rest = k - values.shape[1]
        fill = (1.0 - values.sum(1, keepdim=True)).clamp(min=0.0) / rest if rest else values.new_zeros(len(values), 1)
        return fill.expand(len(values), k).clone().scatter_(1, classes, values)


def load_export(path: str | Path) -> ExportedSet:
    """Read an export back; its soft labels' checksum and every tensor's shape are checked against export.json."""
    from fgdd.errors import FgddError

    root = Path(path)
    if not (root / DESCRIPTION).is_file() or not (root / LABELS).is_file():
        raise FgddError(f"{root} is not a fgdd export (needs {DESCRIPTION} and {LABELS}); write one with "
                        "python -m fgdd.export RUN_DIR OUT")
    description = json.loads((root / DESCRIPTION).read_text())
    if description.get("format") != FORMAT:
        raise FgddError(f"{root}: format {description.get('format')!r}, this fgdd reads {FORMAT!r}")
    if file_sha256(root / LABELS) != description["soft_labels_sha256"]:
        raise FgddError(f"{root / LABELS} does not match the checksum in {DESCRIPTION}: the file changed or is "
                        "truncated; export again")
    tensors = torch.load(root / LABELS, weights_only=True)
    for name, spec in description["tensors"].items():
        if list(tensors[name].shape) != spec["shape"]:
            raise FgddError(f"{root}: tensor {name} has shape {list(tensors[name].shape)}, export.json says "
                            f"{spec['shape']}")
    return ExportedSet(root, description, tensors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fgdd.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished fgdd run folder (config.yaml, distilled/)")
    parser.add_argument("out", type=Path, help="the export folder to create (must not exist)")
    parser.add_argument("--rounds", type=int, default=300, help="augmentation rounds labelled (default: RDED's 300 "
                                                                "epochs)")
    parser.add_argument("--labels", choices=("logits", "topk"), default="logits",
                        help="full float32 logits, or fgdd's stored form: top-k fp16 probabilities at the run's T")
    parser.add_argument("--topk", type=int, default=10, help="classes kept per label with --labels topk")
    parser.add_argument("--device", default="cpu", help="where the teacher runs: cpu, cuda, cuda:N, auto")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    from fgdd.errors import FgddError

    try:
        out = export_run(args.run_dir, args.out, rounds=args.rounds, labels=args.labels, topk=args.topk,
                         device=args.device, batch_size=args.batch_size)
    except FgddError as error:
        print(f"fgdd.export: error: {error}", file=sys.stderr)
        return 2
    print(f"exported {args.run_dir} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
