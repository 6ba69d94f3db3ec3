"""The register and predict handlers, end to end over moto's in-process S3."""

import base64
import json
from typing import Any

import boto3
import numpy
import pytest
import sklearn.base
from sklearn.linear_model import LinearRegression

from registry.http import service
from registry.http.gateway import LocalLambdaContext, load_function_module
from registry.store.s3 import DEFAULT_CLIENT_CONFIG
from tests.support.handlers import (
    EVENTS,
    REPO_ROOT,
    Invoke,
    LogLines,
    artifact_body,
    event_from,
)
from tests.support.models import distinct_model_bytes, joblib_of
from tests.support.registries import BUCKET

ROWS = [[0.5, 0.2], [1.5, -0.4], [-1.0, 1.0], [2.0, 0.5]]


@pytest.fixture
def registered(register: Invoke, moons_bytes: bytes) -> dict[str, Any]:
    status, manifest = register("register", body=artifact_body("moons", moons_bytes))
    assert status == 201
    return manifest


def test_register_answers_201_with_the_manifest_and_stores_it_in_s3(
    register: Invoke, registry_on_moto: Any, moons_bytes: bytes
) -> None:
    body = artifact_body("moons", moons_bytes, description="blog", tags={"k": "v"})

    status, manifest = register("register", body=body)

    assert status == 201
    assert (manifest["name"], manifest["version"]) == ("moons", 1)
    assert (manifest["description"], manifest["tags"]) == ("blog", {"k": "v"})
    stored = registry_on_moto.get_object(Bucket=BUCKET, Key=f"registry/{manifest['artifact_key']}")[
        "Body"
    ].read()
    assert stored == moons_bytes
    manifest_object = registry_on_moto.get_object(
        Bucket=BUCKET, Key="registry/models/moons/versions/0000000001.json"
    )
    assert json.loads(manifest_object["Body"].read())["sha256"] == manifest["sha256"]


def test_the_blogs_request_gets_the_models_label_as_a_string(
    registered: dict[str, Any], classify: Invoke, moons_model: Any
) -> None:
    status, answer = classify("classify", body={"data1": "0.5", "data2": "0.2"})

    expected = moons_model.predict(numpy.array([[0.5, 0.2]]))[0]
    assert status == 200
    assert answer == {"prediction": str(expected), "model": "moons", "version": 1}


def test_numbers_work_as_well_as_numeric_strings(
    registered: dict[str, Any], classify: Invoke, moons_model: Any
) -> None:
    status, answer = classify("classify", body={"data1": 1.5, "data2": -0.4})
    assert status == 200
    assert answer["prediction"] == str(moons_model.predict(numpy.array([[1.5, -0.4]]))[0])


def test_a_batch_gets_one_label_per_instance_as_json_numbers(
    registered: dict[str, Any], classify: Invoke, moons_model: Any
) -> None:
    status, answer = classify("classify", body={"instances": ROWS}, query={})

    assert status == 200
    assert answer["predictions"] == moons_model.predict(numpy.array(ROWS)).tolist()
    assert all(isinstance(label, int) for label in answer["predictions"])
    assert (answer["model"], answer["version"]) == ("moons", 1)


def test_without_a_version_the_latest_is_served_and_a_pinned_one_stays_pinned(
    registered: dict[str, Any], register: Invoke, classify: Invoke
) -> None:
    status, second = register("register", body=artifact_body("moons", distinct_model_bytes(7)))
    assert (status, second["version"]) == (201, 2)

    assert classify("classify", body={"instances": ROWS}, query={})[1]["version"] == 2
    pinned = classify("classify", body={"instances": ROWS}, query={"version": "1"})
    assert pinned[1]["version"] == 1


def test_the_model_query_parameter_picks_another_model(
    registered: dict[str, Any], register: Invoke, classify: Invoke
) -> None:
    register("register", body=artifact_body("linear-ish", distinct_model_bytes(8)))
    status, answer = classify("classify", body={"instances": ROWS}, query={"model": "linear-ish"})
    assert (status, answer["model"], answer["version"]) == (200, "linear-ish", 1)


def test_a_body_sent_with_curls_default_form_content_type_is_read_as_json(
    registered: dict[str, Any], classify: Invoke
) -> None:
    status, answer = classify(
        "classify",
        body={"data1": "0.5", "data2": "0.2"},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200
    assert "prediction" in answer


def test_a_warm_request_for_an_explicit_version_makes_no_s3_call(
    registered: dict[str, Any], classify: Invoke
) -> None:
    assert classify("classify", query={"version": "1"})[0] == 200
    s3_calls: list[str] = []
    s3 = service.model_registry().store.s3  # type: ignore[attr-defined]
    s3.meta.events.register("before-call.s3", lambda model, **_: s3_calls.append(model.name))

    status, _ = classify("classify", query={"version": "1"})

    assert status == 200
    assert s3_calls == []
    classify("classify", query={})  # "latest" must list the versions: the hook does see calls
    assert s3_calls == ["ListObjectsV2"]


def test_each_request_logs_one_json_line_with_model_version_cache_and_latency(
    registered: dict[str, Any], classify: Invoke, log_lines: LogLines
) -> None:
    classify("classify", query={"version": "1"})
    classify("classify", query={"version": "1"})

    requests = [line for line in log_lines.lines if line.get("message") == "request"]
    assert [line["cache"] for line in requests] == ["miss", "hit"]
    for line in requests:
        assert line["correlation_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
        assert (line["model"], line["version"], line["status"]) == ("moons", 1, 200)
        assert line["route"] == "/classify"
        assert isinstance(line["latency_ms"], float)
        assert line["level"] == "INFO"


def test_a_tampered_artifact_is_refused_with_a_500_and_a_code(
    registered: dict[str, Any], classify: Invoke, registry_on_moto: Any
) -> None:
    registry_on_moto.put_object(
        Bucket=BUCKET, Key=f"registry/{registered['serving_key']}", Body=b"evil bytes"
    )
    status, answer = classify("classify", query={"version": "1"})
    assert (status, answer["code"]) == (500, "integrity_check_failed")


def b64_joblib(value: object) -> str:
    return base64.b64encode(joblib_of(value)).decode()


def b64_pickled_by_old_scikit_learn() -> str:
    """A fitted model whose pickle says scikit-learn 1.5.2 made it."""
    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    current = sklearn.base.__version__
    sklearn.base.__version__ = "1.5.2"
    try:
        return b64_joblib(model)
    finally:
        sklearn.base.__version__ = current


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"raw_body": '{"data1": '}, 400, "malformed_json"),
        ({"raw_body": "not json at all"}, 400, "malformed_json"),
        ({"raw_body": '{"data1": NaN, "data2": 1}'}, 422, "invalid_request"),
        ({"raw_body": '{"data1": 1e999, "data2": 1}'}, 400, "malformed_json"),
        ({"raw_body": '{"instances": [[Infinity, 1]]}'}, 400, "malformed_json"),
        # MLflow's clients write a DataFrame's missing values as NaN: read as null.
        ({"raw_body": '{"instances": [[NaN, 1, 2]]}'}, 422, "invalid_input"),
        ({"raw_body": '{"instances": [[1, -Infinity]]}'}, 400, "malformed_json"),
        ({"body": {"inputs": "abc"}}, 422, "invalid_input"),
        ({"body": {"dataframe_records": [[1, 2]]}}, 422, "invalid_input"),
        ({"body": {"instances": [[1, 2]], "inputs": [[1, 2]]}}, 422, "invalid_request"),
        ({"body": {"instances": [[1, 2]], "params": {"k": 1}}}, 422, "invalid_request"),
        ({"body": {"data1": "NaN", "data2": 1}}, 422, "invalid_request"),
        ({"body": {"data1": "1e999", "data2": 1}}, 422, "invalid_request"),
        ({"body": {"data1": "abc", "data2": 1}}, 422, "invalid_request"),
        ({"body": {"data1": 1}}, 422, "invalid_request"),
        ({"body": {"data1": True, "data2": 1}}, 422, "invalid_request"),
        ({"body": {"data1": None, "data2": None}}, 422, "invalid_request"),
        ({"body": {"instances": []}}, 422, "invalid_input"),
        ({"body": {"instances": [[1, None], [1, "2"]]}}, 422, "invalid_input"),
        ({"body": {"instances": [["1", 2]]}}, 422, "invalid_input"),
        ({"body": {"instances": [[[1, 2]]]}}, 422, "invalid_input"),
        ({"raw_body": '{"instances": [[[1]], 2]}'}, 422, "invalid_input"),
        ({"raw_body": '{"instances": [[1, 2], [3]]}'}, 422, "invalid_input"),
        ({"body": {"instances": [[1, 2, 3]]}}, 422, "invalid_input"),
        ({"body": {"instances": [[1e300, 1]]}}, 422, "invalid_input"),
        ({"body": {"instances": [[1], [1, 2]]}}, 422, "invalid_input"),
        ({"body": {"data1": 1, "data2": 2, "instances": [[1, 2]]}}, 422, "invalid_request"),
        ({"body": {"data1": 1, "data2": 2, "extra": 3}}, 422, "invalid_request"),
        ({"body": [1, 2]}, 422, "invalid_request"),
        ({"query": {"version": "abc"}}, 422, "invalid_request"),
        ({"query": {"version": "0"}}, 422, "invalid_request"),
        ({"query": {"version": "-1"}}, 422, "invalid_request"),
        ({"query": {"version": str(2**64)}}, 422, "invalid_request"),
        ({"query": {"version": "9"}}, 404, "version_not_found"),
        ({"query": {"model": "nobody"}}, 404, "model_not_found"),
        ({"query": {"model": "../etc"}}, 422, "invalid_request"),
        ({"query": {"model": "UPPER"}}, 422, "invalid_request"),
        ({"body": {"instances": [[0.5, 0.2]] * 10_001}}, 413, "too_many_instances"),
    ],
    ids=lambda value: str(value)[:60] if isinstance(value, dict) else None,
)
def test_bad_classify_requests_get_a_4xx_with_a_code(
    registered: dict[str, Any],
    classify: Invoke,
    overrides: dict[str, Any],
    status: int,
    code: str,
) -> None:
    overrides.setdefault("query", {"version": "1"})
    answer_status, answer = classify("classify", **overrides)
    assert (answer_status, answer["code"]) == (status, code)
    assert answer["message"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "moons", "artifact": "!!! not base64 !!!"}, 422, "invalid_artifact"),
        ({"name": "moons", "artifact": "bm90IGpvYmxpYg=="}, 422, "invalid_artifact"),
        ({"name": "Bad Name", "artifact": "bm90IGpvYmxpYg=="}, 422, "invalid_request"),
        ({"name": "../x", "artifact": "bm90IGpvYmxpYg=="}, 422, "invalid_request"),
        ({"name": "x" * 200, "artifact": "bm90IGpvYmxpYg=="}, 422, "invalid_request"),
        ({"name": "", "artifact": "bm90IGpvYmxpYg=="}, 422, "invalid_request"),
        ({"name": "moons"}, 422, "invalid_request"),
        ({"name": "moons", "artifact": "", "tags": {"k": 1}}, 422, "invalid_request"),
        ({"name": "moons", "artifact": "bm90", "tags": ["a"]}, 422, "invalid_request"),
        ({"name": "moons", "artifact": b64_joblib({"weights": [1]})}, 422, "invalid_artifact"),
        ({"name": "moons", "artifact": b64_joblib(LinearRegression())}, 422, "invalid_artifact"),
        (
            {"name": "moons", "artifact": b64_pickled_by_old_scikit_learn()},
            422,
            "runtime_unsupported",
        ),
    ],
    ids=lambda value: str(value)[:60] if isinstance(value, dict) else None,
)
def test_bad_registrations_get_a_4xx_and_store_nothing(
    register: Invoke, registry_on_moto: Any, body: dict[str, Any], status: int, code: str
) -> None:
    answer_status, answer = register("register", body=body)

    assert (answer_status, answer["code"]) == (status, code)
    assert registry_on_moto.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_an_unknown_route_is_a_json_404(classify: Invoke) -> None:
    event = event_from("classify")
    event.update(resource="/nothing", path="/nothing")
    module = load_function_module(REPO_ROOT / "functions" / "predict")

    response = module.lambda_handler(event, LocalLambdaContext("PredictFunction"))

    assert response["statusCode"] == 404
    assert json.loads(response["body"])["code"] == "route_not_found"


@pytest.mark.parametrize(
    "event_file",
    sorted(path.name for path in EVENTS.glob("*.json") if path.name != "local-env.json"),
)
def test_the_sample_events_for_sam_local_invoke_are_served(
    event_file: str,
    registered: dict[str, Any],
    register: Invoke,
    classify: Invoke,
    moons_model: Any,
) -> None:
    event = json.loads((EVENTS / event_file).read_text())
    invoke = register if event["resource"].startswith("/models") else classify
    if event_file == "register.json":
        event["body"] = json.dumps(artifact_body("moons", distinct_model_bytes(11)))
    if event_file == "classify_batch.json":
        register("set_alias")  # the batch sample classifies alias "production"
    status, answer = invoke(event_file.removesuffix(".json"), raw_body=event["body"])
    assert status in (200, 201), answer
    if event["resource"] in ("/predict", "/invocations"):
        expected = moons_model.predict(numpy.array([[0.5, 0.2], [1.5, -0.4]]))
        assert answer["predictions"] == expected.tolist()


def test_with_s3_unreachable_cached_versions_serve_and_others_get_a_503(
    registered: dict[str, Any], register: Invoke, classify: Invoke
) -> None:
    register("register", body=artifact_body("moons", distinct_model_bytes(21)))
    assert classify("classify", query={"version": "1"})[0] == 200  # version 1 is now cached
    service.predictor()._view("moons")  # and so is what the model's state said
    store = service.model_registry().store
    store.s3 = boto3.client(  # type: ignore[attr-defined]
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        config=DEFAULT_CLIENT_CONFIG,
    )

    assert classify("classify", query={"version": "1"})[0] == 200
    module = load_function_module(REPO_ROOT / "functions" / "predict")
    response = module.lambda_handler(
        event_from("classify", query={"version": "2"}), LocalLambdaContext("PredictFunction")
    )
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["code"] == "store_unavailable"
    assert response["multiValueHeaders"]["Retry-After"] == ["1"]


# Found by schemathesis (tests/e2e/test_fuzz.py); each answered 500 before it was fixed.
def test_a_body_that_is_not_utf8_is_malformed_json_not_a_crash(
    registered: dict[str, Any],
) -> None:
    for function in ("predict", "register"):
        event = event_from("classify" if function == "predict" else "register")
        event.update(body=base64.b64encode(b"\x03\x9agv").decode(), isBase64Encoded=True)
        module = load_function_module(REPO_ROOT / "functions" / function)
        response = module.lambda_handler(event, LocalLambdaContext(function))
        assert response["statusCode"] == 400
        assert json.loads(response["body"])["code"] == "malformed_json"


def test_an_artifact_with_characters_outside_base64_is_an_invalid_artifact(
    register: Invoke,
) -> None:
    status, answer = register("register", body={"name": "moons", "artifact": "m\u00e9\u00d2"})
    assert (status, answer["code"]) == (422, "invalid_artifact")


def test_logs_never_hold_artifact_bytes_api_keys_or_authorization_headers(
    register: Invoke, classify: Invoke, log_lines: LogLines, moons_bytes: bytes
) -> None:
    secret_key = "key-0123456789-secret"
    signature = "AWS4-HMAC-SHA256 Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    headers = {"x-api-key": secret_key, "Authorization": signature}
    body = artifact_body("moons", moons_bytes)
    register("register", body=body, headers=headers)
    classify("classify", query={"version": "1"}, headers=headers)

    logged = json.dumps(log_lines.lines)
    assert [line["status"] for line in log_lines.lines if line["message"] == "request"] == [
        201,
        200,
    ]
    for secret in (secret_key, signature, body["artifact"][:64], "0f1e2d3c4b5a6978"):
        assert secret not in logged


@pytest.mark.parametrize(
    ("function", "event", "query", "message"),
    [
        (
            "classify",
            "classify",
            {"modle": "moons"},
            "unknown query parameter modle: it takes alias, model, version",
        ),
        ("register", "list_models", {"limit": "5"}, "unknown query parameter limit: it takes none"),
    ],
)
def test_an_unknown_query_parameter_is_a_422_that_names_it(
    registered: dict[str, Any],
    classify: Invoke,
    register: Invoke,
    function: str,
    event: str,
    query: dict[str, str],
    message: str,
) -> None:
    invoke = classify if function == "classify" else register

    status, answer = invoke(event, query=query)

    assert (status, answer["code"], answer["message"]) == (422, "invalid_request", message)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"x": 0.5, "y": 0.2},
            "unknown field 'x'; unknown field 'y': send rows as {\"instances\": [[0.5, 0.2]]}",
        ),
        ([1, 2], "the body must be a JSON object: send rows as"),
        ({"data1": "abc", "data2": 1}, "'data1': input should be a valid number"),
    ],
)
def test_a_bad_body_is_named_in_plain_words_with_what_to_send_instead(
    registered: dict[str, Any], classify: Invoke, body: Any, message: str
) -> None:
    status, answer = classify("classify", body=body)

    assert (status, answer["code"]) == (422, "invalid_request")
    assert answer["message"].startswith(message)
    assert "data1" in answer["message"] and "dataframe_split" in answer["message"]
    assert "body." not in answer["message"] and "Extra inputs" not in answer["message"]


def test_a_body_nested_deeper_than_json_reads_is_malformed_not_a_crash(
    registered: dict[str, Any], classify: Invoke
) -> None:
    status, answer = classify("classify", raw_body="[" * 100_000 + "NaN")

    assert (status, answer["code"]) == (400, "malformed_json")


def test_a_batch_proved_numeric_by_its_text_answers_as_one_proved_value_by_value(
    registered: dict[str, Any], classify: Invoke, moons_model: Any
) -> None:
    rows = numpy.random.default_rng(5).normal(scale=2.0, size=(500, 2))
    rows[::7] = rows[::7].round()  # integers too: written 1 or -2, not 1.0
    plain = {"instances": [[int(v) if v.is_integer() else v for v in row] for row in rows]}

    fast = classify("classify", body=plain)  # numbers only: proved by the text
    checked = classify("classify", body={**plain, "probabilities": False})  # value by value

    assert fast[0] == checked[0] == 200
    assert fast[1]["predictions"] == checked[1]["predictions"]
    assert numpy.array_equal(fast[1]["predictions"], moons_model.predict(rows))
