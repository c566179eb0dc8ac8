"""Errors that end a run with one clear message (the run prints ``str(error)`` and exits non-zero)."""


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
    def __init__(self, what: str, expected: list[str], got: list[str], remedy: str = "") -> None:
        missing = [c for c in expected if c not in got]
        extra = [c for c in got if c not in expected]
        detail = f"missing {missing}, unexpected {extra}" if (missing or extra) else "same classes, different order"
        super().__init__(
            f"class list mismatch ({what}): {detail}.{' ' + remedy if remedy else ''}\n"
            f"  expected ({len(expected)}): {expected}\n  got      ({len(got)}): {got}"
        )
        self.expected = expected
        self.got = got


class CheckpointError(FgddError):
    pass


class TeacherTooWeakError(FgddError):
    pass


class ModelUnavailableError(FgddError):
    """Pretrained weights cannot be loaded (offline, missing cache, wrong path)."""
