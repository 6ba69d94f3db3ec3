"""Capture a share of predict requests with their answers (registry/capture.py: the record).

Deployed, a record is a line the predict function writes to standard output, as its EMF
documents are: Lambda sends it to the function's log group, whose subscription filter sends it
to Firehose, which writes it under the registry's capture/ prefix. Capture therefore adds no
call to the request path, only the write of one line. Locally, the server writes each record
to its registry's store under the same prefix.
"""

import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from registry.capture import Captured, record_key, record_line, sampled
from registry.inputs import RequestRows, signature_of
from registry.observability import logger
from registry.serving.predictor import Prediction
from registry.store.base import ObjectStore


class CaptureSink(Protocol):
    def write(self, captured: Captured) -> None: ...


class LogLineSink:
    """One line on standard output, where Lambda's log group (and its subscription) gets it."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream

    def write(self, captured: Captured) -> None:
        stream = self.stream or sys.stdout
        stream.write(record_line(captured).decode())


class StoreSink:
    """One object a record under capture/ in the registry's store (the local server)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def write(self, captured: Captured) -> None:
        self.store.put(record_key(captured), record_line(captured))


class Capturer:
    """Decides whether a request is captured, and hands its record to the sink.

    percent_of(name): the model's own share, None for the default_percent."""

    def __init__(
        self,
        sink: CaptureSink,
        default_percent: float,
        percent_of: Callable[[str], float | None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sink = sink
        self.default_percent = default_percent
        self.percent_of = percent_of
        self.clock = clock

    def capture(
        self,
        event_id: str,
        name: str,
        alias: str | None,
        routing_key: str | None,
        rows: RequestRows,
        result: Prediction,
        with_probabilities: bool,
    ) -> bool:
        """Capture the request if it is in the model's sample; a capture that fails is
        logged and never fails the request, which has its answer already."""
        own = self.percent_of(name)
        if not sampled(event_id, self.default_percent if own is None else own):
            return False
        try:
            manifest = result.manifest
            captured = Captured(
                event_id=event_id,
                time=self.clock(),
                model=name,
                version=manifest.version,
                alias=alias,
                routing_key=routing_key,
                rows=named_rows(rows, column_names(rows, manifest)),
                predictions=result.predictions,
                probabilities=result.probabilities if with_probabilities else None,
                classes=(manifest.output_classes or manifest.classes)
                if with_probabilities
                else None,
            )
            self.sink.write(captured)
        except Exception:  # the answer is sent whatever becomes of its record
            logger.exception("capture failed", extra={"model": name})
            return False
        return True


def column_names(rows: RequestRows, manifest: Any) -> Sequence[str]:
    """What names a positional row's values: the request's columns, else the model's."""
    if rows.columns is not None:
        return list(rows.columns)
    signature = signature_of(manifest)
    if signature is not None:
        return [column.name for column in signature.columns]
    return []


def named_rows(rows: RequestRows, names: Sequence[str]) -> list[dict[str, Any]]:
    """Each row as an object of its values by column name (a row of another length than the
    names, by position: "0", "1", ...)."""
    named = []
    for row in rows.rows:
        if isinstance(row, Mapping):
            named.append(dict(row))
            continue
        values = list(row)
        keys = names if len(names) == len(values) else [str(i) for i in range(len(values))]
        named.append(dict(zip(keys, values, strict=True)))
    return named
