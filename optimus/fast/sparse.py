"""Sparse inputs of dense layers: products over the columns a batch actually uses.

A bag-of-words batch is mostly zeros: seed 001's 5 reviews of 13,989 word counts use 406
columns (447 nonzeros). ``x @ W`` then only needs those columns of ``x`` and rows of ``W``, and
the weight gradient ``x.T @ dz`` is zero outside those rows, so a plain-SGD step moves only
them. A dense layer whose input needs no gradient and is at least `MIN_INPUTS` wide asks
`used_columns` at every call; a batch whose nonzero columns are at most `MAX_FRACTION` of the
width is computed on them (`optimus.fast.dense.Affine`).

Measured with in-process A/B runs against the dense products (2-core AMD EPYC, medians of
interleaved rounds, MLP width-20-2): 13,989 words, 5 rows of 90 words, SGD: 245 -> 209 us a
step with this check (faster in 36 of 40 rounds; 245 -> 207 and 232 -> 203, 37 of 40 each,
with a slower one, NumPy's ``any`` on the floats and ``flatnonzero``); 100,000 words:
585 -> 402 us (5 rows), 3,115 -> 1,737 us (32 rows), with Adam 4,982 -> 3,545 us (faster in
every round). 64 rows of 13,989 words use too many columns: dense, 1,261 against 1,236 us.
Under bfloat16 autocast the layer casts only the used rows of ``W`` (the dense product casts
all of it at every step): 100,000 words, 5 rows, 1,839 -> 495 us and 2,413 -> 520 us (faster
in 20 of 20 rounds each).

Results agree with the dense products to float rounding (under autocast, to bfloat16 rounding:
the same bfloat16 operands, float32 sums in another order): the forward sums the same nonzero
terms (in another order), and the weight gradient's rows are the same sums over the batch, the
others exactly zero. The choice is a function of the batch alone (no state carried between
calls), so a run computes the same whether it was resumed or not. A column that holds a NaN or
an infinity counts as used, so they reach the output as in the dense product; only a non-finite
weight in a row that no input of the batch uses stays out of it (in the dense product
``0 * inf`` is NaN).
"""
from __future__ import annotations

import numpy as np
import torch

Tensor = torch.Tensor
_NUMPY_FLOATS = (torch.float32, torch.float64, torch.float16)

MIN_INPUTS = 1024  # narrower inputs are always multiplied densely (the check would not pay)
MAX_FRACTION = 1 / 8  # a batch using at most this fraction of the columns is sparse


def used_columns(x: Tensor) -> Tensor | None:
    """The indices of the columns of ``x`` (rows, width; on the CPU) holding a nonzero, or
    None when the batch is not sparse (more than `MAX_FRACTION` of the width, an empty batch,
    or a dtype NumPy lacks).

    Found with NumPy on ``x``'s memory (``x != 0``, ``any`` over the rows, ``nonzero``): 9 us
    on seed 001's batches, against 51 us for torch's ``abs().amax(0).nonzero()``. That pass over
    the batch is only made where the first row's count times the rows is within the limit (an
    estimate of the union that ignores shared columns), so a dense batch, or one whose union
    would be too wide, pays one count of a row (~3 us).
    """
    if x.dtype not in _NUMPY_FLOATS:
        return None
    rows, width = x.shape
    limit = int(width * MAX_FRACTION)
    xn = x.detach().numpy()
    if rows == 0 or np.count_nonzero(xn[0] != 0) * rows > limit:  # bool counts are fast
        return None
    columns = np.nonzero((xn != 0).any(0))[0]  # NaN != 0
    return torch.from_numpy(columns) if len(columns) <= limit else None
