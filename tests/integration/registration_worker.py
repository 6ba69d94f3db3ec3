"""Run in separate processes: registrations and alias moves of one model at once."""

import os
from typing import Any

from registry.registry import ModelRegistry
from registry.store import open_store
from tests.support.models import distinct_model_bytes
from tests.support.registries import registrar_for


def open_registry(registry_uri: str, endpoint: str | None) -> ModelRegistry:
    """This process's registry; an S3 endpoint is set before the client is made."""
    if endpoint:
        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    return ModelRegistry(open_store(registry_uri))


def register_many(
    registry_uri: str, endpoint: str | None, name: str, seeds: list[int], start: Any, results: Any
) -> None:
    registrar = registrar_for(open_registry(registry_uri, endpoint))
    artifacts = [distinct_model_bytes(seed) for seed in seeds]
    start.wait()
    for artifact in artifacts:
        manifest = registrar.register(name, artifact).info.manifest
        results.put((manifest.version, manifest.sha256))


def register_same(
    registry_uri: str, endpoint: str | None, name: str, artifact: bytes, start: Any, results: Any
) -> None:
    registrar = registrar_for(open_registry(registry_uri, endpoint))
    start.wait()
    registration = registrar.register(name, artifact)
    results.put((registration.info.manifest.version, registration.created))


def move_aliases(
    registry_uri: str, endpoint: str | None, name: str, index: int, start: Any, results: Any
) -> None:
    registry = open_registry(registry_uri, endpoint)
    start.wait()
    for round_number in range(3):
        registry.set_alias(name, f"mover-{index}", round_number + 1)
        registry.set_alias(name, "shared", index % 3 + 1)
    results.put(index)
