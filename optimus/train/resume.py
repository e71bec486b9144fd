"""Resuming a run exactly: the driver's state in a checkpoint, and replaying a pass's random
draws so that a resumed (or continued) run reaches the numbers an uninterrupted one would.

A pass over a shuffled stream draws its order from the global random state when it starts. A
checkpoint therefore keeps two random states: the one the current pass started with
(``pass_rng``) and the current one (``rng``). Resuming mid-pass re-opens the pass with the
first, skips the batches already consumed, then continues with the second.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..data.streams import open_epoch
from .checkpoint import load_checkpoint, restore_graph
from .rng import get_rng_state, set_rng_state
from .stats import Stats

if TYPE_CHECKING:
    from .driver import Driver


class PassReplay:
    """Where the current pass started and how to rejoin it.

    Attributes:
        pass_rng: the random state the current pass was opened with (None between passes).
        resume_rng: the random state to continue from when the next pass opens (set by a
            resume, or by a second ``fit`` on the same source mid-pass).
    """

    def __init__(self) -> None:
        self.pass_rng: dict[str, Any] | None = None
        self.resume_rng: dict[str, Any] | None = None
        self.saved_extensions: list[dict[str, Any]] = []
        self._continue_iterator = False
        self._last_source: Any = None

    def continue_with(self, source: Iterable[Mapping[str, Any]], position: int) -> None:
        """A new ``fit`` without ``resume``: if it is on the source the last one stopped in
        mid-pass, carry on with that pass, exactly as an uninterrupted run would."""
        if position > 0 and source is self._last_source:
            if isinstance(source, Iterator):
                self._continue_iterator = True  # the same one-pass iterator knows its place
            else:
                self.resume_rng = get_rng_state()
        self._last_source = source

    def open_pass(self, source: Iterable[Mapping[str, Any]], epoch: int, position: int
                  ) -> tuple[Iterator[Mapping[str, Any]], int]:
        """An iterator over pass ``epoch`` rejoining it at batch ``position`` where a resumed
        or continued pass stopped, and the position it starts at."""
        if self._continue_iterator:
            self._continue_iterator = False
            return iter(source), position
        if self.resume_rng is not None:
            rng, self.resume_rng = self.resume_rng, None
            if position > 0 and self.pass_rng is not None:
                # Replay the pass's start with the random state it had, skip what the
                # interrupted run consumed, then continue from the checkpoint's random state.
                set_rng_state(self.pass_rng)
                iterator = open_epoch(source, epoch, position)
                set_rng_state(rng)
                return iterator, position
            set_rng_state(rng)
        self.pass_rng = get_rng_state()
        return open_epoch(source, epoch, 0), 0

    def end_pass(self) -> None:
        """The pass is complete: nothing left to replay."""
        self.pass_rng = None


def driver_state(driver: "Driver") -> dict[str, Any]:
    """The driver's state: counters, hyperparameters, random states, statistics and the
    extensions' states (what a checkpoint holds besides the graph)."""
    saved, seen = [], {}
    for ext in driver.extensions:  # the k-th extension of each type, so lists may grow
        kind = type(ext).__name__
        index = seen[kind] = seen.get(kind, -1) + 1
        state = ext.state_dict()
        if state:
            saved.append({"type": kind, "index": index, "state": state})
    return {
        "name": driver.name,
        "iteration": driver.steps_done,  # the next step to take
        "epoch": driver.epoch,
        "position": driver.position,
        "hyperparams": dict(driver.hyperparams),
        "monitored": dict(driver.monitored),
        "lr_drops": driver.lr_drops,
        "last_lr_drop": driver.last_lr_drop,
        "rng": get_rng_state(),
        "pass_rng": driver.replay.pass_rng,
        "extensions": saved,
        "stats": driver.stats.to_arrays(),
        "stats_columns": list(driver.stats.columns),
    }


def resume_driver(driver: "Driver", path: str | os.PathLike, hyperparams: dict[str, Any]
                  ) -> None:
    """Restore ``driver`` and its graph from the checkpoint at ``path``; the checkpoint's
    hyperparams (e.g. a dropped learning rate) win over ``hyperparams``. Extension states are
    handed over by `load_extension_states`, once the extensions have started."""
    checkpoint = load_checkpoint(path)
    restore_graph(driver.graph, checkpoint)
    state = checkpoint.state
    driver.iteration, driver.epoch = int(state["iteration"]), int(state["epoch"])
    driver.position = int(state["position"])
    driver.stop_reason = None
    driver.hyperparams = {**hyperparams, **state.get("hyperparams", {})}
    driver.monitored = dict(state.get("monitored", {}))
    driver.lr_drops = int(state.get("lr_drops", 0))
    driver.last_lr_drop = state.get("last_lr_drop")
    driver.stats = Stats.from_arrays(state.get("stats", {}), state.get("stats_columns"))
    driver.replay.pass_rng = state.get("pass_rng")
    driver.replay.resume_rng = state["rng"]
    driver.replay.saved_extensions = state.get("extensions", [])
    driver.report(f"Resuming from {path} at iteration {driver.iteration} "
                  f"(epoch {driver.epoch})")


def load_extension_states(driver: "Driver") -> None:
    """Give each extension the state a resumed checkpoint holds for it (matched by type and
    rank among extensions of that type); warn about states no extension takes."""
    for entry in driver.replay.saved_extensions:
        same = [e for e in driver.extensions if type(e).__name__ == entry["type"]]
        if entry["index"] < len(same):
            same[entry["index"]].load_state_dict(entry["state"])
        else:
            warnings.warn(f"Driver: the checkpoint holds the state of a {entry['type']} "
                          f"extension that this driver does not have; it is ignored",
                          stacklevel=4)
    driver.replay.saved_extensions = []


__all__ = ["PassReplay", "driver_state", "resume_driver", "load_extension_states"]
