"""Schemathesis against the OpenAPI document scripts/local_api.py serves: no server errors.

Bounded inside make test (FUZZ_MAX_EXAMPLES, default 25 a phase and operation);
`make fuzz` runs it with 500. Every phase runs: examples, coverage (boundary and
malformed values), fuzzing and stateful sequences.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.http import local_api_for

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.fixture
def fuzz_url(tmp_path: Path) -> object:
    env = {**os.environ, "REGISTRY_URI": str(tmp_path / "registry"), "PYTHONUNBUFFERED": "1"}
    subprocess.run(
        [sys.executable, "scripts/train_moons.py", "--register-if-empty"],
        env=env,
        check=True,
        capture_output=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    yield from local_api_for(env)


def test_no_generated_request_gets_a_server_error(fuzz_url: str) -> None:
    examples = os.environ.get("FUZZ_MAX_EXAMPLES", "25")
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{fuzz_url}/openapi.json",
            "--url",
            fuzz_url,
            "--checks",
            "not_a_server_error",
            "--max-examples",
            examples,
            "--seed",
            "20261124",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-6000:]
    assert "Server error" not in result.stdout
