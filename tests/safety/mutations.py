"""Structure-aware mutations of saved models, for fuzzing `optimus.load`.

The seeds are the seed workflows' graphs (`seed_models`): each as its JSON definition and its
``.npz`` parameter bytes. `mutate_definition` and `mutate_params` apply one to three random
mutations (deleted fields, swapped types, huge and negative numbers, deep nesting, unicode,
wrong type names, duplicate names, truncation, header bombs, foreign members) driven by a
`random.Random`, so a Hypothesis test (``st.randoms()``) and the benchmark
(``benchmarks/fuzz_load.py``) share them. `load_case` loads one mutated pair and returns
"ok" or the name of the `OptimusError` raised; anything else propagates.
"""
from __future__ import annotations

import copy
import io
import json
import random
import warnings
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

import optimus
from optimus import serialize

FUZZ_MAX_PARAMS = 2**23

HUGE = [2**31, 2**32 + 1, 2**63, 2**64, 10**12, 10**18, 10**30, -1, -(2**63), 0, 1e308,
        -1e308, float("inf"), float("nan"), 1.5, 10**4300 // 10**4290]
STRINGS = ["", "é", "名前", "\u0000", "\ud7ff", "a" * 1000, "..", "a.b", "Affine", "Graph",
           "__import__('os')", "os.system", "lambda x: x", "relu", "cuda", "meta",
           "float128", "object", "int32", "None", "💥"]
TYPE_NAMES = ["Affine", "Conv2D", "Conv3D", "Add", "Constant", "BatchNorm", "Softmax",
              "Input", "Output", "Graph", "Node", "SGD", "Adam", "builtins.eval",
              "optimus.nodes.Affine", "torch.nn.Linear", "affine", "", "Lambda"]


@lru_cache(maxsize=None)
def seed_models() -> tuple[tuple[str, bytes], ...]:
    """``(definition JSON text, parameter .npz bytes)`` of each seed workflow's graphs."""
    from optimus.examples import (seed000_mnist_convnet, seed001_sentiment_mlp,
                                  seed002_blocks_mlp, seed003_mxnet_cnn, seed004_flux_conv)
    graphs = [seed000_mnist_convnet.build_trainer(), *seed002_blocks_mlp.build(),
              *seed003_mxnet_cnn.build(), *seed004_flux_conv.build(),
              seed004_flux_conv.build(dropout=0.5, batch_norm=True)[0],
              seed001_sentiment_mlp.build_graph(seed001_sentiment_mlp.lxmls_init(), "auto")]
    models = []
    for graph in graphs:
        buffer = io.BytesIO()
        np.savez(buffer, **graph.param_values)
        models.append((serialize.to_json(graph), buffer.getvalue()))
    return tuple(models)


# -- definitions ----------------------------------------------------------------------------
def _containers(doc: Any, path: tuple = ()) -> list[tuple]:
    """Paths of the dicts and lists in ``doc``, down to 6 levels."""
    found = [path]
    if len(path) >= 6:
        return found
    items = doc.items() if isinstance(doc, dict) else enumerate(doc)
    for key, value in items:
        if isinstance(value, (dict, list)):
            found += _containers(value, path + (key,))
    return found


def _get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value: numbers at the edges, odd strings, nested containers."""
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice(HUGE)
    if kind == 1:
        return rng.choice(STRINGS)
    if kind == 2:
        return rng.choice([None, True, False, 0, 1, 2, 3])
    if kind == 3:
        return rng.randint(-10, 100)
    if kind == 4:
        return rng.choice(TYPE_NAMES)
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 6:
        return {rng.choice(STRINGS + ["type", "name", "shape"]): _value(rng, depth + 1)
                for _ in range(rng.randrange(3))}
    return [None, rng.choice([1, 7, 28, 10**9, 2**40])]


DEEP = "\x00deep:"  # a placeholder string that `mutate_definition` expands into nesting


def _nested(rng: random.Random) -> Any:
    """Nesting 50 to 100,000 levels deep, as a placeholder: building and encoding it as
    Python objects would cost more than loading it."""
    return f"{DEEP}{rng.choice([50, 500, 5_000, 100_000])}:{rng.choice('[{')}"


def _expand(text: str) -> str:
    """``text`` with each nesting placeholder replaced by the nested JSON it stands for."""
    marker = json.dumps(DEEP)[:-1]
    while marker in text:
        start = text.index(marker)
        end = text.index('"', start + len(marker))
        depth, kind = text[start + len(marker):end].split(":")
        opening, closing = ("[", "]") if kind == "[" else ('{"a": ', "}")
        text = text[:start] + opening * int(depth) + "1" + closing * int(depth) + text[end + 1:]
    return text


def _mutate_once(doc: Any, rng: random.Random) -> Any:
    """One structural mutation of a JSON document (in place where possible)."""
    if not isinstance(doc, (dict, list)):
        return [doc, _value(rng)]
    paths = _containers(doc)
    target_path = rng.choice(paths)
    target = _get(doc, target_path)
    keys = list(target.keys()) if isinstance(target, dict) else list(range(len(target)))
    op = rng.randrange(10)
    if not keys and op < 6:
        op = 6
    if op == 0:  # delete a field or element
        del target[rng.choice(keys)]
    elif op in (1, 2):  # swap in another value / type
        target[rng.choice(keys)] = _value(rng)
    elif op == 3:  # huge or negative number
        target[rng.choice(keys)] = rng.choice(HUGE)
    elif op == 4:  # wrong type name
        if isinstance(target, dict) and "type" in target:
            target["type"] = rng.choice(TYPE_NAMES)
        else:
            target[rng.choice(keys)] = rng.choice(TYPE_NAMES)
    elif op == 5:  # duplicate an element (duplicate names) or swap two
        key = rng.choice(keys)
        if isinstance(target, list):
            try:
                twin = copy.deepcopy(target[key])
            except RecursionError:
                twin = None
            target.insert(rng.randrange(len(target) + 1), twin)
        else:
            other = rng.choice(keys)
            target[key], target[other] = target[other], target[key]
    elif op == 6:  # add a field or element
        if isinstance(target, dict):
            target[rng.choice(STRINGS + ["type", "name", "num_inputs", "shape", "engine",
                                         "device", "chunk_size", "format_version"])] = _value(rng)
        else:
            target.append(_value(rng))
    elif op == 7:  # deep nesting
        if keys:
            target[rng.choice(keys)] = _nested(rng)
        elif isinstance(target, list):
            target.append(_nested(rng))
    elif op == 8:  # a size field made enormous
        _enlarge(doc, rng)
    else:  # replace the whole document or a node by something else
        if target_path == ():
            return _value(rng)
        if keys:
            target[rng.choice(keys)] = _value(rng)
    return doc


def _enlarge(doc: Any, rng: random.Random) -> None:
    """Set a shape or count field of some node to a bomb (the issue's examples)."""
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    if not isinstance(nodes, list) or not nodes:
        return
    node = rng.choice(nodes)
    if not isinstance(node, dict):
        return
    big = rng.choice([10**6, 10**9, 10**12, 2**63, 4294967297])
    field = rng.choice(["output_shape", "input_shape", "weight_shape", "shape", "num_inputs",
                        "pool_shape", "axis"])
    if field == "num_inputs" or field == "axis":
        node[field] = big
    else:
        node[field] = [None if field == "input_shape" else big, big] + (
            [rng.choice([1, 3, big])] * rng.randrange(3))


def mutate_definition(rng: random.Random, text: str) -> str:
    """A mutated definition text: 1-3 structural mutations, sometimes truncated or with a
    byte-level change."""
    doc = json.loads(text)
    for _ in range(rng.randint(1, 3)):
        doc = _mutate_once(doc, rng)
    try:
        out = _expand(json.dumps(doc, indent=rng.choice([None, 2])))
    except (ValueError, RecursionError):
        out = text
    roll = rng.random()
    if roll < 0.1:
        out = out[:rng.randrange(len(out) + 1)]
    elif roll < 0.15 and out:
        i = rng.randrange(len(out))
        out = out[:i] + rng.choice(["\x00", "\"", "{", "]", "9" * 5000, "é", "\\u"]) + out[i + 1:]
    return out


# -- parameter files --------------------------------------------------------------------------
def _npy_header(shape: tuple, descr: str = "<f4") -> bytes:
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()  # magic string and header


def mutate_params(rng: random.Random, data: bytes) -> bytes:
    """Mutated ``.npz`` bytes: a member replaced by a header bomb, a non-.npy member, an
    object array, NaNs, a missing or extra key, truncation or flipped bytes."""
    op = rng.randrange(8)
    if op == 0:  # truncated
        return data[:rng.randrange(len(data) + 1)]
    if op == 1:  # flipped bytes
        raw = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    names = list(members)
    name = rng.choice(names)
    if op == 2:  # a header declaring terabytes, under a used or an unused key
        shape = rng.choice([(2**40,), (10**6, 10**6), (2**62, 2), (10**10, 4)])
        key = name if rng.random() < 0.5 else "unused.key.npy"
        members[key] = _npy_header(shape, rng.choice(["<f4", "<f8", "|u1"])) + b"\x00" * 64
    elif op == 3:  # not .npy data
        members[name if rng.random() < 0.5 else "notes.txt"] = rng.choice(
            [b"hello", b"", b"\x93NUMPY\x09\x00", b"PK\x03\x04" * 10])
    elif op == 4:  # an object array (a pickle) or another dtype
        descr = rng.choice(["|O", "<U4", "|b1", "<c8", "[('a', '<f4')]", "<M8[s]"])
        members[name] = _npy_header((2,), descr) + b"\x80\x04" + b"\x00" * 64
    elif op == 5:  # non-finite values
        array = np.lib.format.read_array(io.BytesIO(members[name]))
        if array.size:
            array = array.astype(np.float32)
            array.flat[rng.randrange(array.size)] = rng.choice([np.nan, np.inf, -np.inf])
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array)
        members[name] = buffer.getvalue()
    elif op == 6:  # missing key
        del members[name]
    else:  # wrong shape or dtype
        array = np.lib.format.read_array(io.BytesIO(members[name]))
        array = rng.choice([array.reshape(-1), array.astype(np.float64),
                            np.zeros(array.shape + (1,), np.float32), np.zeros((), np.int8)])
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array)
        members[name] = buffer.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for key, value in members.items():
            archive.writestr(key, value)
    return out.getvalue()


# -- one case ---------------------------------------------------------------------------------
def load_case(folder: Path, definition: str | bytes, params: bytes | None,
              max_params: int | None = FUZZ_MAX_PARAMS) -> str:
    """Load a definition (and parameter bytes) written under ``folder``: "ok" or the name of
    the `optimus.OptimusError` raised. Any other exception propagates (a fuzz failure)."""
    def_file = folder / "model.json"
    def_file.write_bytes(definition.encode("utf-8", "surrogatepass")
                         if isinstance(definition, str) else definition)
    param_file = None
    if params is not None:
        param_file = folder / "model.npz"
        param_file.write_bytes(params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimus.load(def_file, param_file, max_params=max_params)
    except optimus.OptimusError as err:
        assert "Exception raised from" not in str(err), str(err)  # no C++ backtrace
        return type(err).__name__
    return "ok"
