"""A shadow report: the captured rows an alias's versions answered, replayed through its shadow
version by a batch job, and the two sets of answers compared.

The shadow never answers a request; this is where its answers are seen. The replay is the
batch job of `model-registry batch` (against a local server, its local job): one version, the
shadow's, resolved once, over a JSON-lines file of the captured rows, each with an id that
leads back to its capture record.
"""

import json
import math
import statistics
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.client.registry_client import RegistryClient

MOST_DIFFERENT = 10


class ShadowReportError(Exception):
    """The report cannot be made; the message says what to do."""


def shadow_report(
    client: "RegistryClient",
    name: str,
    alias: str,
    since: str | None = None,
    work_dir: str | Path | None = None,
    input_uri: str | None = None,
    output_uri: str | None = None,
) -> dict[str, Any]:
    """Compare the shadow's answers to the primary's on the alias's captured rows.

    The replayed rows and the shadow's answers go through work_dir (a local server's batch
    job reads and writes local paths), or, for a deployed stack, through S3: input_uri and
    output_uri, prefixes inside its BatchInputPrefix and BatchOutputPrefix (boto3, from the
    client's `aws` extra, writes and reads them with your AWS credentials)."""
    details = client.show(name)
    shadow = (details.get("shadows") or {}).get(alias)
    if shadow is None:
        raise ShadowReportError(
            f"alias {alias!r} of {name!r} has no shadow version: name one with "
            f"`model-registry alias set {name} {alias} VERSION --shadow SHADOW`"
        )
    captured = [
        (f"{record['eventMetadata']['eventId']}/{index}", row, prediction, record["version"])
        for record in client.captured_records(name, since=since)
        if record.get("alias") == alias and record.get("version") != shadow
        for index, (row, prediction) in enumerate(
            zip(record["rows"], record["predictions"], strict=False)
        )
    ]
    if not captured:
        raise ShadowReportError(
            f"no captured rows of {name!r} through alias {alias!r}"
            + (f" since {since}" if since else "")
            + f": capture some first (`model-registry capture {name} --sample-percent 10`), "
            "then send requests that name the alias"
        )
    manifest = client.show(name, shadow)
    columns = [column["name"] for column in (manifest.get("signature") or {}).get("columns", [])]
    if not columns:
        raise ShadowReportError(
            f"version {shadow} of {name!r} records no input columns, so its rows cannot be "
            "replayed: name a version registered with its columns as the shadow"
        )
    # lists in the model's order: named or not, it takes them
    text = "".join(
        json.dumps([row.get(column) for column in columns]) + "\n" for _, row, _, _ in captured
    )
    if (input_uri is None) != (output_uri is None):
        raise ShadowReportError("give both --input-uri and --output-uri, or neither")
    place = _S3Place(input_uri, output_uri) if input_uri and output_uri else _LocalPlace(work_dir)
    source, output = place.write_rows(text)
    job = client.batch(
        name, source, output, format="jsonl", version=shadow, wait=True, poll_seconds=0.2
    )
    if job["status"] != "SUCCEEDED":
        raise ShadowReportError(
            f"the replay through version {shadow} ended {job['status']}: {job.get('reason')}; "
            f"see `model-registry batch-status {job['job_id']}`"
        )
    answered = {}
    for line in place.read_answers(output).splitlines():
        scored = json.loads(line)
        answered[captured[scored["position"]][0]] = scored["prediction"]
    classifier = manifest.get("classes") is not None
    return compared(name, alias, shadow, captured, answered, classifier, job["job_id"])


class _LocalPlace:
    """A folder the local server's batch job reads and writes."""

    def __init__(self, work_dir: str | Path | None) -> None:
        self.work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="shadow-"))

    def write_rows(self, text: str) -> tuple[str, str]:
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "captured.jsonl").write_text(text)
        return str(self.work / "captured.jsonl"), str(self.work / "shadow")

    def read_answers(self, output: str) -> str:
        return "".join(part.read_text() for part in sorted(Path(output).glob("part-*.jsonl")))


class _S3Place:
    """Prefixes a deployed stack's batch jobs read and write, under a folder of this report's."""

    def __init__(self, input_uri: str, output_uri: str) -> None:
        try:
            import boto3
        except ImportError:
            raise ShadowReportError(
                "replaying through S3 needs boto3: pip install 'model-registry[aws]'"
            ) from None
        for uri in (input_uri, output_uri):
            if not uri.startswith("s3://"):
                raise ShadowReportError(f"{uri!r} is not an s3://bucket/prefix/ location")
        self.s3 = boto3.client("s3")
        self.folder = f"shadow-{uuid.uuid4().hex[:12]}/"
        self.input_uri = input_uri.rstrip("/") + "/" + self.folder
        self.output_uri = output_uri.rstrip("/") + "/" + self.folder

    def write_rows(self, text: str) -> tuple[str, str]:
        bucket, key = _split(self.input_uri + "captured.jsonl")
        self.s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
        return self.input_uri + "captured.jsonl", self.output_uri

    def read_answers(self, output: str) -> str:
        bucket, prefix = _split(output)
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "part-")
        keys = sorted(item["Key"] for item in listed.get("Contents", []))
        return "".join(
            self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode() for key in keys
        )


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def compared(
    name: str,
    alias: str,
    shadow: int,
    captured: list[tuple[str, dict[str, Any], Any, int]],
    answered: dict[str, Any],
    classifier: bool,
    job_id: str,
) -> dict[str, Any]:
    """The share of rows where the two agree; the confusion between their labels, or the
    distribution of the shadow's differences for a regressor; the rows that differ most."""
    pairs = [
        (row_id, row, primary, answered[row_id], version)
        for row_id, row, primary, version in captured
        if row_id in answered
    ]
    agree = sum(1 for _, _, primary, other, _ in pairs if primary == other)
    report: dict[str, Any] = {
        "model": name,
        "alias": alias,
        "primary_versions": sorted({version for *_, version in pairs}),
        "shadow": shadow,
        "rows": len(captured),
        "replayed": len(pairs),
        "not_replayed": len(captured) - len(pairs),
        "agreement": agree / len(pairs) if pairs else None,
        "batch_job": job_id,
    }
    if classifier:
        confusion = Counter((str(primary), str(other)) for _, _, primary, other, _ in pairs)
        report["confusion"] = [
            {"primary": primary, "shadow": other, "rows": count}
            for (primary, other), count in sorted(confusion.items())
        ]
        differing = [pair for pair in pairs if pair[2] != pair[3]]
    else:
        differences = [
            float(other) - float(primary)
            for _, _, primary, other, _ in pairs
            if _number(primary) and _number(other)
        ]
        report["differences"] = _distribution(differences)
        differing = sorted(
            (pair for pair in pairs if _number(pair[2]) and _number(pair[3])),
            key=lambda pair: abs(float(pair[3]) - float(pair[2])),
            reverse=True,
        )
        differing = [pair for pair in differing if pair[2] != pair[3]]
    report["most_different"] = [
        {"row": row_id, "primary": primary, "shadow": other, "version": version, **row}
        for row_id, row, primary, other, version in differing[:MOST_DIFFERENT]
    ]
    return report


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _distribution(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def quantile(share: float) -> float:
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    return {
        "mean": statistics.fmean(ordered),
        "mean_absolute": statistics.fmean(abs(value) for value in ordered),
        "p05": quantile(0.05),
        "p50": quantile(0.5),
        "p95": quantile(0.95),
        "max_absolute": max(abs(ordered[0]), abs(ordered[-1])),
    }
