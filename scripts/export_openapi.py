"""Write docs/openapi.json: the OpenAPI document of every route in template.yaml.

It is generated from the handlers' Pydantic models; a test fails when the
committed file is stale, so run `make openapi` after changing the API.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_api import LocalApi

from registry.http.gateway import REPO_ROOT, load_template, routes_from_template

OPENAPI_PATH = REPO_ROOT / "docs" / "openapi.json"


def openapi_document() -> str:
    api = LocalApi(routes_from_template(load_template()))
    return json.dumps(api.openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OPENAPI_PATH.write_text(openapi_document())
    print(f"wrote {OPENAPI_PATH.relative_to(REPO_ROOT)}")
