"""Errors that end a run with one clear message (the run prints ``str(error)`` and exits non-zero)."""

from __future__ import annotations

from collections.abc import Sequence

LISTED = 10  # items a message names from a long list; the rest are counted


class FgddError(Exception):
    """Base class: a problem the user can fix; the message says how."""


class ConfigError(FgddError):
    pass


class DatasetNotFoundError(FgddError):
    pass


class DownloadUnavailableError(FgddError):
    pass


class CorruptImageError(FgddError):
    pass


class ClassMismatchError(FgddError):
    """Two class lists that must be equal; the message gives their difference, never both lists (a Tiny-ImageNet
    copy has 200 or more)."""

    def __init__(self, what: str, expected: list[str], got: list[str], remedy: str = "") -> None:
        super().__init__(f"class list mismatch ({what}): {class_difference(expected, got)}."
                         f"{' ' + remedy if remedy else ''}")
        self.expected = expected
        self.got = got


def listed(items: Sequence[str], limit: int = LISTED) -> str:
    """The first ``limit`` items, then how many more: a message stays readable for a 1000-class list."""
    return f"{list(items[:limit])}{f' and {len(items) - limit} more' if len(items) > limit else ''}"


def class_difference(expected: Sequence[str], got: Sequence[str]) -> str:
    """What separates ``got`` from ``expected``: the classes missing, the extra ones, and the first position where
    the classes both hold come in another order (a label is a position in the list)."""
    wanted, found = set(expected), set(got)
    missing = [c for c in expected if c not in found]
    extra = [c for c in got if c not in wanted]
    parts = [f"{len(expected)} expected, {len(got)} got"]
    parts += [f"missing {len(missing)}: {listed(missing)}"] if missing else []
    parts += [f"extra {len(extra)}: {listed(extra)}"] if extra else []
    shared_expected = [c for c in expected if c in found]
    shared_got = [c for c in got if c in wanted]
    pairs = zip(shared_expected, shared_got, strict=False)
    first = next((k for k, (a, b) in enumerate(pairs) if a != b), None)
    if first is not None:
        among = " of the classes both hold" if missing or extra else ""
        parts.append(f"another order from position {first}{among}: expected {shared_expected[first]!r}, got "
                     f"{shared_got[first]!r}")
    return "; ".join(parts)


class CheckpointError(FgddError):
    pass


class TeacherTooWeakError(FgddError):
    pass


class ModelUnavailableError(FgddError):
    """Pretrained weights cannot be loaded (offline, missing cache, wrong path)."""
