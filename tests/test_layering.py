"""The config stops at the entry points (issue 22): below them, modules take objects and plain values."""

from __future__ import annotations

import ast
from pathlib import Path

import fgdd

SRC = Path(fgdd.__file__).parent
# the entry points, what they share (cli.py), the pipeline that builds each config group once, and config.py
CONFIG_READERS = {"run.py", "check.py", "segment.py", "cli.py", "pipeline.py", "config.py"}


def names_imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_entry_points_pipeline_and_config_import_dictconfig() -> None:
    importing = {str(path.relative_to(SRC)) for path in SRC.rglob("*.py")
                 if "omegaconf.DictConfig" in names_imported(path)}
    assert importing, "the scan found no DictConfig import at all: it reads the wrong files"
    assert importing <= CONFIG_READERS, f"below the pipeline: {sorted(importing - CONFIG_READERS)}"


def test_caches_import_no_layer_above_them() -> None:
    climbing = {str(path.relative_to(SRC)): sorted(name for name in names_imported(path)
                                                   if name.startswith(("fgdd.selection", "fgdd.pipeline")))
                for path in (SRC / "cache").glob("*.py")}
    assert not {path: names for path, names in climbing.items() if names}
