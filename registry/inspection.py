"""The validator: fetch an artifact, have it loaded in the sandbox, answer JSON.

Both the validator function (functions/validate) and the local worker that
scripts/local_api.py and the tests start (`python -m registry.inspection`, with a
scrubbed environment) call handle_validation. This process never loads an artifact,
and imports nothing that could: registry/sandbox.py's zygote, a fresh interpreter
with a clean environment, forks a child per artifact, and this process reads at most
a bounded answer for at most CHILD_TIMEOUT_SECONDS, keeps only what fits the schema,
then has every process the artifact left behind killed.

It holds no credential: drop_credentials() runs at start, before any caller byte
arrives, and makes the process undumpable.
"""

import base64
import contextlib
import ctypes
import json
import logging
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from registry.config import PicklePolicy, Settings
from registry.manifest import ArtifactFormat, ServingFormat
from registry.validation import (
    ArtifactRejected,
    ChildFindings,
    EstimatorDescription,
    RejectionReason,
    ValidateArtifactRequest,
    ValidationReport,
    read_frame,
    reject,
    runtime_versions,
    write_frame,
)

CHILD_TIMEOUT_SECONDS = 15.0
ZYGOTE_START_SECONDS = 60.0
FETCH_TIMEOUT_SECONDS = 10.0
MAX_DESCRIPTION_BYTES = 16 * 1024 * 1024
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
# What a child writes (registry/sandbox.py): the lengths of its JSON and serving copy.
_CHILD_HEADER_SIZE = 16


@dataclass(frozen=True)
class Inspection:
    """A child's answer: the description, and the serving copy it made (if any) and its kind."""

    estimator: EstimatorDescription
    serving: bytes | None
    serving_format: ServingFormat | None


class StagedArtifactUnavailable(Exception):
    """The presigned URL of the staged artifact could not be read: not the artifact's fault."""


class ServingCopyUnavailable(Exception):
    """The serving copy could not be PUT to its presigned URL: not the artifact's fault."""


def drop_credentials() -> None:
    """Forget every credential the runtime handed this process, and refuse to be inspected."""
    for variable in CREDENTIAL_VARIABLES:
        os.environ.pop(variable, None)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    with contextlib.suppress(OSError, AttributeError):  # not Linux: nothing to do
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def sandbox_environment(home: str) -> dict[str, str]:
    """The zygote's whole environment: where Python finds our code, and nothing else."""
    paths = [path for path in sys.path if path and os.path.isdir(path)]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": home,
        "PYTHONPATH": os.pathsep.join(paths),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class Zygote:
    """The sandbox's zygote, started on first use and again after it died."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: socket.socket | None = None
        self._home = tempfile.mkdtemp(prefix="registry-sandbox-")
        self._lock = threading.Lock()
        self.subreaper = False

    def start(self) -> None:
        with self._lock:
            self._started()

    def _started(self) -> socket.socket:
        if self._connection is not None and self._process and self._process.poll() is None:
            return self._connection
        self.stop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The same interpreter, with its site-packages or without (-S) as this one runs.
        site = "-S" if sys.flags.no_site else "-s"
        self._process = subprocess.Popen(
            [sys.executable, site, "-m", "registry.sandbox", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=sandbox_environment(self._home),
            cwd=self._home,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        theirs.close()
        ours.settimeout(ZYGOTE_START_SECONDS)
        started = json.loads(ours.recv(4096) or b"{}")
        if started.get("ready") is not True:
            raise OSError("the sandbox did not start")
        if started.get("subreaper") is not True:
            # Then what an artifact's code starts and orphans goes to init, not to the
            # zygote's reaping: say so where operators look.
            logging.getLogger(__name__).warning("sandbox: PR_SET_CHILD_SUBREAPER was refused")
        self.subreaper = bool(started.get("subreaper"))
        self._connection = ours
        return ours

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def inspect(
        self,
        data: bytes,
        format: ArtifactFormat,
        pickle_policy: PicklePolicy,
        max_serving_bytes: int,
        timeout: float = CHILD_TIMEOUT_SECONDS,
        input_example: list[Any] | None = None,
    ) -> "Inspection":
        """Load and describe the artifact in a child of the zygote; its serving copy if any.

        With an input_example, the child also predicts on it and says whether that failed.

        Raises ArtifactRejected: with the child's reason, or STOPPED when the child died,
        overran its time, or wrote something that is not an answer.
        """
        with self._lock:
            try:
                example = b"" if input_example is None else json.dumps(input_example).encode()
                raw = self._run_child(
                    data + example, len(example), format, pickle_policy, max_serving_bytes, timeout
                )
            except OSError:
                self.stop()  # a zygote that answers no more is started anew next time
                raw = None
        return _parse_child_answer(raw)

    def _run_child(
        self,
        data: bytes,
        example_bytes: int,
        format: ArtifactFormat,
        pickle_policy: PicklePolicy,
        max_serving_bytes: int,
        timeout: float,
    ) -> bytes | None:
        connection = self._started()
        artifact_in, artifact_out = os.pipe()
        answer_in, answer_out = os.pipe()
        request = {
            "format": format.value,
            "pickle_policy": pickle_policy.value,
            "max_bytes": len(data),
            "example_bytes": example_bytes,
            "max_serving_bytes": max_serving_bytes,
        }
        try:
            socket.send_fds(connection, [json.dumps(request).encode()], [artifact_in, answer_out])
            os.close(artifact_in)
            os.close(answer_out)
            connection.settimeout(timeout)
            json.loads(connection.recv(4096))  # {"pid": ...}: the child runs
            deadline = time.monotonic() + timeout
            try:
                _write_all(artifact_out, data)
            except BrokenPipeError:
                return None
            finally:
                os.close(artifact_out)
            limit = _CHILD_HEADER_SIZE + MAX_DESCRIPTION_BYTES + max_serving_bytes
            return _read_bounded(answer_in, limit, deadline)
        finally:
            with contextlib.suppress(OSError):
                os.close(answer_in)
            # Whatever the artifact started dies with its validation.
            connection.sendall(b'{"reap": true}')
            connection.recv(4096)


_ZYGOTE = Zygote()


def prepare_validator() -> None:
    """What the validator does at start, before any caller byte arrives."""
    drop_credentials()
    _ZYGOTE.start()


def handle_validation(event: dict[str, Any], pickle_policy: PicklePolicy) -> dict[str, Any]:
    """The validator's whole job, for one invocation payload (ValidateArtifactRequest)."""
    request = ValidateArtifactRequest.model_validate(event)
    runtime = runtime_versions()
    try:
        data = _artifact_bytes(request)
        inspection = _ZYGOTE.inspect(
            data,
            request.format,
            pickle_policy,
            max_serving_bytes=request.max_bytes,
            input_example=request.input_example,
        )
    except ArtifactRejected as exc:
        report = ValidationReport(runtime=runtime, rejection=exc.rejection)
        return report.model_dump(mode="json", exclude_none=True)
    report = ValidationReport(runtime=runtime, estimator=inspection.estimator)
    serving = inspection.serving
    if serving is not None:
        # Inline if the whole answer stays within its limit; else by URL; else left out.
        encoded = base64.b64encode(serving).decode("ascii")
        answer_size = len(report.model_dump_json()) + len(encoded) + 64
        limit = request.answer_limit_bytes
        if limit is None or answer_size <= limit:
            report.serving_base64 = encoded
            report.serving_format = inspection.serving_format
        elif request.serving_upload_url is not None:
            _put(request.serving_upload_url, serving)
            report.serving_uploaded = True
            report.serving_format = inspection.serving_format
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
    try:
        with urllib.request.urlopen(call, timeout=FETCH_TIMEOUT_SECONDS) as answer:
            answer.read()
    except OSError as exc:
        raise ServingCopyUnavailable(type(exc).__name__) from None


def _parse_child_answer(raw: bytes | None) -> "Inspection":
    stopped = reject(RejectionReason.STOPPED)
    if raw is None or len(raw) < _CHILD_HEADER_SIZE:
        raise stopped
    json_length = int.from_bytes(raw[:8], "big")
    serving_length = int.from_bytes(raw[8:16], "big")
    body = raw[_CHILD_HEADER_SIZE:]
    if json_length > MAX_DESCRIPTION_BYTES or len(body) != json_length + serving_length:
        raise stopped
    try:
        findings = ChildFindings.model_validate_json(body[:json_length])
    except ValidationError:
        raise stopped from None
    if findings.rejection is not None:
        raise ArtifactRejected(findings.rejection)
    if findings.estimator is None:
        raise stopped
    serving = body[json_length:] or None
    if serving is None or findings.serving_format is None:
        return Inspection(findings.estimator, None, None)
    return Inspection(findings.estimator, serving, findings.serving_format)


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
        except (StagedArtifactUnavailable, ServingCopyUnavailable) as exc:
            answer, status = {"errorType": type(exc).__name__}, b"1"
        except Exception as exc:
            answer, status = {"errorType": type(exc).__name__}, b"1"
        answers.write(status)
        write_frame(answers, json.dumps(answer).encode())


if __name__ == "__main__":
    serve_worker()
