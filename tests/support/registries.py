"""The registry as the handlers build it, for tests: the bucket moto serves, the registrar
with the validator as scripts/local_api.py runs it (a child process with no credentials)."""

import dataclasses
import pickle
from typing import Any

from registry.config import DEFAULT_MAX_ARTIFACT_BYTES, PicklePolicy
from registry.http import service
from registry.manifest import ModelManifest, ServingFormat
from registry.registering.registration import Registrar
from registry.registering.validator import Validator
from registry.registry import ModelRegistry
from registry.store.base import ObjectStore
from tests.support.models import joblib_of

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


class PickledServingCopy:
    """The validator as it answered before predict stopped unpickling: the model's serving
    copy is a pickle of it. What a version registered then looks like (with allow-unsafe)."""

    def __init__(self, validator: Validator, model: Any) -> None:
        self.validator, self.model = validator, model

    def validate(self, *args: Any, **kwargs: Any) -> Any:
        validated = self.validator.validate(*args, **kwargs)
        return dataclasses.replace(
            validated,
            serving_copy=pickle.dumps(self.model, protocol=pickle.HIGHEST_PROTOCOL),
            serving_format=ServingFormat.PICKLE,
        )


def register_as_before(registry: ModelRegistry, name: str, model: Any) -> ModelManifest:
    """A joblib version with a pickled serving copy, as registered before this release."""
    validator = PickledServingCopy(local_validator(registry.store), model)
    unsafe = PicklePolicy.ALLOW_UNSAFE
    registrar = Registrar(registry, validator, pickle_policy=unsafe)  # type: ignore[arg-type]
    return registrar.register(name, joblib_of(model)).info.manifest
