"""The ``optimus`` command: run the seed demos; inspect, score, validate, upgrade, draw and
export saved graphs.

A user error (a missing or unreadable file, a file that is not what the command expects, an
unset ``OPTIMUS_DATA``, a missing optional package) ends in one line naming the problem and the
fix, with exit status 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import DataNotFoundError, FormatError, OptimusError

DEMOS = {  # demo name -> example module (examples/ ships as optimus.examples)
    "mnist": "seed000_mnist_convnet",
    "sentiment": "seed001_sentiment_mlp",
    "blocks": "seed002_blocks_mlp",
    "cnn": "seed003_mxnet_cnn",
    "flux": "seed004_flux_conv",
}
USER_ERROR = 2  # exit status of a user error (argparse's too)
DATA_HINT = ("set OPTIMUS_DATA to the folder holding mnist/ and sentiment/ (e.g. "
             "OPTIMUS_DATA=../shared/data optimus ...)")
ZIP_MAGIC = b"PK\x03\x04"  # an .npz is a zip archive


class UserError(OptimusError):
    """A mistake in how the command was called; the message says what to do."""


# -- reading files ----------------------------------------------------------------------------
def _definition_file(path: str) -> Path:
    """``path``, checked to exist and to be a definition rather than a parameter file."""
    file = Path(path)
    if not file.exists():
        raise UserError(f"{path}: no such file; check the path")
    if file.is_dir():
        raise UserError(f"{path}: is a folder; pass the graph's .json definition")
    with open(file, "rb") as handle:
        head = handle.read(4)
    if head == ZIP_MAGIC:
        raise UserError(f"{path}: is a parameter file (.npz), not a definition; pass the .json "
                        f"definition first, then the parameters (e.g. optimus info def.json "
                        f"params.npz)")
    return file


def _load(definition: str, params: str | None = None):
    import optimus

    file = _definition_file(definition)
    if params is not None:
        if not Path(params).exists():
            raise UserError(f"{params}: no such file; check the path of the parameters")
        with open(params, "rb") as handle:
            if handle.read(4) != ZIP_MAGIC:
                raise UserError(f"{params}: is not a parameter file (.npz written by "
                                f"optimus.save); pass the definition first, then the "
                                f"parameters")
    try:
        return optimus.load(file, params)
    except FormatError as err:
        if "not valid JSON" in str(err) or "not a UTF-8" in str(err):
            raise UserError(f"{err}; pass a graph definition written by optimus.save") from None
        raise


# -- commands ---------------------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    try:
        module = importlib.import_module(f"optimus.examples.{DEMOS[args.name]}")
    except ModuleNotFoundError as err:
        raise UserError(f"this installation lacks the example of demo {args.name!r} ({err}); "
                        f"reinstall optimus-nn") from None
    module.main(args.rest)
    return 0


def _info(args: argparse.Namespace) -> int:
    graph = _load(args.definition, args.params)
    print(f"Graph '{graph.name}'")
    for inp in graph.inputs.values():
        print(f"  input  {inp.name:<24} shape={inp.shape or 'scalar'} dtype={inp.dtype}")
    for node in graph.order:
        count = sum(math.prod(p.shape) for p in node.params.values())
        shapes = ", ".join(f"{p.short_name}={graph.shapes[p.name]}"
                           for p in node.outputs.values())
        print(f"  node   {node.name:<24} {type(node).__name__:<28} {shapes}  params={count:,}"
              f"  engine={graph.engines[node.name]}")
    for out in graph.outputs:
        print(f"  output {out:<24} shape={graph.shapes[out] or 'scalar'}")
    params = graph.params
    total = sum(math.prod(p.shape) for p in params.values())
    trained = {name for names in graph.updates.values() for name in names}
    count = sum(math.prod(params[name].shape) for name in trained)
    print(f"  {total:,} parameters in {len(params)} tensors; trains {count:,} of {total:,} "
          f"parameters in {len(trained)} tensors with {type(graph.step_rule).__name__}")
    for name, reason in graph.engine_reasons.items():
        print(f"  {name} runs through autograd: {reason}")
    return 0


def _dataset(args: argparse.Namespace) -> tuple[str, dict[str, np.ndarray]]:
    """``(label, arrays)``: the test split of MNIST or the sentiment corpus as ``{'data',
    'labels'}``, or the arrays of an ``.npz`` file."""
    from .datasets import mnist, sentiment

    data_dir = args.data_dir
    try:
        if args.dataset == "mnist":
            _, _, (x, y) = mnist.load(data_dir, download=args.download)
            return "mnist-test", {"data": x, "labels": y}
        if args.dataset == "sentiment":
            _, (x, y) = sentiment.load(args.domain, data_dir)
            return f"sentiment-{args.domain}-test", {"data": x, "labels": y}
    except DataNotFoundError as err:
        if data_dir is None and not os.environ.get("OPTIMUS_DATA"):
            raise UserError(f"OPTIMUS_DATA is not set and the {args.dataset} files are not in "
                            f"the cache folder; {DATA_HINT}, or pass --data-dir") from None
        raise UserError(f"{' '.join(str(err).split())}; pass --data-dir or {DATA_HINT}") from None
    if not args.dataset.endswith(".npz"):
        raise UserError(f"unknown dataset {args.dataset!r}; use mnist, sentiment or a .npz file "
                        f"holding arrays named like the graph's inputs")
    from .serialize import load_params

    if not Path(args.dataset).exists():
        raise UserError(f"{args.dataset}: no such file; check the path")
    return Path(args.dataset).name, load_params(args.dataset)


def _feed(graph, arrays: dict[str, np.ndarray], named: bool) -> tuple[dict, np.ndarray]:
    """The call's arrays and the labels to score against. From a dataset (``named`` False):
    the one batched float Input takes the data (reshaped), integer Inputs the labels, scalar
    Inputs 0. From an ``.npz``: arrays by Input name; the labels are the integer Input's array,
    else the file's ``labels``."""
    feed: dict[str, object] = {}
    labels = arrays.get("labels")
    for name, inp in graph.inputs.items():
        integer = np.issubdtype(np.dtype(inp.dtype), np.integer)
        if named and name in arrays:
            feed[name] = arrays[name]
            if integer:
                labels = arrays[name]
        elif inp.shape == ():
            feed[name] = 0.0  # a learning rate: no update
        elif named:
            raise UserError(f"the file has no array {name!r} for input {name!r} of graph "
                            f"'{graph.name}' (it holds {', '.join(map(repr, arrays))})")
        elif integer:
            feed[name] = arrays["labels"]
        else:
            data, row = arrays["data"], tuple(inp.shape[1:])
            if math.prod(data.shape[1:]) != math.prod(row):
                raise UserError(f"the dataset's rows have shape {data.shape[1:]} but input "
                                f"{name!r} of graph '{graph.name}' takes {row}; score it on "
                                f"another --dataset")
            feed[name] = data.reshape((len(data),) + row)
    if labels is None:
        raise UserError(f"nothing to score against: give the file an integer array named "
                        f"'labels' (or one named like an integer input of '{graph.name}')")
    return feed, np.asarray(labels)


def _eval(args: argparse.Namespace) -> int:
    graph = _load(args.definition, args.params)
    label, arrays = _dataset(args)
    feed, labels = _feed(graph, arrays, named=args.dataset.endswith(".npz"))
    scored = [o for o in graph.outputs if len(graph.shapes[o] or ()) == 2]
    out_name = args.output or (scored[0] if scored else None)
    if out_name not in graph.outputs or len(graph.shapes[out_name] or ()) != 2:
        raise UserError(f"graph '{graph.name}' has no output of class scores "
                        f"{'named ' + repr(out_name) if out_name else '(rows, classes)'}; "
                        f"pass --output, one of {', '.join(graph.outputs)}")
    results = graph(**feed)
    accuracy = float(np.mean(results[out_name].argmax(axis=1) == labels))
    for name in graph.outputs:
        if graph.shapes[name] == ():
            print(f"{name} = {float(results[name]):.6g}")
    print(f"RESULT dataset={label} accuracy={accuracy:.4f} error={1 - accuracy:.4f}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .onnx import export_onnx

    graph = _load(args.definition, args.params)
    signature = export_onnx(graph, args.output, outputs=args.outputs, opset=args.opset)
    print(f"wrote {args.output}: inputs {', '.join(signature.inputs)} -> outputs "
          f"{', '.join(signature.outputs)} (ONNX opset {args.opset})")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from .schema import validate

    failed = 0
    for path in args.definitions:
        try:
            file = _definition_file(path)
            problems = [str(p) for p in validate(file)]
            if not problems:  # the schema holds: the wiring (names, shapes) is load's to check
                _load(path)
        except (FormatError, UserError) as err:
            problems = [" ".join(str(err).split()).removeprefix(f"{path}: ")]
        for problem in problems:
            print(f"{path}: {problem}")
        if problems:
            failed += 1
        else:
            print(f"{path}: valid")
    return 1 if failed else 0


def _upgrade(args: argparse.Namespace) -> int:
    import json

    from .serialize import FORMAT_VERSION, save

    file = _definition_file(args.old)
    try:
        version = json.loads(file.read_text(encoding="utf-8")).get("format_version", 0)
    except (ValueError, AttributeError):
        version = "?"
    graph = _load(args.old)
    save(graph, args.new)
    print(f"wrote {args.new}: format_version {FORMAT_VERSION} (read {args.old}, format_version "
          f"{version}{', the 2015 library' if version == 0 else ''})")
    return 0


def _draw(args: argparse.Namespace) -> int:
    from .drawing import draw

    path = draw(_load(args.definition), args.output)
    print(f"wrote {path}")
    return 0


# -- parser and errors ------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")
    parser = argparse.ArgumentParser(prog="optimus", description=__doc__.split("\n\n")[0],
                                     parents=[common])
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, parents=[common])

    demo = command("demo", "run a seed workflow (default: mnist)")
    demo.add_argument("name", nargs="?", default="mnist", choices=sorted(DEMOS))
    demo.add_argument("rest", nargs=argparse.REMAINDER, help="options for the example "
                      "(e.g. --quick)")
    info = command("info", "print nodes, shapes, parameter counts and engines")
    info.add_argument("definition")
    info.add_argument("params", nargs="?")
    evaluate = command("eval", "score a saved classifier on MNIST, sentiment or an .npz")
    evaluate.add_argument("definition")
    evaluate.add_argument("params")
    evaluate.add_argument("--dataset", default="mnist", help="mnist (the test set), sentiment "
                          "(the test set), or a .npz file of arrays named like the inputs")
    evaluate.add_argument("--domain", default="books", help="the sentiment domain")
    evaluate.add_argument("--data-dir", default=None, help="the data folder (default: "
                          "$OPTIMUS_DATA, then ~/.cache/optimus)")
    evaluate.add_argument("--download", action="store_true", help="fetch missing MNIST files")
    evaluate.add_argument("--output", default=None, help="the output holding class scores")
    export = command("export", "write the graph as an ONNX model")
    export.add_argument("definition")
    export.add_argument("params", nargs="?")
    export.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    export.add_argument("--outputs", nargs="+", default=None, help="the graph outputs to "
                        "export (default: all); only the inputs they need are kept")
    export.add_argument("--opset", type=int, default=18, help=argparse.SUPPRESS)
    validate = command("validate", "check definitions against the schema; list every problem")
    validate.add_argument("definitions", nargs="+")
    upgrade = command("upgrade", "rewrite a definition (e.g. the 2015 format) in the current "
                      "format")
    upgrade.add_argument("old")
    upgrade.add_argument("new")
    draw = command("draw", "draw the graph (.svg, .png, .pdf, or .dot text)")
    draw.add_argument("definition")
    draw.add_argument("-o", "--output", required=True)
    return parser


def _one_line(err: BaseException) -> str:
    """The message of a user error, on one line, with the fix where the error lacks one."""
    if isinstance(err, DataNotFoundError):
        text = " ".join(str(err).split())
        return text if os.environ.get("OPTIMUS_DATA") else f"{text}; {DATA_HINT}"
    if isinstance(err, IsADirectoryError):
        return f"{err.filename}: is a folder, not a file; check the path"
    if isinstance(err, FileNotFoundError) and not isinstance(err, OptimusError):
        return f"{err.filename}: no such file or folder; check the path"
    if isinstance(err, PermissionError):
        return f"{err.filename}: permission denied; check the file's permissions"
    return " ".join(str(err).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    handler = {"demo": _demo, "info": _info, "eval": _eval, "export": _export,
               "validate": _validate, "upgrade": _upgrade, "draw": _draw}[args.command]
    if args.command in ("demo", "eval"):
        from .memory import tune_memory

        tune_memory()  # a command that computes: keep freed buffers (see README)
    try:
        return handler(args)
    except (OptimusError, OSError) as err:
        if getattr(args, "debug", False):
            raise
        print(f"optimus {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
