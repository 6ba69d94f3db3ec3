"""The IAM policies the README gives, as a test evaluates them (gateway.iam_allows)."""

import json
import re
from pathlib import Path
from typing import Any

from registry.http.gateway import LOCAL_API_EXECUTION_ARN

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_policy(marker: str, api: str = LOCAL_API_EXECUTION_ARN) -> dict[str, Any]:
    """The JSON block after `<!-- marker -->` in the README, with <ApiExecutionArn> set."""
    text = README.read_text()
    found = re.search(rf"<!-- {re.escape(marker)} -->\s*```json\n(.*?)```", text, re.DOTALL)
    assert found is not None, f"the README has no policy marked {marker}"
    return dict(json.loads(found.group(1).replace("<ApiExecutionArn>", api)))
