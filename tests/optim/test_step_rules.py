"""Each step rule moves parameters exactly as its torch.optim counterpart, scaled per
parameter by the learning-rate Input wired to it; unwired parameters never move."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import optimus
from optimus import serialize
from optimus.errors import ConfigError, FormatError
from optimus.optim import SGD, Adagrad, Adam, AdamW, RMSProp

# (rule, torch class, torch kwargs besides lr): the reference is written out independently
RULES = [
    (SGD(), torch.optim.SGD, {}),
    (SGD(momentum=0.9), torch.optim.SGD, {"momentum": 0.9}),
    (SGD(momentum=0.9, nesterov=True, weight_decay=1e-2), torch.optim.SGD,
     {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}),
    (Adam(), torch.optim.Adam, {}),
    (Adam(betas=(0.8, 0.99), weight_decay=1e-2, amsgrad=True), torch.optim.Adam,
     {"betas": (0.8, 0.99), "weight_decay": 1e-2, "amsgrad": True}),
    (AdamW(), torch.optim.AdamW, {}),
    (AdamW(weight_decay=0.1, eps=1e-6), torch.optim.AdamW, {"weight_decay": 0.1, "eps": 1e-6}),
    (RMSProp(), torch.optim.RMSprop, {}),
    (RMSProp(alpha=0.9, momentum=0.5, centered=True, weight_decay=1e-3), torch.optim.RMSprop,
     {"alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 1e-3}),
    (Adagrad(), torch.optim.Adagrad, {}),
    (Adagrad(lr_decay=0.1, weight_decay=1e-2, initial_accumulator_value=0.1),
     torch.optim.Adagrad, {"lr_decay": 0.1, "weight_decay": 1e-2,
                           "initial_accumulator_value": 0.1}),
]
IDS = [repr(rule) for rule, _, _ in RULES]
PARAMS = ["hidden.weights", "hidden.bias", "out.weights", "out.bias"]


def build(step_rule, updates, engine="auto"):
    """A 6-5-3 relu/softmax MLP with NLL; ``updates`` maps rate names to parameter names."""
    data = optimus.Input("data", (None, 6))
    labels = optimus.Input("labels", (None,), "int32")
    rates = [optimus.Input(name, None) for name in updates]
    hidden = optimus.Affine("hidden", data.shape, (None, 5), "relu")
    out = optimus.Affine("out", hidden.output.shape, (None, 3), "linear")
    softmax, nll = optimus.Softmax("softmax"), optimus.NegativeLogLikelihoodLoss("nll")
    loss = optimus.Output("loss")
    edges = optimus.ConnectionManager([
        (data, hidden.input), (hidden.output, out.input), (out.output, softmax.input),
        (softmax.output, nll.likelihoods), (labels, nll.index), (nll.output, loss)])
    graph = optimus.Graph("mlp", [data, labels, *rates], [hidden, out, softmax, nll],
                          edges.connections, [loss], loss, updates, step_rule=step_rule,
                          engine=engine)
    rng = np.random.RandomState(0)
    graph.param_values = {name: rng.normal(0, 0.5, p.shape).astype("float32")
                          for name, p in graph.params.items()}
    return graph


def reference_loss(p, x, y):
    h = F.relu(x @ p["hidden.weights"] + p["hidden.bias"])
    probs = F.softmax(h @ p["out.weights"] + p["out.bias"], dim=1)
    return -torch.log(probs.gather(1, y.long().unsqueeze(1))).mean()


def batches(n=5):
    rng = np.random.RandomState(1)
    return [{"data": rng.randn(8, 6).astype("float32"),
             "labels": rng.randint(0, 3, 8).astype("int32")} for _ in range(n)]


def reference_run(graph, torch_class, kwargs, groups):
    """``groups``: [(rate, [parameter names])]; returns the parameters after every batch."""
    start = graph.param_values
    p = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in start.items()}
    opt = torch_class([{"params": [p[n] for n in names], "lr": rate} for rate, names in groups],
                      **kwargs)
    for batch in batches():
        opt.zero_grad()
        reference_loss(p, torch.from_numpy(batch["data"]),
                       torch.from_numpy(batch["labels"])).backward()
        opt.step()
    return {k: v.detach().numpy() for k, v in p.items()}


@pytest.mark.parametrize("rule,torch_class,kwargs", RULES, ids=IDS)
def test_trajectory_equals_torch_optim(rule, torch_class, kwargs):
    graph = build(rule, {"learning_rate": PARAMS})
    expected = reference_run(graph, torch_class, kwargs, [(0.05, PARAMS)])
    for batch in batches():
        graph(**batch, learning_rate=0.05)
    for name in PARAMS:
        np.testing.assert_allclose(graph.params[name].value, expected[name], rtol=1e-5,
                                   atol=1e-6, err_msg=name)


@pytest.mark.parametrize("rule,torch_class,kwargs", RULES, ids=IDS)
def test_each_parameter_moves_by_its_own_rate_and_unwired_ones_never(rule, torch_class,
                                                                      kwargs):
    wired = {"lr_hidden": ["hidden.weights", "hidden.bias"], "lr_out": ["out.weights"]}
    graph = build(rule, wired)  # out.bias is wired to nothing: frozen
    frozen = graph.params["out.bias"].value
    expected = reference_run(graph, torch_class, kwargs,
                             [(0.1, wired["lr_hidden"]), (0.01, wired["lr_out"])])
    for batch in batches():
        graph(**batch, lr_hidden=0.1, lr_out=0.01)
    for name in wired["lr_hidden"] + wired["lr_out"]:
        np.testing.assert_allclose(graph.params[name].value, expected[name], rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(graph.params["out.bias"].value, frozen)
    # a rate of zero holds its parameters still, whatever momentum or decay the rule has
    held = graph.params["out.weights"].value
    for batch in batches(3):
        graph(**batch, lr_hidden=0.1, lr_out=0.0)
    np.testing.assert_array_equal(graph.params["out.weights"].value, held)
    np.testing.assert_array_equal(graph.params["out.bias"].value, frozen)


@pytest.mark.parametrize("rule", [r for r, _, _ in RULES], ids=IDS)
def test_rule_is_saved_in_the_definition_and_loaded_back(rule, tmp_path):
    graph = build(rule, {"learning_rate": PARAMS})
    optimus.save(graph, tmp_path / "def.json")
    loaded = optimus.load(tmp_path / "def.json")
    assert type(loaded.step_rule) is type(rule)
    assert loaded.step_rule.get_config() == rule.get_config()
    assert serialize.graph_to_dict(loaded)["step_rule"]["type"] == type(rule).__name__
    assert type(loaded.optimizer) is type(graph.optimizer)


@pytest.mark.parametrize("make,field", [
    (lambda: SGD(momentum=-1), "momentum"),
    (lambda: SGD(nesterov=True), "nesterov"),
    (lambda: Adam(betas=(1.0, 0.9)), "betas"),
    (lambda: Adam(betas=0.9), "betas"),
    (lambda: Adam(eps=0), "eps"),
    (lambda: AdamW(weight_decay=-0.1), "weight_decay"),
    (lambda: RMSProp(alpha=2.0), "alpha"),
    (lambda: RMSProp(centered="yes"), "centered"),
    (lambda: Adagrad(lr_decay="fast"), "lr_decay"),
])
def test_bad_settings_name_the_rule_and_field(make, field):
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.field == field
    assert field in str(info.value)


def test_bad_rule_in_a_file_names_the_field(tmp_path):
    graph = build(Adam(), {"learning_rate": PARAMS})
    doc = serialize.graph_to_dict(graph)
    doc["step_rule"]["betas"] = [0.9, 1.5]
    with pytest.raises(FormatError, match=r"step_rule\.betas"):
        serialize.graph_from_dict(doc)
    doc["step_rule"] = {"type": "Adamm"}
    with pytest.raises(FormatError, match="Adam"):
        serialize.graph_from_dict(doc)


# -- torch's implementation choice --------------------------------------------------------------
def trained(step_rule):
    graph = build(step_rule, {"learning_rate": PARAMS})
    rng = np.random.RandomState(0)
    graph(data=rng.randn(4, 6), labels=rng.randint(0, 3, 4).astype(np.int32),
          learning_rate=0.01)
    return graph


@pytest.mark.parametrize("rule", [Adam, AdamW])
def test_adam_builds_torchs_fused_kernel_unless_told_otherwise(rule):
    graph = trained(rule())
    assert all(g["fused"] is True for g in graph.optimizer.param_groups)
    assert "fused" not in rule().get_config() and "foreach" not in rule().get_config()
    for choice in ({"foreach": True}, {"foreach": False}, {"fused": False}):
        graph = trained(rule(**choice))
        key, value = next(iter(choice.items()))
        for group in graph.optimizer.param_groups:  # as given, after a training call
            assert group[key] is value
            assert not group["fused"]
        assert rule(**choice).get_config()[key] is value


def test_a_users_own_optimizer_settings_are_never_changed():
    """A step rule building its own torch optimizer: the engines set ``lr`` and nothing else."""
    class PlainAdam(optimus.optim.StepRule, register=False):
        def build(self, groups):
            return torch.optim.Adam(groups, lr=0.0, foreach=False)

    for engine in ("fast", "reference"):
        graph = build(PlainAdam(), {"learning_rate": PARAMS}, engine)
        assert graph.engine.name == engine
        before = [{k: v for k, v in g.items() if k not in ("params", "lr")}
                  for g in graph.optimizer.param_groups]
        rng = np.random.RandomState(0)
        for _ in range(2):
            graph(data=rng.randn(4, 6), labels=rng.randint(0, 3, 4).astype(np.int32),
                          learning_rate=0.01)
        after = [{k: v for k, v in g.items() if k not in ("params", "lr")}
                 for g in graph.optimizer.param_groups]
        assert after == before and before[0]["fused"] is None and before[0]["foreach"] is False


def test_foreach_and_fused_are_checked():
    with pytest.raises(ConfigError, match="foreach and fused"):
        Adam(foreach=True, fused=True)
    with pytest.raises(ConfigError) as info:
        AdamW(fused="yes")
    assert info.value.field == "fused"
