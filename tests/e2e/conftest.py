"""The e2e tier's servers: scripts/local_api.py over a directory store or moto's S3 server."""

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http import API_KEY, REPO_ROOT, local_api_for
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


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """Where a user's shell stands: the clone's venv and scripts, and room for their files."""
    for name in (".venv", "scripts"):
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    return tmp_path


@pytest.fixture
def make_run(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make run` on a free port over a fresh store; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "REGISTRY_URI": str(tmp_path_factory.mktemp("store") / "registry"),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        ["make", "-s", "-C", str(REPO_ROOT), "run", f"PORT={port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    printed = []
    for line in process.stdout:
        printed.append(line)
        if line.startswith("Serving on"):
            break
    else:
        pytest.fail("make run stopped:\n" + "".join(printed))
    stdout = process.stdout
    threading.Thread(target=lambda: [None for _ in stdout], daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    os.killpg(process.pid, 15)
    process.wait(timeout=20)
