"""Runtime lines read from the bytes, and a line's stand-in process that cannot hold predict."""

import io
import json
import time
import zipfile
from pathlib import Path

import pytest

from registry.inputs import RequestRows
from registry.lines import MAX_SCHEMA_BYTES, Lines, minor_of, skops_sklearn_version
from registry.serving.routing import LineProcess


def skops_like(schema: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", schema)
    return buffer.getvalue()


VERSIONED = b'{"_sklearn_version": {"__class__": "str", "content": "\\"1.8.0\\""}}'


def test_a_skops_schema_names_its_version_and_a_bomb_of_one_is_not_unpacked() -> None:
    assert skops_sklearn_version(skops_like(VERSIONED)) == "1.8.0"

    bomb = skops_like(b" " * (MAX_SCHEMA_BYTES + 1) + VERSIONED)
    assert len(bomb) < MAX_SCHEMA_BYTES // 100  # deflated spaces
    assert skops_sklearn_version(bomb) is None


@pytest.mark.parametrize(
    ("version", "line"), [("1.8.0", "1.8"), ("1.9.1", "1.9"), ("1.6.1", None), (None, "1.9")]
)
def test_a_version_is_served_by_its_minors_line_or_by_none(
    version: str | None, line: str | None
) -> None:
    lines = Lines("1.9", ("1.8", "1.7"))

    assert lines.line_for(version) == line
    assert lines.listed() == "1.9, 1.8 and 1.7"
    assert minor_of("1.10.0rc1") == "1.10"


def test_a_line_that_does_not_answer_is_stopped_within_the_timeout(tmp_path: Path) -> None:
    hanging = tmp_path / "python"
    hanging.write_text("#!/bin/sh\nexec sleep 60\n")
    hanging.chmod(0o755)
    line = LineProcess(str(hanging), timeout=1.0)
    payload = json.dumps({"rows": RequestRows([[1.0]]).rows}).encode()

    started = time.monotonic()
    answer = line.invoke(FunctionName="predict-1.8", Payload=payload)

    assert answer["FunctionError"] == "Unhandled"
    assert time.monotonic() - started < 5
    assert line._process is None  # stopped: the next invocation starts another


def test_a_line_whose_interpreter_is_missing_answers_as_a_failed_function() -> None:
    answer = LineProcess("/nonexistent/python").invoke(FunctionName="predict-1.8", Payload=b"{}")

    assert answer["FunctionError"] == "Unhandled"
