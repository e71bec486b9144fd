"""Matrix products of the dense kernels, routed to the CPU library that is faster for the shape.

PyTorch sends CPU float32 products to MKL. On the 2-core AMD EPYC this was measured on, MKL is
slow for skinny products such as a 25-row batch through a 1500 x 512 layer (358 us against
246 us in oneDNN, PyTorch's other CPU library, also bundled) and for narrow ones (1489 x 512
to 10 outputs: 557 us against 138 us), while oneDNN costs ~15 us more per call on tiny ones
and is no faster on large square-ish ones (256 x 784 to 100) nor on a handful of rows
(5 x 13989 to 20: 100 us against 65 us in a training step, the weights being laid out anew
each call). Products of at least `ONEDNN_MACS` multiply-adds over `ONEDNN_ROWS` rows or more,
with few rows or a small inner or outer size, therefore go to oneDNN (through the operator
``torch.compile`` uses for CPU linear layers); the rest, and every non-CPU tensor, stay with
``torch.mm``. The values agree to float rounding.
"""
from __future__ import annotations

import torch

Tensor = torch.Tensor
ONEDNN_MACS = 300_000
ONEDNN_ROWS = 16
MKL_ROWS, MKL_SIZE = 128, 64  # from this many rows, with both other sizes this large: MKL

try:
    _linear = torch.ops.mkldnn._linear_pointwise.default
    _ONEDNN = torch.backends.mkldnn.is_available()
except (AttributeError, RuntimeError):  # a build without oneDNN
    _linear, _ONEDNN = None, False


def _onednn(x: Tensor, w: Tensor) -> bool:
    rows, (k, n) = x.shape[0], w.shape
    return (_ONEDNN and x.device.type == "cpu" and x.dtype == torch.float32
            and rows >= ONEDNN_ROWS and rows * k * n >= ONEDNN_MACS
            and not (rows >= MKL_ROWS and min(k, n) >= MKL_SIZE))


def affine(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``x @ w + b`` for ``x (n, in)``, ``w (in, out)``, ``b (out,)``."""
    if _onednn(x, w):
        return _linear(x, w.t(), b, "none", [], "")
    return torch.addmm(b, x, w)


def times_transposed(dz: Tensor, w: Tensor) -> Tensor:
    """``dz @ w.T`` for ``dz (n, out)``, ``w (in, out)``: the input gradient of `affine`."""
    if _onednn(dz, w):
        return _linear(dz, w, None, "none", [], "")
    return torch.mm(dz, w.t())
