"""``python -m fgdd.run``: the Hydra entry point of one run (teacher -> selection -> student evaluation, one
self-describing run folder). The stages are in fgdd.pipeline, the run folder's policy in fgdd.run_folder, what the
entry points share (preflight, run_task) in fgdd.cli."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from fgdd.cli import CONF_DIR, preflight, run_task
from fgdd.pipeline import run

__all__ = ["CONF_DIR", "main", "preflight", "run", "run_task"]  # run: ``from fgdd.run import run`` runs a config


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="run")
def run_hydra(cfg: DictConfig) -> None:
    run_task(run, cfg)


def main() -> None:
    preflight("fgdd.run", "run", sys.argv[1:])
    run_hydra()


if __name__ == "__main__":
    main()
