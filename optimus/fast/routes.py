"""Which of several equivalent routes computes a matrix product fastest on this machine:
measured at first use, then fixed.

A dense kernel's products can go to MKL (``torch.mm``/``addmm``) or oneDNN, and a weight
gradient can be computed in either memory order (`optimus.fast.blas`). Which is fastest depends
on the CPU (a route twice as fast on one 2-core AMD EPYC is 1.6x slower on a 2-core Intel Xeon),
the thread count and the shape, so no fixed threshold is right everywhere. The first time a
(product, shape, threads) key is met, `choose` times every candidate on random operands of that
shape, in interleaved rounds, and keeps the fastest; the static rule's choice stays unless
another is `MARGIN` faster.

Reproducibility: routes agree only to float rounding, so a run must not change route halfway or
between processes. Decisions are kept for the life of the process and written to a JSON file per
machine (CPU model, torch version) in ``$OPTIMUS_CACHE_DIR`` (default
``~/.cache/optimus``), read back by every later process: the same machine takes the same
routes run after run, a resumed run included. An entry already in the file wins over a new
measurement. Measuring builds its operands only when it runs, from a private generator (see
`optimus.fast.blas`): it leaves torch's global random stream, which noise and dropout draw
from, where it was, so a run computes the same whether its routes were measured or read.
``OPTIMUS_ROUTES=static`` (read at import) or ``routes.MODE = 'static'`` skips the measurement
and uses the static rule (the test suite does); the file is only an accelerator, so an
unwritable cache directory just keeps the decisions in memory.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from ..datasets.files import cache_dir
from ..storage import atomic_write

log = logging.getLogger(__name__)

#: 'calibrate' (measure each new shape once) or 'static' (the fixed rule only)
MODE = os.environ.get("OPTIMUS_ROUTES", "calibrate")
#: another route replaces the static rule's only when at least this much faster
MARGIN = 0.05
#: products larger than this many multiply-adds keep the static rule (timing them would take
#: seconds)
MAX_MACS = 20_000_000_000
REPEATS = 3  # timed calls per candidate, interleaved, after one warm-up; the fastest counts
LONG_REPEATS = 2  # ... or this many, where a warm-up call took longer than LONG_CALL_S
LONG_CALL_S = 0.02

#: bumped when what is measured changes, so older decision files are not read (3: candidates
#: timed in interleaved rounds; a long product used to get one timed call each, one after the
#: other, and a change in this VM's speed between two candidates decided the route)
VERSION = 3

Key = tuple[str, int, int, int, int]
#: this process's decisions, by (product, rows, inner, cols, threads): read directly by the
#: kernels' hot path before they call `choose`
decided: dict[Key, str] = {}
_loaded = False


def cache_path() -> Path:
    """The decision file of this machine: one per CPU model and torch version."""
    root = Path(os.environ.get("OPTIMUS_CACHE_DIR") or cache_dir())
    machine = f"{_cpu_model()}|{platform.machine()}|torch {torch.__version__}|v{VERSION}"
    return root / f"routes-{hashlib.sha256(machine.encode()).hexdigest()[:16]}.json"


def choose(op: str, shape: tuple[int, int, int], static: str,
           candidates: Mapping[str, Callable[[], Callable[[], object]]]) -> str:
    """The route for product ``op`` of ``shape`` (rows, inner, cols) on this machine.

    Args:
        op: the product's name ('affine', 'times_transposed', 'weight_grad').
        shape: its sizes; with the thread count, the key of the decision.
        static: the fixed rule's choice, kept unless another route is `MARGIN` faster.
        candidates: each route's name, and what builds, only when a measurement is needed, a
            call computing the product on fresh operands of this shape (not the live tensors:
            some routes update them in place). A decision read from the file builds nothing.
    """
    if MODE == "static":
        return static
    key: Key = (op, *shape, torch.get_num_threads())
    route = decided.get(key)
    if route is not None:
        return route
    if shape[0] * shape[1] * shape[2] > MAX_MACS:
        return static
    route = _known().get(key)
    if route in candidates:
        decided[key] = route
        return route
    with torch.no_grad():
        times = _times({name: build() for name, build in candidates.items()})
    best = min(times, key=times.__getitem__)
    route = best if times[best] < (1 - MARGIN) * times.get(static, float("inf")) else static
    log.debug("route of %s %s: %s (%s)", op, shape, route,
              ", ".join(f"{n} {t * 1e6:.0f} us" for n, t in times.items()))
    decided[key] = route = _store(key, route)
    return route


def forget() -> None:
    """Drop the decisions held in memory (the file is read again at the next choice)."""
    global _loaded
    decided.clear()
    _loaded = False


def _times(calls: Mapping[str, Callable[[], object]]) -> dict[str, float]:
    """Each candidate's fastest call, in seconds: one warm-up call each (oneDNN builds its
    primitive, MKL its buffers), then rounds in which every candidate is timed once, in an
    order that rotates, so that a change in the machine's speed during the measurement
    reaches all candidates alike."""
    names = list(calls)
    best = {}
    for name in names:
        start = time.perf_counter()
        calls[name]()
        best[name] = time.perf_counter() - start
    rounds = REPEATS if max(best.values(), default=0.0) < LONG_CALL_S else LONG_REPEATS
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            calls[name]()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _known() -> dict[Key, str]:
    """The file's decisions, merged into memory once per process."""
    global _loaded
    if not _loaded:
        _loaded = True
        for key, route in _read(cache_path()).items():
            decided.setdefault(key, route)
    return decided


def _read(path: Path) -> dict[Key, str]:
    try:
        entries = json.loads(path.read_text())["routes"]
        return {(e["op"], *map(int, e["shape"].split("x")), int(e["threads"])): str(e["route"])
                for e in entries}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # a damaged file: measure again
        log.debug("ignoring the route file %s: %s", path, exc)
        return {}


def _store(key: Key, route: str) -> str:
    """Add one decision to the file, written atomically, and return the route to keep: the
    file's if another process recorded this key first. Decisions this process already took
    are never changed (a run does not switch routes halfway)."""
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        merged = {**decided, **_read(path)}  # ours too, in case a racing writer dropped them
        route = merged.setdefault(key, route)
        for other, recorded in merged.items():
            decided.setdefault(other, recorded)
        doc = {"machine": _cpu_model(), "torch": torch.__version__,
               "routes": [{"op": k[0], "shape": "x".join(map(str, k[1:4])), "threads": k[4],
                           "route": r}
                          for k, r in sorted(merged.items())]}
        text = json.dumps(doc, indent=1).encode()
        atomic_write(path, lambda f: f.write(text))
    except OSError as exc:
        log.debug("route decisions kept in memory only (%s): %s", path, exc)
    return route


@functools.cache
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
