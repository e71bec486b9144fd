"""`Extension`: the base class of everything that hooks into the `Driver`'s loop.

Monitoring, saving the best model, stopping, learning-rate schedules, CSV logs: each is an
extension overriding a few hooks, so that one concept lives in one place and the loop stays
short.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .driver import Driver


class Extension:
    """Base class of driver extensions: override the hooks you need; all default to no-ops.

    Hooks get the driver, whose ``iteration``, ``epoch``, ``hyperparams``, ``stats`` and
    ``graph`` they may read (and ``hyperparams`` change); an extension ends training by calling
    ``driver.stop(reason)`` and says something to the user with ``driver.report(message)``
    (the console, the log file and the ``optimus`` logger). An extension with state worth
    resuming (a best value, a counter) returns it from `state_dict` and takes it back in
    `load_state_dict`.

    Attributes:
        ends_training: class attribute; True for extensions that can end a run by themselves
            (`FinishAfter`, `EarlyStopping`). ``Driver.fit(max_iter=None)`` on a re-iterable
            source refuses to start unless one of its extensions sets it; a custom extension
            that calls ``driver.stop`` sets it to True.
    """

    ends_training: bool = False

    def before_training(self, driver: "Driver") -> None:
        """Called once at the start of `Driver.fit`, before the first batch."""

    def after_batch(self, driver: "Driver", outputs: Mapping[str, Any]) -> None:
        """Called after every update step with that step's outputs."""

    def after_epoch(self, driver: "Driver") -> None:
        """Called when a finite source is exhausted (one pass over the data)."""

    def after_monitor(self, driver: "Driver", values: Mapping[str, float]) -> None:
        """Called whenever monitored values are recorded (``{'test_cost': 0.66, ...}``), e.g.
        by a `Monitor`; extensions that act on a monitored value (save the best, stop early,
        drop the learning rate) react here."""

    def after_training(self, driver: "Driver") -> None:
        """Called once when training ends, however it ends."""

    def state_dict(self) -> dict[str, Any]:
        """State to put in a checkpoint (JSON data and arrays); empty if none."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back what `state_dict` returned, when a run resumes."""


__all__ = ["Extension"]
