"""The ``optimus`` logger, configured as a library's logger should be.

The logger ``"optimus"`` gets a `logging.NullHandler` and propagates: optimus never installs a
console handler, never sets a level, never touches the root logger. Records reach whatever the
application configured (``logging.basicConfig(level=logging.INFO)`` shows training progress;
``logging.getLogger("optimus").setLevel(logging.WARNING)`` keeps only warnings), and nothing
otherwise.

What a person sees on the console while training is the `Driver`'s job: its console reporter
(`optimus.train.report`), controlled by ``Driver(verbose=...)``.
"""
from __future__ import annotations

import logging

LOGGER_NAME = "optimus"
TIME_FORMAT = "%a %b %d %H:%M:%S %Y"  # as time.asctime() prints it

logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())


def get_logger(name: str | None = None) -> logging.Logger:
    """The library logger ``"optimus"`` (or its child ``"optimus.{name}"``), untouched: its
    level and handlers are the application's business."""
    return logging.getLogger(LOGGER_NAME if name is None else f"{LOGGER_NAME}.{name}")


__all__ = ["LOGGER_NAME", "TIME_FORMAT", "get_logger"]
