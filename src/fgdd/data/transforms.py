"""The image transforms of RDED's protocol (evaluation, teacher training) and a plain resize."""

from __future__ import annotations

from collections.abc import Sequence

from torchvision import transforms as T


def eval_transform(input_size: int, mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    # RDED's code resizes the short side to input_size // 7 * 8 (not round(input * 8/7)): 32 -> 32 (no crop at
    # all for CIFAR), 64 -> 72, 128 -> 144, 224 -> 256; kept so accuracies compare with RDED's tables. On the
    # reference CIFAR-10 teacher, int(32 * 8/7) = 36 then crop 32 costs about 7 points.
    return T.Compose([
        T.Resize(input_size // 7 * 8, antialias=True),
        T.CenterCrop(input_size),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


def teacher_train_transform(input_size: int, mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    # The CIFAR recipe (pad by 1/8 and crop, flip) at any input size; reflect padding avoids black borders.
    return T.Compose([
        T.Resize((input_size, input_size)),
        T.RandomCrop(input_size, padding=input_size // 8, padding_mode="reflect"),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


def teacher_rrc_transform(
    input_size: int, mean: Sequence[float], std: Sequence[float], scale: tuple[float, float] = (0.08, 1.0)
) -> T.Compose:
    # torchvision's reference ImageNet recipe (RandomResizedCrop + flip), which RDED adapted for its released
    # teachers; scale (0.08, 1) is torchvision's default, a narrower range suits short CPU-sized schedules.
    return T.Compose([
        T.RandomResizedCrop(input_size, scale=tuple(scale), antialias=True),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


TEACHER_AUGMENTATIONS = ("pad_crop_flip", "random_resized_crop")


def resize_to_tensor(size: int) -> T.Compose:
    return T.Compose([T.Resize((size, size)), T.ToTensor()])
