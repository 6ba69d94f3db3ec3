"""The e2e tier's servers: scripts/local_api.py over a directory store or moto's S3 server."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http import API_KEY, local_api_for
from tests.support.registries import BUCKET


def _server_env(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if store == "local-directory":
        env["REGISTRY_URI"] = str(tmp_path / "registry")
    else:
        endpoint = request.getfixturevalue("moto_server")
        env.update(REGISTRY_URI=f"s3://{BUCKET}/registry", AWS_ENDPOINT_URL_S3=endpoint)
    return env


@pytest.fixture
def server_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """A server of its own over a directory store (the store contract covers S3 below HTTP)."""
    return _server_env("local-directory", request, tmp_path)


@pytest.fixture
def api_url(server_env: dict[str, str]) -> Iterator[str]:
    yield from local_api_for(server_env, "--api-key", API_KEY)


@pytest.fixture(params=["local-directory", "s3-moto-server"])
def each_store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """For what HTTP does differently by store (uploads, concurrency): both, one test each."""
    return _server_env(request.param, request, tmp_path)


@pytest.fixture
def each_store_api_url(each_store_env: dict[str, str]) -> Iterator[str]:
    yield from local_api_for(each_store_env, "--api-key", API_KEY)


@pytest.fixture(scope="module")
def module_api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for a whole module, over a directory store (the S3 store has its own tests)."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "REGISTRY_URI": str(tmp_path_factory.mktemp("registry") / "registry"),
    }
    yield from local_api_for(env, "--api-key", API_KEY)
