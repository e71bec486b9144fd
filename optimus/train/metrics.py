"""Metrics for `Monitor`: functions of a batch's outputs and inputs returning a batch mean.

A metric is any ``f(outputs, batch) -> float``; `Monitor` averages it over a stream, weighted
by batch size. `accuracy` and `error_rate` cover classifiers.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Metric = Callable[[Mapping[str, np.ndarray], Mapping[str, Any]], float]


def _predicted_and_true(outputs: Mapping[str, np.ndarray], batch: Mapping[str, Any],
                        output: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    if output not in outputs:
        raise KeyError(f"metric: no output {output!r}; the graph returns {list(outputs)}")
    if target not in batch:
        raise KeyError(f"metric: the batch has no {target!r}; it has {list(batch)}")
    scores = np.asarray(outputs[output])
    truth = np.asarray(batch[target])
    if truth.ndim == scores.ndim:  # one-hot targets, as Flux's onehotbatch
        truth = truth.argmax(axis=1)
    return scores.argmax(axis=1), truth.reshape(-1)


def accuracy(output: str = "likelihoods", target: str = "labels") -> Metric:
    """Fraction of examples whose highest-scoring class in output ``output`` (shape
    ``(batch, classes)``) is the batch's ``target`` (class indices, or one-hot)."""
    def metric(outputs: Mapping[str, np.ndarray], batch: Mapping[str, Any]) -> float:
        predicted, truth = _predicted_and_true(outputs, batch, output, target)
        return float(np.mean(predicted == truth))
    metric.__name__ = f"accuracy({output!r}, {target!r})"
    return metric


def error_rate(output: str = "likelihoods", target: str = "labels") -> Metric:
    """``1 - accuracy``: the fraction of misclassified examples."""
    def metric(outputs: Mapping[str, np.ndarray], batch: Mapping[str, Any]) -> float:
        predicted, truth = _predicted_and_true(outputs, batch, output, target)
        return float(np.mean(predicted != truth))
    metric.__name__ = f"error_rate({output!r}, {target!r})"
    return metric


__all__ = ["Metric", "accuracy", "error_rate"]
