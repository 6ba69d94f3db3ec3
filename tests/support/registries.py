"""The registry as the handlers build it, for tests: the bucket moto serves, the registrar
with the validator as scripts/local_api.py runs it (a child process with no credentials)."""

from typing import Any

from registry import service
from registry.config import DEFAULT_MAX_ARTIFACT_BYTES, PicklePolicy
from registry.registration import Registrar
from registry.registry import ModelRegistry
from registry.store.base import ObjectStore
from registry.validator import Validator

BUCKET = "test-registry"
REGION = "us-east-1"


def local_validator(
    store: ObjectStore,
    pickle_policy: PicklePolicy = PicklePolicy.CONVERT,
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
) -> Validator:
    """The validator as scripts/local_api.py runs it: a child process with no credentials.

    The process is shared by every test (service.local_validator_process), as a warm
    validator function is shared by registrations.
    """
    invoker = service.local_validator_process(pickle_policy)
    return Validator(invoker, "local", store, max_artifact_bytes, inline_limit=None)


def registrar_for(registry: ModelRegistry, **options: Any) -> Registrar:
    policy = options.get("pickle_policy", PicklePolicy.CONVERT)
    max_bytes = options.get("max_artifact_bytes", DEFAULT_MAX_ARTIFACT_BYTES)
    return Registrar(registry, local_validator(registry.store, policy, max_bytes), **options)
