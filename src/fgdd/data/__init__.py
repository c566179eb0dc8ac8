"""Datasets with explicit class lists, the protocol transforms, and the generated shapes demo set."""

from fgdd.data.base import (
    DATA_DIR_ENV,
    IMAGE_EXTENSIONS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageDataset,
    ImageSplit,
    folder_split,
    open_rgb,
    resolve_data_root,
    to_rgb,
)
from fgdd.data.cifar import CIFAR10Dataset, CIFAR100Dataset, PickledImageSplit
from fgdd.data.folder import ImageFolderDataset
from fgdd.data.imagenette import ImagenetteDataset, ImageWoofDataset
from fgdd.data.shapes import SHAPE_KINDS, ShapesDataset
from fgdd.data.tinyimagenet import TinyImageNetDataset, read_boxes
from fgdd.data.transforms import eval_transform, resize_to_tensor, teacher_train_transform

__all__ = [
    "DATA_DIR_ENV",
    "IMAGE_EXTENSIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SHAPE_KINDS",
    "CIFAR10Dataset",
    "CIFAR100Dataset",
    "ImageDataset",
    "ImageFolderDataset",
    "ImageSplit",
    "ImageWoofDataset",
    "ImagenetteDataset",
    "PickledImageSplit",
    "ShapesDataset",
    "TinyImageNetDataset",
    "eval_transform",
    "folder_split",
    "open_rgb",
    "read_boxes",
    "resize_to_tensor",
    "resolve_data_root",
    "teacher_train_transform",
    "to_rgb",
]
