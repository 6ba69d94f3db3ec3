"""Smoke test a running stack: register, classify, alias, archive, with the real client.

    python scripts/smoke.py --url https://<id>.execute-api.<region>.amazonaws.com/prod --api-key KEY

Against a deployed stack, /models requests are signed with your AWS credentials
(SigV4); it also runs against scripts/local_api.py (--url http://127.0.0.1:3000).
It registers a small model under a fresh name, so it never touches yours, and
archives what it made. Exits 0 when every step answered as expected.
"""

import argparse
import io
import secrets
import sys
from pathlib import Path
from typing import Any

import joblib
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registry.client import ApiError, RegistryClient


def tiny_model_bytes() -> bytes:
    buffer = io.BytesIO()
    joblib.dump(LogisticRegression().fit([[0.0, 0.0], [1.0, 1.0]], [0, 1]), buffer)
    return buffer.getvalue()


def check(step: str, condition: bool, answer: Any) -> None:
    print(f"{'ok ' if condition else 'FAIL'} {step}")
    if not condition:
        raise SystemExit(f"smoke test failed at {step!r}: {answer}")


def smoke(client: RegistryClient, name: str) -> None:
    registered = client.register(tiny_model_bytes(), name, description="smoke test")
    check("register", registered["created"] and registered["version"] == 1, registered)
    answer = client.classify(name, [[0.0, 0.0], [1.0, 1.0]], version=1, probabilities=True)
    check("classify a version", answer["predictions"] == [0, 1], answer)
    check("probabilities", len(answer["probabilities"]) == 2, answer)
    client.set_alias(name, "smoke", 1)
    answer = client.classify(name, [[1.0, 1.0]], alias="smoke")
    check("classify an alias", answer["version"] == 1, answer)
    listed = [model["name"] for model in client.list_models()["models"]]
    check("list", name in listed, listed)
    client.delete_alias(name, "smoke")
    archived = client.archive(name, 1)
    check("archive", archived["status"] == "archived", archived)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key")
    parser.add_argument("--name", default=f"smoke-{secrets.token_hex(4)}")
    args = parser.parse_args()
    try:
        smoke(RegistryClient(args.url, api_key=args.api_key), args.name)
    except ApiError as error:
        print(f"FAIL {error}", file=sys.stderr)
        return 1
    print(f"smoke test passed against {args.url} (model {args.name!r}, archived)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
