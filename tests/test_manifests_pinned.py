"""Same seed, same distilled set across refactorings: tiny rded and fgdd runs reproduce, byte for byte, the
manifests recorded (tests/data/manifests/) before issue 13 reorganised the package."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from fgdd.run import CONF_DIR, run

PINNED = Path(__file__).parent / "data" / "manifests"
SPEC = json.loads((PINNED / "overrides.json").read_text())


def pinned_run(name: str, tmp: Path) -> Path:
    """Run ``name``'s tiny configuration into ``tmp/name``; the teacher cache in ``tmp`` is shared by both runs."""
    overrides = [*SPEC["common"], *SPEC["runs"][name], f"data_root={tmp / 'data'}", f"cache_dir={tmp / 'cache'}"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="run", overrides=overrides)
    run(cfg, tmp / name)
    return tmp / name / "distilled" / "manifest.jsonl"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pinned")


@pytest.mark.parametrize("name", sorted(SPEC["runs"]))
def test_manifest_bytes_match_the_recorded_ones(name: str, workspace: Path) -> None:
    recorded = (PINNED / f"{name}.jsonl").read_bytes()
    produced = pinned_run(name, workspace).read_bytes()
    assert produced == recorded, f"{name}: the distilled set changed for the same seed (see tests/data/manifests)"


if __name__ == "__main__":  # re-record (only when a change of the distilled set is intended): python tests/test_...
    import tempfile

    os.environ.setdefault("FGDD_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        for run_name in sys.argv[1:] or sorted(SPEC["runs"]):
            (PINNED / f"{run_name}.jsonl").write_bytes(pinned_run(run_name, Path(tmp)).read_bytes())
