"""`ProgressBar`: a tqdm bar over the steps (the optional ``progress`` extra)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ... import distributed
from ..driver import Driver
from ..extension import Extension


class ProgressBar(Extension):
    """Shows a tqdm progress bar with the latest loss and monitored values.

    ``Driver(verbose=1)`` already shows such a bar when standard output is a terminal; this
    extension is for a bar with your own tqdm options (another ``file``, ``mininterval``,
    ``leave``), typically with ``Driver(verbose=0)``.

    Args:
        **tqdm_options: passed to ``tqdm.tqdm`` (e.g. ``file=``, ``mininterval=``).

    Raises:
        ImportError: tqdm is not installed (``pip install 'optimus[progress]'``).
    """

    def __init__(self, **tqdm_options: Any):
        try:
            import tqdm
        except ImportError as err:
            raise ImportError("ProgressBar needs tqdm: pip install 'optimus[progress]'") from err
        self._tqdm = tqdm.tqdm
        self.options = tqdm_options
        self.bar: Any = None

    def before_training(self, driver: Driver) -> None:
        total = None if driver.max_iter is None else driver.max_iter + 1
        options = {"disable": not distributed.is_main(), **self.options}  # one bar: rank 0's
        self.bar = self._tqdm(total=total, initial=driver.iteration, unit="step",
                              desc=driver.graph.name, **options)

    def after_batch(self, driver: Driver, outputs: Mapping[str, Any]) -> None:
        self.bar.update(1)
        self.bar.set_postfix({**{k: f"{v:.4g}" for k, v in driver.monitored.items()},
                              "loss": f"{float(outputs[driver.graph.loss]):.4f}"},
                             refresh=False)

    def after_training(self, driver: Driver) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
