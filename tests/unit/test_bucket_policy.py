"""History is write-once in storage: the bucket policy SAM makes, against the writes we make.

The policy's statements are read from SAM's transform of template.yaml and evaluated
here for S3's PutObject (the parts of IAM's logic they use: ARN wildcards and Null
conditions on s3:if-none-match / s3:if-match). Every PutObject a real registration,
alias move and archive sends to (moto's) S3 is recorded with its conditional headers
and must be allowed; an overwrite of history must be denied.
"""

import fnmatch
import re
from typing import Any

import pytest

from registry.manifest import WRITE_ONCE_FOLDERS
from registry.registering.deletion import ModelDeleter
from registry.registry import ModelRegistry
from registry.store import S3Store
from tests.support.cloudformation import resources_of
from tests.support.models import distinct_model_bytes
from tests.support.registries import BUCKET, registrar_for

BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
REGISTER_ROLE = {"Fn::GetAtt": ["RegisterFunctionRole", "Arn"]}
SOMEONE_ELSE = {"Fn::GetAtt": ["PredictFunctionRole", "Arn"]}
HEADER_KEYS = {"IfNoneMatch": "s3:if-none-match", "IfMatch": "s3:if-match"}


def bucket_statements(cloudformation: dict[str, Any]) -> list[dict[str, Any]]:
    (policy,) = resources_of(cloudformation, "AWS::S3::BucketPolicy").values()
    return list(policy["PolicyDocument"]["Statement"])


def resources(statement: dict[str, Any]) -> list[str]:
    listed = statement["Resource"]
    listed = listed if isinstance(listed, list) else [listed]
    arns = []
    for resource in listed:
        if resource == {"Fn::GetAtt": ["RegistryBucket", "Arn"]}:
            arns.append(BUCKET_ARN)
            continue
        text = resource["Fn::Sub"] if isinstance(resource, dict) else resource
        arns.append(text.replace("${RegistryBucket.Arn}", BUCKET_ARN))
    return arns


def denied(
    statements: list[dict[str, Any]],
    key: str,
    condition_keys: set[str],
    action: str = "s3:PutObject",
    principal: dict[str, Any] = SOMEONE_ELSE,
) -> bool:
    """Whether the action on registry/<key>, sending these conditional headers, is denied.

    principal: the caller's role, as the template names it.
    """
    arn = f"{BUCKET_ARN}/registry/{key}"
    for statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        if statement["Effect"] != "Deny" or not {action, "s3:*"} & set(actions):
            continue
        if not any(fnmatch.fnmatchcase(arn, pattern) for pattern in resources(statement)):
            continue
        conditions = statement.get("Condition", {})
        if set(conditions) - {"Null", "Bool", "ArnNotEquals"}:
            raise AssertionError(f"the test does not evaluate {set(conditions)}")
        if "Bool" in conditions:
            continue  # aws:SecureTransport: every request here is over TLS
        if conditions.get("ArnNotEquals", {}).get("aws:PrincipalArn") == principal:
            continue  # the statement exempts this principal
        # Null: true means "the key is absent"; every listed key must match. No condition: deny.
        if all(
            (key_name not in condition_keys) == (expected == "true")
            for key_name, expected in conditions.get("Null", {}).items()
        ):
            return True
    return False


@pytest.mark.parametrize("folder", WRITE_ONCE_FOLDERS)
def test_manifests_artifacts_and_serving_copies_can_only_be_created(
    cloudformation: dict[str, Any], folder: str
) -> None:
    statements = bucket_statements(cloudformation)
    key = f"models/moons/{folder}/0000000001.json"
    assert denied(statements, key, set())
    assert denied(statements, key, {"s3:if-match"})
    assert not denied(statements, key, {"s3:if-none-match"})


@pytest.mark.parametrize("folder", WRITE_ONCE_FOLDERS)
def test_history_is_deleted_only_by_the_register_functions_model_delete(
    cloudformation: dict[str, Any], folder: str
) -> None:
    statements = bucket_statements(cloudformation)
    key = f"models/moons/{folder}/0000000001.json"
    # A delete marker: only the register function (DELETE /models/{name}) may leave one.
    assert denied(statements, key, set(), "s3:DeleteObject")
    assert not denied(statements, key, set(), "s3:DeleteObject", REGISTER_ROLE)
    # The bytes under the marker: nobody may delete them; they expire by lifecycle.
    for principal in (SOMEONE_ELSE, REGISTER_ROLE):
        assert denied(statements, key, set(), "s3:DeleteObjectVersion", principal)
    assert not denied(statements, "uploads/moons/" + "b" * 32 + ".staged", set(), "s3:DeleteObject")


def test_a_models_state_is_never_deleted_so_its_numbers_are_never_reused(
    cloudformation: dict[str, Any],
) -> None:
    statements = bucket_statements(cloudformation)
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion"):
        for principal in (SOMEONE_ELSE, REGISTER_ROLE):
            assert denied(statements, "models/moons/state.json", set(), action, principal)


def test_model_state_changes_only_by_compare_and_swap_or_creation(
    cloudformation: dict[str, Any],
) -> None:
    statements = bucket_statements(cloudformation)
    assert denied(statements, "models/moons/state.json", set())
    assert not denied(statements, "models/moons/state.json", {"s3:if-match"})
    assert not denied(statements, "models/moons/state.json", {"s3:if-none-match"})
    # Claims and uploads are not history: plain writes stay allowed.
    assert not denied(statements, "models/moons/sha256/" + "a" * 64 + ".json", set())
    assert not denied(statements, "uploads/moons/" + "b" * 32 + ".joblib", set())


def test_every_write_the_registry_makes_is_allowed_by_the_policy(
    cloudformation: dict[str, Any], s3_client: Any, moons_bytes: bytes
) -> None:
    writes: list[tuple[str, set[str]]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent = {condition for header, condition in HEADER_KEYS.items() if header in params}
        writes.append((params["Key"].removeprefix("registry/"), sent))

    s3_client.meta.events.register("before-parameter-build.s3.PutObject", record)
    registry = ModelRegistry(S3Store(BUCKET, "registry", s3_client=s3_client))
    registrar = registrar_for(registry)
    registrar.register("moons", moons_bytes)
    registrar.register("moons", distinct_model_bytes(1))
    registrar.register("moons", moons_bytes)  # identical bytes: the existing version
    registry.set_alias("moons", "production", 1)
    registry.set_alias("moons", "production", 2)
    registry.delete_alias("moons", "production")
    registry.archive("moons", 1)
    registrar.register("moons", moons_bytes)  # archived bytes registered anew

    statements = bucket_statements(cloudformation)
    refused = [(key, sent) for key, sent in writes if denied(statements, key, sent)]
    assert refused == []
    folders = {re.sub(r"^models/moons/([^/]+).*$", r"\1", key) for key, _ in writes}
    assert {*WRITE_ONCE_FOLDERS, "state.json", "sha256"} <= folders
    # and the same writes without their conditions would have been refused
    history = [key for key, _ in writes if key.split("/")[2] in WRITE_ONCE_FOLDERS]
    assert all(denied(statements, key, set()) for key in history)


def test_every_delete_a_model_delete_sends_is_allowed_for_the_register_function(
    cloudformation: dict[str, Any], s3_client: Any, moons_bytes: bytes
) -> None:
    deleted: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        deleted.extend(
            item["Key"].removeprefix("registry/") for item in params["Delete"]["Objects"]
        )

    s3_client.meta.events.register("before-parameter-build.s3.DeleteObjects", record)
    registry = ModelRegistry(S3Store(BUCKET, "registry", s3_client=s3_client))
    registrar = registrar_for(registry)
    registrar.register("moons", moons_bytes)
    registrar.register("moons", distinct_model_bytes(1))

    ModelDeleter(registry).delete_model("moons")

    statements = bucket_statements(cloudformation)
    folders = {key.split("/")[2] for key in deleted}
    assert {*WRITE_ONCE_FOLDERS, "sha256"} <= folders
    assert not [
        key for key in deleted if denied(statements, key, set(), "s3:DeleteObject", REGISTER_ROLE)
    ]
    assert all(
        denied(statements, key, set(), "s3:DeleteObject")
        for key in deleted
        if key.split("/")[2] in WRITE_ONCE_FOLDERS
    )
