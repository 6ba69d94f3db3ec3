"""S3 failing at each step of a registration: nothing half-written, a 503, and a retry works."""

import json
from typing import Any

import pytest

from registry.errors import StoreUnavailableError
from registry.http import service
from registry.manifest import ShaClaim
from registry.serving.predictor import load_model
from registry.store.base import ObjectStore
from tests.support.handlers import Call, Invoke, artifact_body
from tests.support.models import distinct_model_bytes


class FailOnce:
    """The real store, except that the first `method` call on a key containing `part` fails."""

    def __init__(self, store: ObjectStore, method: str, part: str) -> None:
        self.store = store
        self.method = method
        self.part = part
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.store, name)

        def call(key: str, *args: Any, **kwargs: Any) -> Any:
            if name == self.method and self.part in key and not self.failed:
                self.failed = True
                raise StoreUnavailableError(f"injected: S3 {name} of {key} failed")
            return real(key, *args, **kwargs)

        return call


def assert_consistent(store: ObjectStore) -> None:
    """Every visible version has an artifact and a serving copy matching its hashes."""
    registry = service.model_registry()
    for version in registry.list_versions("moons"):
        manifest = registry.get_manifest("moons", version)
        registry.read_artifact(manifest)
        load_model(registry, manifest)


def assert_no_claim_blocks_a_retry(store: ObjectStore) -> None:
    """Every sha256 claim names its version, or was released (dated so a retry takes it)."""
    for key in store.list_keys("models/moons/sha256/"):
        claim = ShaClaim.model_validate_json(store.get(key))
        assert claim.version is not None or claim.claimed_at.year == 1970, key


STEPS = [
    ("create", "/sha256/"),  # claiming the bytes
    ("create", "/artifacts/"),  # the artifact
    ("create", "/serving/"),  # the serving copy
    ("list_keys", "/versions/"),  # finding the next version number
    ("create", "/versions/"),  # committing the manifest
]


@pytest.mark.parametrize(("method", "part"), STEPS, ids=[f"{m}{p}" for m, p in STEPS])
def test_a_failed_step_answers_503_leaves_nothing_half_written_and_a_retry_succeeds(
    register: Invoke, moons_bytes: bytes, method: str, part: str
) -> None:
    registry = service.model_registry()
    faulty = FailOnce(registry.store, method, part)
    registry.store = faulty  # type: ignore[assignment]
    body = artifact_body("moons", moons_bytes)

    status, answer = register("register", body=body)

    assert faulty.failed
    assert (status, answer["code"]) == (503, "store_unavailable")
    assert registry.list_versions("moons") == []
    assert_consistent(registry.store)
    assert_no_claim_blocks_a_retry(registry.store)
    status, answer = register("register", body=body)
    assert (status, answer["version"], answer["created"]) == (201, 1, True)
    assert registry.list_versions("moons") == [1]
    assert_consistent(registry.store)


class InvokeFailsOnce:
    """The validator's Lambda client, except that its first invoke fails (throttled, say)."""

    def __init__(self, invoker: Any) -> None:
        self.invoker = invoker
        self.failed = False

    def invoke(self, **kwargs: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise ConnectionError("injected: the validator could not be invoked")
        return self.invoker.invoke(**kwargs)


def test_a_failed_validation_call_answers_503_stores_nothing_and_a_retry_succeeds(
    register: Invoke, moons_bytes: bytes
) -> None:
    validator = service.registrar().validator
    validator.invoker = InvokeFailsOnce(validator.invoker)
    registry = service.model_registry()
    body = artifact_body("moons", moons_bytes)

    status, answer = register("register", body=body)

    assert (status, answer["code"]) == (503, "validator_unavailable")
    assert list(registry.store.list_keys("models/moons/")) == []
    status, answer = register("register", body=body)
    assert (status, answer["version"]) == (201, 1)


def test_an_input_example_refused_leaves_nothing_and_the_corrected_retry_succeeds(
    register: Invoke, moons_bytes: bytes
) -> None:
    registry = service.model_registry()
    status, answer = register(
        "register", body=artifact_body("moons", moons_bytes, input_example=[[0.5, "two"]])
    )
    assert (status, answer["code"]) == (422, "invalid_input")
    assert answer["message"].startswith("the model could not predict on input_example (it raised")
    assert list(registry.store.list_keys("models/moons/")) == []

    example = [[0.5, 0.2]] * 100  # the most rows an example may hold
    status, answer = register(
        "register", body=artifact_body("moons", moons_bytes, input_example=example)
    )

    assert (status, answer["version"], answer["created"]) == (201, 1, True)
    assert answer["input_example"] == example
    assert_no_claim_blocks_a_retry(registry.store)


def test_the_503_carries_retry_after(register: Invoke, moons_bytes: bytes) -> None:
    from registry.http.gateway import LocalLambdaContext, load_function_module
    from tests.support.handlers import REPO_ROOT, event_from

    registry = service.model_registry()
    registry.store = FailOnce(registry.store, "create", "/artifacts/")  # type: ignore[assignment]
    module = load_function_module(REPO_ROOT / "functions" / "register")
    event = event_from("register", body=artifact_body("moons", moons_bytes))

    response = module.lambda_handler(event, LocalLambdaContext("RegisterFunction"))

    assert response["statusCode"] == 503
    assert response["multiValueHeaders"]["Retry-After"] == ["1"]
    assert json.loads(response["body"])["code"] == "store_unavailable"


def test_a_failure_after_the_commit_still_answers_with_the_committed_version(
    register: Invoke, moons_bytes: bytes
) -> None:
    registry = service.model_registry()
    registry.store = FailOnce(registry.store, "put", "/sha256/")  # type: ignore[assignment]

    status, answer = register("register", body=artifact_body("moons", moons_bytes))

    assert (status, answer["version"]) == (201, 1)
    assert registry.list_versions("moons") == [1]
    assert_consistent(registry.store)


@pytest.mark.parametrize(
    ("method", "path", "body", "fail"),
    [
        ("PUT", "/models/moons/aliases/production", {"version": 1}, ("create", "/state.json")),
        ("PUT", "/models/moons/aliases/production", {"version": 1}, ("get_versioned", "/state")),
        ("DELETE", "/models/moons/versions/1", None, ("create", "/state.json")),
    ],
    ids=["alias-first-write", "alias-read", "archive-first-write"],
)
def test_a_failed_state_write_answers_503_changes_nothing_and_a_retry_succeeds(
    call: Call, moons_bytes: bytes, method: str, path: str, body: Any, fail: tuple[str, str]
) -> None:
    assert call("POST", "/models", artifact_body("moons", moons_bytes))[0] == 201
    registry = service.model_registry()
    registry.store = FailOnce(registry.store, *fail)  # type: ignore[assignment]

    status, answer = call(method, path, body)

    assert (status, answer["code"]) == (503, "store_unavailable")
    assert registry.state("moons").aliases == {} and registry.state("moons").archived == []
    assert call(method, path, body)[0] == 200


def test_a_failed_alias_move_keeps_the_old_target(call: Call, moons_bytes: bytes) -> None:
    call("POST", "/models", artifact_body("moons", moons_bytes))
    call("POST", "/models", artifact_body("moons", distinct_model_bytes(2)))
    assert call("PUT", "/models/moons/aliases/production", {"version": 1})[0] == 200
    registry = service.model_registry()
    registry.store = FailOnce(registry.store, "replace", "/state.json")  # type: ignore[assignment]

    status, answer = call("PUT", "/models/moons/aliases/production", {"version": 2})

    assert (status, answer["code"]) == (503, "store_unavailable")
    assert registry.state("moons").aliases == {"production": 1}
    assert call("PUT", "/models/moons/aliases/production", {"version": 2})[0] == 200
    assert registry.state("moons").aliases == {"production": 2}
