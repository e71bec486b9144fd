"""oneDNN's blocked memory format for inference through chains of convolutions on the CPU.

oneDNN computes a convolution fastest on its own blocked layout (channels in blocks of 8 or 16,
``nChw16c``); on dense channels-last tensors it converts at every call, and for an input of few
channels it picks a slow kernel. In an inference call, a chain of convolution kernels (relu or
linear, optional max-pooling) that starts at an input of at most `FEW_CHANNELS` channels keeps
its maps in the blocked layout (torch's ``mkldnn`` tensors) from its first convolution to its
last, which hands a dense tensor to the next kernel. Measured on the 2-core Xeon: the seed-004
ConvNet's three convolutions with relu and pooling take 3.6 ms blocked against 5.8 ms
channels-last (80 rows, one thread); two conv 3x3 + relu + max-pool layers (32 and 64 maps) on
128 rows of 32x32 take 9.7 / 7.7 / 10.5 ms blocked against 16.7 / 22.6 / 27.7 ms for 1 / 3 / 8
input channels (two threads). From 16 input channels on, converting the input costs what the
blocked layout saves. Values agree to float rounding (oneDNN sums in another order).

oneDNN's max-pooling and relu drop NaN (a window of NaN pools to -3.4e38, relu(NaN) is 0), so
a chain runs blocked only where no NaN or infinity can appear in it (`ChainBound`): its input
finite, and every value it computes bounded by the input's largest magnitude and the weights'
norms. Otherwise (and for an empty batch) the chain takes the dense path, whose results keep
every NaN. Training calls always take the dense path: the backward kernels read dense tensors.
"""
from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import torch

from .. import compat

if TYPE_CHECKING:  # for the annotation only
    from .plan import Program

ACTIVATIONS = frozenset({"relu", "linear"})  # oneDNN applies these to blocked maps
LIMIT = 1e30  # a chain runs blocked when its values provably stay below this (float32: 3.4e38)
FEW_CHANNELS = 8  # a chain starts at a convolution with at most this many input channels
_ONEDNN = torch.backends.mkldnn.is_available()


def available(weight: torch.Tensor) -> bool:
    """Blocked maps can compute with ``weight``: a float32 CPU tensor, oneDNN built in."""
    return _ONEDNN and weight.device.type == "cpu" and weight.dtype == torch.float32


def plan(program: Program, keep: Collection[str]) -> dict[int, dict]:
    """Inference options for the convolution ops of ``program`` that compute on blocked maps:
    ``{id(op): {"blocked": (takes blocked input, gives blocked output)}}``, and for the first
    op of each chain ``"bound"``: the chain's `ChainBound`.

    A convolution runs blocked when its kernel can (``kernel.blockable(op)``), its weights
    allow it (`available`), and its input has at most `FEW_CHANNELS` channels or comes blocked
    from the previous convolution; it gives blocked maps when the one reader of its output
    runs blocked too and the output is not a result of the call (``keep``).
    """
    params = program.params

    def capable(op) -> bool:
        blockable = getattr(op.kernel, "blockable", None)
        return (blockable is not None and blockable(op)
                and available(params[op.ins["weights"]].tensor))

    chains: dict[str, list] = {}  # the value a chain's last op gives -> that chain's layers
    options: dict[int, dict] = {}
    for op in program.ops:
        source = op.ins.get("input")
        if not capable(op) or not (op.in_shapes["input"][1] <= FEW_CHANNELS
                                   or source in chains):
            continue
        out = op.outs["output"]
        readers = program.readers.get(out, [])  # (op, port) pairs
        blocked_out = (out not in keep and len(readers) == 1 and readers[0][1] == "input"
                       and capable(readers[0][0]))
        chain = chains.pop(source, None)
        options[id(op)] = {"blocked": (chain is not None, blocked_out)}
        if chain is None:  # a chain starts here
            chain = []
            options[id(op)]["bound"] = ChainBound(chain)
        chain.append((params[op.ins["weights"]].tensor, params[op.ins["bias"]].tensor))
        if blocked_out:
            chains[out] = chain
    return options


class ChainBound:
    """Whether a chain of convolutions can run blocked on an input: the input is finite and
    no value of the chain can reach `LIMIT` (so none overflows to infinity, and no NaN comes
    of one). Each layer maps a bound ``m`` on its input's magnitudes to ``gain * m + shift``
    (``gain``: the L1 norm of its weights, ``shift``: its largest bias magnitude; relu and
    max-pooling raise no magnitude), so the chain maps it to ``G * m + S``. ``G`` and ``S``
    are computed once per call, before its first chunk (`refresh`), from the parameters as
    they are then: an optimizer may change them in place without a trace (torch's fused Adam
    leaves the tensors' version counters alone), but nothing changes them within a call.
    Computed at every chunk, they took 3.5 ms of a seed-004 prediction over 10,000 rows."""

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]]):
        self.layers = layers  # filled by `plan` as the chain grows
        self._affine: tuple[float, float] | None = None  # (G, S) for the call under way

    def refresh(self) -> None:
        """Forget ``G`` and ``S``: the next `admits` reads the parameters again (the engine
        calls this at the start of each call)."""
        self._affine = None

    def admits(self, x: torch.Tensor) -> bool:
        """``x`` (dense, at least one element) can go through the chain blocked."""
        if self._affine is None:
            gain, shift = 1.0, 0.0
            for w, b in self.layers:
                g = float(torch.linalg.vector_norm(w.detach(), 1))
                gain, shift = gain * g, shift * g + (
                    float(torch.linalg.vector_norm(b.detach(), float("inf"))) if b.numel()
                    else 0.0)
            self._affine = gain, shift
        low, high = torch.aminmax(x)
        gain, shift = self._affine
        # abs(low) + abs(high) >= every |x|; NaN when x holds one
        return gain * (abs(float(low)) + abs(float(high))) + shift < LIMIT  # False for NaN


def conv_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                 stride: list[int], padding: list[int], pool: list[int] | None, relu: bool,
                 blocked_out: bool) -> torch.Tensor:
    """``pool(act(conv(x)))`` on blocked maps (the same values as the node's
    ``act(pool(conv(x)))``), with a relu applied inside the convolution
    (`optimus.compat.blocked_conv`: seed-004's predictor 8.7 % faster than a relu pass of its
    own); ``x`` dense (few channels) or blocked; the result blocked when ``blocked_out``, else
    dense in the default memory order. oneDNN reorders the (dense) weights itself, at each
    call: as fast as weights packed once, within this VM's noise, and never stale."""
    xm = x if x.is_mkldnn else x.contiguous().to_mkldnn()
    z = compat.blocked_conv(xm, weight, bias, padding, stride, relu)  # relu(max) = max(relu)
    if pool is not None:
        z = torch.mkldnn_max_pool2d(z, pool, pool)
    return z if blocked_out else z.to_dense()
