"""Fuzz `optimus.load` at scale: structure-aware mutations of the seed workflows' saved models
(the same as the test suite's Hypothesis fuzz, `tests/safety/mutations.py`), loaded in worker
processes; every case must load or raise an `optimus.OptimusError` within ``--timeout``
seconds. Prints the number of cases run, the outcomes, escapes and the slowest case.

    python benchmarks/fuzz_load.py                       # 100,000 cases, 2 workers
    python benchmarks/fuzz_load.py --cases 5000 --workers 1 --seed 7

Exit status 1 if any case escaped (another exception) or ran past the time bound.
"""
from __future__ import annotations

import argparse
import collections
import multiprocessing
import random
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.safety import mutations  # noqa: E402


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run_range(args: tuple[int, int, float]) -> tuple[collections.Counter, list, float, int]:
    """Cases ``start .. start+count-1`` (case i uses ``random.Random(i)``): outcome counts,
    escapes (case, description), the slowest case's seconds and its number."""
    start, count, timeout = args
    models = mutations.seed_models()
    signal.signal(signal.SIGALRM, _alarm)
    outcomes: collections.Counter = collections.Counter()
    escapes, slowest, slowest_case = [], 0.0, -1
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for text, params in models:  # warm up lazily imported torch paths
            mutations.load_case(folder, text, params)
        for case in range(start, start + count):
            rng = random.Random(case)
            text, params = rng.choice(models)
            if rng.random() < 0.7:
                text = mutations.mutate_definition(rng, text)
                params = params if rng.random() < 0.3 else None
            else:
                params = mutations.mutate_params(rng, params)
            began = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                outcomes[mutations.load_case(folder, text, params)] += 1
            except _Timeout:
                outcomes["timeout"] += 1
                escapes.append((case, f"ran past {timeout} s"))
            except BaseException as err:  # noqa: BLE001 - what the fuzz looks for
                outcomes["escape"] += 1
                escapes.append((case, "".join(traceback.format_exception_only(err)).strip()))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            seconds = time.perf_counter() - began
            if seconds > slowest:
                slowest, slowest_case = seconds, case
    return outcomes, escapes, slowest, slowest_case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="number of the first case")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    args = parser.parse_args(argv)
    chunk = 500
    ranges = [(start, min(chunk, args.seed + args.cases - start), args.timeout)
              for start in range(args.seed, args.seed + args.cases, chunk)]
    began = time.perf_counter()
    total: collections.Counter = collections.Counter()
    escapes: list = []
    slowest = (0.0, -1)
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for outcomes, found, seconds, case in pool.imap_unordered(run_range, ranges):
            total.update(outcomes)
            escapes += found
            for case, what in found:
                print(f"escape: case {case}: {what}", file=sys.stderr, flush=True)
            slowest = max(slowest, (seconds, case))
            done = sum(total.values())
            print(f"{done:,} / {args.cases:,} cases, {len(escapes)} escapes, "
                  f"{time.perf_counter() - began:,.0f} s", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - began
    cases = sum(total.values())
    print(f"fuzz_load: {cases:,} cases in {elapsed:,.0f} s ({args.workers} workers): "
          + ", ".join(f"{k} {v:,}" for k, v in total.most_common()))
    print(f"slowest case: #{slowest[1]} {slowest[0]:.2f} s; escapes: {len(escapes)}")
    for case, what in escapes[:20]:
        print(f"  case {case}: {what}")
    return 1 if escapes else 0


if __name__ == "__main__":
    sys.exit(main())
