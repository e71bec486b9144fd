"""Node specs: small, typed, frozen descriptions of what a node computes.

A node's ``spec`` is built once, from its checked config, and is the one description that both
its reference ``forward`` (autograd) and its fast kernel (`optimus.fast`) read: neither reads
the raw config or the node's other attributes. Two nodes with equal specs (and parameters)
compute the same function.

======================  ==========================================================
Node types              ``spec``
======================  ==========================================================
Sigmoid, Tanh,          `ActivationSpec`
RectifiedLinear,
SoftRectifiedLinear,
Softmax, LogSoftmax
Affine, CenteredAffine  `DenseSpec`
Conv3D, Conv2D          `ConvSpec`
MaxPool, AvgPool        `PoolSpec`
Flatten                 `FlattenSpec`
Dropout                 `DropoutSpec`
GaussianNoise           `NoiseSpec`
BatchNorm               `BatchNormSpec`
WeightDecayPenalty      `PenaltySpec`
======================  ==========================================================

Other node types have ``spec`` None: their config (if any) is read by their forward only.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..activations import ACTIVATIONS, Activation

__all__ = ["ActivationSpec", "DenseSpec", "ConvSpec", "PoolSpec", "FlattenSpec",
           "DropoutSpec", "NoiseSpec", "BatchNormSpec", "PenaltySpec"]


@dataclass(frozen=True)
class ActivationSpec:
    """An elementwise (or along-an-axis) activation.

    Attributes:
        name: an ``act_type`` of `optimus.activations.ACTIVATIONS` ('relu', 'softmax', ...).
        axis: the axis of 'softmax' and 'log_softmax' (1 inside Affine and convolutions: the
            features / maps); ignored by the others.
        beta: the sharpness of 'softplus' / 'soft_relu', ``log(1 + exp(beta * x)) / beta``
            (SoftRectifiedLinear's ``knee``; 1 inside Affine and convolutions).
    """

    name: str
    axis: int = 1
    beta: float = 1.0

    @property
    def entry(self) -> Activation:
        """The table entry of ``name``."""
        return ACTIVATIONS[self.name]

    @property
    def params(self) -> dict[str, float | int]:
        """The keyword arguments the entry's functions take (``axis`` and/or ``beta``)."""
        return {key: getattr(self, key) for key in self.entry.params}

    @property
    def monotone(self) -> bool:
        """Never decreasing: ``act(max_pool(z)) == max_pool(act(z))``."""
        return self.entry.monotone

    def __call__(self, z):
        """The activation of ``z``, out of place: what a node's forward computes."""
        return self.entry.function(z, **self.params)


@dataclass(frozen=True)
class DenseSpec:
    """A fully-connected map: ``act(flatten(x) @ weights + bias)`` (Affine), or
    ``act((flatten(x) - bias) @ weights)`` with ``centered`` (CenteredAffine).

    Attributes:
        activation: applied to the ``(batch, n_out)`` product.
        out_dims: ``output_shape[1:]``; the result is reshaped to ``(batch, *out_dims)``.
        centered: subtract the ``(n_in,)`` bias from the input before the product.
    """

    activation: ActivationSpec
    out_dims: tuple[int, ...]
    centered: bool = False


@dataclass(frozen=True)
class ConvSpec:
    """A 2-D convolution (cross-correlation) with bias, an activation, and an optional
    max-pooling, in the order: ``pool(act(conv(pad(x))))``, or ``act(pool(conv(pad(x))))``
    when the activation is monotone (the same values, on fewer pixels).

    Attributes:
        padding: zero pixels on each side ``(height, width)``, symmetric.
        pre_pad: None, or an explicit asymmetric zero padding ``(left, right, top, bottom)``
            applied first ('same' padding of an even kernel); then ``padding`` is ``(0, 0)``.
        stride: the convolution's stride ``(height, width)``.
        pool: the max-pooling window, also its stride; ``(1, 1)`` for none. A partial window
            at the border is dropped.
        activation: applied to the maps (softmax and log-softmax over the maps, axis 1).
    """

    padding: tuple[int, int]
    pre_pad: tuple[int, int, int, int] | None
    stride: tuple[int, int]
    pool: tuple[int, int]
    activation: ActivationSpec

    @property
    def pools(self) -> bool:
        return self.pool != (1, 1)

    @property
    def pool_first(self) -> bool:
        """Pool before the activation (a monotone activation commutes with max)."""
        return self.activation.monotone


@dataclass(frozen=True)
class PoolSpec:
    """Pooling of ``(batch, maps, height, width)`` over windows.

    Attributes:
        mode: 'max' (padding counts as -inf) or 'avg' (padded zeros count).
        window, stride, padding: ``(height, width)`` each; partial windows are dropped.
    """

    mode: str
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class FlattenSpec:
    """Keep the first ``ndim - 1`` axes, flatten the rest: ``x.flatten(ndim - 1)``."""

    ndim: int


@dataclass(frozen=True)
class DropoutSpec:
    """In a training call, zero each value with probability ``rate`` and scale the others by
    ``1 / (1 - rate)`` (``torch.nn.functional.dropout``'s draws); else the identity."""

    rate: float


@dataclass(frozen=True)
class NoiseSpec:
    """In a training call, ``x + std * randn_like(x)``; else the identity."""

    std: float


@dataclass(frozen=True)
class BatchNormSpec:
    """Batch normalisation over axis 1 (`optimus.BatchNorm`): batch statistics and a running
    update ``running = (1 - momentum) * running + momentum * batch`` in a training call, the
    running statistics otherwise; ``epsilon`` is added to the variance."""

    momentum: float
    epsilon: float


PENALTY_FORMS = ("sum_squares", "mean_row_norm")


@dataclass(frozen=True)
class PenaltySpec:
    """A weight penalty (`optimus.WeightDecayPenalty`).

    Attributes:
        weight: the scale; None when it comes from the ``weight`` input port.
        form: 'sum_squares': ``weight * sum(x ** 2)`` (Blocks' and Keras' L2 penalty; the
            gradient ``2 * weight * x`` is plain weight decay). 'mean_row_norm':
            ``weight * mean_i ||x[i]||_2``, the mean over the rows (axis 0) of each row's L2
            norm over the other axes: the original (2015) Optimus library's penalty.
    """

    weight: float | None
    form: str = "sum_squares"
