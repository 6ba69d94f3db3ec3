"""The logger every module imports, and the one place metric names, units and dimensions live.

Each request ends in one JSON log line and one CloudWatch embedded-metric-format
(EMF) document, plus one when it failed and one on a cold start. All are built
here from a RequestOutcome that the handlers fill in while they work;
docs/observability.md explains every field and metric, and template.yaml's
dashboard is rendered from METRICS.

The EMF documents are built here rather than by Powertools' Metrics object and
its decorator: the dimension sets differ from request to request (a model only
when the request succeeded), the local API serves both functions, with
different service names, from one process, and Powertools validates every
metric on every request (see metric_documents).
"""

import contextvars
import os
import sys
import time
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Literal

import orjson
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from registry.errors import IntegrityError

# The value of the `service` log key and metric dimension, one per function.
PREDICT_SERVICE = "predict"
REGISTER_SERVICE = "register"
# The validator writes no metrics of its own; the dashboard shows its Lambda metrics.
VALIDATE_SERVICE = "validate"
SERVICES = (PREDICT_SERVICE, REGISTER_SERVICE)

# Deployed, template.yaml sets ModelRegistry/<stack name>, so stacks sharing an
# account and region keep their metrics apart.
DEFAULT_METRICS_NAMESPACE = "ModelRegistry"
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", DEFAULT_METRICS_NAMESPACE)

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "model-registry"))


class MetricName(StrEnum):
    REQUESTS = "Requests"
    LATENCY = "Latency"
    ERRORS = "Errors"
    COLD_STARTS = "ColdStarts"
    INSTANCES = "Instances"
    CACHE_HITS = "CacheHits"
    CACHE_MISSES = "CacheMisses"
    MODEL_LOAD_TIME = "ModelLoadTime"
    INTEGRITY_FAILURES = "IntegrityFailures"
    REGISTRATIONS = "Registrations"
    VERSION_CONFLICT_RETRIES = "VersionConflictRetries"
    VALIDATION_FAILURES = "ValidationFailures"


# Dimension sets. `model` is only set when a request succeeded on a version of the
# model (served, registered, shown, archived or aliased it): its values are bounded
# by the models registered, never by what callers type. `code` takes the error
# codes of registry/errors.py and registry/http/api.py, a closed set. Versions are a
# property of the document and a log field, and a dimension only of a prediction a
# weighted alias routed (at most four versions an alias, while it is split): each
# registration would otherwise start new metrics.
BY_SERVICE = ("service",)
BY_MODEL = ("service", "model")
BY_VERSION = ("service", "model", "version")
BY_CODE = ("service", "code")


@dataclass(frozen=True)
class MetricDefinition:
    name: MetricName
    unit: MetricUnit
    services: tuple[str, ...]
    dimension_sets: tuple[tuple[str, ...], ...]


METRICS: tuple[MetricDefinition, ...] = (
    MetricDefinition(
        MetricName.REQUESTS, MetricUnit.Count, SERVICES, (BY_SERVICE, BY_MODEL, BY_VERSION)
    ),
    MetricDefinition(
        MetricName.LATENCY, MetricUnit.Milliseconds, SERVICES, (BY_SERVICE, BY_MODEL, BY_VERSION)
    ),
    MetricDefinition(MetricName.ERRORS, MetricUnit.Count, SERVICES, (BY_SERVICE, BY_CODE)),
    MetricDefinition(MetricName.COLD_STARTS, MetricUnit.Count, SERVICES, (BY_SERVICE,)),
    MetricDefinition(
        MetricName.INSTANCES,
        MetricUnit.Count,
        (PREDICT_SERVICE,),
        (BY_SERVICE, BY_MODEL, BY_VERSION),
    ),
    MetricDefinition(
        MetricName.CACHE_HITS,
        MetricUnit.Count,
        (PREDICT_SERVICE,),
        (BY_SERVICE, BY_MODEL, BY_VERSION),
    ),
    MetricDefinition(
        MetricName.CACHE_MISSES,
        MetricUnit.Count,
        (PREDICT_SERVICE,),
        (BY_SERVICE, BY_MODEL, BY_VERSION),
    ),
    MetricDefinition(
        MetricName.MODEL_LOAD_TIME,
        MetricUnit.Milliseconds,
        (PREDICT_SERVICE,),
        (BY_SERVICE, BY_MODEL, BY_VERSION),
    ),
    MetricDefinition(
        MetricName.INTEGRITY_FAILURES, MetricUnit.Count, (PREDICT_SERVICE,), (BY_SERVICE, BY_CODE)
    ),
    MetricDefinition(
        MetricName.REGISTRATIONS, MetricUnit.Count, (REGISTER_SERVICE,), (BY_SERVICE, BY_MODEL)
    ),
    MetricDefinition(
        MetricName.VERSION_CONFLICT_RETRIES,
        MetricUnit.Count,
        (REGISTER_SERVICE,),
        (BY_SERVICE, BY_MODEL),
    ),
    MetricDefinition(
        MetricName.VALIDATION_FAILURES, MetricUnit.Count, (REGISTER_SERVICE,), (BY_SERVICE, BY_CODE)
    ),
)
METRIC_DEFINITIONS = {definition.name: definition for definition in METRICS}

# Register answers these statuses when the request or its artifact is invalid.
VALIDATION_STATUSES = frozenset({400, 413, 422})


@dataclass
class RequestOutcome:
    """What one request did: its log line's fields, and the source of its metrics."""

    service: str
    method: str | None = None
    route: str | None = None
    correlation_id: str | None = None
    status: int | None = None
    model: str | None = None
    version: int | None = None
    alias: str | None = None
    weighted: bool | None = None  # a weighted alias picked the version
    cache: Literal["hit", "miss"] | None = None
    instances: int | None = None
    load_ms: float | None = None
    # Not "created": that name belongs to every logging.LogRecord.
    new_version: bool | None = None
    conflict_retries: int | None = None
    error_code: str | None = None
    latency_ms: float | None = None
    cold_start: bool = False

    def log_fields(self) -> dict[str, Any]:
        """The fields that are set (cold_start is the logger's own key).

        service and correlation_id are the logger's keys too, but they are repeated
        here: the local API serves both functions from one process, whose logger keys
        a concurrent request of the other function may have changed.
        """
        return {
            field.name: getattr(self, field.name)
            for field in fields(self)
            if field.name != "cold_start" and getattr(self, field.name) is not None
        }

    def metric_values(self) -> dict[MetricName, float]:
        values: dict[MetricName, float] = {MetricName.REQUESTS: 1}
        if self.latency_ms is not None:
            values[MetricName.LATENCY] = self.latency_ms
        if self.cold_start:
            values[MetricName.COLD_STARTS] = 1
        if self.instances is not None:
            values[MetricName.INSTANCES] = self.instances
        if self.cache is not None:
            # Both on every served request: their Averages are the hit and miss ratios.
            values[MetricName.CACHE_HITS] = int(self.cache == "hit")
            values[MetricName.CACHE_MISSES] = int(self.cache == "miss")
        if self.load_ms is not None:
            values[MetricName.MODEL_LOAD_TIME] = self.load_ms
        if self.new_version:
            values[MetricName.REGISTRATIONS] = 1
        if self.conflict_retries is not None:
            values[MetricName.VERSION_CONFLICT_RETRIES] = self.conflict_retries
        if self.error_code is not None:
            values[MetricName.ERRORS] = 1
            if self.error_code == IntegrityError.code:
                values[MetricName.INTEGRITY_FAILURES] = 1
            if self.service == REGISTER_SERVICE and self.status in VALIDATION_STATUSES:
                values[MetricName.VALIDATION_FAILURES] = 1
        return values

    def dimension_values(self) -> dict[str, str]:
        values = {"service": self.service}
        succeeded = self.status is not None and self.status < 400
        if succeeded and self.model is not None and self.version is not None:
            values["model"] = self.model
            if self.weighted:
                values["version"] = str(self.version)
        if self.error_code is not None:
            values["code"] = self.error_code
        return values


_current_request: contextvars.ContextVar[RequestOutcome | None] = contextvars.ContextVar(
    "current_request", default=None
)
_OUTCOME_FIELDS = frozenset(field.name for field in fields(RequestOutcome))


def begin_request(
    service: str, method: str | None, route: str | None, correlation_id: str | None
) -> RequestOutcome:
    """Start recording a request; its log lines carry the function's service name."""
    outcome = RequestOutcome(
        service,
        method,
        route,
        correlation_id,
        cold_start=bool(logger.get_current_keys().get("cold_start")),
    )
    _current_request.set(outcome)
    logger.append_keys(service=service)
    return outcome


def note(**values: Any) -> None:
    """Record fields of the current request; later log lines of the request carry them too."""
    unknown = values.keys() - _OUTCOME_FIELDS
    if unknown:
        raise TypeError(f"not fields of a request outcome: {sorted(unknown)}")
    outcome = _current_request.get()
    if outcome is not None:
        for name, value in values.items():
            setattr(outcome, name, value)
    logger.append_keys(**{name: value for name, value in values.items() if value is not None})


def finish_request(outcome: RequestOutcome) -> None:
    """Write the request's log line and its EMF documents, then forget it."""
    _current_request.set(None)
    logger.info("request", extra=outcome.log_fields())
    emit_metrics(outcome)


def emit_metrics(outcome: RequestOutcome, namespace: str = METRICS_NAMESPACE) -> None:
    """Print the request's EMF documents to standard output, where Lambda sends them on."""
    if is_metrics_disabled():  # POWERTOOLS_METRICS_DISABLED, or POWERTOOLS_DEV
        return
    documents = metric_documents(outcome, namespace, int(time.time() * 1000))
    # One write of one line per document; orjson writes them several times quicker.
    sys.stdout.write("".join(orjson.dumps(document).decode() + "\n" for document in documents))


def metric_documents(
    outcome: RequestOutcome, namespace: str, timestamp_ms: int
) -> list[dict[str, Any]]:
    """One EMF document per group of metrics that share dimension sets.

    The same documents Powertools' EphemeralMetrics builds (a test compares them),
    without its per-call validation, which cost about 6 µs a metric on every
    request: names and units here come from METRICS, checked once by the tests.
    """
    values = outcome.metric_values()
    dimensions = outcome.dimension_values()
    groups: dict[tuple[tuple[str, ...], ...], list[MetricName]] = {}
    for name in values:
        groups.setdefault(METRIC_DEFINITIONS[name].dimension_sets, []).append(name)
    properties: dict[str, Any] = {"correlation_id": outcome.correlation_id}
    if outcome.version is not None:
        properties["version"] = outcome.version
    documents = []
    for dimension_sets, names in groups.items():
        present = [list(keys) for keys in dimension_sets if all(k in dimensions for k in keys)]
        directive = {
            "Namespace": namespace,
            "Dimensions": present,
            "Metrics": [
                {"Name": name, "Unit": METRIC_DEFINITIONS[name].unit.value} for name in names
            ],
        }
        document: dict[str, Any] = {
            "_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": [directive]}
        }
        document.update((key, dimensions[key]) for keys in present for key in keys)
        # A dimension's value (the version as text, where it is one) is not overwritten.
        document.update((key, value) for key, value in properties.items() if key not in document)
        document.update((str(name), [float(values[name])]) for name in names)
        documents.append(document)
    return documents


__all__ = [
    "METRICS",
    "METRICS_NAMESPACE",
    "PREDICT_SERVICE",
    "REGISTER_SERVICE",
    "MetricName",
    "RequestOutcome",
    "begin_request",
    "finish_request",
    "logger",
    "metric_documents",
    "note",
]
