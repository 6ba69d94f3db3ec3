"""docs/reliability.md names tests that exist, so it cannot silently drift."""

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_every_test_docs_reliability_names_exists() -> None:
    document = (REPO_ROOT / "docs" / "reliability.md").read_text()
    references = re.findall(r"`(tests/[\w/]+\.py)(?:::(test_\w+))?", document)
    assert len(references) > 20
    for path, name in references:
        source = (REPO_ROOT / path).read_text()
        if name:
            assert f"def {name}(" in source, f"{path}::{name}"
