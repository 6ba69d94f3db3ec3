"""Captured predictions: the sample, the record (SageMaker Data Capture's fields and flat
ones), its size bound, where it is kept and how it is read back."""

import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy
import pytest

from registry import capture
from registry.capture import MAX_RECORD_BYTES, Captured, read_records, record_line, sampled
from registry.inputs import RequestRows
from registry.registering.registration import Registrar
from registry.registry import ModelRegistry
from registry.serving.cache import ModelCache
from registry.serving.capturing import Capturer, LogLineSink, StoreSink
from registry.serving.predictor import LoadedModel, Predictor
from registry.store.base import ObjectStore
from tests.support.models import distinct_model_bytes

IDS = [f"c6af9ac6-{index:08d}" for index in range(20_000)]
TIME = datetime(2026, 12, 4, 9, 30, 15, 250_000, tzinfo=UTC)


@pytest.mark.parametrize("percent", [0, 10, 37.5, 100])
def test_the_sample_is_the_share_asked_for_and_the_same_for_the_same_request(
    percent: float,
) -> None:
    chosen = [sampled(request_id, percent) for request_id in IDS]
    assert abs(sum(chosen) / len(IDS) - percent / 100) < 0.01
    assert chosen == [sampled(request_id, percent) for request_id in IDS]
    if percent in (0, 100):
        assert set(chosen) == {percent == 100}


def captured(rows: int = 2, probabilities: bool = True, **changes: Any) -> Captured:
    values = {
        "event_id": "req-1",
        "time": TIME,
        "model": "churn",
        "version": 7,
        "alias": "production",
        "routing_key": "customer-42",
        "rows": [{"tenure": index, "plan": "gold"} for index in range(rows)],
        "predictions": [index % 2 for index in range(rows)],
        "probabilities": [[0.25, 0.75]] * rows if probabilities else None,
        "classes": [0, 1] if probabilities else None,
    }
    return Captured(**{**values, **changes})


def test_a_record_has_data_captures_fields_and_flat_ones_equal_to_the_request() -> None:
    record = json.loads(record_line(captured()))

    assert record["eventVersion"] == "0"
    assert record["eventMetadata"] == {
        "eventId": "req-1",
        "inferenceTime": "2026-12-04T09:30:15.250000Z",
    }
    endpoint_input = record["captureData"]["endpointInput"]
    assert endpoint_input["mode"] == "INPUT" and endpoint_input["encoding"] == "JSON"
    assert json.loads(endpoint_input["data"]) == {"dataframe_records": record["rows"]}
    endpoint_output = json.loads(record["captureData"]["endpointOutput"]["data"])
    assert endpoint_output == {
        "predictions": [0, 1], "probabilities": [[0.25, 0.75]] * 2, "classes": [0, 1],
    }  # fmt: skip
    assert {key: record[key] for key in ("model", "version", "alias", "routing_key")} == {
        "model": "churn", "version": 7, "alias": "production", "routing_key": "customer-42",
    }  # fmt: skip
    assert record["rows"] == [{"tenure": 0, "plan": "gold"}, {"tenure": 1, "plan": "gold"}]
    assert record["predictions"] == [0, 1] and record["rows_omitted"] == 0
    without = json.loads(record_line(captured(probabilities=False)))
    assert "probabilities" not in without and "classes" not in without


def test_rows_beyond_a_log_events_size_are_counted_not_dropped_silently() -> None:
    many = captured(rows=20_000)
    line = record_line(many)
    record = json.loads(line)

    assert len(line) <= MAX_RECORD_BYTES
    kept = len(record["rows"])
    assert 0 < kept < 20_000
    assert kept + record["rows_omitted"] == 20_000
    assert len(record["predictions"]) == len(record["probabilities"]) == kept
    assert len(capture._line(many, kept + 1)) > MAX_RECORD_BYTES  # as many as fit


def test_the_log_line_sink_writes_one_line_a_record() -> None:
    stream = io.StringIO()
    LogLineSink(stream).write(captured())
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["eventMetadata"]["eventId"] == "req-1"


def test_records_are_read_back_by_version_and_time_and_a_page_at_a_time(
    store: ObjectStore,
) -> None:
    sink = StoreSink(store)
    for index in range(6):
        sink.write(
            captured(
                event_id=f"req-{index}", version=7 + index % 2, time=TIME + timedelta(hours=index)
            )
        )
    # Firehose's objects: gzipped, many records a line each, among lines that are no record
    batch = record_line(captured(event_id="fh-1", time=TIME + timedelta(hours=9)))
    store.put(
        "capture/churn/7/2026/12/04/18/stream-1-2026-12-04-18-00-00-abc.jsonl.gz",
        gzip.compress(batch + b"not json\n" + batch.replace(b"fh-1", b"fh-2")),
    )

    def ids(**query: Any) -> list[str]:
        page = read_records(store, "churn", **query)
        return [record["eventMetadata"]["eventId"] for record in page.records]

    assert ids() == ["req-0", "req-2", "req-4", "fh-1", "fh-2", "req-1", "req-3", "req-5"]
    assert ids(version=8) == ["req-1", "req-3", "req-5"]
    assert ids(since=TIME + timedelta(hours=3, minutes=1)) == ["req-4", "fh-1", "fh-2", "req-5"]
    first = read_records(store, "churn", limit=4)
    rest = read_records(store, "churn", after=first.after)
    assert first.after is not None and rest.after is None
    names = [record["eventMetadata"]["eventId"] for record in first.records + rest.records]
    assert names == ids()
    assert read_records(store, "other").records == []


@pytest.fixture
def predictor(registry: ModelRegistry, registrar: Registrar) -> Predictor:
    for seed in range(2):
        registrar.register("churn", distinct_model_bytes(seed))
    return Predictor(registry, ModelCache[LoadedModel](max_bytes=10**8))


def test_a_captured_prediction_is_the_request_and_the_answer_that_produced_it(
    predictor: Predictor, store: ObjectStore
) -> None:
    rows = RequestRows([[0.5, -0.25], [1.5, 0.75]])
    capturer = Capturer(StoreSink(store), 100, predictor.capture_percent, clock=lambda: TIME)
    result = predictor.predict("churn", None, rows, probabilities=True)

    assert capturer.capture("req-9", "churn", None, "req-9", rows, result, True)

    (record,) = read_records(store, "churn").records
    manifest = result.manifest
    names = [column.name for column in manifest.signature.columns]
    assert record["rows"] == [dict(zip(names, row, strict=True)) for row in rows.rows]
    assert record["predictions"] == result.predictions
    assert record["probabilities"] == result.probabilities
    assert record["version"] == manifest.version
    model = predictor.model("churn").loaded.estimator
    assert numpy.array_equal(model.predict(numpy.array(rows.rows)), record["predictions"])


def test_the_models_own_share_wins_over_the_deployments(
    predictor: Predictor, store: ObjectStore, registry: ModelRegistry
) -> None:
    rows = RequestRows([[0.5, -0.25]])
    result = predictor.predict("churn", None, rows)
    capturer = Capturer(StoreSink(store), 100, predictor.capture_percent, clock=lambda: TIME)
    registry.set_capture_percent("churn", 0)
    predictor.forget_views()
    assert not capturer.capture("req-1", "churn", None, "req-1", rows, result, False)
    registry.set_capture_percent("churn", None)
    predictor.forget_views()
    assert capturer.capture("req-1", "churn", None, "req-1", rows, result, False)
    assert len(read_records(store, "churn").records) == 1


def test_a_capture_that_fails_never_fails_the_request(predictor: Predictor) -> None:
    class Broken:
        def write(self, captured: Captured) -> None:
            raise OSError("disk full")

    rows = RequestRows([[0.5, -0.25]])
    result = predictor.predict("churn", None, rows)
    capturer = Capturer(Broken(), 100, predictor.capture_percent)
    assert capturer.capture("req-1", "churn", None, "req-1", rows, result, False) is False


def test_at_ten_percent_exactly_the_sampled_requests_are_captured_each_with_its_own_answer(
    predictor: Predictor, store: ObjectStore
) -> None:
    capturer = Capturer(StoreSink(store), 10, predictor.capture_percent, clock=lambda: TIME)
    rng = numpy.random.default_rng(5)
    sent = {}
    for index in range(600):
        rows = RequestRows(rng.normal(size=(1, 2)).round(4).tolist())
        result = predictor.predict("churn", None, rows)
        capturer.capture(f"req-{index}", "churn", None, f"req-{index}", rows, result, False)
        sent[f"req-{index}"] = (rows.rows, result.predictions)

    records = read_records(store, "churn").records
    captured = {record["eventMetadata"]["eventId"]: record for record in records}
    assert set(captured) == {request for request in sent if sampled(request, 10)}
    assert 30 <= len(captured) <= 90  # about 60
    for request, record in captured.items():
        rows, predictions = sent[request]
        assert [list(row.values()) for row in record["rows"]] == rows
        assert record["predictions"] == predictions
