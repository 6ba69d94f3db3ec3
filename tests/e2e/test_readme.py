"""The README as a new user runs it: every shell block, in order, pasted into a shell.

`make run` serves a fresh store; each command runs in bash from a working directory that has
the clone's `.venv` and `scripts`; a `# {...}` line under a command is the JSON it must answer
(those keys and values). A block the test cannot run (it needs AWS) says why in its marker.
"""

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
import pandas
import skops.io

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
SHELL_BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<note>[^\n]*?) -->\n)?```sh\n(?P<body>.*?)```", re.S
)
PYTHON_EXAMPLE = re.compile(r"<!-- readme-dataframe-example -->\n```python\n(.*?)```", re.S)
README_URL = "http://127.0.0.1:3000"


@dataclass(frozen=True)
class Command:
    text: str
    expected: dict[str, Any] | None = None


def shell_blocks() -> list[tuple[str | None, str]]:
    return [(found["note"], found["body"]) for found in SHELL_BLOCK.finditer(README.read_text())]


def commands_of(block: str) -> list[Command]:
    """The block's commands (continuation lines joined), each with the JSON shown under it."""
    commands: list[Command] = []
    pending = ""
    for line in block.splitlines():
        if pending:
            pending += "\n" + line
        elif line.startswith("# {") and commands and commands[-1].expected is None:
            commands[-1] = Command(commands[-1].text, json.loads(line[2:]))
            continue
        elif not line.strip() or line.startswith("#"):
            continue
        else:
            pending = line
        if not pending.endswith("\\"):
            commands.append(Command(pending))
            pending = ""
    return commands


def test_every_shell_block_is_run_or_says_why_not() -> None:
    blocks = shell_blocks()

    assert len(blocks) >= 6
    for note, body in blocks:
        assert note is not None, f"a README block without a readme-test marker:\n{body}"
        assert note.startswith("runs") or re.match(r"skipped: \w+", note), note
    assert sum(note.startswith("runs") for note, _ in blocks if note) >= 3


def test_commands_are_split_as_a_shell_reads_them() -> None:
    block = 'curl -X POST u \\\n  -d x\n# {"a": 1}\n# a comment\n\nls   # trailing\n'

    assert commands_of(block) == [
        Command("curl -X POST u \\\n  -d x", {"a": 1}),
        Command("ls   # trailing"),
    ]


def run_in_shell(command: Command, workspace: Path, url: str) -> None:
    text = command.text.replace(README_URL, url)
    env = {**os.environ, "MODEL_REGISTRY_URL": url}
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", text],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{command.text}\nexit {done.returncode}\n{done.stderr[-2000:]}"
    if command.expected is not None:
        answer = json.loads(done.stdout)
        shown = {key: answer.get(key) for key in command.expected}
        assert shown == command.expected, f"{command.text}\nanswered {done.stdout[:500]}"


def test_the_readmes_shell_blocks_run_as_pasted_and_answer_as_shown(
    make_run: str, workspace: Path
) -> None:
    python_example = PYTHON_EXAMPLE.search(README.read_text())
    assert python_example, "the README's DataFrame example is gone"
    (workspace / "train_wine.py").write_text(python_example.group(1))
    runnable = [body for note, body in shell_blocks() if note and note.startswith("runs")]

    for body in runnable:
        for command in commands_of(body):
            run_in_shell(command, workspace, make_run)

    # the walkthrough's predictions are the pipeline's own, missing values and all
    data = (workspace / "wine.skops").read_bytes()
    model = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    rows = pandas.read_csv(workspace / "rows.csv")
    written = pandas.read_csv(workspace / "predictions.csv")
    assert rows.isna().any().any()
    assert numpy.array_equal(written["prediction"].to_numpy(), model.predict(rows))
    # a column per class, named after it, as predict_proba reads in pandas
    probabilities = written[[str(label) for label in model.classes_]].to_numpy()
    assert numpy.array_equal(probabilities, model.predict_proba(rows))
