"""The grid a sweep asked for (its multirun.yaml) against the run folders it left: which cells are missing.

Hydra's basic sweeper runs the cartesian product of every ``key=a,b,c`` override; each job records its own
overrides in ``<run>/.hydra/overrides.yaml``. The grid is expanded here the same way, with Hydra's override
parser, and a cell is present when some run folder under the sweep recorded exactly its overrides.
"""

from __future__ import annotations

import functools
import itertools
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

MULTIRUN = "multirun.yaml"


@dataclass
class Grid:
    folder: Path                # the sweep folder (holds multirun.yaml)
    command: list[str]          # the overrides typed after ``python -m fgdd.run -m``
    cells: list[list[str]] = field(default_factory=list)  # each job's overrides, as Hydra hands them to it
    swept: list[str] = field(default_factory=list)        # keys with more than one value
    error: str | None = None    # why the grid could not be expanded (then nothing is called missing)

    def command_line(self) -> str:
        return "python -m fgdd.run -m " + shlex.join(self.command)

    def describe(self, overrides: list[str]) -> str:
        """The swept part of a job's overrides (the rest is the same for every job)."""
        swept = [o for o in overrides if _key(o) in self.swept]
        return " ".join(swept or overrides)


def expand(overrides: list[str]) -> tuple[list[list[str]], list[str]]:
    """(every job's overrides, the swept keys), as Hydra's basic sweeper expands them: a later override of
    the same key replaces an earlier one in place; ``range()`` and ``choice()`` sweeps are discrete too."""
    values: dict[str, list[str]] = {}
    for override in _parser().parse_overrides(overrides):
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise ValueError(f"{key}: only discrete sweeps (a,b,c / range / choice) can be expanded")
            values[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            values[key] = [f"{key}={override.get_value_element_as_str()}"]
    cells = [list(cell) for cell in itertools.product(*values.values())]
    return cells, [key for key, options in values.items() if len(options) > 1]


def read_grid(multirun_yaml: Path) -> Grid:
    hydra_cfg: dict[str, Any] = (yaml.safe_load(multirun_yaml.read_text()) or {}).get("hydra", {})
    command = list((hydra_cfg.get("overrides") or {}).get("task") or [])
    params = (hydra_cfg.get("sweeper") or {}).get("params") or {}
    grid = Grid(folder=multirun_yaml.parent, command=command)
    try:  # sweeper params (from a config) come first, the command line after them, as in Hydra's sweeper
        grid.cells, grid.swept = expand([f"{k}={v}" for k, v in params.items()] + command)
    except Exception as error:  # glob() over a config group needs Hydra's config loader; say so, do not guess
        grid.error = f"{type(error).__name__}: {error}"
    return grid


def find_grids(root: str | Path) -> list[Grid]:
    return [read_grid(path) for path in sorted(Path(root).rglob(MULTIRUN))]


@functools.lru_cache(maxsize=1)
def _parser() -> OverridesParser:
    return OverridesParser.create()


@functools.lru_cache(maxsize=65536)  # a sweep repeats the same few override strings in every job
def _pair(override: str) -> tuple[str, str]:
    parsed = _parser().parse_override(override)
    return parsed.get_key_element(), parsed.get_value_element_as_str()


def _key(override: str) -> str:
    return _pair(override)[0]


def canonical(overrides: list[str]) -> frozenset[tuple[str, str]]:
    """Overrides as (key, value) pairs, order-free, so ``a=1 b=2`` and ``b=2 a=1`` name the same job."""
    return frozenset(_pair(o) for o in overrides)


def _under(run: str, folder: Path) -> bool:
    return Path(run).resolve().is_relative_to(folder.resolve())


def match(grid: Grid, rows: list[dict[str, Any]]) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """(cells no run folder under the sweep recorded, runs under the sweep that are not in its grid)."""
    if grid.error is not None:
        return [], []
    mine = [row for row in rows if _under(row["run"], grid.folder)]
    present = {canonical(row["overrides"]): row for row in mine if row.get("overrides") is not None}
    wanted = {canonical(cell) for cell in grid.cells}
    missing = [cell for cell in grid.cells if canonical(cell) not in present]
    outside = [row for key, row in present.items() if key not in wanted]
    outside += [row for row in mine if row.get("overrides") is None]  # made outside Hydra: no overrides to match
    return missing, outside
