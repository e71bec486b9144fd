"""Every bomb of issue 15 (parameters, ports and shapes too large; deep JSON; huge integers;
``.npz`` headers declaring terabytes) is refused with an `OptimusError` naming what was asked
and the limit, in a subprocess whose address space is capped at 4 GB (``RLIMIT_AS``, set by
the script itself before it imports anything): nothing is allocated before the check. The seconds each refusal took are printed (`-s`), not asserted."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("bombs.py")
CAP = 4 * 2**30


@pytest.fixture(scope="module")
def refusals() -> dict[str, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("OPTIMUS_MAX_PARAMS", None)
    env.pop("OPTIMUS_MAX_PORTS", None)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(CAP)], capture_output=True,
                          text=True, timeout=300, env=env,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    for row in rows:
        print(f"{row['bomb']}: {row['outcome']} in {row['seconds']:.3f} s")
    return {row["bomb"]: row for row in rows}


BOMBS = {
    "Affine 1e9 x 1e9": ["dense.weights", "1,000,000,000,000,000,000 values", "268,435,456",
                         "max_params"],
    "Conv2D with 1e6 filters": ["conv.weights", "max_params"],
    "Constant 1e6 x 1e6": ["c.data", "1,000,000,000,000 values", "max_params"],
    "BatchNorm 1e12 features": ["bn", "1,000,000,000,000", "2,147,483,647"],
    "BatchNorm 1e9 features": ["bn.", "max_params"],
    "Add num_inputs=1e9": ["'add'", "1,000,000,000 input ports", "4,096", "max_ports"],
    "Add num_inputs=1e12": ["'add'", "1,000,000,000,000 input ports", "max_ports"],
    "shape[1] = 2**63": ["inputs[0].shape", "9,223,372,036,854,775,808", "2,147,483,647"],
    "output_shape[1] = 4294967297": ["nodes[0].output_shape", "4,294,967,297"],
    "JSON nested 100,000 deep": ["nested too deeply"],
    "an integer of 100,000 digits": ["not a usable JSON document"],
    "npz member declaring 4 TB": ["dense.weights", "(1099511627776,)", "expects (4, 3)"],
    "npz 40 GB under an unused key": [],  # skipped unread: the graph loads
    "npz member that is not .npy": ["dense.bias", "not .npy array data"],
}


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_bomb_is_refused_before_allocation(refusals, bomb):
    row = refusals[bomb]
    if bomb == "npz 40 GB under an unused key":
        assert row["outcome"] == "loaded"
        return
    assert row["outcome"] in ("FormatError", "ResourceLimitError"), row
    for part in BOMBS[bomb]:
        assert part in row["message"], (part, row["message"])
    assert "Exception raised from" not in row["message"]  # no C++ backtrace


def test_the_caps_can_be_raised(tmp_path):
    """The caps are limits, not walls: a definition over the default cap loads with a higher
    ``max_params``; the environment variable lowers it."""
    import optimus
    from optimus import serialize
    sys.path.insert(0, str(SCRIPT.parent))
    from bombs import base_graph

    doc = serialize.graph_to_dict(base_graph())
    doc["nodes"][0].update(input_shape=[None, 4], output_shape=[None, 3000])
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(optimus.FormatError, match="max_params"):
        optimus.load(path, max_params=10_000)
    assert optimus.load(path, max_params=20_000).params["dense.weights"].shape == (4, 3000)
    env = {**os.environ, "OPTIMUS_MAX_PARAMS": "100"}
    code = ("import optimus, sys\n"
            "try:\n    optimus.load(sys.argv[1])\nexcept optimus.FormatError as e:\n"
            "    print('refused', 'OPTIMUS_MAX_PARAMS' in str(e))\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.stdout.strip() == "refused True", out.stderr[-2000:]
