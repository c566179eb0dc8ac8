"""``python -m fgdd.segment``: measure occupancy ahead of a sweep, one shard of the images per job.

The jobs of a multirun (e.g. on SLURM) each segment their share of the images the sweep's seeds draw, writing
chunks into the shared occupancy cache; the runs that follow find every value there and segment nothing.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fgdd.cli import CONF_DIR, preflight, run_task
from fgdd.config import validate
from fgdd.errors import ConfigError
from fgdd.pipeline import obtain_teacher
from fgdd.selection.candidates import draw_images
from fgdd.utils.device import resolve_device

log = logging.getLogger("fgdd")


def shard_images(split: Any, mipc: int, seeds: list[int], index: int, count: int, by: str) -> list[int]:
    """This shard's part of the images the given seeds draw (mipc per class), in a stable order."""
    if not 0 <= index < count:
        raise ConfigError(f"shard.index must be in [0, shard.count={count}), got {index}")
    if by not in ("image", "class"):
        raise ConfigError(f"shard.by must be 'image' or 'class', got {by!r}")
    drawn = sorted({i for seed in seeds for label in range(len(split.classes))
                    for i in draw_images(split.indices_of_class(label), mipc, seed, label)})
    if by == "class":
        return [i for i in drawn if split.targets[i] % count == index]
    return drawn[index::count]


def segment(cfg: DictConfig) -> dict[str, int]:
    validate(cfg)
    if "segmenter" not in cfg.selector:
        raise ConfigError(f"fgdd.segment measures occupancy for selector=fgdd; selector={cfg.selector.name} has none")
    device = resolve_device(cfg.device)
    dataset = instantiate(cfg.dataset, _convert_="all")
    split = dataset.train()
    selector = instantiate(cfg.selector, _convert_="all")
    indices = shard_images(split, selector.mipc, list(cfg.shard.seeds), cfg.shard.index, cfg.shard.count, cfg.shard.by)
    log.info("shard %d of %d (by %s): %d images of %s", cfg.shard.index, cfg.shard.count, cfg.shard.by, len(indices),
             dataset.name)
    # cam reads the teacher; cached anyway
    teacher, _ = obtain_teacher(cfg, dataset, device, OmegaConf.to_container(cfg.trainer, resolve=True))
    measured = selector.measure(split, indices, teacher, device, dataset)  # logs how many were already cached
    result = {"images": len(indices), "with_occupancy": len(measured)}  # unreadable images get none
    log.info("occupancy of %s for shard %d of %d: %s", dataset.name, cfg.shard.index, cfg.shard.count, result)
    return result


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="segment")
def run_hydra(cfg: DictConfig) -> None:
    run_task(segment, cfg)


def main() -> None:
    preflight("fgdd.segment", "segment", sys.argv[1:])
    run_hydra()


if __name__ == "__main__":
    main()
