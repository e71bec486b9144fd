"""Run as ``python bombs.py <address-space cap in bytes>`` (test_bombs.py does): caps its
own address space (``RLIMIT_AS``), builds each bomb file, loads it, and prints one JSON line
per bomb with the error class, message and seconds taken. A bomb that loads, or any other exception, is
reported as such (the test fails on it)."""
from __future__ import annotations

import resource
import sys

if __name__ == "__main__" and len(sys.argv) > 1:  # cap the address space before any import
    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))

import io  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import optimus  # noqa: E402
from optimus import serialize  # noqa: E402


def base_graph() -> optimus.Graph:
    x = optimus.Input("x", (None, 4))
    y = optimus.Input("y", (None,), "int64")
    dense = optimus.Affine("dense", (None, 4), (None, 3), "linear")
    loss = optimus.SoftmaxCrossEntropyLoss("loss")
    cost = optimus.Output("cost")
    return optimus.Graph("g", [x, y], [dense, loss],
                         {"x": ["dense.input"], "dense.output": ["loss.logits"],
                          "y": ["loss.index"], "loss.output": ["cost"]}, [cost])


def definition_bombs(doc: dict) -> dict[str, object]:
    def node(**fields):
        changed = json.loads(json.dumps(doc))
        changed["nodes"].append(fields)
        return changed

    def first(**fields):
        changed = json.loads(json.dumps(doc))
        changed["nodes"][0].update(fields)
        return changed

    shape = json.loads(json.dumps(doc))
    shape["inputs"][0]["shape"] = [None, 2**63]
    return {
        "Affine 1e9 x 1e9": first(input_shape=[None, 10**9], output_shape=[None, 10**9]),
        "Conv2D with 1e6 filters": node(type="Conv2D", name="conv", input_shape=[None, 3, 32, 32],
                                        weight_shape=[10**6, 3, 999, 999]),
        "Constant 1e6 x 1e6": node(type="Constant", name="c", shape=[10**6, 10**6]),
        "BatchNorm 1e12 features": node(type="BatchNorm", name="bn", input_shape=[None, 10**12]),
        "BatchNorm 1e9 features": node(type="BatchNorm", name="bn", input_shape=[None, 10**9]),
        "Add num_inputs=1e9": node(type="Add", name="add", num_inputs=10**9),
        "Add num_inputs=1e12": node(type="Add", name="add", num_inputs=10**12),
        "shape[1] = 2**63": shape,
        "output_shape[1] = 4294967297": first(output_shape=[None, 4294967297]),
    }


def npz_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for key, value in members.items():
            archive.writestr(key + ".npy", value)
    return out.getvalue()


def header(shape: tuple, descr: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def main() -> None:
    graph = base_graph()
    doc = serialize.graph_to_dict(graph)
    folder = Path(tempfile.mkdtemp())
    cases: list[tuple[str, Path, Path | None]] = []
    for label, bomb in definition_bombs(doc).items():
        path = folder / f"{len(cases)}.json"
        path.write_text(json.dumps(bomb))
        cases.append((label, path, None))
    plain = folder / "plain.json"
    plain.write_text(json.dumps(doc))
    texts = {"JSON nested 100,000 deep": "[" * 100_000 + "]" * 100_000,
             "an integer of 100,000 digits": '{"name": ' + "7" * 100_000 + "}"}
    for label, text in texts.items():
        path = folder / f"{len(cases)}.json"
        path.write_text(text)
        cases.append((label, path, None))
    values = {k: np.asarray(v) for k, v in graph.param_values.items()}
    members = {k: _npy(v) for k, v in values.items()}
    npz = {"npz member declaring 4 TB": {**members, "dense.weights": header((2**40,), "<f4")},
           "npz 40 GB under an unused key": {**members, "unused": header((10**10,), "<f4")},
           "npz member that is not .npy": {**members, "dense.bias": b"not an array"}}
    for label, content in npz.items():
        path = folder / f"{len(cases)}.npz"
        path.write_bytes(npz_bytes(content))
        cases.append((label, plain, path))
    for label, def_file, param_file in cases:
        began = time.perf_counter()
        try:
            optimus.load(def_file, param_file)
            outcome, message = "loaded", ""
        except optimus.OptimusError as err:
            outcome, message = type(err).__name__, str(err)
        except BaseException as err:  # noqa: BLE001 - reported, the test fails on it
            outcome, message = f"escaped {type(err).__name__}", str(err)[:500]
        print(json.dumps({"bomb": label, "outcome": outcome, "message": message,
                          "seconds": time.perf_counter() - began}), flush=True)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


if __name__ == "__main__":
    sys.setrecursionlimit(10_000)
    main()
