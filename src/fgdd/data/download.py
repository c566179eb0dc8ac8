"""Fetching public archives with torchvision's downloader; every failure becomes one DownloadUnavailableError."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from fgdd.errors import DownloadUnavailableError
from fgdd.utils.io import publish_folder

# Seconds before a silent connection counts as offline (urllib's default is to wait forever).
NETWORK_TIMEOUT_S = 20.0


def _download_and_extract(url: str, download_root: Path, filename: str | None, md5: str | None) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive(url, str(download_root), filename=filename, md5=md5)


def offline() -> bool:
    """FGDD_OFFLINE=1 (set by the Makefile, CI and tests) refuses downloads at once instead of trying the network."""
    return os.environ.get("FGDD_OFFLINE", "").lower() in ("1", "true", "yes")


def fetch_folder(url: str, md5: str | None, folder: str, dest: Path, *, what: str, layout: str) -> Path:
    """Download the archive at `url` and move the `folder` it holds to `dest` (atomically; no partial data)."""
    if offline():
        raise DownloadUnavailableError(
            f"{what}: download=true but FGDD_OFFLINE=1 forbids network access. Obtain the archive "
            f"{Path(url).name} elsewhere and unpack it so that {dest} holds {layout}; then run with download=false."
        )
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(NETWORK_TIMEOUT_S)
    try:
        with publish_folder(dest) as staging:
            archive = staging / ".archive"  # the download and its extraction; only `folder` becomes dest
            _download_and_extract(url, archive, Path(url).name, md5)
            extracted = archive / folder
            if not extracted.is_dir():
                raise RuntimeError(f"the archive did not contain the folder {folder!r}")
            for child in extracted.iterdir():
                child.rename(staging / child.name)
            shutil.rmtree(archive)  # inside our own staging folder
    except Exception as error:  # any failure (offline, DNS, HTTP, checksum, disk) means: place the files by hand
        raise DownloadUnavailableError(
            f"{what}: download failed ({type(error).__name__}: {error}). Without network access, obtain the "
            f"archive {Path(url).name} elsewhere and unpack it so that {dest} holds {layout}; then run with "
            "download=false."
        ) from error
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return dest


def no_download(what: str, dest: Path, layout: str) -> DownloadUnavailableError:
    return DownloadUnavailableError(
        f"{what}: fgdd cannot download this dataset. Place the files so that {dest} holds {layout}, "
        "then run with download=false."
    )
