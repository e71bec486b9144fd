"""Parse the ``RESULT key=value ...`` line that every example prints last."""


def parse_result(text: str) -> dict[str, str]:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert lines, "the example printed nothing"
    last = lines[-1]
    assert last.startswith("RESULT "), f"last line is not a RESULT line: {last!r}"
    return dict(item.split("=", 1) for item in last.split()[1:])
