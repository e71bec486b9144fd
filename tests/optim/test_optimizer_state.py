"""Optimizer state as plain data: arrays plus JSON, restored to continue bit for bit."""
import json

import numpy as np
import pytest

from optimus.errors import FormatError
from optimus.optim import SGD, Adagrad, Adam, RMSProp, load_optimizer_state, optimizer_state
from test_step_rules import PARAMS, batches, build


def names(graph):
    return {id(p.tensor): name for name, p in graph.params.items()}


@pytest.mark.parametrize("rule", [SGD(momentum=0.9), Adam(amsgrad=True), RMSProp(centered=True,
                                                                                  momentum=0.1),
                                  Adagrad(lr_decay=0.1)], ids=repr)
def test_state_round_trip_continues_bit_for_bit(rule):
    a = build(rule, {"learning_rate": PARAMS})
    for batch in batches(3):
        a(**batch, learning_rate=0.05)
    meta, arrays = optimizer_state(a.optimizer, names(a))
    json.dumps(meta)  # plain JSON
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    b = build(rule, {"learning_rate": PARAMS})
    b.param_values = a.param_values
    load_optimizer_state(b.optimizer, names(b), json.loads(json.dumps(meta)), arrays)
    for batch in batches(4):
        a(**batch, learning_rate=0.05)
        b(**batch, learning_rate=0.05)
    for name in PARAMS:
        np.testing.assert_array_equal(a.params[name].value, b.params[name].value)


def test_adam_state_names_moments_by_parameter():
    graph = build(Adam(), {"learning_rate": PARAMS})
    graph(**batches(1)[0], learning_rate=0.1)
    meta, arrays = optimizer_state(graph.optimizer, names(graph))
    assert set(arrays) == {f"{p}/{k}" for p in PARAMS for k in ("step", "exp_avg", "exp_avg_sq")}
    assert meta["groups"][0]["name"] == "learning_rate"
    assert meta["groups"][0]["betas"] == {"tuple": [0.9, 0.999]}


def test_state_of_another_rule_or_graph_is_refused():
    adam = build(Adam(), {"learning_rate": PARAMS})
    adam(**batches(1)[0], learning_rate=0.1)
    meta, arrays = optimizer_state(adam.optimizer, names(adam))
    sgd = build(SGD(), {"learning_rate": PARAMS})
    with pytest.raises(FormatError, match="Adam"):
        load_optimizer_state(sgd.optimizer, names(sgd), meta, arrays)
    split = build(Adam(), {"lr_a": PARAMS[:2], "lr_b": PARAMS[2:]})
    with pytest.raises(FormatError, match="groups"):
        load_optimizer_state(split.optimizer, names(split), meta, arrays)
