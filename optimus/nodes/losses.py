"""Losses: nodes whose ``output`` is a scalar to minimise (and CrossEntropy, the original
library's per-sample cross-entropy that CrossEntropyLoss averages).

Scalar hyper-parameters that the original library took as input ports (WeightDecayPenalty's
``weight``, the margins) may instead be given as config; the port exists only when the config
value is None, so the original's definitions load and new code can write
``WeightDecayPenalty('decay', weight=0.005)``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from . import checks
from .base import Node, Tensor
from .specs import PENALTY_FORMS, PenaltySpec


def _classifier_loss_shape(node: Node, input_shapes, input_dtypes):
    """A scalar float32 for ``(batch, classes)`` float32 scores and ``(batch,)`` int labels
    with the same batch axis (both None or equal), without probing; else None (probe)."""
    scores_port = node.input_names[0]
    scores, index = input_shapes.get(scores_port), input_shapes.get("index")
    if (scores is None or index is None or len(scores) != 2 or len(index) != 1
            or scores[0] != index[0]
            or (input_dtypes.get(scores_port) or "float32") != "float32"
            or (input_dtypes.get("index") or "int64") not in ("int32", "int64")):
        return None
    return {"output": ((), "float32")}


class NegativeLogLikelihoodLoss(Node):
    """Mean of ``-log(likelihoods[i, index[i]])``: the loss of a 1-of-K classifier.

    Ports: ``likelihoods`` ``(batch, classes)`` probabilities, ``index`` ``(batch,)`` ints,
    ``output`` a scalar.
    """

    input_names = ("likelihoods", "index")
    input_dtypes = {"index": "int64"}
    index_ports = {"index": ("likelihoods", 1)}

    def __init__(self, name: str):
        super().__init__(name)

    def static_infer(self, input_shapes, input_dtypes):
        return _classifier_loss_shape(self, input_shapes, input_dtypes)

    def forward(self, inputs, params, training=False):
        index = inputs["index"].long().unsqueeze(1)
        picked = inputs["likelihoods"].gather(1, index)
        return -torch.log(picked).mean()


class NegativeLogLikelihood(NegativeLogLikelihoodLoss):
    """The same loss under the original library's later name (``optimus.losses``)."""


class CategoricalCrossEntropy(NegativeLogLikelihoodLoss):
    """Blocks' name for the mean of ``-log(likelihoods[i, index[i]])`` (probabilities and
    integer labels); use SoftmaxCrossEntropyLoss on logits for numerical stability."""


class SoftmaxCrossEntropyLoss(Node):
    """Mean of ``-log_softmax(logits)[i, index[i]]``: softmax and NLL in one stable step.

    Ports: ``logits`` ``(batch, classes)`` unnormalised scores, ``index`` ``(batch,)`` ints.
    """

    input_names = ("logits", "index")
    input_dtypes = {"index": "int64"}
    index_ports = {"index": ("logits", 1)}

    def __init__(self, name: str):
        super().__init__(name)

    def static_infer(self, input_shapes, input_dtypes):
        return _classifier_loss_shape(self, input_shapes, input_dtypes)

    def forward(self, inputs, params, training=False):
        return F.cross_entropy(inputs["logits"], inputs["index"].long())


class CrossEntropy(Node):
    """Per-sample binary cross-entropy of ``prediction`` against ``target`` (both in [0, 1],
    ``(batch, n)``), averaged over axis 1: a ``(batch,)`` vector, as in the original.

    ``-mean(t * log((p + eps) / (1 + eps)) + (1 - t) * log((1 - p + eps) / (1 + eps)))``

    Args:
        epsilon: keeps the logs finite at 0 and 1.
    """

    input_names = ("prediction", "target")
    always_rowwise = True  # one value per sample

    def __init__(self, name: str, epsilon: float = 1e-6):
        super().__init__(name, epsilon=epsilon)
        self.epsilon = checks.number(self, "epsilon", epsilon, minimum=0.0)

    def forward(self, inputs, params, training=False):
        p, t, eps = inputs["prediction"], inputs["target"], self.epsilon
        scale = 1.0 + eps
        out = t * torch.log((p + eps) / scale) + (1.0 - t) * torch.log((1.0 - p + eps) / scale)
        return -out.mean(dim=1)


class CrossEntropyLoss(CrossEntropy):
    """The mean over the batch of CrossEntropy: a scalar."""

    always_rowwise = False

    def forward(self, inputs, params, training=False):
        return super().forward(inputs, params, training).mean()


class MeanSquaredError(Node):
    """Mean over the batch of each sample's summed squared error (all axes but the first):
    ``mean_b sum_i (prediction[b, i] - target[b, i]) ** 2``; two vectors give their summed
    squared error. (PyTorch's ``mse_loss`` averages over every element instead.)"""

    input_names = ("prediction", "target")

    def __init__(self, name: str):
        super().__init__(name)

    def forward(self, inputs, params, training=False):
        diff = inputs["prediction"] - inputs["target"]
        if diff.dim() >= 2:
            return diff.flatten(1).pow(2).sum(dim=1).mean()
        return diff.pow(2).sum()


class _ScalarPorts(Node, register=False):
    """A node whose scalar settings are config values, or input ports where they are None."""

    required: tuple[str, ...] = ()

    def __init__(self, name: str, settings: Mapping[str, Any], **config):
        self.input_names = self.required + tuple(k for k, v in settings.items() if v is None)
        super().__init__(name, **config, **settings)
        self.settings = {k: None if v is None else checks.number(self, k, v)
                         for k, v in settings.items()}

    def setting(self, inputs, key: str) -> Tensor | float:
        value = self.settings[key]
        return inputs[key] if value is None else value


class WeightDecayPenalty(_ScalarPorts):
    """A weight penalty on any tensor, typically a parameter (connect ``affine.weights`` to
    ``input``) to add to the loss: ``weight * sum(input ** 2)`` by default.

    Args:
        weight: the penalty's scale (>= 0); None makes ``weight`` an input port, as in the
            original library.
        form: 'sum_squares' (default): ``weight * sum(input ** 2)``, the L2 penalty of Blocks
            and Keras (its gradient is plain weight decay, ``2 * weight * input``).
            'mean_row_norm': ``weight * mean_i ||input[i]||_2``, the mean over the rows
            (axis 0) of the L2 norm of each row (over the other axes; a vector's rows are its
            entries): the original 2015 Optimus library's penalty, which its saved
            definitions mean.
    """

    required = ("input",)
    ports_doc = "input, weight (a port only when config weight is None)"
    _spec: PenaltySpec

    def __init__(self, name: str, weight: float | None = None, form: str = "sum_squares"):
        super().__init__(name, {"weight": weight}, form=form)
        if weight is not None:
            checks.number(self, "weight", weight, minimum=0.0)
        self._spec = PenaltySpec(self.settings["weight"],
                                 checks.choice(self, "form", form, PENALTY_FORMS))

    def forward(self, inputs, params, training=False):
        x = inputs["input"]
        if self._spec.form == "sum_squares":
            return self.setting(inputs, "weight") * x.pow(2).sum()
        rows = x.reshape(x.shape[0] if x.dim() else 1, -1)
        return self.setting(inputs, "weight") * torch.linalg.vector_norm(rows, dim=1).mean()


class SimilarityMargin(_ScalarPorts):
    """Contrastive loss on distances ``D`` with similarity scores ``y`` in [0, 1]:
    ``mean(y * relu(D - sim_margin) ** 2 + (1 - y) * relu(diff_margin - D) ** 2)``.

    Ports: ``distance`` and ``equivalence`` vectors ``(batch,)``; ``sim_margin`` and
    ``diff_margin`` scalars unless given as config.
    """

    required = ("distance", "equivalence")
    ports_doc = "distance, equivalence, sim_margin, diff_margin (margins: ports only when None)"

    def __init__(self, name: str, sim_margin: float | None = None,
                 diff_margin: float | None = None):
        super().__init__(name, {"sim_margin": sim_margin, "diff_margin": diff_margin})

    def forward(self, inputs, params, training=False):
        dist, equiv = inputs["distance"], inputs["equivalence"]
        sim = F.relu(dist - self.setting(inputs, "sim_margin")).pow(2)
        diff = F.relu(self.setting(inputs, "diff_margin") - dist).pow(2)
        return (equiv * sim + (1.0 - equiv) * diff).mean()


class ContrastiveMargin(_ScalarPorts):
    """Margin loss on the costs of similar and different pairs:
    ``mean(relu(cost_sim - margin_sim) ** 2) + mean(relu(margin_diff - cost_diff) ** 2)``.

    Args:
        filter_zeros: average each term over its non-zero entries only (as the original; a
            term with none is 0, where the original gave NaN).
        margin_sim, margin_diff: the margins; None makes each an input port (the original).
    """

    required = ("cost_sim", "cost_diff")
    ports_doc = "cost_sim, cost_diff, margin_sim, margin_diff (margins: ports only when None)"

    def __init__(self, name: str, filter_zeros: bool = True, margin_sim: float | None = None,
                 margin_diff: float | None = None):
        super().__init__(name, {"margin_sim": margin_sim, "margin_diff": margin_diff},
                         filter_zeros=filter_zeros)
        if not isinstance(filter_zeros, bool):
            raise self.config_error("filter_zeros", f"must be true or false, got "
                                    f"{filter_zeros!r}")
        self.filter_zeros = filter_zeros

    def _mean(self, loss: Tensor) -> Tensor:
        if not self.filter_zeros:
            return loss.mean()
        count = (loss > 0).sum().clamp(min=1)  # a data-independent shape, unlike masking
        return loss.sum() / count

    def forward(self, inputs, params, training=False):
        sim = F.relu(inputs["cost_sim"] - self.setting(inputs, "margin_sim")).pow(2)
        diff = F.relu(self.setting(inputs, "margin_diff") - inputs["cost_diff"]).pow(2)
        return self._mean(sim) + self._mean(diff)


class PairwiseRank(_ScalarPorts):
    """Pairwise rank loss ``mean(relu(cost_diff - alpha * cost_sim + margin) ** 2)``, the
    original library's formula.

    Ports: ``cost_sim``, ``cost_diff`` vectors; ``alpha`` and ``margin`` scalars unless given
    as config.
    """

    required = ("cost_sim", "cost_diff")
    ports_doc = "cost_sim, cost_diff, alpha, margin (alpha, margin: ports only when None)"

    def __init__(self, name: str, alpha: float | None = None, margin: float | None = None):
        super().__init__(name, {"alpha": alpha, "margin": margin})

    def forward(self, inputs, params, training=False):
        cost = (inputs["cost_diff"] - self.setting(inputs, "alpha") * inputs["cost_sim"]
                + self.setting(inputs, "margin"))
        return F.relu(cost).pow(2).mean()
