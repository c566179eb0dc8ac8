"""What every stage needs to know about a dataset besides its images: one typed record, built by the dataset."""

from __future__ import annotations

from dataclasses import dataclass

from fgdd.errors import ConfigError


@dataclass(frozen=True)
class DatasetSpec:
    """The dataset's protocol: its class list (label order), input resolution, normalisation and mosaic factor.

    Selection, segmentation, the teacher and the student read these from here, never as loose arguments, so that a
    stage cannot be handed one dataset's mean with another's input size.
    """

    name: str
    classes: tuple[str, ...]  # folder ids / wnids in label order (the teacher's order)
    class_names: tuple[str, ...]  # readable names, same order (text prompts of open-vocabulary segmenters)
    input_size: int  # side of the square network input, px
    mean: tuple[float, float, float]  # RGB normalisation of the network input
    std: tuple[float, float, float]
    factor: int  # mosaic side in cells (factor x factor patches per distilled image)

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.classes):
            raise ConfigError(f"{self.name}: {len(self.class_names)} class_names for {len(self.classes)} classes")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ConfigError(f"{self.name}: mean and std need 3 values (R, G, B), got {self.mean}, {self.std}")
        if self.input_size <= 0 or self.factor <= 0 or self.input_size % self.factor:
            raise ConfigError(f"{self.name}: input_size {self.input_size} must be a positive multiple of factor "
                              f"{self.factor}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)
