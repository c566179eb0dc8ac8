"""Atomic, append-only writing of files and folders: every output goes to a temporary name in the same folder, then
is renamed."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename inside ``folder`` durable (a node that loses power keeps either the old or the new file)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms without directory handles (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories; the rename itself is still atomic
        pass
    finally:
        os.close(fd)


def _publish_exclusive(tmp: Path, target: Path) -> None:
    try:
        os.link(tmp, target)  # atomic, and fails with FileExistsError if target exists
    except FileExistsError:
        raise
    except OSError:  # file systems without hard links: a check, then the rename (not race-free)
        if target.exists():
            raise FileExistsError(f"{target} already exists; it is never overwritten") from None
        os.replace(tmp, target)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error (disk full, a kill that
    Python sees) remove it, leaving ``path`` as it was. ``exclusive``: never replace an existing ``path``
    (FileExistsError instead), so two processes cannot both publish it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if exclusive:
            _publish_exclusive(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, exclusive: bool = False) -> None:
    with atomic_path(path, exclusive=exclusive) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them


def atomic_write_text(path: str | os.PathLike[str], text: str, *, exclusive: bool = False) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), exclusive=exclusive)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, exclusive: bool = False) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", exclusive=exclusive)


def atomic_torch_save(path: str | os.PathLike[str], obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


@contextlib.contextmanager
def publish_folder(target: str | os.PathLike[str], *, exist_ok: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; when the block ends without error, its files are made
    durable and the folder is renamed to ``target``, so ``target`` appears complete or not at all. On an error the
    staging folder is removed (only it: never the user's files). An existing ``target`` is never replaced:
    FileExistsError, or with ``exist_ok`` the staged copy is dropped (a concurrent writer published the same)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield staging
        umask = os.umask(0)  # read it back: mkdtemp made the staging folder private, the published one follows it
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
        for folder in sorted((p for p in staging.rglob("*") if p.is_dir()), reverse=True):
            fsync_dir(folder)  # the names inside each folder reach the disk before the folder is renamed
        fsync_dir(staging)
        if target.exists():
            if exist_ok:
                return
            raise FileExistsError(f"{target} already exists; it is never replaced")
        try:
            os.rename(staging, target)  # atomic on one filesystem; fails rather than replaces a non-empty folder
        except OSError:
            if not (exist_ok and target.is_dir()):
                raise
            return
        fsync_dir(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # our own staging folder (gone after a successful rename)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file's bytes, read in chunks (checkpoints, weight files, exported labels)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
