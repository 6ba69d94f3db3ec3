"""Read what a function printed the way CloudWatch does: JSON log lines and EMF documents."""

import json
from dataclasses import dataclass
from typing import Any

# CloudWatch's limits for one EMF document (the embedded metric format specification).
MAX_DIMENSIONS_PER_SET = 30
MAX_METRICS_PER_DOCUMENT = 100
UNITS = {"Count", "Milliseconds", "Seconds", "Bytes", "Percent", "None"}


@dataclass(frozen=True)
class EmittedMetric:
    name: str
    unit: str
    namespace: str
    dimension_sets: tuple[tuple[str, ...], ...]
    dimensions: dict[str, str]
    values: list[float]
    properties: dict[str, Any]


@dataclass(frozen=True)
class Output:
    log_lines: list[dict[str, Any]]
    documents: list[dict[str, Any]]

    @property
    def requests(self) -> list[dict[str, Any]]:
        return [line for line in self.log_lines if line.get("message") == "request"]

    @property
    def metrics(self) -> list[EmittedMetric]:
        return [metric for document in self.documents for metric in metrics_of(document)]

    def metric(self, name: str, **dimensions: str) -> list[EmittedMetric]:
        """The emitted metrics of that name whose dimension values include these."""
        return [
            metric
            for metric in self.metrics
            if metric.name == name
            and all(metric.dimensions.get(key) == value for key, value in dimensions.items())
        ]


def read_output(text: str) -> Output:
    """Every line must be JSON: a Powertools log line or an EMF document."""
    log_lines, documents = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        (documents if "_aws" in record else log_lines).append(record)
    return Output(log_lines, documents)


def metrics_of(document: dict[str, Any]) -> list[EmittedMetric]:
    """The document's metrics, after checking it against the EMF specification's rules."""
    metadata = document["_aws"]
    assert isinstance(metadata["Timestamp"], int)
    (directive,) = metadata["CloudWatchMetrics"]
    names = {definition["Name"] for definition in directive["Metrics"]}
    dimension_names = {name for names in directive["Dimensions"] for name in names}
    assert len(directive["Metrics"]) <= MAX_METRICS_PER_DOCUMENT
    for dimension_set in directive["Dimensions"]:
        assert 1 <= len(dimension_set) <= MAX_DIMENSIONS_PER_SET
    for name in dimension_names:
        assert isinstance(document[name], str) and document[name], name
    emitted = []
    for definition in directive["Metrics"]:
        assert definition["Unit"] in UNITS, definition
        values = document[definition["Name"]]
        values = values if isinstance(values, list) else [values]
        assert all(isinstance(value, int | float) for value in values)
        emitted.append(
            EmittedMetric(
                name=definition["Name"],
                unit=definition["Unit"],
                namespace=directive["Namespace"],
                dimension_sets=tuple(tuple(names) for names in directive["Dimensions"]),
                dimensions={name: document[name] for name in dimension_names},
                values=values,
                properties={
                    key: value
                    for key, value in document.items()
                    if key not in names | dimension_names | {"_aws"}
                },
            )
        )
    return emitted
