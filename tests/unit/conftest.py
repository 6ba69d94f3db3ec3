"""The unit tier's shared fixture: the CloudFormation that AWS SAM makes of template.yaml."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.cloudformation import WRITERS

REPO_ROOT = Path(__file__).resolve().parents[2]
SAM_PYTHON = os.environ.get("SAM_PYTHON", str(REPO_ROOT / ".venv-sam" / "bin" / "python"))


@pytest.fixture(scope="session")
def cloudformation() -> dict[str, Any]:
    return sam_transform()


@pytest.fixture(scope="session")
def cloudformation_with_writers() -> dict[str, Any]:
    """The stack deployed with WriterPrincipals=WRITERS."""
    return sam_transform(f"WriterPrincipals={','.join(WRITERS)}")


def sam_transform(*parameters: str) -> dict[str, Any]:
    assert Path(SAM_PYTHON).exists(), (
        "the SAM CLI venv is missing: run `make test` (or `make package`)"
    )
    result = subprocess.run(
        [SAM_PYTHON, str(REPO_ROOT / "scripts" / "sam_transform.py"), *parameters],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))
