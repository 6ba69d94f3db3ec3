"""A registration cannot take over the registry: the attack of the issue, replayed.

S3 is moto's server on 127.0.0.1, and the register and predict handlers run as they
are deployed, with the register function's S3 credentials in their environment. The
artifact's code runs in the validator (a child process with a scrubbed environment,
as the validator function has no S3 permission) and tries everything it can.
"""

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import skops.io

from registry.config import DEFAULT_MAX_ARTIFACT_BYTES
from registry.http import service
from registry.http.gateway import (
    LocalLambdaContext,
    build_event,
    load_function_module,
    load_template,
    routes_from_template,
)
from registry.manifest import sha256_hex
from registry.registering.registration import Registrar
from registry.registering.validator import Validator
from registry.registry import ModelRegistry
from registry.serving.predictor import load_model
from registry.store import S3Store
from tests.support.attack import (
    SMUGGLE_IN_EXCEPTION,
    SMUGGLE_IN_FEATURE_NAMES,
    carrier,
    hostile_joblib,
    report_of,
    take_over,
)
from tests.support.handlers import LogLines
from tests.support.registries import BUCKET, REGION

ROUTES = routes_from_template(load_template())


@pytest.fixture
def secrets_in_environment(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The register function's credentials and one more secret, each a distinctive value."""
    values = {
        "AWS_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8).upper(),
        "AWS_SECRET_ACCESS_KEY": "canary-secret-" + secrets.token_hex(12),
        "AWS_SESSION_TOKEN": "canary-token-" + secrets.token_hex(12),
        "REGISTRY_SIGNING_SECRET": "canary-other-" + secrets.token_hex(12),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return list(values.values())


@pytest.fixture
def deployed_like(
    moto_server: str, monkeypatch: pytest.MonkeyPatch, secrets_in_environment: list[str]
) -> Iterator[str]:
    """The handlers' registry is the bucket on moto's server; yields the endpoint."""
    monkeypatch.setenv("REGISTRY_URI", f"s3://{BUCKET}/registry")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    service.reset()
    yield moto_server


def call(method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> Any:
    route = next(r for r in ROUTES if r.match(method, path) is not None)
    data = json.dumps(body).encode() if body is not None else b""
    event = build_event(
        route,
        method,
        path,
        route.match(method, path) or {},
        {k: [v] for k, v in (query or {}).items()},
        {},
        data,
    )
    response = load_function_module(route.code_dir).lambda_handler(
        event, LocalLambdaContext(route.function)
    )
    return response["statusCode"], response["body"]


def objects_of(s3: Any, prefix: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {
        item["Key"]: s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read() for item in listed
    }


def register_victim(moons_bytes: bytes) -> dict[str, Any]:
    body = {"name": "victim", "artifact": base64.b64encode(moons_bytes).decode()}
    status, answer = call("POST", "/models", body)
    assert status == 201, answer
    return dict(json.loads(answer))


@pytest.mark.parametrize("smuggle", [SMUGGLE_IN_FEATURE_NAMES, SMUGGLE_IN_EXCEPTION])
def test_a_hostile_artifact_changes_no_other_model_and_leaks_nothing(
    deployed_like: str,
    secrets_in_environment: list[str],
    moons_bytes: bytes,
    moons_model: Any,
    log_lines: LogLines,
    capsys: pytest.CaptureFixture[str],
    smuggle: str,
) -> None:
    # Given a served model, and an artifact built to overwrite its manifest and serving copy
    victim = register_victim(moons_bytes)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=deployed_like)
    before = objects_of(s3, "registry/models/victim/")
    victim_keys = [key for key in before if "/versions/" in key or "/serving/" in key]
    hostile = hostile_joblib(BUCKET, deployed_like, victim_keys, smuggle)

    # When it is registered under a harmless name
    status, answer = call(
        "POST", "/models", {"name": "harmless", "artifact": base64.b64encode(hostile).decode()}
    )

    # Then its code ran, but found no credential, no SDK to use one with, and no registry
    if smuggle == SMUGGLE_IN_FEATURE_NAMES:
        assert status == 201, answer  # a valid model: joblib artifacts are converted
        names = json.loads(answer)["feature_names"]
        report = report_of(names)
        assert report["ran"] == "yes"
        assert report["s3_write"] == "ImportError"  # not imported before the sandbox forked
        assert report["store_write"] == "no REGISTRY_URI"
        assert report["parent_environ"] == "PermissionError"
        assert "env=PATH" in names  # it did read its environment: no AWS variable there
        assert {name for name in names if name.startswith("env=AWS_")} <= {
            "env=AWS_EC2_METADATA_DISABLED"
        }
    else:
        assert status == 422 and json.loads(answer)["code"] == "invalid_artifact"
    # and every object of the other model is byte-identical, and it still answers the same
    assert objects_of(s3, "registry/models/victim/") == before
    service.reset()  # a cold predict container: nothing cached
    status_classify, classified = call(
        "POST", "/classify", {"instances": [[0.5, 0.2]]}, {"model": "victim"}
    )
    assert status_classify == 200
    assert json.loads(classified)["predictions"] == moons_model.predict([[0.5, 0.2]]).tolist()
    # and nothing from the environment reached the response, the log lines or stdout
    printed = capsys.readouterr().out + json.dumps(log_lines.lines) + answer + classified
    for secret in secrets_in_environment:
        assert secret not in printed
    assert victim["sha256"] == sha256_hex(moons_bytes)


def test_the_same_artifact_run_with_registers_credentials_would_take_over(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: where the code gets the credentials, the attack works (so the test above
    can fail). Run directly in this process, with S3 credentials and the endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_server)
    key = "registry/models/victim/versions/0000000001.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}")

    model = take_over(BUCKET, moto_server, [key], SMUGGLE_IN_FEATURE_NAMES, carrier())

    assert report_of(list(model.feature_names_in_))["s3_write"] == "written"
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"taken over"


def test_with_pickle_denied_a_joblib_artifact_is_refused_and_skops_files_serve(
    deployed_like: str, monkeypatch: pytest.MonkeyPatch, moons_model: Any
) -> None:
    monkeypatch.setenv("PICKLE_ARTIFACTS", "deny")
    service.reset()
    hostile = hostile_joblib(BUCKET, deployed_like, [], SMUGGLE_IN_FEATURE_NAMES)

    status, answer = call(
        "POST", "/models", {"name": "harmless", "artifact": base64.b64encode(hostile).decode()}
    )

    assert status == 422
    assert json.loads(answer)["code"] == "pickle_refused"
    assert "skops" in json.loads(answer)["message"]
    # while a skops file of a real model registers and serves
    skops_artifact = base64.b64encode(skops.io.dumps(moons_model)).decode()
    status, answer = call("POST", "/models", {"name": "moons", "artifact": skops_artifact})
    assert status == 201, answer
    assert json.loads(answer)["format"] == "skops"
    status, classified = call("POST", "/classify", {"instances": [[0.5, 0.2]]}, {"model": "moons"})
    assert json.loads(classified)["predictions"] == moons_model.predict([[0.5, 0.2]]).tolist()


def test_large_artifacts_reach_the_validator_by_presigned_urls_only(
    moto_server: str, moons_bytes: bytes, moons_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the invocation's sizes (here 0 bytes), register stages the bytes it hashed under a
    key only it knows; the validator GETs them and PUTs its serving copy back by URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    store = S3Store(BUCKET, "registry")
    validator = Validator(
        service.local_validator_process(service.settings().pickle_artifacts),
        "local",
        store,
        DEFAULT_MAX_ARTIFACT_BYTES,
        inline_limit=0,
        answer_limit=0,
    )
    registry = ModelRegistry(store)
    presigned: list[str] = []
    for name in ("presign_get", "presign_put"):
        presign = getattr(store, name)
        monkeypatch.setattr(
            store,
            name,
            lambda key, expires, presign=presign: presigned.append(key) or presign(key, expires),
        )

    manifest = Registrar(registry, validator).register("moons", moons_bytes).info.manifest

    assert manifest.serving_key is not None
    assert {key.rpartition(".")[2] for key in presigned} == {"staged", "serving"}
    # what was staged for the validator is not left behind
    assert list(store.list_keys("uploads/moons/")) == []
    rows = [[0.5, 0.2], [1.5, -0.4]]
    assert (load_model(registry, manifest).predict(rows) == moons_model.predict(rows)).all()
