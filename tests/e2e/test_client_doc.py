"""docs/client.md as a new data scientist runs it: every Python block, top to bottom, in one
fresh Python session against `make run`. What a block prints is shown under its print() as
`# ...` lines (or after it on the same line), and must be what it prints."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
GUIDE = REPO_ROOT / "docs" / "client.md"
PYTHON_BLOCK = re.compile(
    r"(?:<!-- client-doc-test: (?P<note>[^\n]*?) -->\n)?```python\n(?P<body>.*?)```", re.S
)
GUIDE_URL = "http://127.0.0.1:3000"

# After the first block, the answers are the pipeline's own (the guide names it `pipeline`).
EXACT = """
import numpy
assert numpy.array_equal(client.predict("wine", table).to_numpy(), pipeline.predict(table))
assert numpy.array_equal(
    client.predict_proba("wine", table).to_numpy(), pipeline.predict_proba(table)
)
assert list(client.predict("wine", table).index) == list(table.index)
"""


def python_blocks() -> list[tuple[str | None, str]]:
    return [(found["note"], found["body"]) for found in PYTHON_BLOCK.finditer(GUIDE.read_text())]


def shown_output(block: str) -> list[str]:
    """The lines a block says it prints: `# ...` lines under a print(), or after it."""
    shown: list[str] = []
    under_print = False
    for line in block.splitlines():
        stripped = line.strip()
        if "print(" in stripped:
            under_print = True
            if "  # " in stripped:
                shown.append(stripped.split("  # ", 1)[1])
        elif under_print and stripped.startswith("# "):
            shown.append(stripped[2:])
        else:
            under_print = False
    return shown


def test_every_python_block_is_run_or_says_why_not() -> None:
    blocks = python_blocks()

    assert len(blocks) >= 4
    for note, body in blocks:
        assert note is not None, f"a block of docs/client.md without a marker:\n{body}"
        assert note == "runs" or re.match(r"skipped: \w+", note), note
    assert shown_output("x = 1\nprint(x)  # 1\nprint(2)\n# 2\n# two\ny = 3\n# no") == [
        "1",
        "2",
        "two",
    ]


def test_the_guide_runs_top_to_bottom_in_a_fresh_session(make_run: str, tmp_path: Path) -> None:
    runnable = [body for note, body in python_blocks() if note == "runs"]
    script = runnable[0] + EXACT + "\n".join(runnable[1:])
    (tmp_path / "guide.py").write_text(script.replace(GUIDE_URL, make_run))

    done = subprocess.run(
        [sys.executable, "guide.py"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    expected = [line for body in runnable for line in shown_output(body)]
    assert done.stdout.splitlines() == expected


@pytest.mark.parametrize("note", ["runs", "skipped: needs an AWS account"])
def test_markers_are_read(note: str) -> None:
    text = f"<!-- client-doc-test: {note} -->\n```python\nx = 1\n```\n"
    assert [found["note"] for found in PYTHON_BLOCK.finditer(text)] == [note]
