"""registry/observability.py: what a request outcome becomes in EMF; the docs that explain it."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics import EphemeralMetrics

from registry import observability
from registry.observability import (
    BY_SERVICE,
    METRICS,
    PREDICT_SERVICE,
    REGISTER_SERVICE,
    MetricName,
    RequestOutcome,
    emit_metrics,
    metric_documents,
)
from tests.emf import Output, read_output

REPO_ROOT = Path(__file__).resolve().parents[2]


def emitted(outcome: RequestOutcome, capsys: pytest.CaptureFixture[str]) -> Output:
    capsys.readouterr()
    emit_metrics(outcome, namespace="Test/Namespace")
    return read_output(capsys.readouterr().out)


def served_classify(**changes: object) -> RequestOutcome:
    outcome = RequestOutcome(
        PREDICT_SERVICE,
        "POST",
        "/classify",
        status=200,
        model="moons",
        version=3,
        cache="miss",
        instances=5,
        load_ms=12.5,
        latency_ms=14.0,
    )
    for name, value in changes.items():
        setattr(outcome, name, value)
    return outcome


def test_every_metric_is_counted_per_service_first() -> None:
    # The emitter leaves the first set to Powertools, which always adds `service` itself.
    for definition in METRICS:
        assert definition.dimension_sets[0] == BY_SERVICE
        assert all(dimensions[0] == "service" for dimensions in definition.dimension_sets)
    assert {definition.name for definition in METRICS} == set(MetricName)


def test_a_served_classify_is_one_document_per_service_and_per_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = emitted(served_classify(), capsys)

    (document,) = output.documents
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["service"],
        ["service", "model"],
    ]
    assert {(metric.name, metric.unit, metric.values[0]) for metric in output.metrics} == {
        ("Requests", "Count", 1),
        ("Latency", "Milliseconds", 14.0),
        ("Instances", "Count", 5),
        ("CacheHits", "Count", 0),
        ("CacheMisses", "Count", 1),
        ("ModelLoadTime", "Milliseconds", 12.5),
    }
    assert document["service"] == "predict" and document["model"] == "moons"
    assert document["version"] == 3  # a property, not a dimension
    assert all(metric.namespace == "Test/Namespace" for metric in output.metrics)


def test_a_cache_hit_has_no_load_time(capsys: pytest.CaptureFixture[str]) -> None:
    output = emitted(served_classify(cache="hit", load_ms=None), capsys)

    assert [m.values for m in output.metric("CacheHits")] == [[1]]
    assert [m.values for m in output.metric("CacheMisses")] == [[0]]
    assert output.metric("ModelLoadTime") == []


def test_a_failed_request_is_counted_without_its_model_and_its_error_by_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outcome = RequestOutcome(
        PREDICT_SERVICE,
        "POST",
        "/classify",
        status=404,
        model="made-up-name",
        version=7,
        error_code="model_not_found",
        latency_ms=3.0,
    )
    output = emitted(outcome, capsys)

    assert all("model" not in document for document in output.documents)
    (requests,) = output.metric("Requests")
    assert requests.dimension_sets == (("service",),)
    (errors,) = output.metric("Errors")
    assert errors.dimension_sets == (("service",), ("service", "code"))
    assert errors.dimensions == {"service": "predict", "code": "model_not_found"}
    assert output.metric("IntegrityFailures") == output.metric("ValidationFailures") == []


def test_the_model_dimension_needs_a_version_of_the_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # An upload URL for a name nobody ever registers must not start metrics of its own.
    upload = RequestOutcome(
        REGISTER_SERVICE, "POST", "/models/{name}/uploads", status=201, model="never-registered"
    )
    assert all("model" not in document for document in emitted(upload, capsys).documents)


def test_validation_failures_are_counted_for_the_register_function_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    invalid_artifact = RequestOutcome(
        REGISTER_SERVICE, "POST", "/models", status=422, error_code="invalid_artifact"
    )
    (failure,) = emitted(invalid_artifact, capsys).metric("ValidationFailures")
    assert failure.dimensions == {"service": "register", "code": "invalid_artifact"}

    conflict = RequestOutcome(REGISTER_SERVICE, status=503, error_code="version_conflict")
    assert emitted(conflict, capsys).metric("ValidationFailures") == []
    invalid_input = RequestOutcome(PREDICT_SERVICE, status=422, error_code="invalid_input")
    assert emitted(invalid_input, capsys).metric("ValidationFailures") == []


def test_an_integrity_failure_has_a_metric_of_its_own(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outcome = RequestOutcome(PREDICT_SERVICE, status=500, error_code="integrity_check_failed")
    (failure,) = emitted(outcome, capsys).metric("IntegrityFailures")
    assert failure.dimensions == {"service": "predict", "code": "integrity_check_failed"}


def test_a_registration_counts_once_with_its_conflict_retries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outcome = RequestOutcome(
        REGISTER_SERVICE,
        "POST",
        "/models",
        status=201,
        model="moons",
        version=4,
        new_version=True,
        conflict_retries=2,
    )
    output = emitted(outcome, capsys)
    assert [m.values for m in output.metric("Registrations", model="moons")] == [[1]]
    assert [m.values for m in output.metric("VersionConflictRetries")] == [[2]]

    identical_bytes = RequestOutcome(
        REGISTER_SERVICE, status=200, model="moons", version=4, new_version=False
    )
    assert emitted(identical_bytes, capsys).metric("Registrations") == []


def test_a_cold_start_is_counted_per_service_only(capsys: pytest.CaptureFixture[str]) -> None:
    output = emitted(served_classify(cold_start=True), capsys)

    (cold,) = output.metric("ColdStarts")
    assert cold.dimension_sets == (("service",),)
    assert len(output.documents) == 2


def test_note_refuses_a_field_a_request_outcome_does_not_have() -> None:
    with pytest.raises(TypeError, match="modle"):
        observability.note(modle="moons")


def test_the_docs_describe_every_metric_with_its_unit_services_and_dimensions() -> None:
    text = (REPO_ROOT / "docs" / "observability.md").read_text()
    text = text[text.index("## Metrics") : text.index("### Dimensions")]
    documented = {}
    for row in re.findall(r"^\| `(\w+)` \|(.*)$", text, flags=re.MULTILINE):
        name, rest = row
        unit, services, dimension_sets, meaning = (cell.strip() for cell in rest.split("|")[:4])
        documented[name] = (unit, services, dimension_sets)
        assert meaning, name
    expected = {
        str(definition.name): (
            str(definition.unit.value),
            ", ".join(definition.services),
            "; ".join(", ".join(dimensions) for dimensions in definition.dimension_sets),
        )
        for definition in METRICS
    }
    assert documented == expected


def powertools_document(document: dict[str, Any]) -> dict[str, Any]:
    """The document Powertools' EphemeralMetrics builds from the same metrics and dimensions."""
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    first, *others = directive["Dimensions"]
    assert first == ["service"]  # Powertools adds it from `service`
    builder = EphemeralMetrics(namespace=directive["Namespace"], service=document["service"])
    builder.set_timestamp(document["_aws"]["Timestamp"])
    for metric in directive["Metrics"]:
        (value,) = document[metric["Name"]]
        builder.add_metric(name=metric["Name"], unit=metric["Unit"], value=value)
    for dimension_set in others:
        builder.add_dimensions(**{key: document[key] for key in dimension_set})
    dimension_keys = {key for dimension_set in others for key in dimension_set}
    for key in ("correlation_id", "version"):
        if key in document and key not in dimension_keys:
            builder.add_metadata(key=key, value=document[key])
    return dict(builder.serialize_metric_set())


@pytest.mark.parametrize(
    "outcome",
    [
        served_classify(cold_start=True, correlation_id="abc"),
        served_classify(cache="hit", load_ms=None),
        RequestOutcome(REGISTER_SERVICE, status=422, error_code="invalid_artifact"),
        served_classify(alias="production", weighted=True),
    ],
    ids=["cold-miss", "hit", "validation-failure", "weighted-alias"],
)
def test_the_documents_are_the_ones_powertools_builds(outcome: RequestOutcome) -> None:
    documents = metric_documents(outcome, "Test/Namespace", 1795501238444)

    assert documents
    for document in documents:
        assert json.dumps(document) == json.dumps(powertools_document(document))


def test_powertools_metrics_disabled_turns_the_documents_off(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert emitted(served_classify(), capsys).documents == []
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    assert len(emitted(served_classify(), capsys).documents) == 1


def test_a_prediction_a_weighted_alias_routed_is_counted_per_version_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    weighted = emitted(served_classify(alias="production", weighted=True), capsys)
    (requests,) = weighted.metric("Requests")
    assert requests.dimension_sets == (
        ("service",), ("service", "model"), ("service", "model", "version"),
    )  # fmt: skip
    assert requests.dimensions["version"] == "3"
    assert len(weighted.documents) == 1  # one document, as for any served classify
    # a version asked for by number, or an alias of one version: the version is a property
    (plain,) = emitted(served_classify(alias="production"), capsys).metric("Requests")
    assert plain.properties["version"] == 3
    assert plain.dimension_sets == (("service",), ("service", "model"))
    failed = emitted(served_classify(status=503, weighted=True, error_code="busy"), capsys)
    assert all(
        ("service", "model", "version") not in metric.dimension_sets
        for metric in failed.metric("Requests")
    )
