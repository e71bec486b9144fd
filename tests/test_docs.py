"""The API reference (docs/, Sphinx autodoc + napoleon) builds without a warning and has an
entry for every public name of every public module."""
from __future__ import annotations

import importlib
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
MODULES = ["optimus", "optimus.nodes", "optimus.train", "optimus.train.extensions",
           "optimus.data", "optimus.optim", "optimus.fast", "optimus.distributed",
           "optimus.draws", "optimus.datasets.mnist",
           "optimus.datasets.sentiment"]


def documented_names(inventory: Path) -> set[str]:
    """Every object name in a Sphinx ``objects.inv`` (four header lines, then zlib text
    lines ``name domain:role priority uri display-name``)."""
    body = inventory.read_bytes().split(b"\n", 4)[4]
    return {line.split()[0] for line in zlib.decompress(body).decode().splitlines()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """One build; ``--keep-going`` writes every page even when a warning fails the build."""
    pytest.importorskip("sphinx")  # the test extra installs it
    out = tmp_path_factory.mktemp("html")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E",
                           "-b", "html", "-d", str(out / ".doctrees"), str(DOCS), str(out)],
                          capture_output=True, text=True, timeout=300)
    return proc, out


def test_the_reference_builds_without_warnings(built):
    proc, out = built
    assert proc.returncode == 0, f"sphinx-build -W failed:\n{proc.stderr}"
    assert (out / "index.html").exists() and (out / "api" / "nodes.html").exists()


@pytest.mark.parametrize("module", MODULES)
def test_every_public_name_has_an_entry(built, module):
    names = documented_names(built[1] / "objects.inv")
    short = {name.rsplit(".", 1)[-1] for name in names}
    mod = importlib.import_module(module)
    public = [n for n in mod.__all__ if not hasattr(getattr(mod, n), "__path__")
              and type(getattr(mod, n)).__name__ != "module"]
    missing = [n for n in public if n not in short]
    assert not missing, f"{module}: no entry in the API reference for {missing}"


# -- the README documents what the code has -------------------------------------------------------
README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_readme_lists_every_act_type():
    from optimus.activations import ACT_TYPES

    missing = [name for name in ACT_TYPES if f"`{name}`" not in README]
    assert not missing, f"README.md, 'Building graphs': act_type values missing: {missing}"


def test_readme_gives_every_initializer_and_the_signatures_of_fit_and_monitor():
    import inspect

    import optimus
    from optimus.train import Driver, Monitor

    for name in ("random_init", "uniform_init", "glorot_uniform_init"):
        signature = str(inspect.signature(getattr(optimus, name))).replace("'", "")
        params = [p.split(":")[0].strip() for p in signature.strip("()").split(",")]
        assert f"`{name}(" in README and all(p in README for p in params), name
    for func, text in ((Driver.fit, "Driver.fit("), (Monitor, "Monitor(")):
        params = [p for p in inspect.signature(func).parameters if p != "self"]
        start = README.index(f"**`{text}")
        documented = README[start:README.index("`**", start)]
        missing = [p for p in params if p not in documented]
        assert not missing, f"README.md: {text} signature lacks {missing}"
