"""Run in a separate process: register several artifacts of one model name at once."""

import os
from typing import Any


def register_many(
    registry_uri: str, endpoint: str | None, name: str, seeds: list[int], start: Any, results: Any
) -> None:
    if endpoint:
        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    from registry.registry import ModelRegistry
    from registry.store import open_store
    from tests.conftest import distinct_model_bytes

    registry = ModelRegistry(open_store(registry_uri))
    artifacts = [distinct_model_bytes(seed) for seed in seeds]
    start.wait()
    for artifact in artifacts:
        manifest = registry.register(name, artifact).info.manifest
        results.put((manifest.version, manifest.sha256))
