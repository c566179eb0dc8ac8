"""RDED's student-side augmentation (validation/utils.py and validation/main.py of LINs-lab/RDED), with every
random draw taken from an explicit torch generator so a run is reproducible from its seed."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import functional as TF

from fgdd.utils.boxes import central_box, resized_crop_box
from fgdd.utils.normalise import channel_stats

# torchvision's RandomResizedCrop default aspect range; RDED does not change it
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)


def strip_pixel_order(size: int, factor: int, order: Tensor) -> Tensor:
    """(size,) pixel indices along one axis with the ``factor`` strips laid out in ``order`` (factor,): strip k covers
    [k*s, (k+1)*s), s = size // factor, and the last strip also the remainder, so an odd size is not shortened
    (RDED's loop drops it)."""
    step = size // factor
    edges = [k * step for k in range(factor)] + [size]
    return torch.cat([torch.arange(edges[k], edges[k + 1]) for k in order.tolist()])


def strip_pixel_orders(size: int, factor: int, orders: Tensor) -> Tensor:
    """(n, size): ``strip_pixel_order`` of each row of ``orders`` (n, factor), each distinct order built once (there
    are at most factor! of them)."""
    distinct, which = orders.cpu().unique(dim=0, return_inverse=True)
    return torch.stack([strip_pixel_order(size, factor, order) for order in distinct])[which]


def cutmix_params(n: int, height: int, width: int, generator: torch.Generator) -> tuple[Tensor, tuple[int, int, int, int], float]:
    # CutMix (Yun et al. 2019) as RDED draws it: permutation, lambda ~ Beta(1, 1) (= uniform), box centre uniform,
    # box side sqrt(1 - lambda) of each image side, clipped at the border. lambda is then corrected to the area
    # actually kept, so mixed hard labels weigh each source by its pixels. Returns (perm (n,), (y1, y2, x1, x2), lam).
    perm = torch.randperm(n, generator=generator)
    lam = torch.rand(1, generator=generator, dtype=torch.float64).item()
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy = int(torch.randint(height, (1,), generator=generator))
    cx = int(torch.randint(width, (1,), generator=generator))
    y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    lam = 1.0 - (y2 - y1) * (x2 - x1) / (height * width)
    return perm, (y1, y2, x1, x2), lam


def apply_cutmix(images: Tensor, perm: Tensor, box: tuple[int, int, int, int]) -> Tensor:
    # (n, c, h, w): the box of image perm[i] pasted into image i; the input is not modified
    y1, y2, x1, x2 = box
    perm = perm.to(images.device)
    mixed = images.clone()
    mixed[:, :, y1:y2, x1:x2] = images[perm, :, y1:y2, x1:x2]
    return mixed


def cutmix(images: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, float]:
    n, _, h, w = images.shape  # (n, c, h, w)
    perm, box, lam = cutmix_params(n, h, w, generator)
    return apply_cutmix(images, perm, box), perm.to(images.device), lam


class StudentTrainTransform:
    """RDED's train augmentation in RDED's order: ToTensor, ShufflePatches(factor),
    RandomResizedCrop(input_size, scale=(1/factor, 1)), RandomHorizontalFlip, Normalize.

    Split into ``draw`` (every random choice, from the sample's generator, on the CPU) and ``apply`` (pixels), so
    that the same choices can be applied to one image in a loader worker or to a whole batch on the device
    (``apply_batch``); both give the same pixels (tested)."""

    def __init__(self, input_size: int, factor: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.input_size = input_size
        self.factor = factor
        self.scale = (1.0 / factor, 1.0)
        self.mean = list(mean)
        self.std = list(std)

    def draw(self, height: int, width: int, generator: torch.Generator) -> dict[str, Tensor]:
        # the draws in RDED's order: column strips, row strips (ShufflePatches, factor > 1 only), crop box, flip;
        # "cols" / "rows" (factor,) the strip orders (strip_pixel_order), "box" (top, left, height, width)
        if self.factor > 1:
            cols = torch.randperm(self.factor, generator=generator)
            rows = torch.randperm(self.factor, generator=generator)
        else:
            cols, rows = torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long)  # identity, not drawn
        box = resized_crop_box(height, width, self.scale, CROP_RATIO, generator, torch.float64)
        flip = torch.rand(1, generator=generator).item() < 0.5
        return {"rows": rows, "cols": cols, "box": torch.tensor(box), "flip": torch.tensor(flip)}

    def apply(self, image: Tensor, params: dict[str, Tensor]) -> Tensor:
        x = image.float().div(255)  # (c, h, w) uint8 -> [0, 1], what ToTensor gives
        if self.factor > 1:
            _, h, w = x.shape
            cols = strip_pixel_order(w, self.factor, params["cols"]).to(x.device)  # (w,)
            rows = strip_pixel_order(h, self.factor, params["rows"]).to(x.device)  # (h,)
            x = x[:, :, cols][:, rows, :]
        i, j, h, w = (int(v) for v in params["box"])
        x = TF.resized_crop(x, i, j, h, w, [self.input_size, self.input_size], antialias=True)
        if bool(params["flip"]):
            x = x.flip(-1)
        return TF.normalize(x, self.mean, self.std)  # (c, input_size, input_size)

    def apply_batch(self, pixels: Tensor, index: Tensor, params: dict[str, Tensor]) -> Tensor:
        """``pixels`` (N, c, h, w) uint8, the whole distilled set where the batch is wanted (e.g. on the GPU);
        ``index`` (n,) and ``params`` (each with a leading n) from ``draw`` -> (n, c, input, input) normalised."""
        device = pixels.device
        x = pixels[index.to(device)].float().div(255)  # (n, c, h, w)
        n, c, h, w = x.shape
        if self.factor > 1:  # pure indexing: exactly the per-image strip shuffle
            cols = strip_pixel_orders(w, self.factor, params["cols"]).to(device)[:, None, None, :].expand(n, c, h, w)
            x = x.gather(3, cols)
            rows = strip_pixel_orders(h, self.factor, params["rows"]).to(device)[:, None, :, None].expand(n, c, h, w)
            x = x.gather(2, rows)
        size = self.input_size
        out = x.new_empty(n, c, size, size)
        boxes = params["box"].tolist()  # n x (top, left, height, width)
        groups: dict[tuple[int, int], list[int]] = {}
        for k, (_, _, bh, bw) in enumerate(boxes):
            groups.setdefault((bh, bw), []).append(k)
        for (bh, bw), members in groups.items():  # one resize per crop size: the same op per image as ``apply``
            crops = torch.stack([x[k, :, boxes[k][0] : boxes[k][0] + bh, boxes[k][1] : boxes[k][1] + bw]
                                 for k in members])  # (m, c, bh, bw)
            out[torch.tensor(members, device=device)] = TF.resize(crops, [size, size], antialias=True)
        flip = params["flip"].to(device).view(n, 1, 1, 1)
        out = torch.where(flip, out.flip(-1), out)
        mean, std = channel_stats(self.mean, self.std, device, out.dtype)
        return out.sub_(mean).div_(std)

    def __call__(self, image: Tensor, generator: torch.Generator) -> Tensor:
        return self.apply(image, self.draw(image.shape[1], image.shape[2], generator))


def pil_to_uint8(image: Image.Image) -> Tensor:
    # RDED's loader converts to RGB as well; kept as uint8 so a preloaded distilled set costs what its pixels cost
    return TF.pil_to_tensor(image.convert("RGB"))  # (3, h, w) uint8


# ----------------------------------------------------------------------------------------------------------------
# The batched pipeline: every draw of an epoch vectorised, every batch augmented by two batched matrix products


def _crop_boxes(
    n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], generator: torch.Generator
) -> Tensor:
    """fgdd.utils.boxes.resized_crop_box for ``n`` samples at once, with the same distribution: torchvision's 10 tries of
    (area, log-aspect), the first try that fits wins, a central crop when none does. Returns (n, 4) int64 boxes
    (top, left, height, width)."""
    tries = 10
    area = height * width
    target = area * torch.empty(n, tries, dtype=torch.float64).uniform_(scale[0], scale[1], generator=generator)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.empty(n, tries, dtype=torch.float64).uniform_(*log_ratio, generator=generator).exp()
    w = torch.sqrt(target * aspect).round().long()  # round half to even, as python's round in torchvision
    h = torch.sqrt(target / aspect).round().long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # (n, tries)
    first = fits.long().argmax(dim=1, keepdim=True)  # index of the first fitting try (0 when none fits)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    # the position is uniform over the valid offsets, as torch.randint(0, size - crop + 1)
    top = (torch.rand(n, dtype=torch.float64, generator=generator) * (height - h + 1)).floor().long()
    left = (torch.rand(n, dtype=torch.float64, generator=generator) * (width - w + 1)).floor().long()
    boxes = torch.stack([top, left, h, w], dim=1)  # (n, 4)
    fallback = torch.tensor(central_box(height, width, ratio))
    return torch.where(fits.any(dim=1, keepdim=True), boxes, fallback)


def _resize_weights(start: Tensor, length: Tensor, size: int, out: int) -> Tensor:
    """(n, out, size) weights of an antialiased bilinear resize (torch's ``antialias=True`` kernel: a triangle filter
    widened by the scale when shrinking, renormalised at the borders) of the span [start, start + length) of an axis
    of ``size`` pixels to ``out`` pixels. Upsampling reduces to plain bilinear with clamped borders."""
    device = start.device
    start, length = start.double()[:, None, None], length.double()[:, None, None]  # (n, 1, 1)
    scale = length / out
    support = scale.clamp(min=1.0)  # the filter's half-width in input pixels
    centre = start + (torch.arange(out, dtype=torch.float64, device=device)[None, :, None] + 0.5) * scale  # (n, out, 1)
    pixel = torch.arange(size, dtype=torch.float64, device=device)[None, None, :] + 0.5  # (1, 1, size) pixel centres
    weight = (1.0 - (pixel - centre).abs() / support).clamp(min=0.0)  # (n, out, size)
    inside = (pixel >= start) & (pixel < start + length)  # only pixels of the crop contribute
    weight = weight * inside
    return (weight / weight.sum(dim=2, keepdim=True)).float()


class BatchAugment:
    """RDED's student augmentation (tile shuffle, RandomResizedCrop(input, scale=(1/factor, 1)), horizontal flip,
    normalise), for a whole batch at once, on whatever device holds the pixels.

    ``draw`` makes every random choice of ``n`` samples in a few vectorised calls (same distributions as
    ``StudentTrainTransform.draw``, not the same stream). ``apply_batch`` folds each sample's strip permutation, crop,
    resize and flip into two interpolation matrices, so a batch costs two batched matrix products whatever its
    crop sizes: out[k] = A_y[k] @ image[k] @ A_x[k]^T.

    ``scale`` is RandomResizedCrop's area range, RDED's (1/factor, 1) unless given: at factor 1 with (0.08, 1) this is
    torchvision's reference training augmentation (RandomResizedCrop + flip), the teacher recipe RDED adapted."""

    def __init__(self, input_size: int, factor: int, mean: Sequence[float], std: Sequence[float],
                 scale: tuple[float, float] | None = None) -> None:
        self.input_size = input_size
        self.factor = factor
        self.scale = (1.0 / factor, 1.0) if scale is None else (float(scale[0]), float(scale[1]))
        self.mean = list(mean)
        self.std = list(std)

    def draw(self, n: int, height: int, width: int, generator: torch.Generator) -> dict[str, Tensor]:
        # (n, factor) strip orders (uniform permutations; identity at factor 1), (n, 4) crop boxes, (n,) flips
        if self.factor > 1:
            rows = torch.rand(n, self.factor, generator=generator).argsort(dim=1)
            cols = torch.rand(n, self.factor, generator=generator).argsort(dim=1)
        else:
            rows = cols = torch.zeros(n, 1, dtype=torch.long)
        box = _crop_boxes(n, height, width, self.scale, CROP_RATIO, generator)
        flip = torch.rand(n, generator=generator) < 0.5
        return {"rows": rows, "cols": cols, "box": box, "flip": flip}

    def _axis(self, size: int, strips: Tensor, start: Tensor, length: Tensor, flip: Tensor | None) -> Tensor:
        # (n, out, size): output pixel <- source pixel of the original (unshuffled) image along one axis
        weights = _resize_weights(start, length, size, self.input_size)  # over the strip-shuffled axis
        if self.factor > 1:  # shuffled position p shows source pixel order[p]; move each weight column there
            order = strip_pixel_orders(size, self.factor, strips).to(weights.device)  # (n, size)
            weights = torch.zeros_like(weights).scatter_(2, order[:, None, :].expand_as(weights), weights)
        if flip is not None:
            weights = torch.where(flip[:, None, None], weights.flip(1), weights)
        return weights

    def apply_batch(self, pixels: Tensor, index: Tensor, params: dict[str, Tensor]) -> Tensor:
        """``pixels`` (N, c, h, w) uint8 (the distilled set, where the batch is wanted), ``index`` (n,) and
        ``params`` from ``draw`` (leading n) -> (n, c, input, input) normalised float32."""
        device = pixels.device
        _, c, h, w = pixels.shape
        box, flip = params["box"].to(device), params["flip"].to(device)  # the matrices are built where the pixels are
        a_y = self._axis(h, params["rows"], box[:, 0], box[:, 2], None)  # (n, S, h)
        a_x = self._axis(w, params["cols"], box[:, 1], box[:, 3], flip)  # (n, S, w)
        # 1/255 and the normalisation folded in: ((x / 255) - mean) / std = x * (1 / (255 std)) - mean / std
        mean, std = channel_stats(self.mean, self.std, device)  # (1, c, 1, 1)
        x = pixels[index.to(device)].float()  # (n, c, h, w)
        out = a_y[:, None] @ x @ a_x[:, None].transpose(2, 3)  # (n, c, S, S)
        return out.mul_(1.0 / (255.0 * std)).sub_(mean / std)
