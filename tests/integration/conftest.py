"""Fixtures of the handler tier: the real Lambda handlers against moto's S3."""

from collections.abc import Iterator
from typing import Any

import pytest

from registry.observability import logger
from tests.support.handlers import Call, Invoke, LogLines, invoker, route_caller
from tests.support.registries import BUCKET


@pytest.fixture
def registry_on_moto(s3_client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The handlers' registry is an S3 bucket in moto; yields the boto3 client."""
    monkeypatch.setenv("REGISTRY_URI", f"s3://{BUCKET}/registry")
    monkeypatch.setenv("DEFAULT_MODEL", "moons")
    yield s3_client


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    collector = LogLines()
    collector.setFormatter(logger.registered_formatter)
    logger.addHandler(collector)
    yield collector
    logger.removeHandler(collector)


@pytest.fixture
def register(registry_on_moto: Any) -> Invoke:
    return invoker("register")


@pytest.fixture
def classify(registry_on_moto: Any) -> Invoke:
    return invoker("predict")


@pytest.fixture
def call(registry_on_moto: Any) -> Call:
    return route_caller()
