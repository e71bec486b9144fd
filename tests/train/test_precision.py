"""``Driver.fit(precision='bf16')``: steps under bfloat16 autocast on either engine (close to
float32 training, parameters stay float32)."""
import numpy as np
import pytest

import optimus
from optimus.errors import ConfigError
from training_setups import classifier, stream


def fit(precision, engine="reference"):
    graph, _ = classifier()
    graph = optimus.Graph(graph.name, list(graph.inputs.values()), list(graph.nodes.values()),
                          graph.connections, list(graph.outputs.values()), graph.loss,
                          graph.updates, step_rule=optimus.optim.Adam(), engine=engine)
    driver = optimus.Driver(graph, verbose=0)
    stats = driver.fit(stream(), {"learning_rate": 0.01}, max_iter=19, precision=precision)
    return graph, stats["loss"]


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_bf16_trains_close_to_float32_with_float32_parameters(engine):
    graph32, loss32 = fit(None, engine)
    graph16, loss16 = fit("bf16", engine)
    assert all(v.dtype == np.float32 for v in graph16.param_values.values())
    assert not np.array_equal(loss16, loss32)  # bfloat16 products did run
    np.testing.assert_allclose(loss16, loss32, rtol=0.05)
    assert loss16[-1] < loss16[0]


def test_an_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="precision"):
        fit("fp16")
