"""The ``optimus`` logger: progress lines reach the console by default, as in the notebook."""
from __future__ import annotations

import logging
import sys

LOGGER_NAME = "optimus"
TIME_FORMAT = "%a %b %d %H:%M:%S %Y"  # as time.asctime() prints it


class _ConsoleHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when a record is emitted, so that redirection
    and capture set up after the handler still see the lines."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


def get_logger() -> logging.Logger:
    """The library logger; adds a console handler the first time unless the application has
    configured logging itself (root or ``optimus`` handlers present)."""
    logger = logging.getLogger(LOGGER_NAME)
    if logger.level == logging.NOTSET:  # progress lines are INFO: show them unless told not to
        logger.setLevel(logging.INFO)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = _ConsoleHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", TIME_FORMAT))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def add_file_handler(logger: logging.Logger, path: str) -> logging.Handler:
    """Also write the progress lines to ``path``; returns the handler for removal."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", TIME_FORMAT))
    logger.addHandler(handler)
    return handler
