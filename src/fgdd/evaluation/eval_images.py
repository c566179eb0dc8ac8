"""The validation split decoded once: the evaluation transform's geometry (Resize(input // 7 * 8), CenterCrop(input))
applied to every image and the result kept as one uint8 tensor, shared by the teacher's accuracy and every student
validation of a run and, through ``cache_dir``, by every run on the same split and input size.

Normalising on the fly (``fgdd.utils.normalise.normalise``) gives exactly the floats
``fgdd.data.transforms.eval_transform`` gives."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset
from torchvision import transforms as T
from tqdm.auto import tqdm

from fgdd.data.decoded import decode_split, decode_split_cached
from fgdd.data.transforms import eval_transform
from fgdd.errors import ConfigError
from fgdd.utils.distributed import rank_and_world
from fgdd.utils.normalise import normalise

log = logging.getLogger(__name__)

# Bump when the stored pixels would differ for the same split and input size (eval_transform's geometry changed)
EVAL_IMAGES_VERSION = "eval-images-v1"
# Above this many bytes of decoded pixels the split is not held in memory: it is decoded at every pass instead
DEFAULT_MAX_BYTES = 8 * 2**30


def eval_geometry(input_size: int) -> T.Compose:
    # eval_transform's resize and crop (its first two steps), then the uint8 tensor instead of ToTensor's floats
    resize, crop = eval_transform(input_size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)).transforms[:2]
    return T.Compose([resize, crop, T.PILToTensor()])


def _shard(n: int, shard: bool) -> range:
    # under DDP with ``shard``: this rank's contiguous share of the n images (no padding, so counts summed over
    # ranks cover each image exactly once); otherwise all of them
    rank, world = rank_and_world() if shard else (0, 1)
    share = -(-n // world)
    return range(min(rank * share, n), min((rank + 1) * share, n))


class EvalImages:
    """(N, 3, s, s) uint8 images and (N,) labels of a split, after the evaluation geometry."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
            raise ConfigError(f"EvalImages needs (N, 3, s, s) uint8 images and N labels; got "
                              f"{tuple(images.shape)} {images.dtype}, {len(labels)} labels")
        if len(images) == 0:
            raise ConfigError("cannot evaluate on an empty split")
        self.images = images
        self.labels = labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def content_sha256(self) -> str:
        """Hash of the decoded pixels and labels: what an evaluation on this split sees, wherever it came from."""
        digest = hashlib.sha256(f"{tuple(self.images.shape)}\n".encode())
        digest.update(self.images.contiguous().numpy().tobytes())
        digest.update(self.labels.contiguous().numpy().tobytes())
        return digest.hexdigest()

    def batches(self, batch_size: int, shard: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        """(uint8 (n, 3, s, s), labels (n,)) batches in split order; ``shard``: under DDP this rank's share only."""
        mine = _shard(len(self), shard)
        for start in range(mine.start, mine.stop, batch_size):
            stop = min(start + batch_size, mine.stop)
            yield self.images[start:stop], self.labels[start:stop]

    def num_batches(self, batch_size: int, shard: bool = False) -> int:
        return -(-len(_shard(len(self), shard)) // batch_size)

    def first_per_class(self, n: int) -> EvalImages:
        """The first ``n`` images of each class in split order (by file name): RDED's test set is the first 50 val
        images its loader lists per class (``os.listdir`` order, which depends on the file system; name order is the
        reproducible choice)."""
        labels = self.labels
        ranks = torch.zeros_like(labels)
        for label in labels.unique():
            members = (labels == label).nonzero().squeeze(1)  # positions of this class, in split order
            ranks[members] = torch.arange(len(members))
        keep = ranks < n
        return EvalImages(self.images[keep], labels[keep])


@torch.inference_mode()
def top1(model: torch.nn.Module, images: EvalImages, mean: Sequence[float], std: Sequence[float],
         device: torch.device | str, *, bf16: bool = False, batch_size: int = 256, desc: str = "accuracy") -> float:
    """Top-1 (fraction) of ``model`` on decoded images, normalised as ``eval_transform`` does; ``bf16``: the forward
    passes under bf16 autocast (as the model's training ran them). Leaves ``model`` in eval mode on ``device``."""
    device = torch.device(device)
    model.to(device).eval()
    correct = total = 0
    for pixels, labels in tqdm(images.batches(batch_size), desc=desc, unit="batch", leave=False,
                               total=images.num_batches(batch_size)):  # (n, 3, s, s) uint8, (n,)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(normalise(pixels.to(device, non_blocking=True), mean, std))  # (n, k)
        correct += int((logits.argmax(1).cpu() == labels).sum())
        total += labels.numel()
    if total == 0:
        raise ConfigError("cannot measure accuracy on an empty split")
    return correct / total


class StreamedEvalImages(EvalImages):
    """A split too large to hold decoded: the same batches, decoded by a loader at every pass."""

    def __init__(self, split: Any, input_size: int, num_workers: int) -> None:
        # no EvalImages.__init__: there is no tensor to hold; the labels are known without decoding
        self.split = split.with_transform(eval_geometry(input_size))
        self.num_workers = num_workers
        self.labels = torch.as_tensor(list(split.targets), dtype=torch.long)

    def batches(self, batch_size: int, shard: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        mine = Subset(self.split, list(_shard(len(self), shard)))
        yield from DataLoader(mine, batch_size=batch_size, num_workers=self.num_workers)


class EvalBatches:
    """An iterable over ``EvalImages`` batches with a length: a Lightning validation loader (the teacher's), or the
    student's validations (``shard``: this rank's share under DDP).
    Batches are uint8, or normalised float32 when ``mean`` and ``std`` are given."""

    def __init__(self, images: EvalImages, batch_size: int, shard: bool = True,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        self.images = images
        self.batch_size = batch_size
        self.shard = shard
        self.mean, self.std = mean, std

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for images, labels in self.images.batches(self.batch_size, self.shard):
            yield (normalise(images, self.mean, self.std) if self.mean is not None and self.std is not None
                   else images), labels

    def __len__(self) -> int:
        return self.images.num_batches(self.batch_size, self.shard)


def _decode(split: Any, input_size: int, num_workers: int) -> EvalImages:
    return EvalImages(*decode_split(split, eval_geometry(input_size), input_size, num_workers))


def _cache_key(split: Any, input_size: int) -> dict[str, Any]:
    return {
        "version": EVAL_IMAGES_VERSION,
        "split_root": str(Path(split.root).resolve()),
        "split_sha256": split.content_sha256(),  # names, labels, sizes and modification times (or pixels)
        "input_size": int(input_size),
    }


def decode_eval_images(
    split: Any,
    input_size: int,
    *,
    num_workers: int = 0,
    cache_dir: str | Path | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> EvalImages:
    """Decode ``split`` (an ImageSplit yielding PIL images) once. With ``cache_dir``, the tensor is stored in
    ``<cache_dir>/eval_images/`` under a key of the split's content and the input size (fgdd.cache.keyed) and read
    back by later calls."""
    nbytes = len(split) * 3 * input_size * input_size
    if nbytes > max_bytes:
        log.info("val split %s: %.1f GB decoded exceeds %.1f GB; it is decoded at every validation instead of held",
                 split.root, nbytes / 1e9, max_bytes / 1e9)
        return StreamedEvalImages(split, input_size, num_workers)
    if cache_dir is None:
        return _decode(split, input_size, num_workers)
    images, labels = decode_split_cached(
        split, eval_geometry(input_size), input_size, cache_dir=cache_dir, kind="eval_images",
        key=_cache_key(split, input_size), prefix=f"{Path(split.root).name}-{input_size}px", num_workers=num_workers,
        what="val split",
    )
    return EvalImages(images, labels)
