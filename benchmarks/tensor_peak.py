"""The most tensor memory held at once while a torch profiler recorded (``profile_memory=True``),
replaying its allocation and free records block by block. Shared by `bench.py` and the fast
engine's memory test (``tests/fast/test_peak_memory.py``).

The profiler's own running total, "Total Allocated", agrees within a process's first profiling
session, but in a process that had profiled before it can start above zero (68 KB above the
replay for seed-004 with BatchNorm): the replay counts only blocks allocated while recording.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from torch.profiler import profile


def peak_bytes(prof: profile) -> int:
    """Bytes held at most at once by the blocks allocated while ``prof`` recorded."""
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    records = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    blocks: dict[int, int] = {}  # address -> bytes
    held = peak = 0
    for record in records:
        address, size = record["args"]["Addr"], record["args"]["Bytes"]
        if size > 0:
            blocks[address] = size
            held += size
            peak = max(peak, held)
        elif address in blocks:
            held -= blocks.pop(address)
    return peak
