"""The MLP training steps written by hand in NumPy, as a NumPy expert writes them: every buffer
allocated once and reused (``out=`` and in-place operators), the weight decay folded into the
update (``W *= 1 - 2·lr·λ`` before ``W -= lr·hᵀd``), the penalty as ``np.vdot(W, W)``, and one
preallocated row index. Each builder takes the workload's initial parameters (optimus names,
``(in, out)`` weights) and returns ``step(batch) -> loss``.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

Step = Callable[[dict], float]


class _Buffers:
    """Scratch arrays for one batch size, reallocated only when the batch size changes."""

    def __init__(self, widths: dict[str, int]):
        self.widths, self.n = widths, -1

    def get(self, n: int) -> "_Buffers":
        if n != self.n:
            self.n = n
            for name, width in self.widths.items():
                setattr(self, name, np.empty((n, width), np.float32))
            self.rows = np.arange(n)
            self.col = np.empty((n, 1), np.float32)
        return self


def _softmax_xent_grad(z: np.ndarray, y: np.ndarray, b: _Buffers) -> float:
    """Turns logits ``z`` into d(mean cross-entropy)/dz in place; returns the mean loss."""
    np.max(z, axis=1, keepdims=True, out=b.col)
    z -= b.col
    np.exp(z, out=z)
    np.sum(z, axis=1, keepdims=True, out=b.col)
    z /= b.col
    loss = -float(np.log(z[b.rows, y]).mean())
    z[b.rows, y] -= 1.0
    z *= np.float32(1.0 / len(y))
    return loss


def mlp_sigmoid(p: dict[str, np.ndarray], lr: float, hidden: str = "hidden",
                output: str = "output") -> Step:
    """Seed 001: sigmoid hidden layer, softmax cross-entropy, SGD."""
    w1, b1 = p[f"{hidden}.weights"].copy(), p[f"{hidden}.bias"].copy()
    w2, b2 = p[f"{output}.weights"].copy(), p[f"{output}.bias"].copy()
    g1, g2 = np.empty_like(w1), np.empty_like(w2)
    buffers = _Buffers({"h": w1.shape[1], "z": w2.shape[1], "d1": w1.shape[1],
                        "t": w1.shape[1]})
    lr = np.float32(lr)

    def step(batch: dict) -> float:
        x, y = batch["data"], batch["labels"]
        b = buffers.get(len(y))
        h, z, d1, t = b.h, b.z, b.d1, b.t
        np.matmul(x, w1, out=h)
        h += b1
        np.negative(h, out=h)  # sigmoid in place: 1 / (1 + exp(-a))
        np.exp(h, out=h)
        h += 1.0
        np.reciprocal(h, out=h)
        np.matmul(h, w2, out=z)
        z += b2
        loss = _softmax_xent_grad(z, y, b)  # z now holds d loss / d logits
        np.matmul(z, w2.T, out=d1)  # d1 = (d2 w2ᵀ) h (1 - h)
        d1 *= h
        np.subtract(1.0, h, out=t)
        d1 *= t
        np.matmul(h.T, z, out=g2)
        g2[...] *= lr
        w2[...] -= g2
        b2[...] -= lr * z.sum(axis=0)
        np.matmul(x.T, d1, out=g1)
        g1[...] *= lr
        w1[...] -= g1
        b1[...] -= lr * d1.sum(axis=0)
        return loss

    return step


def mlp_relu_l2(p: dict[str, np.ndarray], lr: float, l2: float,
                hidden: str = "input_to_hidden", output: str = "hidden_to_output") -> Step:
    """Seed 002: relu hidden layer, softmax cross-entropy + ``l2``·(‖W1‖² + ‖W2‖²), SGD."""
    w1, b1 = p[f"{hidden}.weights"].copy(), p[f"{hidden}.bias"].copy()
    w2, b2 = p[f"{output}.weights"].copy(), p[f"{output}.bias"].copy()
    g1, g2 = np.empty_like(w1), np.empty_like(w2)
    buffers = _Buffers({"h": w1.shape[1], "z": w2.shape[1], "d1": w1.shape[1]})
    lr, decay = np.float32(lr), np.float32(1.0 - 2.0 * lr * l2)

    def step(batch: dict) -> float:
        x, y = batch["data"], batch["labels"]
        b = buffers.get(len(y))
        h, z, d1 = b.h, b.z, b.d1
        np.matmul(x, w1, out=h)
        h += b1
        np.maximum(h, 0.0, out=h)
        np.matmul(h, w2, out=z)
        z += b2
        loss = _softmax_xent_grad(z, y, b)
        if l2:
            loss += l2 * float(np.vdot(w1, w1) + np.vdot(w2, w2))
        np.matmul(z, w2.T, out=d1)
        d1 *= h > 0
        np.matmul(h.T, z, out=g2)
        g2[...] *= lr
        if l2:
            w2[...] *= decay  # the penalty's gradient 2·l2·W, folded into the update
        w2[...] -= g2
        b2[...] -= lr * z.sum(axis=0)
        np.matmul(x.T, d1, out=g1)
        g1[...] *= lr
        if l2:
            w1[...] *= decay
        w1[...] -= g1
        b1[...] -= lr * d1.sum(axis=0)
        return loss

    return step
