"""ONNX export: ONNX Runtime computes what optimus computes (float32, <= 1e-5 relative to
each output's scale) for the five seed predictors on real rows, and for every node case of
`tests/nodes/cases.py` that ONNX can express; a node it cannot express is named in the error.

The node cases are exported together, as one graph with a separate Input/node/Output chain per
case (one export instead of ninety: the exporter takes seconds per call)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import optimus
from optimus import registry
from optimus.nodes.catalog import node_types
from optimus.onnx import OPSET, ExportError, export_onnx

from ..nodes.cases import CASES, Case

# Case ids the exporter cannot express: Max over every axis (aten.max without a dim has no
# ONNX translation in the exporter's registry).
UNEXPORTABLE = {"Max-all"}
RTOL = 1e-5


def session(path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Equal to ``RTOL`` relative to the output's largest magnitude (values near zero are
    compared on that scale: float32 sums in another order differ in their last bits)."""
    assert got.shape == want.shape, what
    scale = max(float(np.max(np.abs(want))), 1e-30) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def case_dtype(array: np.ndarray) -> str:
    return "float32" if array.dtype.kind == "f" else "int64"


def add_case(case: Case, inputs, nodes, connections, outputs, feed, params) -> None:
    """Append the case's chain, names prefixed with the case id."""
    node = registry.lookup("node", case.type)(name=case.id, **case.kwargs)
    for port, array in case.inputs.items():
        name = f"{case.id}_{port}"
        inputs.append(optimus.Input(name, array.shape if array.ndim else None,
                                    case_dtype(array)))
        connections[name] = [f"{case.id}.{port}"]
        feed[name] = array.astype(case_dtype(array))
    for port in node.outputs:
        outputs.append(optimus.Output(f"{case.id}_{port}_out"))
        connections[f"{case.id}.{port}"] = [f"{case.id}_{port}_out"]
    nodes.append(node)
    params.update({f"{case.id}.{k}": v.astype(np.float32)
                   for k, v in case.param_values(node).items()})


def one_graph(cases: list[Case], name: str) -> tuple[optimus.Graph, dict]:
    inputs, nodes, connections, outputs, feed, params = [], [], {}, [], {}, {}
    for case in cases:
        add_case(case, inputs, nodes, connections, outputs, feed, params)
    graph = optimus.Graph(name, inputs, nodes, connections, outputs)
    graph.param_values = params
    return graph, feed


def test_every_exportable_node_case_matches_onnx_runtime(tmp_path):
    cases = [c for c in CASES if c.id not in UNEXPORTABLE]
    assert {c.type for c in cases} == {cls.__name__ for cls in node_types()}  # every type
    graph, feed = one_graph(cases, "all_node_cases")
    path = tmp_path / "cases.onnx"
    signature = export_onnx(graph, path)
    assert signature.outputs == tuple(graph.outputs)
    want = graph(**feed)
    got = session(path).run(None, {name: feed[name] for name in signature.inputs})
    assert len(got) == len(want)
    for array, (name, expected) in zip(got, want.items()):
        assert_close(array, expected, name)


def test_a_node_onnx_cannot_express_is_named(tmp_path):
    graph, _ = one_graph([c for c in CASES if c.id in UNEXPORTABLE], "unexportable")
    with pytest.raises(ExportError, match=r"node 'Max-all' \(Max\) cannot be expressed in "
                                          r"ONNX: ConversionError"):
        export_onnx(graph, tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "bad.onnx"])
    assert not any(p.name.endswith(".probe.onnx") for p in tmp_path.iterdir())


def test_export_leaves_the_global_random_stream_alone(classifier, tmp_path):
    """Its example inputs come from a private generator: a script's draws after an export are
    those it would make without one."""
    torch.manual_seed(7)
    export_onnx(classifier, tmp_path / "c.onnx")
    after = torch.rand(3)
    torch.manual_seed(7)
    np.testing.assert_array_equal(after.numpy(), torch.rand(3).numpy())


def test_unknown_output_is_an_error(classifier, tmp_path):
    with pytest.raises(ExportError, match="'probs'.*'loss', 'likelihoods'"):
        export_onnx(classifier, tmp_path / "x.onnx", outputs=["probs"])


# -- the five seed predictors on real rows --------------------------------------------------------
def seed_models():
    """(name, graph, outputs to export, feed builder): each seed's predictor, built with its
    example's builder (seeds 000 and 001 have one graph: its ``likelihoods``)."""
    from optimus.examples import (seed000_mnist_convnet, seed001_sentiment_mlp,
                                  seed002_blocks_mlp, seed003_mxnet_cnn, seed004_flux_conv)
    yield "seed000", seed000_mnist_convnet.build_trainer(), ["likelihoods"], "images"
    params = seed001_sentiment_mlp.lxmls_init()
    yield "seed001", seed001_sentiment_mlp.build_graph(params, "auto"), ["likelihoods"], "text"
    yield "seed002", seed002_blocks_mlp.build()[1], ["likelihoods"], "flat"
    yield "seed003", seed003_mxnet_cnn.build(glorot=True)[1], None, "images"
    yield "seed004", seed004_flux_conv.build()[1], None, "images"


@pytest.fixture(scope="module")
def rows(data_root):
    from optimus.datasets import mnist, sentiment
    _, _, (images, _) = mnist.load(data_dir=data_root / "mnist", download=False)
    (_, _), (text, _) = sentiment.load("books", data_dir=data_root / "sentiment")
    return {"images": images[:300], "flat": images[:300].reshape(300, 784), "text": text[:200]}


@pytest.mark.parametrize("name,graph,outputs,kind", list(seed_models()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_seed_predictor_matches_onnx_runtime(name, graph, outputs, kind, rows, tmp_path):
    path = tmp_path / f"{name}.onnx"
    signature = export_onnx(graph, path, outputs=outputs)
    model = onnx.load(str(path))
    assert model.opset_import[0].version >= OPSET
    assert [i.name for i in model.graph.input] == list(signature.inputs)
    assert [o.name for o in model.graph.output] == list(outputs or graph.outputs)
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")  # a dynamic batch
    x = rows[kind]
    feed = {signature.inputs[0]: x}
    full = {n: (np.zeros(len(x), "int64") if i.shape == (None,) else 0.0)
            for n, i in graph.inputs.items() if n not in feed}
    want = graph(**feed, **full)
    ort = session(path)
    for batch in (len(x), 1):  # any batch size
        got = ort.run(None, {k: v[:batch] for k, v in feed.items()})
        for array, out in zip(got, signature.outputs):
            assert_close(array, want[out][:batch], f"{name} {out} batch {batch}")
