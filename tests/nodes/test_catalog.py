"""The README's node list is the generated catalog, and the script that rewrites it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from optimus.nodes import catalog

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_node_block_is_up_to_date():
    text = README.read_text(encoding="utf-8")
    assert catalog.block(text) is not None, f"{README} has no {catalog.BEGIN} block"
    assert catalog.block(text) == catalog.markdown_table(), (
        "README.md's node list is stale; run: python -m optimus.nodes.catalog --write README.md")


def test_table_rows():
    table = catalog.markdown_table()
    lines = table.splitlines()
    assert lines[0].startswith("| Node | Module | Inputs | Outputs | Parameters |")
    row = next(line for line in lines if line.startswith("| `Affine` |"))
    assert "| affine | input | output | `weights` (n_in, n_out), `bias` (n_out,) |" in row
    assert '`act_type="relu"`' in row
    add = next(line for line in lines if line.startswith("| `Add` |"))
    assert "input_0 … input_{num_inputs-1}" in add and "`num_inputs=2`" in add
    assert all(line.count(" | ") == 6 for line in lines if line.startswith("| `"))


def test_rewrite_replaces_only_the_block():
    text = f"# Title\n\nintro\n\n{catalog.BEGIN}\nold table\n{catalog.END}\n\n## After\n"
    new = catalog.rewrite(text)
    assert new.startswith("# Title\n\nintro\n\n")
    assert new.endswith(f"{catalog.END}\n\n## After\n")
    assert catalog.block(new) == catalog.markdown_table()
    assert catalog.rewrite(new) == new


def test_rewrite_appends_a_section_without_markers():
    new = catalog.rewrite("# Title\n\ntext\n")
    assert new.startswith("# Title\n\ntext\n\n## Nodes\n\n" + catalog.BEGIN)
    assert catalog.block(new) == catalog.markdown_table()
    assert catalog.rewrite(new) == new


def test_command_line_writes_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n")
    subprocess.run([sys.executable, "-m", "optimus.nodes.catalog", "--write", str(readme)],
                   check=True, capture_output=True)
    assert catalog.block(readme.read_text()) == catalog.markdown_table()


def test_main_prints_the_table(capsys):
    assert catalog.main([]) == 0
    assert capsys.readouterr().out == catalog.markdown_table()
