"""`ConsoleReporter`: what a person sees while a `Driver` trains (Keras' ``verbose``).

``Driver(verbose=...)`` chooses:

- ``0``: silent (the ``optimus`` logger still gets every message, for applications that
  configure logging);
- ``1`` (default): a tqdm progress bar when tqdm is installed and standard output is a
  terminal, otherwise progress lines; messages (new best, learning-rate drops, the end) as
  lines either way;
- ``2``: progress lines always, ``[Wed Dec 02 21:55:00 2026] 50 / 500: 0.4123`` every
  ``print_freq`` iterations, as the original library printed them (the form for notebooks,
  log files and CI).

Lines go to ``sys.stdout`` as it is when they are written (so redirection and capture work),
and, with ``Driver(log_file=...)``, to that file whatever ``verbose`` says. The reporter writes
them itself: it installs no logging handler, so an application that also routes the
``optimus`` logger to the console sees each message twice only if it asks for both
(pass ``verbose=0`` then).
"""
from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

from ..errors import ConfigError
from .log import TIME_FORMAT

VERBOSE_LEVELS = (0, 1, 2)


def _tqdm() -> Any:
    try:
        import tqdm
    except ImportError:
        return None
    return tqdm.tqdm


class ConsoleReporter:
    """Prints a run's progress and messages to standard output and the log file.

    Args:
        verbose: 0, 1 or 2, as above.
        log_file: also append every line to this file (opened for the run only).
    """

    def __init__(self, verbose: int = 1, log_file: str | os.PathLike | None = None):
        if isinstance(verbose, bool):
            verbose = int(verbose)
        if verbose not in VERBOSE_LEVELS:
            raise ConfigError(f"Driver: verbose must be 0 (silent), 1 (bar on a terminal, "
                              f"else lines) or 2 (lines), got {verbose!r}", field="verbose")
        self.verbose = verbose
        self.log_file = log_file
        self.bar: Any = None
        self._console = True
        self._file: IO[str] | None = None

    @property
    def uses_bar(self) -> bool:
        """Whether this run shows a tqdm bar instead of progress lines."""
        return self.bar is not None

    def open(self, console: bool = True) -> None:
        """Start a run: open the log file; ``console=False`` (a process other than rank 0
        under torch.distributed) prints nothing."""
        self._console = console
        if self.log_file is not None:
            self._file = open(self.log_file, "a", encoding="utf-8")

    def start_bar(self, total: int | None, initial: int, description: str) -> None:
        """Show the progress bar, if this run has one (``verbose=1``, tqdm installed,
        standard output a terminal)."""
        tqdm = _tqdm() if self.verbose == 1 and self._console else None
        isatty = getattr(sys.stdout, "isatty", None)
        if tqdm is not None and isatty is not None and isatty():
            self.bar = tqdm(total=total, initial=initial, unit="step", desc=description,
                            file=sys.stdout, dynamic_ncols=True)

    def progress(self, loss: float, postfix: dict[str, float]) -> None:
        """One step taken (the bar advances; lines are written by `line`)."""
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({**{k: f"{v:.4g}" for k, v in postfix.items()},
                                  "loss": f"{loss:.4f}"}, refresh=False)

    def line(self, message: str, progress: bool = False) -> None:
        """Write ``[time] message``: to the console unless silent (a progress line only
        without a bar) and to the log file."""
        text = f"[{time.strftime(TIME_FORMAT)}] {message}"
        if self._file is not None:
            self._file.write(text + "\n")
            self._file.flush()
        if self.verbose == 0 or not self._console or (progress and self.bar is not None):
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text, file=sys.stdout, flush=True)

    def close(self) -> None:
        """End the run: close the bar and the log file."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self._file is not None:
            self._file.close()
            self._file = None


__all__ = ["ConsoleReporter", "VERBOSE_LEVELS"]
