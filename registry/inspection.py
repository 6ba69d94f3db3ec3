"""Inside the validator: fetch an artifact, load it in a child process, answer JSON.

Both the validator function (functions/validate) and the local worker that
scripts/local_api.py and the tests start (`python -m registry.inspection`, with a
scrubbed environment) call handle_validation. It never loads the artifact itself:
it forks a child per artifact, which loads and describes it and writes its findings
to a pipe, then exits. The child starts a session of its own, keeps no inherited
descriptor but the pipe, and loses the runtime API's address; it is killed with its
process group when it is done, so what an artifact's code starts in it does not
outlive the validation it came with. The parent reads at most a bounded answer for
at most CHILD_TIMEOUT_SECONDS, and keeps only what fits the schema.

The process holds no credential: drop_credentials() runs at start, before any caller
byte arrives, and makes the process undumpable, so that a child cannot read its
memory or its /proc environ either.
"""

import base64
import contextlib
import ctypes
import importlib
import json
import os
import select
import signal
import struct
import sys
import time
import urllib.request
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from registry.artifacts import describe_estimator, load_estimator, runtime_versions, serving_bytes
from registry.config import PicklePolicy, Settings
from registry.manifest import ArtifactFormat
from registry.validation import (
    ArtifactRejected,
    EstimatorDescription,
    Rejection,
    RejectionReason,
    ValidateArtifactRequest,
    ValidationReport,
    read_frame,
    reject,
    write_frame,
)

CHILD_TIMEOUT_SECONDS = 15.0
FETCH_TIMEOUT_SECONDS = 10.0
MAX_DESCRIPTION_BYTES = 16 * 1024 * 1024
# What the child writes: the lengths of its JSON and of its serving copy, then both.
_CHILD_HEADER = struct.Struct("!QQ")
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_PROFILE",
)
_PR_SET_DUMPABLE = 4
# Imported once by the validator, before it forks: otherwise every child imports the
# estimator's module anew (about 90 ms for a LogisticRegression, 700 ms for a forest).
COMMON_ESTIMATOR_MODULES = (
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.compose",
    "sklearn.impute",
    "sklearn.tree",
    "sklearn.svm",
    "sklearn.neighbors",
    "sklearn.naive_bayes",
    "sklearn.neural_network",
    "sklearn.model_selection",
)


class StagedArtifactUnavailable(Exception):
    """The presigned URL of the staged artifact could not be read: not the artifact's fault."""


class _ChildFindings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    estimator: EstimatorDescription | None = None
    rejection: Rejection | None = None


def prepare_validator() -> None:
    """What the validator does at start, before any caller byte arrives."""
    drop_credentials()
    for module in COMMON_ESTIMATOR_MODULES:
        importlib.import_module(module)


def drop_credentials() -> None:
    """Forget every credential the runtime handed this process, and refuse to be inspected."""
    for variable in CREDENTIAL_VARIABLES:
        os.environ.pop(variable, None)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    with contextlib.suppress(OSError, AttributeError):  # not Linux: nothing to do
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def handle_validation(event: dict[str, Any], pickle_policy: PicklePolicy) -> dict[str, Any]:
    """The validator's whole job, for one invocation payload (ValidateArtifactRequest)."""
    request = ValidateArtifactRequest.model_validate(event)
    runtime = runtime_versions()
    try:
        data = _artifact_bytes(request)
        estimator, serving = inspect_in_child(
            data, request.format, pickle_policy, max_serving_bytes=request.max_bytes
        )
    except ArtifactRejected as exc:
        report = ValidationReport(runtime=runtime, rejection=exc.rejection)
        return report.model_dump(mode="json", exclude_none=True)
    serving_base64, serving_uploaded = None, False
    if serving is not None:
        limit = request.serving_inline_limit
        if limit is None or len(serving) <= limit:
            serving_base64 = base64.b64encode(serving).decode("ascii")
        elif request.serving_upload_url is not None:
            _put(request.serving_upload_url, serving)
            serving_uploaded = True
    report = ValidationReport(
        runtime=runtime,
        estimator=estimator,
        serving_base64=serving_base64,
        serving_uploaded=serving_uploaded,
    )
    return report.model_dump(mode="json", exclude_none=True)


def _artifact_bytes(request: ValidateArtifactRequest) -> bytes:
    if request.artifact_base64 is not None:
        data = base64.b64decode(request.artifact_base64, validate=True)
    else:
        assert request.artifact_url is not None
        try:
            with urllib.request.urlopen(request.artifact_url, timeout=FETCH_TIMEOUT_SECONDS) as got:
                data = got.read(request.max_bytes + 1)
        except OSError as exc:
            raise StagedArtifactUnavailable(type(exc).__name__) from None
    if len(data) > request.max_bytes:
        raise reject(RejectionReason.TOO_LARGE)
    return data


def _put(url: str, data: bytes) -> None:
    # urllib would call the bytes a form (application/x-www-form-urlencoded) otherwise.
    headers = {"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"}
    call = urllib.request.Request(url, data=data, method="PUT", headers=headers)
    with urllib.request.urlopen(call, timeout=FETCH_TIMEOUT_SECONDS) as answer:
        answer.read()


def inspect_in_child(
    data: bytes,
    format: ArtifactFormat,
    pickle_policy: PicklePolicy,
    max_serving_bytes: int,
    timeout: float = CHILD_TIMEOUT_SECONDS,
) -> tuple[EstimatorDescription, bytes | None]:
    """Load and describe the artifact in a forked child; its serving copy if it has one.

    Raises ArtifactRejected: with the child's reason, or STOPPED when the child died,
    overran its time, or wrote something that is not an answer.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _inspect_and_exit(write_end, data, format, pickle_policy, max_serving_bytes)
    os.close(write_end)
    try:
        limit = _CHILD_HEADER.size + MAX_DESCRIPTION_BYTES + max_serving_bytes
        raw = _read_bounded(read_end, limit, time.monotonic() + timeout)
    finally:
        os.close(read_end)
        _end_child(pid)
    return _parse_child_answer(raw)


def _parse_child_answer(raw: bytes | None) -> tuple[EstimatorDescription, bytes | None]:
    stopped = reject(RejectionReason.STOPPED)
    if raw is None or len(raw) < _CHILD_HEADER.size:
        raise stopped
    json_length, serving_length = _CHILD_HEADER.unpack_from(raw)
    body = raw[_CHILD_HEADER.size :]
    if json_length > MAX_DESCRIPTION_BYTES or len(body) != json_length + serving_length:
        raise stopped
    try:
        findings = _ChildFindings.model_validate_json(body[:json_length])
    except ValidationError:
        raise stopped from None
    if findings.rejection is not None:
        raise ArtifactRejected(findings.rejection)
    if findings.estimator is None:
        raise stopped
    return findings.estimator, body[json_length:] or None


def _inspect_and_exit(
    fd: int, data: bytes, format: ArtifactFormat, policy: PicklePolicy, max_serving: int
) -> None:
    try:
        _isolate_child(fd)
        serving = b""
        try:
            estimator = load_estimator(data, format, policy)
            findings = _ChildFindings(estimator=describe_estimator(estimator))
            if format is ArtifactFormat.JOBLIB:
                serving = _serving_copy(estimator, max_serving)
        except ArtifactRejected as exc:
            findings = _ChildFindings(rejection=exc.rejection)
        except Exception:  # anything else the artifact's object raised while described
            findings = _ChildFindings(rejection=Rejection(reason=RejectionReason.NOT_LOADABLE))
        body = findings.model_dump_json(exclude_none=True).encode()
        _write_all(fd, _CHILD_HEADER.pack(len(body), len(serving)) + body + serving)
    finally:
        os._exit(0)


def _isolate_child(keep_fd: int) -> None:
    """A session of its own, no inherited descriptor but the pipe, no runtime API address."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for standard in (0, 1, 2):
        os.dup2(devnull, standard)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 65536)
    for variable in ("AWS_LAMBDA_RUNTIME_API", "_HANDLER", "LAMBDA_TASK_ROOT"):
        os.environ.pop(variable, None)


def _serving_copy(estimator: Any, max_bytes: int) -> bytes:
    try:
        serving = serving_bytes(estimator)
    except Exception:  # an estimator plain pickle cannot hold: predict loads the artifact
        return b""
    return serving if len(serving) <= max_bytes else b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_bounded(fd: int, limit: int, deadline: float) -> bytes | None:
    """Everything until end of file; None past the limit or the deadline."""
    chunks: list[bytes] = []
    total = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return None
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)


def _end_child(pid: int) -> None:
    """Kill the child's whole process group (what its artifact started, too), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


# The local worker ------------------------------------------------------------


def serve_worker() -> None:
    """What the local worker runs: the validator function's handler over stdin and stdout."""
    prepare_validator()
    policy = Settings.from_environ().pickle_artifacts
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    # Nothing but frames may reach stdout: anything else the process prints goes to stderr.
    sys.stdout = sys.stderr
    while (payload := read_frame(requests)) is not None:
        try:
            answer, status = handle_validation(json.loads(payload), policy), b"0"
        except StagedArtifactUnavailable:
            answer, status = {"errorType": "StagedArtifactUnavailable"}, b"1"
        except Exception as exc:
            answer, status = {"errorType": type(exc).__name__}, b"1"
        answers.write(status)
        write_frame(answers, json.dumps(answer).encode())


if __name__ == "__main__":
    serve_worker()
