"""One entry of a keyed cache: a key (a JSON-able dict of everything the entry depends on) names a path
``<cache_dir>/<kind>/[<prefix>-]<digest[:12]><suffix>`` and is stored with the entry, so a read checks that the
entry was written for this key (a shortened digest could collide; a file could be foreign or damaged).

Two shapes: a *file* keeps its key inside (a JSON record's ``"key"``, a field of a torch file), a *folder* keeps
it in ``cache_key.json`` beside its files. Entries are written atomically (fgdd.utils.io) and never replaced: a
concurrent writer that got there first wins. An entry that cannot be read or holds another key is logged, set
aside (renamed ``*.untrusted``, never deleted) and treated as a miss, so the value is computed and stored again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from fgdd.utils.io import atomic_path, atomic_write_json, publish_folder

log = logging.getLogger(__name__)

KEY_FILE = "cache_key.json"  # a folder entry's key: {"sha256": <full digest>, **key}
DIGEST_CHARS = 12  # in the name; the stored key settles the rare collision
T = TypeVar("T")



def canonical(key: Mapping[str, Any]) -> dict[str, Any]:
    """The key as a JSON file gives it back (tuples as lists, other values as their str), for comparisons."""
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def key_digest(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def set_aside(path: Path, reason: str) -> Path:
    """Rename ``path`` to ``<name>.untrusted`` (``.untrusted.1``, ... if taken: nothing is ever deleted)."""
    aside = path.with_name(path.name + ".untrusted")
    n = 0
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.untrusted.{n}")
    path.rename(aside)
    log.warning("cache entry %s not trusted (%s); moved to %s, computing it again", path, reason, aside)
    return aside


class KeyedEntry:
    """The entry of ``kind`` for ``key`` under ``cache_dir``; ``prefix`` makes the name readable (dataset, arch)."""

    def __init__(self, cache_dir: str | Path, kind: str, key: Mapping[str, Any], *, prefix: str | None = None,
                 suffix: str = "") -> None:
        self.key = canonical(key)
        self.digest = key_digest(key)
        name = f"{prefix}-{self.digest[:DIGEST_CHARS]}" if prefix else self.digest[:DIGEST_CHARS]
        self.path = Path(cache_dir) / kind / f"{name}{suffix}"

    def _distrust(self, reason: str) -> None:
        try:
            set_aside(self.path, reason)
        except FileNotFoundError:  # a concurrent reader set it aside first
            pass

    # -- file entries ------------------------------------------------------------------------------------------
    def read(self, load: Callable[[Path], tuple[Any, T]]) -> T | None:
        """``load(path) -> (the key stored in the file, the value)``; raising means the file is unreadable.
        None when absent, unreadable or written for another key (the last two set aside)."""
        if not self.path.is_file():
            return None
        try:
            stored_key, value = load(self.path)
            if canonical(stored_key) != self.key:
                raise ValueError("written for another key")
        except Exception as error:  # whatever a damaged file raises (JSON, pickle, zip, a missing field): a miss
            self._distrust(f"{type(error).__name__}: {error}")
            return None
        return value

    def write(self, save: Callable[[Path], None]) -> bool:
        """``save(tmp)`` writes the file (its key inside) to a temporary path that is then published; False when
        another writer published the entry first (theirs is kept)."""
        try:
            with atomic_path(self.path, exclusive=True) as tmp:
                save(tmp)
        except FileExistsError:
            return False
        return True

    def read_json(self, parse: Callable[[dict[str, Any]], T]) -> T | None:
        """A JSON record ``{"key": ..., **fields}``; ``parse(record)`` returns the value or raises if it is invalid."""
        def load(path: Path) -> tuple[Any, T]:
            record = json.loads(path.read_text())
            return record["key"], parse(record)
        return self.read(load)

    def write_json(self, fields: Mapping[str, Any]) -> bool:
        try:
            atomic_write_json(self.path, {**fields, "key": self.key}, exclusive=True)
        except FileExistsError:
            return False
        return True

    def adopt_json(self, old: str | Path, parse: Callable[[dict[str, Any]], T]) -> T | None:
        """The value of a JSON record ``{"key": ..., **fields}`` that an older fgdd wrote for this key under another
        name (``old``), copied to this entry's path so that later reads find it here; the old file stays where it
        was (older versions still read it). None when ``old`` is absent, unreadable or holds another key (logged,
        left alone: the value is computed again and stored under the new name)."""
        old = Path(old)
        if not old.is_file():
            return None
        try:
            record = json.loads(old.read_text())
            if canonical(record["key"]) != self.key:
                raise ValueError("written for another key")
            value = parse(record)
        except Exception as error:  # whatever a damaged file raises, as in ``read``
            log.warning("ignoring the older cache entry %s (%s: %s); computing it again", old,
                        type(error).__name__, error)
            return None
        self.write_json({k: v for k, v in record.items() if k != "key"})  # a concurrent adopter's copy is the same
        log.info("cache entry %s copied to its current name %s", old, self.path)
        return value

    # -- folder entries ----------------------------------------------------------------------------------------
    def folder_matches(self) -> bool:
        """Whether the folder exists with this key in ``cache_key.json``; a folder with another or an unreadable
        key is set aside (then False)."""
        if not self.path.is_dir():
            return False
        try:
            stored = json.loads((self.path / KEY_FILE).read_text())
            if stored.pop("sha256") != self.digest or stored != self.key:
                raise ValueError("written for another key")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:  # JSON errors are ValueErrors
            self._distrust(f"{KEY_FILE}: {type(error).__name__}: {error}")
            return False
        return True

    @contextlib.contextmanager
    def publish(self) -> Iterator[Path]:
        """A staging folder (holding ``cache_key.json``) to fill; published whole when the block ends, unless a
        concurrent writer published the entry first (theirs is kept)."""
        with publish_folder(self.path, exist_ok=True) as staging:
            self._write_key(staging)
            yield staging

    def open_folder(self) -> Path:
        """The folder, created (with ``cache_key.json``) if absent, for an entry built in place over time (a
        teacher's resumable training); call ``folder_matches`` first so that a foreign folder is set aside."""
        if not self.path.is_dir():
            # published with its key inside, so a concurrent reader never sees the folder without it
            with self.publish():
                pass
        return self.path

    def _write_key(self, folder: Path) -> None:
        atomic_write_json(folder / KEY_FILE, {"sha256": self.digest, **self.key})
