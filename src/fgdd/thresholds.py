"""Class-wise patch-decision thresholds: from each class's occupancies, the value at or above which an image
takes the resize path (the whole image) instead of RDED's crop path."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from fgdd.errors import ConfigError

Occupancies = Mapping[int, np.ndarray]  # label -> occupancies of the class's images, (n,)


class QuantileThreshold:
    """Per class, the q-quantile of its occupancies: a fraction (1 - q) of each class's images is resized."""

    needs_occupancy = True

    def __init__(self, q: float, name: str = "quantile") -> None:
        if not 0.0 <= q <= 1.0:
            raise ConfigError(f"threshold q must be in [0, 1], got {q}")
        self.name, self.q = name, q

    def __call__(self, occupancies: Occupancies) -> dict[int, float]:
        return {label: float(np.quantile(values, self.q)) if len(values) else math.inf
                for label, values in occupancies.items()}


class MeanThreshold:
    needs_occupancy = True

    def __init__(self, name: str = "mean") -> None:
        self.name = name

    def __call__(self, occupancies: Occupancies) -> dict[int, float]:
        return {label: float(np.mean(values)) if len(values) else math.inf for label, values in occupancies.items()}


class GlobalThreshold:
    """One value for every class (the ablation against class-wise thresholds)."""

    def __init__(self, value: float, name: str = "global") -> None:
        self.name, self.value = name, float(value)
        # at +-inf every image goes one way whatever its foreground, so nothing needs segmenting
        self.needs_occupancy = math.isfinite(self.value)

    def __call__(self, occupancies: Occupancies) -> dict[int, float]:
        return {label: self.value for label in occupancies}


def never(name: str = "never") -> GlobalThreshold:
    """No image is ever resized: the selector is exactly RDED."""
    return GlobalThreshold(math.inf, name)


def always(name: str = "always") -> GlobalThreshold:
    """Every image is resized (occupancy >= -inf)."""
    return GlobalThreshold(-math.inf, name)
