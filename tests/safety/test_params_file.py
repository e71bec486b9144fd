"""`load` reads a parameter file header-first: shapes and dtypes are checked against the
definition before any data is read; missing and non-finite parameters are refused unless
asked for; unused arrays are skipped unread."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

import optimus
from optimus import serialize
from tests.conftest import build_classifier


@pytest.fixture
def saved(tmp_path):
    graph, _ = build_classifier()
    for node in ("hidden", "out"):
        optimus.random_init(graph.nodes[node].weights, seed=3)
    serialize.save(graph, tmp_path / "clf.json")  # no pair: any parameter file may follow
    return graph, tmp_path / "clf.json", tmp_path


def npz(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def members(graph) -> dict[str, bytes]:
    return {f"{k}.npy": npy(v) for k, v in graph.param_values.items()}


def test_round_trip_still_loads_every_value(saved):
    graph, definition, folder = saved
    serialize.save_params(graph.param_values, folder / "p.npz")
    again = optimus.load(definition, folder / "p.npz")
    for name, value in graph.param_values.items():
        np.testing.assert_array_equal(again.param_values[name], value)


def test_missing_parameters_are_named_unless_partial(saved):
    graph, definition, folder = saved
    values = graph.param_values
    del values["out.weights"], values["hidden.bias"]
    serialize.save_params(values, folder / "p.npz")
    with pytest.raises(optimus.FormatError, match="'hidden.bias', 'out.weights'.*partial=True"):
        optimus.load(definition, folder / "p.npz")
    partial = optimus.load(definition, folder / "p.npz", partial=True)
    np.testing.assert_array_equal(partial.param_values["hidden.weights"],
                                  graph.param_values["hidden.weights"])
    assert not partial.param_values["out.weights"].any()  # its initial value


def test_a_file_with_no_arrays_is_refused(saved):
    _, definition, folder = saved
    npz(folder / "p.npz", {})
    with pytest.raises(optimus.FormatError, match="no values for 4 parameters"):
        optimus.load(definition, folder / "p.npz")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused_unless_allowed(saved, bad):
    graph, definition, folder = saved
    values = graph.param_values
    values["out.bias"][1] = bad
    serialize.save_params(values, folder / "p.npz")
    with pytest.raises(optimus.FormatError, match="'out.bias' holds 1 non-finite value"):
        optimus.load(definition, folder / "p.npz")
    loaded = optimus.load(definition, folder / "p.npz", allow_nonfinite=True)
    assert not np.isfinite(loaded.param_values["out.bias"][1])


def test_unused_arrays_are_skipped_unread_with_a_warning(saved):
    graph, definition, folder = saved
    content = members(graph)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**10,)})
    content["huge.npy"] = header.getvalue()  # 40 GB declared, 0 bytes of data
    npz(folder / "p.npz", content)
    with pytest.warns(UserWarning, match="'huge'"):
        optimus.load(definition, folder / "p.npz")


@pytest.mark.parametrize("member, message", [
    (b"not an array", "'out.bias' is not .npy array data"),
    (npy(np.array([object(), 1], dtype=object)), "dtype object"),
    (npy(np.array(["ab", "cd", "ef"])), "dtype <U2"),
    (npy(np.array([True, False, True])), "dtype bool"),
    (npy(np.zeros(4, np.float32)), r"shape \(4,\), the definition expects \(3,\)"),
    (npy(np.zeros(3, np.float32))[:-6], "truncated"),
])
def test_bad_members_are_format_errors_naming_the_array(saved, member, message):
    graph, definition, folder = saved
    content = members(graph)
    content["out.bias.npy"] = member
    npz(folder / "p.npz", content)
    with pytest.raises(optimus.FormatError, match=message):
        optimus.load(definition, folder / "p.npz")


def test_a_member_that_is_not_npy_is_a_format_error(saved):
    graph, definition, folder = saved
    content = members(graph)
    content["readme.txt"] = b"hello"
    npz(folder / "p.npz", content)
    with pytest.raises(optimus.FormatError, match="'readme.txt' is not a .npy array"):
        optimus.load(definition, folder / "p.npz")
    with pytest.raises(optimus.FormatError, match="'readme.txt' is not a .npy array"):
        serialize.load_params(folder / "p.npz")


def test_load_params_caps_the_values_it_reads(saved):
    graph, _, folder = saved
    serialize.save_params(graph.param_values, folder / "p.npz")
    assert set(serialize.load_params(folder / "p.npz")) == set(graph.params)
    with pytest.raises(optimus.FormatError, match="over the limit of 10 "):
        serialize.load_params(folder / "p.npz", max_values=10)


def test_a_corrupt_compressed_member_is_a_format_error(saved):
    graph, definition, folder = saved
    path = folder / "p.npz"
    np.savez_compressed(path, **graph.param_values)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("hidden.weights.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 20
    raw[start:start + 16] = bytes(16)  # inside the deflated data
    path.write_bytes(bytes(raw))
    with pytest.raises(optimus.FormatError, match="p.npz"):
        optimus.load(definition, path)


def test_a_garbled_header_is_a_format_error(saved):
    graph, definition, folder = saved
    content = members(graph)
    content["out.bias.npy"] = content["out.bias.npy"][:10] + b"{'descr': '<f4', (" + bytes(60)
    npz(folder / "p.npz", content)
    with pytest.raises(optimus.FormatError, match="'out.bias' is not .npy array data"):
        optimus.load(definition, folder / "p.npz")
