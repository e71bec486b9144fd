"""Packaging: the standard tools build a wheel and an sdist of the distribution ``optimus-nn``
(import name ``optimus``) that ``twine check`` accepts; the wheel, installed (not editable) in a
fresh virtual environment, runs ``optimus demo mnist --quick``, so the examples, the definition
schema and the command are inside it.

The fresh environment has no optimus and no site-packages of its own beyond the wheel; torch
and numpy (and the packages they import) are reused from this environment through a ``.pth``
file naming a folder of links to them, instead of being installed again (a minute and more):
optimus itself comes only from the wheel. Deselect with ``-m "not install"``.
"""
from __future__ import annotations

import importlib.metadata as metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.install


def run(*argv, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300,
                          **kwargs)
    assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def runtime_closure(names: list[str]) -> set[str]:
    """The distributions ``names`` need at run time (their requirements, recursively)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        for text in metadata.distribution(name).requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def link_folder(names: list[str], folder: Path) -> None:
    """Links to the top-level files and folders (and metadata) of those distributions."""
    folder.mkdir()
    for name in runtime_closure(names):
        dist = metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in tops - {"..", "__pycache__", "bin"}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (folder / top).exists():
                (folder / top).symlink_to(source)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # sdist, then the wheel built from the unpacked sdist (the sdist must be complete).
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    return out


def test_wheel_and_sdist_pass_twine_check(dist):
    wheels, sdists = list(dist.glob("optimus_nn-*.whl")), list(dist.glob("optimus_nn-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    run(sys.executable, "-m", "twine", "check", "--strict", *wheels, *sdists)


def test_the_installed_wheel_runs_the_mnist_demo(dist, tmp_path, data_root):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"
                       ).stdout.strip())
    link_folder(["torch", "numpy"], tmp_path / "torch_numpy")
    (purelib / "torch_numpy.pth").write_text(f"{tmp_path / 'torch_numpy'}\n")
    wheel = next(dist.glob("optimus_nn-*.whl"))
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
        "--no-index", "--quiet", wheel)
    env = {**os.environ, "OPTIMUS_DATA": str(data_root.resolve()), "PYTHONPATH": ""}
    where = run(python, "-c", "import optimus, importlib.metadata as m; "
                "print(optimus.__file__); print(m.version('optimus-nn'))",
                cwd=tmp_path, env=env).stdout.split()
    assert where[0].startswith(str(purelib)) and where[1] == "0.1.0"  # from the wheel
    assert (purelib / "optimus" / "definition.schema.json").is_file()
    proc = run(venv / "bin" / "optimus", "demo", "mnist", "--quick",
               "--output-dir", tmp_path / "out", cwd=tmp_path, env=env)
    result = proc.stdout.strip().splitlines()[-1]
    assert result.startswith("RESULT ") and "identical=True" in result, proc.stdout[-2000:]

