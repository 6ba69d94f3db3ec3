"""Captured predictions through the handlers: each captured record is the request and the
answer that produced it; the sample follows CAPTURE_SAMPLE_PERCENT and the model's own share;
deployed, a record is a log line that the subscription's filter pattern selects."""

import json
import re
from typing import Any

import numpy
import pytest

from registry.http import service
from registry.http.gateway import load_template
from tests.support.handlers import Call, artifact_body
from tests.support.models import distinct_model_bytes

BODIES = [
    {"instances": [[0.5, -0.25], [1.5, 0.75]]},
    {"instances": [[0.1, 0.9]], "probabilities": True},
    {"data1": 1.0, "data2": 2.0},  # the blog's single row
]


@pytest.fixture
def moons(call: Call) -> None:
    for seed in range(2):
        status, _ = call("POST", "/models", artifact_body("moons", distinct_model_bytes(seed)))
        assert status == 201


def captured(call: Call, **query: str) -> list[dict[str, Any]]:
    status, answer = call("GET", "/models/moons/captured", None, query)
    assert status == 200, answer
    return answer["records"]


def records_in_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda record: record["eventMetadata"]["inferenceTime"])


def test_every_captured_record_is_its_request_and_answer(
    monkeypatch: pytest.MonkeyPatch, call: Call, moons: None
) -> None:
    monkeypatch.setenv("CAPTURE_SAMPLE_PERCENT", "100")
    service.reset()
    answers = [call("POST", "/classify", body, {"model": "moons"}) for body in BODIES]
    assert [status for status, _ in answers] == [200] * 3, answers

    records = captured(call)

    assert len(records) == 3
    model = service.predictor().model("moons").loaded.estimator
    for body, (_, answer), record in zip(BODIES, answers, records_in_order(records), strict=True):
        rows = body.get("instances") or [[body["data1"], body["data2"]]]
        assert [list(row.values()) for row in record["rows"]] == rows
        predictions = answer.get("predictions") or [int(answer["prediction"])]
        assert record["predictions"] == predictions
        assert numpy.array_equal(model.predict(numpy.array(rows)), record["predictions"])
        assert record["version"] == answer["version"] == 2 and record["rows_omitted"] == 0
        assert ("probabilities" in record) == bool(body.get("probabilities"))
        if body.get("probabilities"):
            assert record["probabilities"] == answer["probabilities"]
    # a row's values named by the model's columns (the blog's data1 and data2 are its two)
    signature = service.model_registry().get_manifest("moons", 2).signature
    names = [column.name for column in signature.columns]
    assert all(list(record["rows"][0]) == names for record in records)
    assert "captureData" not in records[0]  # the API leaves out what it repeats
    assert captured(call, version="1") == []


def test_nothing_is_captured_at_zero_percent_and_a_models_own_share_wins(
    monkeypatch: pytest.MonkeyPatch, call: Call, moons: None
) -> None:
    monkeypatch.setenv("CAPTURE_SAMPLE_PERCENT", "0")
    monkeypatch.setenv("ALIAS_TTL_SECONDS", "0")
    service.reset()
    call("POST", "/classify", BODIES[0], {"model": "moons"})
    assert captured(call) == []

    status, answer = call("PUT", "/models/moons/capture", {"sample_percent": 100})
    assert (status, answer) == (200, {"model": "moons", "sample_percent": 100.0})
    call("POST", "/classify", BODIES[0], {"model": "moons"})
    assert len(captured(call)) == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "query", "status", "expected"),
    [
        ("PUT", "/models/moons/capture", {"sample_percent": 150}, None, 422, "sample_percent"),
        ("PUT", "/models/moons/capture", {}, None, 422, "sample_percent"),
        ("PUT", "/models/nobody/capture", {"sample_percent": 5}, None, 404, "no model named"),
        ("GET", "/models/nobody/captured", None, None, 404, "no model named"),
        ("GET", "/models/moons/captured", None, {"since": "yesterday"}, 422, "since"),
    ],
)
def test_mistakes_are_4xx_that_say_what_to_send(
    call: Call, moons: None, method: str, path: str, body: Any, query: Any, status: int,
    expected: str,
) -> None:  # fmt: skip
    got, answer = call(method, path, body, query)
    assert got == status and expected in answer["message"], answer


def filter_selects(pattern: str, line: str) -> bool:
    """A CloudWatch Logs JSON filter pattern of `$.a.b = "text"` and `$.a = *` clauses joined
    by &&, the only forms the template uses, applied to one log line."""
    clauses = re.findall(r'\$\.([\w.]+)\s*=\s*("[^"]*"|\*)', pattern)
    assert clauses and pattern.count("&&") == len(clauses) - 1, pattern
    try:
        value: Any = json.loads(line)
    except ValueError:
        return False
    for path, expected in clauses:
        found: Any = value
        for key in path.split("."):
            if not isinstance(found, dict) or key not in found:
                return False
            found = found[key]
        if expected != "*" and found != json.loads(expected):
            return False
    return True


def test_deployed_a_record_is_a_log_line_of_its_own_that_the_filter_selects(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    call: Call,
    moons: None,
) -> None:
    monkeypatch.setenv("CAPTURE_SAMPLE_PERCENT", "100")
    monkeypatch.setenv("CAPTURE_TO", "log")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    service.reset()
    capsys.readouterr()
    status, answer = call("POST", "/classify", BODIES[0], {"model": "moons"})
    assert status == 200, answer
    lines = capsys.readouterr().out.splitlines()

    pattern = load_template()["Resources"]["CaptureSubscription"]["Properties"]["FilterPattern"]
    selected = [line for line in lines if filter_selects(pattern, line)]
    (record,) = [json.loads(line) for line in selected]
    assert record["predictions"] == answer["predictions"] and record["version"] == 2
    assert len(lines) > 1  # the request's EMF document and log line are there, not selected
    assert captured(call) == []  # nothing written to the store deployed: Firehose does it
