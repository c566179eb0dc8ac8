"""What a run prints: every log line once, and no warning a user cannot act on.

The rest lives in ``conf/hydra/job_logging/fgdd.yaml`` (formats, and the Lightning notices kept out of the
console). Progress: Lightning's bar for the teacher and student epochs, tqdm for the inference loops (teacher
validation, selection per class, occupancy per batch).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

# Message patterns of warnings that say nothing a user of fgdd can act on; each with the reason.
HARMLESS_WARNINGS = (
    # Lightning's own pytree helper calls an API that newer torch deprecates: nothing in fgdd or its config to change
    r".*isinstance\(treespec, LeafSpec\).*",
    # fgdd logs its training metrics once per epoch (on_step=False), so Lightning's per-step interval never applies
    r"The number of training batches .* is smaller than the logging interval",
    # Lightning advises a DataLoader argument the user never sees; the worker counts are settings of their own
    # (teacher.recipe.num_workers, evaluator.num_workers), 0 by default: fastest for the small sets fgdd trains on
    r".*does not have many workers",
)


def quiet_console() -> None:
    """Called first in a Hydra entry point (after Hydra has configured logging, before any stage)."""
    for pattern in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    import lightning  # noqa: F401  (its import adds the console handler removed below; the run imports it anyway)

    # Lightning gives its "lightning" logger a console handler of its own and lets the records propagate too, so
    # under Hydra's root handlers each line printed twice. Dropped only when the root logger has handlers
    # (Hydra's), so that a notebook or script calling fgdd.run.run still sees Lightning's lines.
    if logging.getLogger().handlers:
        lightning_logger = logging.getLogger("lightning")
        for handler in list(lightning_logger.handlers):
            if type(handler) is logging.StreamHandler:
                lightning_logger.removeHandler(handler)


class HideNotices(logging.Filter):
    """On a handler: drops records below WARNING from the given loggers and their children (conf/hydra/job_logging)."""

    def __init__(self, loggers: list[str]) -> None:
        super().__init__()
        self.loggers = tuple(loggers)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return not any(record.name == name or record.name.startswith(f"{name}.") for name in self.loggers)


def progress_bars(enabled: bool) -> list[Any]:
    """The progress bar for a Trainer (``enabled``: its enable_progress_bar). Lightning's default bar (rich's) prints
    metrics as ``.3f``, so a student's KL loss of 0.00013 reads 0.000; this one prints 3 significant digits (2.31,
    0.856, 0.00013, 1.2e-05)."""
    if not enabled:  # a bar given to a Trainer whose bar is off is an error in Lightning
        return []
    from lightning.pytorch.callbacks import RichProgressBar
    from lightning.pytorch.callbacks.progress.rich_progress import RichProgressBarTheme

    return [RichProgressBar(theme=RichProgressBarTheme(metrics_format=".3g"))]
