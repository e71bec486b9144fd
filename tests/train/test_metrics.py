"""Metrics: batch means computed from outputs and the batch's targets."""
import numpy as np
import pytest

from optimus.train import accuracy, error_rate

OUT = {"likelihoods": np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])}


def test_accuracy_and_error_rate_by_hand():
    batch = {"labels": np.array([0, 1, 1, 1])}
    assert accuracy()(OUT, batch) == 0.75
    assert error_rate()(OUT, batch) == 0.25


def test_one_hot_targets_as_flux_uses():
    batch = {"y": np.eye(2)[[0, 1, 1, 1]]}
    assert accuracy("likelihoods", "y")(OUT, batch) == 0.75


def test_missing_names_are_reported():
    with pytest.raises(KeyError, match="probs"):
        accuracy("probs")(OUT, {"labels": np.zeros(4)})
    with pytest.raises(KeyError, match="targets"):
        error_rate(target="targets")(OUT, {"labels": np.zeros(4)})
