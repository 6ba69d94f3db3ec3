"""Captured predictions: which requests are captured, the record each becomes, where it is kept.

A share of each model's predict requests is captured with its answer: CAPTURE_SAMPLE_PERCENT,
or the model's own share in its state (`model-registry capture NAME --sample-percent P`). A
request is in the sample when its request id hashes below the share, so a retried request id
is captured (or not) again, and the sample does not follow the callers.

Each record is one JSON line. It has SageMaker Data Capture's fields (`captureData` with
`endpointInput` and `endpointOutput`, `eventMetadata` with the event id and time,
`eventVersion`), so tools written for Data Capture read it, and flat fields that monitoring
reads without unpacking: model, version, alias, routing_key, rows (each an object of column
values, named by the model's columns), predictions, and probabilities when asked.

A record must fit in one CloudWatch Logs event (deployed, it is a log line of the predict
function, which a subscription filter sends to Firehose): rows beyond MAX_RECORD_BYTES are
left out of it and counted in `rows_omitted`, never dropped silently.

Kept under the registry, by hour: capture/<model>/<version>/<yyyy>/<mm>/<dd>/<hh>/. Deployed,
Firehose writes there (its objects hold many records, one a line, gzipped: .jsonl.gz); the
local server writes one object a record (.jsonl).
"""

import gzip
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from registry.manifest import validate_model_name
from registry.store.base import ObjectStore

CAPTURE_PREFIX = "capture/"
# A CloudWatch Logs event holds 256 KiB, 26 bytes of which are its own; some room is left.
MAX_RECORD_BYTES = 250_000
CONTENT_TYPE = "application/json"


def sampled(request_id: str, percent: float) -> bool:
    """Whether this request is in a sample of `percent` percent of requests."""
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    digest = hashlib.sha256(f"capture\0{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") * 100 < percent * (1 << 64)


@dataclass(frozen=True)
class Captured:
    """One request and its answer, as the predict function saw them."""

    event_id: str
    time: datetime
    model: str
    version: int
    alias: str | None
    routing_key: str | None
    rows: Sequence[dict[str, Any]]  # each row's values by column name
    predictions: Sequence[Any]
    probabilities: Sequence[Any] | None
    classes: Sequence[Any] | None


def record_line(captured: Captured, max_bytes: int = MAX_RECORD_BYTES) -> bytes:
    """The record as one JSON line of at most max_bytes: as many rows as fit, the rest
    counted in rows_omitted."""
    kept = len(captured.rows)
    line = _line(captured, kept)
    if len(line) <= max_bytes:
        return line
    low, high = 0, kept  # the most rows that fit: low fits, high does not
    while high - low > 1:
        middle = (low + high) // 2
        if len(_line(captured, middle)) <= max_bytes:
            low = middle
        else:
            high = middle
    return _line(captured, low)


def _line(captured: Captured, kept: int) -> bytes:
    rows = list(captured.rows[:kept])
    predictions = list(captured.predictions[:kept])
    output: dict[str, Any] = {"predictions": predictions}
    probabilities = None
    if captured.probabilities is not None:
        probabilities = list(captured.probabilities[:kept])
        output.update(probabilities=probabilities, classes=captured.classes)
    record = {
        "captureData": {
            "endpointInput": {
                "observedContentType": CONTENT_TYPE,
                "mode": "INPUT",
                "data": _json({"dataframe_records": rows}),
                "encoding": "JSON",
            },
            "endpointOutput": {
                "observedContentType": CONTENT_TYPE,
                "mode": "OUTPUT",
                "data": _json(output),
                "encoding": "JSON",
            },
        },
        "eventMetadata": {
            "eventId": captured.event_id,
            "inferenceTime": _utc_text(captured.time),
        },
        "eventVersion": "0",
        "model": captured.model,
        "version": captured.version,
        "alias": captured.alias,
        "routing_key": captured.routing_key,
        "rows": rows,
        "predictions": predictions,
        "rows_omitted": len(captured.rows) - kept,
    }
    if probabilities is not None:
        record.update(probabilities=probabilities, classes=captured.classes)
    return (_json(record) + "\n").encode()


def _utc_text(time: datetime) -> str:
    """2026-12-04T09:30:15.250000Z (isoformat: a third of strftime's time)."""
    return time.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _json(value: Any) -> str:
    """Compact JSON text; orjson writes it several times faster than the json module (a
    record of one row: 6 us against 20), the json module takes what orjson cannot (an integer
    beyond 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def hour_prefix(model: str, version: int, time: datetime) -> str:
    return f"{model_prefix(model)}{version}/{time.astimezone(UTC):%Y/%m/%d/%H}/"


def model_prefix(model: str) -> str:
    validate_model_name(model)
    return f"{CAPTURE_PREFIX}{model}/"


def record_key(captured: Captured) -> str:
    """Where the local server keeps one record: its hour's prefix, then its time and id."""
    stamp = captured.time.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    event = hashlib.sha256(captured.event_id.encode()).hexdigest()[:16]
    return f"{hour_prefix(captured.model, captured.version, captured.time)}{stamp}-{event}.jsonl"


@dataclass(frozen=True)
class RecordPage:
    """Records in key order; `after` continues from the last one (None: there are no more)."""

    records: list[dict[str, Any]]
    after: str | None


def read_records(
    store: ObjectStore,
    model: str,
    version: int | None = None,
    since: datetime | None = None,
    after: str | None = None,
    limit: int | None = None,
    max_bytes: int | None = None,
) -> RecordPage:
    """The model's records (of one version), from `since` on, in key order (version, then
    hour), at most `limit` of them and about `max_bytes` of their lines; `after` (a page's)
    goes on from there. A line that is not a record of this model is passed over."""
    under = model_prefix(model)
    first_hour = since.astimezone(UTC).strftime("%Y/%m/%d/%H") if since is not None else ""
    prefix = under + (f"{version}/" if version is not None else "")
    after_key, _, after_line = (after or "").rpartition("#")
    records: list[dict[str, Any]] = []
    taken = 0
    for key in sorted(store.list_keys(prefix)):
        hour = "/".join(key[len(under) :].split("/")[1:5])  # <version>/<yyyy/mm/dd/hh>/...
        if hour < first_hour or (after_key and key < after_key):
            continue
        data = store.get(key)
        if key.endswith(".gz"):
            data = gzip.decompress(data)
        skip = int(after_line) if key == after_key and after_line.isdigit() else -1
        for index, line in enumerate(data.splitlines()):
            if index <= skip:
                continue
            record = _record(line, model, since)
            if record is None:
                continue
            full = (limit is not None and len(records) >= limit) or (
                max_bytes is not None and records and taken + len(line) > max_bytes
            )
            if full:
                return RecordPage(records, f"{key}#{index - 1}")
            records.append(record)
            taken += len(line)
    return RecordPage(records, None)


def _record(line: bytes, model: str, since: datetime | None) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("model") != model:
        return None
    if since is not None and _time_of(record) < since:
        return None
    return record


def _time_of(record: dict[str, Any]) -> datetime:
    metadata = record.get("eventMetadata")
    text = str(metadata.get("inferenceTime", "")) if isinstance(metadata, dict) else ""
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
