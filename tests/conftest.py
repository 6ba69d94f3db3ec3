"""Fixtures shared by every tier: fake AWS credentials, example models, both stores."""

import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from train_moons import joblib_bytes, train_moons
from werkzeug.serving import make_server

from registry.http import service
from registry.registering.registration import Registrar
from registry.registry import ModelRegistry
from registry.store import LocalStore, S3Store
from registry.store.base import ObjectStore
from tests.support.registries import BUCKET, REGION, registrar_for


@pytest.fixture(autouse=True)
def fake_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that cannot reach real AWS, and no endpoint or profile from the machine."""
    for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@pytest.fixture(autouse=True)
def fresh_service() -> Iterator[None]:
    """Every test builds the handlers' registry anew from its own environment."""
    service.reset()
    yield
    service.reset()


@pytest.fixture(scope="session")
def moons_model() -> Any:
    return train_moons()


@pytest.fixture(scope="session")
def moons_bytes(moons_model: Any) -> bytes:
    return joblib_bytes(moons_model)


@pytest.fixture
def s3_client() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


class SerializedMotoServer(ThreadedMotoServer):
    """moto's threaded server, answering one request at a time.

    moto checks a conditional write (If-None-Match, If-Match) and then stores
    the object without holding a lock, so two threads can both pass the check;
    S3 decides conditional writes atomically. Serialising requests restores
    S3's guarantee, which the concurrency tests depend on.
    """

    def _server_entry(self) -> None:
        lock = threading.Lock()
        app = DomainDispatcherApplication(create_backend_app)

        def serialized(environ: Any, start_response: Any) -> list[bytes]:
            with lock:
                return list(app(environ, start_response))

        self._server = make_server(
            self._ip_address, self._port, serialized, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


@pytest.fixture
def moto_server() -> Iterator[str]:
    """moto's S3 on 127.0.0.1 for other processes, with an empty bucket; yields its URL.

    The server shares this process's moto state, so it is reset before and after.
    """
    server = SerializedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()
    boto3.client("s3", region_name=REGION, endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    urllib.request.urlopen(reset, timeout=10).close()
    server.stop()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Each contract test runs against the directory store and S3 (moto)."""
    if request.param == "local":
        return LocalStore(tmp_path / "registry")
    s3_client = request.getfixturevalue("s3_client")
    return S3Store(BUCKET, "registry", s3_client=s3_client)


@pytest.fixture
def registry(store: ObjectStore) -> ModelRegistry:
    return ModelRegistry(store)


@pytest.fixture
def registrar(registry: ModelRegistry) -> Registrar:
    return registrar_for(registry)
