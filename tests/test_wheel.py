"""The built wheel, installed without the source tree, carries its configs and runs from any folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.test_run import TINY, TINY_SHAPES

REPO = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ["pyproject.toml", "README.md", "conf", "src"]  # what setuptools reads to build the wheel
# PYTHONPATH points at a checkout's src/ in development: pip would take its egg-info for an installed fgdd
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A fresh venv with only the wheel installed; the dev environment's packages (torch, hydra, ...) are visible
    through a .pth line naming its site-packages. Such a line is a plain path: the .pth files inside that folder
    (among them the editable install of fgdd) are not processed, so fgdd can only come from the wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    tree = tmp / "tree"  # a copy of what the build reads, so that no build/ or egg-info lands in the checkout
    tree.mkdir()
    for name in BUILD_INPUTS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tree / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, tree / name)
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(tree)],
                   check=True, capture_output=True, text=True, env=CLEAN_ENV)
    (wheel,) = (tmp / "dist").glob("fgdd-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, text=True, env=CLEAN_ENV)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "dev-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def run_isolated(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    # -I: neither PYTHONPATH (which points at a checkout's src/ in development) nor the working folder is on sys.path
    env = {**CLEAN_ENV, "FGDD_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    return subprocess.run([str(venv / "bin" / "python"), "-I", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def test_the_wheel_carries_its_configs_and_runs_from_another_folder(wheel_venv: Path, tmp_path: Path) -> None:
    where = run_isolated(wheel_venv, "-c", "import importlib.resources, fgdd; print(fgdd.__file__); "
                         "print(importlib.resources.files(fgdd) / 'conf')", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    package, conf = (Path(line) for line in where.stdout.split())
    assert package.is_relative_to(wheel_venv), f"fgdd was imported from {package}, not from the wheel"
    assert conf.is_relative_to(wheel_venv) and not conf.is_symlink() and (conf / "run.yaml").is_file()
    shipped = {p.relative_to(conf) for p in conf.rglob("*.yaml")}
    assert shipped == {p.relative_to(REPO / "conf") for p in (REPO / "conf").rglob("*.yaml")}

    job = run_isolated(wheel_venv, "-m", "fgdd.run", "--cfg", "job", "selector=fgdd", cwd=tmp_path)
    assert job.returncode == 0, job.stderr
    assert "ipc: 10" in job.stdout and "name: fgdd" in job.stdout
    segment = run_isolated(wheel_venv, "-m", "fgdd.segment", "--cfg", "job", "shard.count=4", cwd=tmp_path)
    assert segment.returncode == 0, segment.stderr
    assert "count: 4" in segment.stdout

    overrides = [*TINY_SHAPES, *TINY,
                 f"data_root={tmp_path / 'data'}", f"cache_dir={tmp_path / 'cache'}", "hydra.run.dir=run"]
    tiny = run_isolated(wheel_venv, "-m", "fgdd.run", *overrides, cwd=tmp_path)
    assert tiny.returncode == 0, tiny.stdout[-2000:] + tiny.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.json").is_file() and (tmp_path / "run" / "distilled" / "manifest.jsonl").is_file()
    assert f"path: {conf}" in (tmp_path / "run" / ".hydra" / "hydra.yaml").read_text()  # composed from the wheel's
