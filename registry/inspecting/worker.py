"""The validator: fetch an artifact, have it loaded in the sandbox, answer JSON.

Both the validator function (functions/validate) and the local worker that
scripts/local_api.py and the tests start (`python -P -s -m registry.inspecting.worker`, with a
scrubbed environment and working directory /) call handle_validation. This process never
loads an artifact, and imports nothing that could: registry/inspecting/sandbox.py's zygote, a fresh
interpreter with a clean environment, forks a child per artifact, and this process reads
at most a bounded answer for at most CHILD_TIMEOUT_SECONDS, keeps only what fits the
schema, then has every process the artifact left behind killed.

It holds no credential: prepare_validator() runs at start, before any caller byte arrives.
It drops the credentials, makes the process undumpable and a subreaper (so that the
orphans of a dead zygote come back to it), enters a read-only filesystem of its own where
the kernel gives one (registry/inspecting/isolation.py), and refuses to run if an entry of
its import path is writable. A child that did not exit cleanly, or a zygote that died, taints the
sandbox: the zygote is replaced by a fresh one with a fresh home, and the validator
function itself exits, so that Lambda replaces its execution environment.
"""

import base64
import contextlib
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

from registry.config import DEFAULT_MAX_LOADED_BYTES, PicklePolicy, Settings
from registry.inspecting.isolation import (
    SandboxMeasures,
    SandboxRefused,
    become_subreaper,
    enter_private_filesystem,
    kill_descendants,
    kill_tree,
    make_undumpable,
    process_state,
    refuse_writable_import_path,
)
from registry.manifest import ArtifactFormat, CheckAnswers, ServingFormat, VersionCheck
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
# What a child writes (registry/inspecting/sandbox.py): the lengths of its JSON and serving copy.
_CHILD_HEADER_SIZE = 16
# Native thread pools in the sandbox: one thread each (a child may start no process, and
# its answers are compared only with each other, in the same process).
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Inspection:
    """A child's answer: the description, and the serving copy it made (if any) and its kind."""

    estimator: EstimatorDescription
    serving: bytes | None
    serving_format: ServingFormat | None
    check: VersionCheck | None = None
    check_answers: CheckAnswers | None = None


class StagedArtifactUnavailable(Exception):
    """The presigned URL of the staged artifact could not be read: not the artifact's fault."""


class ServingCopyUnavailable(Exception):
    """The serving copy could not be PUT to its presigned URL: not the artifact's fault."""


class _ZygoteTainted(Exception):
    """The zygote found its own state changed before it forked, and stopped."""


class SandboxUnavailable(Exception):
    """The sandbox refused to run here (an entry of its import path was writable, so an
    artifact could plant a module there): not the artifact's fault."""


def drop_credentials() -> None:
    """Forget every credential the runtime handed this process."""
    for variable in CREDENTIAL_VARIABLES:
        os.environ.pop(variable, None)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def sandbox_environment() -> dict[str, str]:
    """The zygote's whole environment: where Python finds our code, and nothing else."""
    paths = [path for path in sys.path if path and os.path.isdir(path)]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join(paths),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
        **_ONE_THREAD,
    }


class Zygote:
    """The sandbox's zygote, started on first use and again, fresh, after it was tainted.

    measures: the sandbox measures taken (registry/inspecting/isolation.py); empty_tmp: the zygote
    empties /tmp at start and after every child, where /tmp is the validator's own (Lambda).
    """

    def __init__(self, measures: SandboxMeasures | None = None, empty_tmp: bool = False) -> None:
        self.measures = measures or SandboxMeasures()
        self.empty_tmp = empty_tmp
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: socket.socket | None = None
        # Without the safe import path, the old sandbox's working directory: one kept
        # folder, on its import path, across restarts (the attack tests show the harm).
        self._workdir = "/" if self.measures.safe_import_path else _kept_folder()
        self._lock = threading.Lock()
        self.subreaper = False
        self.private = False
        # How many times a child did not exit cleanly or the zygote died; each started anew.
        self.taints = 0

    def start(self) -> None:
        with self._lock:
            self._started()

    @property
    def pid(self) -> int | None:
        """The zygote's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def _started(self) -> socket.socket:
        if self._connection is not None and self._process and self._process.poll() is None:
            return self._connection
        self.stop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The same interpreter, with its site-packages or without (-S) as this one runs.
        flags = ["-S" if sys.flags.no_site else "-s"]
        if self.measures.safe_import_path:
            flags.insert(0, "-P")
        config = json.dumps({"off": self.measures.off(), "empty_tmp": self.empty_tmp})
        self._process = subprocess.Popen(
            [
                sys.executable,
                *flags,
                "-m",
                "registry.inspecting.sandbox",
                str(theirs.fileno()),
                config,
            ],
            pass_fds=[theirs.fileno()],
            env=sandbox_environment(),
            cwd=self._workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        theirs.close()
        ours.settimeout(ZYGOTE_START_SECONDS)
        started = json.loads(ours.recv(4096) or b"{}")
        if started.get("ready") is not True:
            ours.close()
            self.stop()
            raise SandboxUnavailable(str(started.get("refused") or "the sandbox did not start"))
        if started.get("subreaper") is not True:
            # Then what an artifact's code starts and orphans goes to init, not to the
            # zygote's reaping: say so where operators look.
            logging.getLogger(__name__).warning("sandbox: PR_SET_CHILD_SUBREAPER was refused")
        self.subreaper = bool(started.get("subreaper"))
        self.private = bool(started.get("private"))
        self._connection = ours
        return ours

    def stop(self) -> None:
        """Kill the zygote and everything below it; the next inspection starts a fresh one."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._process is not None:
            if self._process.poll() is None:
                with contextlib.suppress(TimeoutError):
                    kill_tree(self._process.pid)
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
        max_loaded_bytes: int = DEFAULT_MAX_LOADED_BYTES,
        check_rows: list[Any] | None = None,
        other_version: bool = False,
    ) -> "Inspection":
        """Load and describe the artifact in a child of the zygote; its serving copy if any.

        With an input_example, the child also predicts on it and says whether that failed.
        It answers on check_rows (an upgrade check's, of an artifact saved with an older
        scikit-learn: other_version), or makes the version's check rows and answers.

        Raises ArtifactRejected: with the child's reason, or STOPPED when the child died,
        overran its time, wrote something that is not an answer, or did not exit cleanly
        (the zygote is then replaced). SandboxUnavailable if the sandbox refuses to start.
        """
        inputs = {"example": input_example, "check_rows": check_rows}
        rows = json.dumps(inputs).encode() if any(inputs.values()) else b""
        request = {
            "format": format.value,
            "pickle_policy": pickle_policy.value,
            "max_bytes": len(data) + len(rows),
            "rows_bytes": len(rows),
            "max_serving_bytes": max_serving_bytes,
            "max_loaded_bytes": max_loaded_bytes,
            "other_version": other_version,
        }
        with self._lock:
            try:
                raw, clean = self._run_child(data + rows, request, timeout)
            except _ZygoteTainted:
                # An earlier child changed the zygote's limits; it did not fork: this
                # artifact is not to blame, and is inspected by a fresh zygote.
                self._taint()
                raw, clean = self._run_child(data + rows, request, timeout)
            except OSError:  # the zygote died, or stopped answering
                raw, clean = None, False
            if not clean:
                self._taint()
        return _parse_child_answer(raw if clean else None)

    def _taint(self) -> None:
        """Whatever the zygote's child did, the next artifact meets a fresh zygote."""
        self.taints += 1
        self.stop()

    def _run_child(
        self, data: bytes, request: dict[str, Any], timeout: float
    ) -> tuple[bytes | None, bool]:
        connection = self._started()
        artifact_in, artifact_out = os.pipe()
        answer_in, answer_out = os.pipe()
        raw = None
        try:
            socket.send_fds(connection, [json.dumps(request).encode()], [artifact_in, answer_out])
            os.close(artifact_in)
            os.close(answer_out)
            connection.settimeout(timeout)
            if json.loads(connection.recv(4096) or b"{}").get("tainted"):
                raise _ZygoteTainted  # it did not fork: see inspect
            # else {"pid": ...}: the child runs
            deadline = time.monotonic() + timeout
            try:
                _write_all(artifact_out, data)
                written = True
            except BrokenPipeError:
                written = False
            finally:
                os.close(artifact_out)
            if written:
                limit = _CHILD_HEADER_SIZE + MAX_DESCRIPTION_BYTES + request["max_serving_bytes"]
                raw = _read_bounded(answer_in, limit, deadline)
        finally:
            with contextlib.suppress(OSError):
                os.close(answer_in)
        # Whatever the artifact started dies with its validation; then, how the child ended.
        connection.settimeout(ZYGOTE_START_SECONDS)
        connection.sendall(b'{"reap": true}')
        reaped = json.loads(connection.recv(4096) or b"{}")
        return raw, raw is not None and reaped.get("clean") is True


def _kept_folder() -> str:
    return tempfile.mkdtemp(prefix="registry-sandbox-")


@dataclass
class _Validator:
    zygote: Zygote
    exit_when_tainted: bool
    refused: str | None = None
    # Its limits, priority and CPUs at start: a change means an artifact reached this process.
    started_as: tuple[object, ...] = ()


_VALIDATOR: _Validator | None = None


def prepare_validator(
    measures: SandboxMeasures | None = None, exit_when_tainted: bool = False
) -> None:
    """What the validator does at start, before any caller byte arrives.

    exit_when_tainted: the validator function's way (its execution environment is then
    replaced); a local worker starts a fresh zygote instead.
    """
    global _VALIDATOR
    measures = measures or SandboxMeasures()
    drop_credentials()
    make_undumpable()
    become_subreaper()
    if measures.private_filesystem:
        enter_private_filesystem()
    zygote = Zygote(measures, empty_tmp="AWS_LAMBDA_FUNCTION_NAME" in os.environ)
    _VALIDATOR = _Validator(zygote, exit_when_tainted, started_as=process_state())
    try:
        if measures.safe_import_path:
            refuse_writable_import_path()
        zygote.start()
    except (SandboxRefused, SandboxUnavailable) as exc:
        logging.getLogger(__name__).error("sandbox refused to run", extra={"reason": str(exc)})
        _VALIDATOR.refused = str(exc)


def handle_validation(event: dict[str, Any], pickle_policy: PicklePolicy) -> dict[str, Any]:
    """The validator's whole job, for one invocation payload (ValidateArtifactRequest).

    Raises SandboxUnavailable where the sandbox refuses to run, and exits the process when
    the validator function's sandbox was tainted by this artifact.
    """
    if _VALIDATOR is None:
        prepare_validator()
    validator = _VALIDATOR
    assert validator is not None
    if validator.refused is not None:
        raise SandboxUnavailable(validator.refused)
    try:
        return _validate(validator, event, pickle_policy)
    finally:
        if process_state() != validator.started_as:
            # An artifact's code reached this process (where no seccomp filter kept it from
            # it): nothing it validates next can be trusted. It exits; its caller starts
            # another (Lambda, a new execution environment; the local server, a new worker).
            _leave_tainted_environment()


def _validate(
    validator: "_Validator", event: dict[str, Any], pickle_policy: PicklePolicy
) -> dict[str, Any]:
    request = ValidateArtifactRequest.model_validate(event)
    runtime = runtime_versions()
    taints = validator.zygote.taints
    try:
        data = _artifact_bytes(request)
        inspection = validator.zygote.inspect(
            data,
            request.format,
            pickle_policy,
            max_serving_bytes=request.max_bytes,
            input_example=request.input_example,
            max_loaded_bytes=request.max_loaded_bytes,
            check_rows=request.check_rows,
            other_version=request.other_version,
        )
    except ArtifactRejected as exc:
        if validator.exit_when_tainted and validator.zygote.taints > taints:
            _leave_tainted_environment()
        report = ValidationReport(runtime=runtime, rejection=exc.rejection)
        return report.model_dump(mode="json", exclude_none=True)
    report = ValidationReport(
        runtime=runtime,
        estimator=inspection.estimator,
        check=inspection.check,
        check_answers=inspection.check_answers,
    )
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


def _leave_tainted_environment() -> None:
    """Kill whatever is left below this process and exit: Lambda then starts the next
    invocation in a new execution environment (register answers this one with a 422)."""
    with contextlib.suppress(TimeoutError):
        kill_descendants()
    logging.getLogger(__name__).warning("sandbox tainted: the validator exits")
    os._exit(70)


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
        serving = None
    return Inspection(
        findings.estimator,
        serving,
        findings.serving_format if serving is not None else None,
        findings.check,
        findings.check_answers,
    )


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
    settings = Settings.from_environ()
    prepare_validator(SandboxMeasures.without(settings.sandbox_measures_off.split(",")))
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    # Nothing but frames may reach stdout: anything else the process prints goes to stderr.
    sys.stdout = sys.stderr
    while (payload := read_frame(requests)) is not None:
        try:
            answer = handle_validation(json.loads(payload), settings.pickle_artifacts)
            status = b"0"
        except Exception as exc:
            answer, status = {"errorType": type(exc).__name__}, b"1"
        answers.write(status)
        write_frame(answers, json.dumps(answer).encode())


if __name__ == "__main__":
    serve_worker()
