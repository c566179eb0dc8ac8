"""``python -m fgdd.run``: the Hydra entry point of one run (teacher -> selection -> student evaluation, one
self-describing run folder). The stages are in fgdd.pipeline, the run folder's policy in fgdd.run_folder."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from fgdd.config import register_resolvers
from fgdd.errors import FgddError
from fgdd.pipeline import in_multirun, run
from fgdd.utils.console import quiet_console

__all__ = ["CONF_DIR", "main", "run", "run_task"]  # run: ``from fgdd.run import run`` runs a composed config

log = logging.getLogger("fgdd")
CONF_DIR = str((Path(__file__).parent / "conf").resolve())  # the package data fgdd/conf: in a clone, a link to conf/

register_resolvers()  # conf/ interpolates ${accelerator:...}; must exist before Hydra resolves anything


def exit_on_sigterm(signum: int, frame: Any) -> None:
    # Lightning turns SIGTERM into SystemExit() (status 0), so a scheduler would count a killed run as done;
    # raised as an error, it unwinds like one (failed.json, temporary files removed) and exits with 128 + 15
    raise SystemExit(128 + signum)


def run_task(task: Callable[[DictConfig], Any], cfg: DictConfig) -> None:
    """A Hydra entry point's body: an FgddError is one logged message and exit status 2 (in a multirun, Hydra
    marks the job failed, runs the rest of the sweep and exits non-zero at the end); SIGTERM exits non-zero."""
    signal.signal(signal.SIGTERM, exit_on_sigterm)  # Lightning keeps it, beside its own handler, while it trains
    quiet_console()
    try:
        task(cfg)
    except FgddError as error:
        log.error("%s", error)
        if in_multirun():
            raise
        sys.exit(2)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="run")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    main()
