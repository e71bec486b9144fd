"""The node catalog: a Markdown table of every registered node type, generated from the
registry (type, family module, ports, parameters, config with defaults, summary).

``python -m optimus.nodes.catalog`` prints it; ``python -m optimus.nodes.catalog --write
README.md`` rewrites the block between ``<!-- nodes:begin -->`` and ``<!-- nodes:end -->``
(appending a ``## Nodes`` section with the markers if they are missing).
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

from .. import registry

BEGIN, END = "<!-- nodes:begin -->", "<!-- nodes:end -->"
HEADER = ("| Node | Module | Inputs | Outputs | Parameters | Config (defaults) | What it does |\n"
          "|---|---|---|---|---|---|---|\n")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "—"


def _summary(cls: type) -> str:
    """The docstring's first sentence-line(s), up to the first blank line."""
    doc = inspect.getdoc(cls) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _config(cls: type) -> str:
    fields = []
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", "name") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is inspect.Parameter.empty:
            fields.append(f"`{name}`")
        else:
            fields.append(f"`{name}={json.dumps(param.default)}`")
    return ", ".join(fields)


def _inputs(cls: type) -> str:
    doc = getattr(cls, "ports_doc", None)
    return doc if doc else ", ".join(cls.input_names) or "(none)"


def _params(cls: type) -> str:
    shapes = getattr(cls, "param_shapes", {})
    return ", ".join(f"`{name}` {shape}" for name, shape in shapes.items())


def node_types() -> list[type]:
    """Registered node classes of the optimus package, by family module then name."""
    classes = [cls for cls in registry.registered("node").values()
               if cls.__module__.startswith("optimus.")]
    return sorted(classes, key=lambda c: (c.__module__, c.__name__))


def markdown_table() -> str:
    """The catalog as a Markdown table (ending with a newline)."""
    rows = []
    for cls in node_types():
        cells = [f"`{cls.__name__}`", cls.__module__.rsplit(".", 1)[-1], _inputs(cls),
                 ", ".join(cls.output_names), _params(cls), _config(cls), _summary(cls)]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |\n")
    return HEADER + "".join(rows)


def rewrite(text: str) -> str:
    """``text`` with the block between the markers replaced by the current table."""
    block = f"{BEGIN}\n{markdown_table()}{END}"
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return text.rstrip("\n") + ("\n\n" if text.strip() else "") + f"## Nodes\n\n{block}\n"
    return text[:start] + block + text[end + len(END):]


def block(text: str) -> str | None:
    """The table currently between the markers of ``text``; None without markers."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start + len(BEGIN):end].strip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimus.nodes.catalog",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", metavar="README", type=Path,
                        help="rewrite the nodes block of this Markdown file")
    args = parser.parse_args(argv)
    if args.write is None:
        sys.stdout.write(markdown_table())
        return 0
    path: Path = args.write
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(rewrite(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
