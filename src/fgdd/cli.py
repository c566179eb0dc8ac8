"""What the Hydra entry points (``fgdd.run``, ``fgdd.segment``) share: the config folder, the preflight that
refuses a bad command line before Hydra makes a folder, and ``run_task``, the body that turns an FgddError into one
message and exit status 2 and SIGTERM into a non-zero exit."""

from __future__ import annotations

import itertools
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import DictConfig

from fgdd.config import CONF_DIR, compose_checked, parse_overrides, register_resolvers
from fgdd.errors import ConfigError, FgddError
from fgdd.pipeline import in_multirun
from fgdd.utils.console import quiet_console

__all__ = ["CONF_DIR", "command_line_jobs", "preflight", "run_task"]

log = logging.getLogger("fgdd")
MULTIRUN_FLAGS = {"-m", "--multirun"}

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


def preflight(program: str, config_name: str, argv: Sequence[str]) -> None:
    """Every job of the command line composed and validated before Hydra starts, since Hydra makes a job's run
    folder before the job runs: a config error is one message and exit status 2, and leaves no folder behind."""
    jobs = command_line_jobs(argv)
    for number, job in enumerate(jobs, start=1):
        try:
            compose_checked(job, config_name)
        except ConfigError as error:
            which = f" (job {number} of {len(jobs)}: {' '.join(job)})" if len(jobs) > 1 else ""
            print(f"{program}: {error}{which}", file=sys.stderr)
            sys.exit(2)


def command_line_jobs(argv: Sequence[str]) -> list[list[str]]:
    """The overrides of each job the command line asks for (a multirun's sweeps expanded as Hydra's basic sweeper
    expands them); none where Hydra's own flags (--cfg, --help, -cn ...) or sweeps it alone can enumerate (globs,
    intervals) are given: Hydra then handles the command line, and a job still validates its config itself."""
    from hydra.core.override_parser.types import ValueType

    flags = {arg for arg in argv if arg.startswith("-")}
    overrides = [arg for arg in argv if not arg.startswith("-")]
    if flags - MULTIRUN_FLAGS:
        return []
    if not flags:
        return [overrides]
    try:
        parsed = parse_overrides(overrides)
    except ConfigError:
        return [overrides]  # refused by the first compose, with Hydra's message
    enumerable = {None, ValueType.ELEMENT, ValueType.SIMPLE_CHOICE_SWEEP, ValueType.CHOICE_SWEEP,
                  ValueType.RANGE_SWEEP}  # None: a deletion, ~key
    if any(o.value_type not in enumerable for o in parsed):
        return []
    choices = [[f"{o.get_key_element()}={value}" for value in o.sweep_string_iterator()] if o.is_sweep_override()
               else [str(o.input_line)] for o in parsed]
    return [list(job) for job in itertools.product(*choices)]
