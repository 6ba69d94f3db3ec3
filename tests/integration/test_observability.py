"""What the handlers print, read as CloudWatch reads it: EMF documents and JSON log lines."""

import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import aws_lambda_powertools.logging.logger as powertools_logger
import pytest

from registry.http import service
from registry.http.gateway import load_template
from registry.manifest import manifest_key
from registry.observability import (
    METRICS,
    METRICS_NAMESPACE,
    PREDICT_SERVICE,
    REGISTER_SERVICE,
    logger,
)
from tests.emf import Output, read_output
from tests.support.handlers import Invoke, artifact_body
from tests.support.models import distinct_model_bytes
from tests.support.registries import BUCKET

CORRELATION_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"  # events/classify.json's requestId
REQUEST_FIELDS = {"correlation_id", "method", "route", "status", "latency_ms", "cold_start"}
# Logs Insights words that are not field names.
QUERY_WORDS = {
    "fields", "filter", "stats", "sort", "limit", "by", "as", "and", "or", "not", "desc",
    "asc", "count", "latest", "sum", "pct", "ispresent", "avg", "max", "min",
}  # fmt: skip

Stdout = Callable[[], Output]


class CurrentStdout:
    """Whatever sys.stdout is at the time of writing (the logger keeps the stream it was given)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def stdout(capsys: pytest.CaptureFixture[str]) -> Iterator[Stdout]:
    """What the handlers wrote to standard output since the last call, log lines included."""
    handler = logger.registered_handler
    previous = handler.setStream(CurrentStdout())  # type: ignore[attr-defined]
    yield lambda: read_output(capsys.readouterr().out)
    handler.setStream(previous)  # type: ignore[attr-defined]


@pytest.fixture
def registered(register: Invoke, moons_bytes: bytes) -> None:
    status, _ = register("register", body=artifact_body("moons", moons_bytes))
    assert status == 201


def classify_version_1(classify: Invoke) -> int:
    return classify("classify", query={"version": "1"})[0]


def test_a_miss_then_a_hit_each_log_one_line_and_emit_their_cache_metrics(
    registered: None, classify: Invoke, stdout: Stdout
) -> None:
    stdout()
    assert classify_version_1(classify) == 200
    miss = stdout()
    assert classify_version_1(classify) == 200
    hit = stdout()

    for output, cache in ((miss, "miss"), (hit, "hit")):
        (line,) = output.requests
        assert line["cache"] == cache and line["service"] == PREDICT_SERVICE
        assert (line["model"], line["version"], line["instances"], line["status"]) == (
            "moons",
            1,
            1,
            200,
        )
        assert (line["correlation_id"], line["route"]) == (CORRELATION_ID, "/classify")
        assert "error_code" not in line
        (document,) = output.documents
        assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == METRICS_NAMESPACE
        assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
            ["service"],
            ["service", "model"],
        ]
        assert (document["service"], document["model"], document["version"]) == (
            "predict",
            "moons",
            1,
        )
        assert document["correlation_id"] == CORRELATION_ID
    assert {(m.name, m.unit, m.values[0]) for m in miss.metrics} >= {
        ("Requests", "Count", 1),
        ("Instances", "Count", 1),
        ("CacheHits", "Count", 0),
        ("CacheMisses", "Count", 1),
    }
    (load,) = miss.metric("ModelLoadTime")
    assert load.unit == "Milliseconds" and load.values[0] == miss.requests[0]["load_ms"] > 0
    (latency,) = miss.metric("Latency")
    assert latency.values[0] == miss.requests[0]["latency_ms"]
    assert [m.values[0] for m in hit.metric("CacheHits")] == [1]
    assert hit.metric("ModelLoadTime") == [] and "load_ms" not in hit.requests[0]


def test_an_unknown_model_is_a_404_counted_by_code_and_not_by_its_made_up_name(
    registered: None, classify: Invoke, stdout: Stdout
) -> None:
    stdout()
    status, answer = classify("classify", query={"model": "no-such-model"})
    output = stdout()

    assert (status, answer["code"]) == (404, "model_not_found")
    (line,) = output.requests
    assert (line["status"], line["error_code"], line["model"]) == (
        404,
        "model_not_found",
        "no-such-model",
    )
    assert all(document.get("model") != "no-such-model" for document in output.documents)
    (requests,) = output.metric("Requests")
    assert requests.dimension_sets == (("service",),)
    (errors,) = output.metric("Errors")
    assert errors.dimension_sets == (("service",), ("service", "code"))
    assert errors.dimensions == {"service": "predict", "code": "model_not_found"}
    assert errors.unit == "Count" and errors.values == [1]


def test_an_invalid_request_is_a_422_counted_by_code(
    registered: None, classify: Invoke, stdout: Stdout
) -> None:
    stdout()
    status, answer = classify("classify", body={"rows": [[0.5, 0.2]]})
    output = stdout()

    assert (status, answer["code"]) == (422, "invalid_request")
    (line,) = output.requests
    assert (line["status"], line["error_code"]) == (422, "invalid_request")
    assert "cache" not in line and "instances" not in line
    (errors,) = output.metric("Errors", code="invalid_request")
    assert errors.dimensions["service"] == "predict"
    assert output.metric("Instances") == output.metric("CacheHits") == []
    assert output.metric("ValidationFailures") == []  # a register-function metric


def test_a_registration_counts_the_version_numbers_it_lost_to_concurrent_ones(
    registered: None, register: Invoke, stdout: Stdout
) -> None:
    # The listing misses the newest version, as it would while another registration
    # commits it: the first create then meets S3's 412 and the next number is taken.
    s3 = service.model_registry().store.s3  # type: ignore[attr-defined]
    hidden = []

    def hide_the_newest_version(parsed: dict[str, Any], **_: Any) -> None:
        contents = parsed.get("Contents", [])
        if not hidden and contents and "/versions/" in contents[-1]["Key"]:
            hidden.append(contents.pop()["Key"])

    s3.meta.events.register("after-call.s3.ListObjectsV2", hide_the_newest_version)
    stdout()
    status, answer = register("register", body=artifact_body("moons", distinct_model_bytes(1)))
    output = stdout()

    assert (status, answer["version"]) == (201, 2)
    assert hidden == [f"registry/{manifest_key('moons', 1)}"]
    (line,) = output.requests
    assert (line["service"], line["new_version"], line["conflict_retries"]) == (
        REGISTER_SERVICE,
        True,
        1,
    )
    (retries,) = output.metric("VersionConflictRetries", model="moons")
    assert (retries.unit, retries.values) == ("Count", [1])
    (registrations,) = output.metric("Registrations")
    assert registrations.dimensions == {"service": "register", "model": "moons"}
    assert registrations.properties["version"] == 2


def test_an_invalid_artifact_is_a_validation_failure_by_reason(
    register: Invoke, stdout: Stdout
) -> None:
    stdout()
    status, answer = register("register", body=artifact_body("moons", b"not a joblib file"))
    output = stdout()

    assert (status, answer["code"]) == (422, "invalid_artifact")
    (failure,) = output.metric("ValidationFailures")
    assert failure.dimensions == {"service": "register", "code": "invalid_artifact"}
    assert failure.dimension_sets == (("service",), ("service", "code"))
    assert output.metric("Registrations") == []
    assert output.requests[0]["error_code"] == "invalid_artifact"


def test_a_tampered_artifact_counts_an_integrity_failure(
    registered: None, classify: Invoke, registry_on_moto: Any, stdout: Stdout
) -> None:
    manifest = service.model_registry().get_manifest("moons", 1)
    registry_on_moto.put_object(
        Bucket=BUCKET, Key=f"registry/{manifest.serving_key}", Body=b"evil bytes"
    )
    stdout()
    assert classify_version_1(classify) == 500
    output = stdout()

    (failure,) = output.metric("IntegrityFailures")
    assert failure.dimensions == {"service": "predict", "code": "integrity_check_failed"}
    levels = [line["level"] for line in output.log_lines]
    assert levels == ["ERROR", "INFO"]  # the exception, then the request line


def test_the_first_request_of_a_container_is_marked_cold_in_its_line_and_metrics(
    registered: None, classify: Invoke, stdout: Stdout, monkeypatch: pytest.MonkeyPatch
) -> None:
    stdout()
    monkeypatch.setattr(powertools_logger, "is_cold_start", True)
    classify_version_1(classify)
    cold = stdout()
    classify_version_1(classify)
    warm = stdout()

    assert cold.requests[0]["cold_start"] is True and warm.requests[0]["cold_start"] is False
    (starts,) = cold.metric("ColdStarts")
    assert starts.dimension_sets == (("service",),) and starts.values == [1]
    assert warm.metric("ColdStarts") == []


def test_every_metric_the_code_defines_is_emitted_with_its_unit_and_dimension_sets(
    register: Invoke,
    classify: Invoke,
    registry_on_moto: Any,
    stdout: Stdout,
    moons_bytes: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(powertools_logger, "is_cold_start", True)
    register("register", body=artifact_body("moons", moons_bytes))
    register("register", body=artifact_body("moons", b"not a joblib file"))
    classify_version_1(classify)
    classify_version_1(classify)
    classify("classify", query={"model": "no-such-model"})
    registry_on_moto.put_object(
        Bucket=BUCKET,
        Key=f"registry/{service.model_registry().get_manifest('moons', 1).serving_key}",
        Body=b"evil bytes",
    )
    service.predictor().cache.clear()
    classify_version_1(classify)
    # a weighted alias's prediction: counted per version too
    for seed in (1, 2):  # versions 2 and 3
        register("register", body=artifact_body("moons", distinct_model_bytes(seed)))
    service.model_registry().set_alias_weights("moons", "production", {2: 50, 3: 50})
    assert classify("classify", query={"model": "moons", "alias": "production"})[0] == 200
    output = stdout()

    emitted = {}
    for metric in output.metrics:
        emitted.setdefault((metric.name, metric.unit), set()).update(metric.dimension_sets)
    defined = {
        (str(definition.name), str(definition.unit.value)): set(definition.dimension_sets)
        for definition in METRICS
    }
    assert emitted == defined


def test_saved_queries_use_only_fields_that_request_lines_carry(
    registered: None, register: Invoke, classify: Invoke, stdout: Stdout
) -> None:
    service.model_registry().set_alias("moons", "production", 1)
    stdout()
    classify("classify", query={"alias": "production"})
    classify("classify", query={"model": "no-such-model"})
    register("register", body=artifact_body("moons", distinct_model_bytes(2)))
    output = stdout()
    logged = {key for line in output.requests for key in line}
    assert logged >= REQUEST_FIELDS

    resources = load_template()["Resources"].values()
    queries = [
        r["Properties"]["QueryString"]
        for r in resources
        if r["Type"] == "AWS::Logs::QueryDefinition"
    ]
    assert len(queries) == 4
    for query in queries:
        words = set(re.findall(r"(?<![@\w])[a-z_]+\b", re.sub(r'"[^"]*"', "", query)))
        aliases = set(re.findall(r"\bas (\w+)", query))
        assert words - QUERY_WORDS - aliases <= logged, query
    assert all('message = "request"' in query or "correlation_id" in query for query in queries)


def test_debug_sampling_adds_debug_lines_and_never_secrets(
    register: Invoke, classify: Invoke, stdout: Stdout, moons_bytes: bytes
) -> None:
    headers = {"x-api-key": "key-0123456789-secret", "Authorization": "AWS4-HMAC-SHA256 sig0f1e2d"}
    body = artifact_body("moons", moons_bytes)
    register("register", body=body, headers=headers)
    classify_version_1(classify)
    service.predictor().cache.clear()
    stdout()
    classify("classify", query={"version": "1"}, headers=headers)
    unsampled = stdout()

    logger.sampling_rate = 1.0  # what POWERTOOLS_LOGGER_SAMPLE_RATE=1 sets at init
    try:
        service.predictor().cache.clear()
        service.predictor().forget_views()
        classify("classify", query={"version": "1"}, headers=headers)
        register("register", body=body, headers=headers)
        sampled = stdout()
    finally:
        logger.sampling_rate = 0.0
        logger.refresh_sample_rate_calculation()

    assert {line["level"] for line in unsampled.log_lines} == {"INFO"}
    debug = [line["message"] for line in sampled.log_lines if line["level"] == "DEBUG"]
    assert {"model state read", "model loaded"} <= set(debug)
    printed = repr(sampled.log_lines + sampled.documents + unsampled.log_lines)
    for secret in ("key-0123456789-secret", "sig0f1e2d", body["artifact"][:64]):
        assert secret not in printed
