"""Chunked inference: a call without update over many rows, computed a chunk of rows at a time.

A prediction over 10,000 images need not hold 10,000 images' activations at once. When every
output keeps the batch axis first and every node that sees batch-dependent values declares
itself row-wise (`optimus.nodes.base.Node.rowwise_for`: each output row depends only on the
same input row), the rows can be split, computed chunk by chunk and written into the result
arrays. `chunk_rows` decides, when the graph is built, how many rows a chunk holds (or that
calls must not be chunked); `infer_chunked` runs a call that way.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Union

import numpy as np
import torch

from .inputs import to_numpy
from .nodes.base import Node
from .ports import Input, Shape

# Rows per inference chunk when chunk_size="auto": about CHUNK_BYTES of activations, but at
# least FEW_ROWS while that stays within LARGE_CHUNK_BYTES, and never under MIN_CHUNK_ROWS.
# Measured on the 2-core Xeon (medians of 7-9 interleaved rounds over 10,000 rows): seed-000's
# predictor (11 KB of activations a row) runs 744 rows a chunk at 51,300 rows/s and 1489 at
# 34,900; seed-004's (105 KB a row, its maps blocked: `optimus.fast.blocked`) 80 rows at
# 27,000, 240 at 33,800 and 400 at 34,200: a chunk's dozen small calls are not paid back on
# fewer rows.
CHUNK_BYTES = 8 * 2**20
FEW_ROWS = 256
LARGE_CHUNK_BYTES = 32 * 2**20
MIN_CHUNK_ROWS = 64
# On an accelerator a chunk costs a dozen kernel launches and a copy back that waits for the
# device, and no cache is there to fit: chunks only bound the memory a call holds, so they are
# about ACCELERATOR_CHUNK_BYTES of activations. On an H200, seed-004's predictor over 10,000
# rows ran at 305,000 rows/s in the CPU's 256-row chunks, eager PyTorch in one piece at
# 1,210,000 (benchmarks/gpu.py).
ACCELERATOR_CHUNK_BYTES = 2**30

ChunkSize = Union[int, str, None]


def chunk_rows(chunk_size: ChunkSize, inputs: Mapping[str, Input], order: Sequence[Node],
               source_of: Mapping[str, str], shapes: Mapping[str, Shape],
               results: Sequence[str], device: torch.device = torch.device("cpu")
               ) -> int | None:
    """Rows per inference chunk, or None when calls must not be chunked.

    Args:
        chunk_size: the graph's option: an int, 'auto' or None.
        inputs: the graph's Inputs.
        order: its nodes in execution order.
        source_of: ``{sink: source}`` of its wiring.
        shapes: static shape of every value name.
        results: the value names a call returns.
        device: where the graph computes: 'auto' sizes chunks for the CPU's caches, and for
            the memory an accelerator's call may hold (`ACCELERATOR_CHUNK_BYTES`).
    """
    batched = [n for n, i in inputs.items() if i.shape and i.shape[0] is None]
    fixed = [n for n, i in inputs.items() if i.shape and i.shape[0] is not None]
    if chunk_size is None or not batched or fixed:
        return None
    if any(not shapes[src] or shapes[src][0] is not None for src in results):
        return None  # an output without a batch axis (a loss) needs the whole batch
    if chunk_size != "auto":
        return int(chunk_size)
    # Values that depend on the batch must keep it as their first axis (no reduction over
    # rows), and every node reading them must declare itself row-wise.
    depends = set(batched)
    row_bytes = sum(4 * int(np.prod(inputs[n].shape[1:])) for n in batched)
    for node in order:
        sources = {p.short_name: source_of[p.name] for p in node.inputs.values()}
        if not any(src in depends for src in sources.values()):
            continue
        if not node.rowwise_for({port: shapes[src] for port, src in sources.items()}):
            return None
        for port in node.outputs.values():
            shape = shapes[port.name]
            if not shape or shape[0] is not None or None in shape[1:]:
                return None
            depends.add(port.name)
            row_bytes += 4 * int(np.prod(shape[1:]))
    row_bytes = max(row_bytes, 1)
    if device.type != "cpu":
        return max(MIN_CHUNK_ROWS, ACCELERATOR_CHUNK_BYTES // row_bytes)
    rows = min(max(CHUNK_BYTES // row_bytes, FEW_ROWS), LARGE_CHUNK_BYTES // row_bytes)
    return max(MIN_CHUNK_ROWS, rows)


def batch_rows(tensors: Mapping[str, torch.Tensor | None], inputs: Mapping[str, Input]
               ) -> int | None:
    """The common row count of the batched inputs, None if they disagree."""
    rows = {t.shape[0] for k, t in tensors.items() if t is not None and inputs[k].shape}
    return rows.pop() if len(rows) == 1 else None


def infer_chunked(infer: Callable[[dict, bool], dict],
                  tensors: Mapping[str, torch.Tensor | None], inputs: Mapping[str, Input],
                  results: Sequence[tuple[str, str]], n: int, rows: int
                  ) -> OrderedDict[str, np.ndarray]:
    """``infer(chunk, first)`` over ``rows`` rows at a time (``first``: the call's first
    chunk); ``results`` (``(output, value name)``) are written into arrays of ``n`` rows."""
    batched = [k for k, t in tensors.items() if t is not None and inputs[k].shape]
    outputs: OrderedDict[str, np.ndarray] = OrderedDict()
    for start in range(0, n, rows):
        part = dict(tensors)
        for k in batched:
            part[k] = tensors[k][start:start + rows]
        values = infer(part, start == 0)
        for out, src in results:
            chunk = to_numpy(values[src])
            if out not in outputs:
                outputs[out] = np.empty((n, *chunk.shape[1:]), dtype=chunk.dtype)
            outputs[out][start:start + len(chunk)] = chunk
    return outputs
