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
from fgdd.data.images import ImageInfo, inspect_image, inspect_images
from fgdd.data.shapes import SHAPE_KINDS, ShapesDataset
from fgdd.data.spec import DatasetSpec
from fgdd.data.tinyimagenet import TinyImageNetDataset, read_boxes
from fgdd.data.transforms import (
    ASPECTS,
    SquareResize,
    eval_transform,
    resize_to_tensor,
    square_box,
    square_image,
    teacher_train_transform,
)

__all__ = [
    "ASPECTS",
    "DATA_DIR_ENV",
    "IMAGE_EXTENSIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SHAPE_KINDS",
    "CIFAR10Dataset",
    "CIFAR100Dataset",
    "DatasetSpec",
    "ImageDataset",
    "ImageFolderDataset",
    "ImageInfo",
    "ImageSplit",
    "ImageWoofDataset",
    "ImagenetteDataset",
    "PickledImageSplit",
    "ShapesDataset",
    "SquareResize",
    "TinyImageNetDataset",
    "eval_transform",
    "folder_split",
    "inspect_image",
    "inspect_images",
    "open_rgb",
    "read_boxes",
    "resize_to_tensor",
    "resolve_data_root",
    "square_box",
    "square_image",
    "teacher_train_transform",
    "to_rgb",
]
