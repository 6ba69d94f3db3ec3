"""Register's side of validation: hand the bytes to the validator function, read its answer.

Deployed, the validator is a Lambda function invoked with boto3's Lambda client.
Locally (scripts/local_api.py) and in the tests, ChildProcessInvoker stands in for that
client: it runs the same handler in a long-lived child process whose environment holds
no AWS variable, so the local path mirrors the deployed one.
"""

import base64
import binascii
import contextlib
import io
import json
import os
import re
import secrets
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from registry.config import DEFAULT_MAX_LOADED_BYTES, PicklePolicy
from registry.errors import (
    InvalidArtifactError,
    ObjectTooLargeError,
    RegistryError,
    UploadsUnavailableError,
    ValidatorUnavailableError,
)
from registry.manifest import (
    ArtifactFormat,
    CheckAnswers,
    RuntimeVersions,
    ServingFormat,
    VersionCheck,
    upload_key,
)
from registry.observability import logger
from registry.store.base import ObjectStore
from registry.validation import (
    FRAME_HEADER,
    EstimatorDescription,
    Rejection,
    RejectionReason,
    ValidateArtifactRequest,
    ValidationReport,
    rejection_error,
)

# Lambda takes and returns at most 6 MB per synchronous invocation; base64 grows by 4/3.
INVOKE_INLINE_LIMIT = 4 * 1024 * 1024
ANSWER_LIMIT_BYTES = 5_500_000
# Failures of the validator's own work, not of the artifact: the caller should retry. A
# Lambda timeout is one too: the artifact's child has a deadline well inside it.
INFRASTRUCTURE_ERRORS = frozenset(
    {"StagedArtifactUnavailable", "ServingCopyUnavailable", "Sandbox.Timedout"}
)
# The validator's sandbox refused to run where an artifact could plant code in its import
# path: an operator's matter (registry/inspecting/isolation.py), never the artifact's.
SANDBOX_UNAVAILABLE = "SandboxUnavailable"
# A presigned URL of a staged artifact lives as long as one validation may take.
STAGED_URL_EXPIRES_IN = 120
LOCAL_INVOKE_TIMEOUT_SECONDS = 60.0
# The local worker's environment: nothing of the caller's but where Python finds its code.
_WORKER_ENVIRONMENT_KEEP = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")


class LambdaInvoker(Protocol):
    """The part of boto3's Lambda client that validation uses."""

    def invoke(self, **kwargs: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ValidatedArtifact:
    estimator: EstimatorDescription
    runtime: RuntimeVersions
    # Bytes register hashes and stores itself; None when the validator made no serving copy.
    serving_copy: bytes | None = None
    serving_format: ServingFormat | None = None
    # At registration, the rows checked and the model's answers; in an upgrade check, the
    # answers on the version's check rows (None: it refused them).
    check: VersionCheck | None = None
    check_answers: CheckAnswers | None = None


class Validator:
    """Invokes the validator function and turns its answer into a description or an error."""

    def __init__(
        self,
        invoker: LambdaInvoker,
        function_name: str,
        store: ObjectStore,
        max_artifact_bytes: int,
        inline_limit: int | None = INVOKE_INLINE_LIMIT,
        answer_limit: int | None = ANSWER_LIMIT_BYTES,
        max_loaded_bytes: int = DEFAULT_MAX_LOADED_BYTES,
    ) -> None:
        """inline_limit: the largest artifact sent in the invocation; answer_limit: the largest
        answer (a serving copy that would not fit comes back by URL). None: no limit, as for
        a local child process, which needs no URL."""
        self.invoker = invoker
        self.function_name = function_name
        self.store = store
        self.max_artifact_bytes = max_artifact_bytes
        self.max_loaded_bytes = max_loaded_bytes
        self.inline_limit = inline_limit
        self.answer_limit = answer_limit if inline_limit is not None else None

    def validate(
        self,
        name: str,
        artifact: bytes,
        format: ArtifactFormat,
        input_example: list[Any] | None = None,
        check_rows: list[Any] | None = None,
    ) -> ValidatedArtifact:
        """What the artifact holds; raises the caller's error when the validator refused it.

        With an input_example, the description says whether the model predicted on it.
        With check_rows (an upgrade check's), the artifact may be of an older scikit-learn:
        the answers on them come back, and a serving copy made on this line.
        """
        fields: dict[str, Any] = {
            "format": format,
            "max_bytes": self.max_artifact_bytes,
            "max_loaded_bytes": self.max_loaded_bytes,
            "answer_limit_bytes": self.answer_limit,
            "input_example": input_example,
            "check_rows": check_rows,
            "other_version": check_rows is not None,
        }
        staged: list[str] = []
        try:
            return self._validate(name, artifact, fields, staged)
        finally:
            # What was staged for the validator is not kept (in S3 the uploads rule would
            # expire it in a day; a directory store keeps it forever).
            with contextlib.suppress(RegistryError):
                self.store.delete(staged)

    def _validate(
        self, name: str, artifact: bytes, fields: dict[str, Any], staged: list[str]
    ) -> ValidatedArtifact:
        if self.inline_limit is None or len(artifact) <= self.inline_limit:
            fields["artifact_base64"] = base64.b64encode(artifact).decode("ascii")
        else:
            fields["artifact_url"] = self._stage(name, artifact, staged)
        staged_serving_key = None
        if self.answer_limit is not None:
            # A serving copy too large to come back inline is PUT here for register to read;
            # a store that hands out no URLs gets none (predict then loads the artifact).
            staged_serving_key = upload_key(name, secrets.token_hex(16), "serving")
            staged.append(staged_serving_key)
            try:
                fields["serving_upload_url"] = self.store.presign_put(
                    staged_serving_key, STAGED_URL_EXPIRES_IN
                )
            except UploadsUnavailableError:
                staged_serving_key = None
        request = ValidateArtifactRequest(**fields)
        report = self._invoke(request)
        if report.rejection is not None:
            raise rejection_error(report.rejection, report.runtime, self.max_loaded_bytes)
        assert report.estimator is not None
        serving_copy = self._serving_copy(report, staged_serving_key)
        if report.serving_format is None:
            serving_copy = None
        return ValidatedArtifact(
            report.estimator,
            report.runtime,
            serving_copy,
            report.serving_format if serving_copy is not None else None,
            report.check,
            report.check_answers,
        )

    def _stage(self, name: str, artifact: bytes, staged: list[str]) -> str:
        """A copy of the bytes register read, under a key only register knows; its GET URL."""
        key = upload_key(name, secrets.token_hex(16), "staged")
        staged.append(key)
        self.store.create(key, artifact)
        return self.store.presign_get(key, STAGED_URL_EXPIRES_IN)

    def _serving_copy(self, report: ValidationReport, staged_key: str | None) -> bytes | None:
        if report.serving_base64 is not None:
            if len(report.serving_base64) > self.max_artifact_bytes * 4 // 3 + 4:
                return None
            try:
                return base64.b64decode(report.serving_base64, validate=True)
            except (binascii.Error, ValueError):
                return None
        if report.serving_uploaded and staged_key is not None:
            try:
                return self.store.get(staged_key, max_bytes=self.max_artifact_bytes)
            except (ObjectTooLargeError, RegistryError):
                return None  # predict loads the artifact itself instead
        return None

    def _invoke(self, request: ValidateArtifactRequest) -> ValidationReport:
        payload = request.model_dump_json(exclude_none=True).encode()
        try:
            response = self.invoker.invoke(
                FunctionName=self.function_name, InvocationType="RequestResponse", Payload=payload
            )
            answer = response["Payload"].read()
        except Exception as exc:  # botocore's errors: throttled, unreachable, timed out
            logger.warning("validator not invoked", extra={"error_type": type(exc).__name__})
            raise ValidatorUnavailableError(
                "the artifact could not be validated right now; retry the request"
            ) from None
        if response.get("FunctionError"):
            error_type = _error_type(answer)
            logger.warning("validator failed", extra={"error_type": error_type})
            if error_type in INFRASTRUCTURE_ERRORS:
                raise ValidatorUnavailableError(
                    "the artifact could not be validated right now; retry the request"
                )
            if error_type == SANDBOX_UNAVAILABLE:
                raise ValidatorUnavailableError(
                    "the validator's sandbox refuses to run on this machine: an entry of its "
                    "import path is writable, so an artifact could plant code there. On Linux, "
                    "allow unprivileged user namespaces (the local server then makes its "
                    "filesystem read-only); elsewhere, start the local server with "
                    "SANDBOX_MEASURES_OFF=private_filesystem,safe_import_path and register "
                    "only artifacts you trust"
                )
            if error_type == "Function.ResponseSizeTooLarge":
                raise InvalidArtifactError(
                    "the model's description (feature names, classes) is too large to register"
                )
            raise rejection_error(Rejection(reason=RejectionReason.STOPPED))
        try:
            return ValidationReport.model_validate_json(answer)
        except ValidationError:
            logger.warning("validator answered outside its schema")
            raise rejection_error(Rejection(reason=RejectionReason.STOPPED)) from None


def _error_type(answer: bytes) -> str:
    """Lambda's errorType of a failed invocation, if it is a dotted name; else 'unknown'."""
    try:
        error_type = json.loads(answer).get("errorType", "")
    except (ValueError, AttributeError):
        return "unknown"
    plain = isinstance(error_type, str) and re.fullmatch(r"[A-Za-z_][\w.]{0,99}", error_type)
    return str(error_type) if plain else "unknown"


class ChildProcessInvoker:
    """boto3's Lambda client's invoke(), answered by the validator's handler in a child process.

    The child (`python -P -s -m registry.inspecting.worker`) is started once and reused, like a
    warm function; its environment has no AWS variable and no credential (only PATH, the
    locale and where Python finds the registry package), its working directory is /, and
    it has every artifact loaded in its sandbox (registry/inspecting/sandbox.py). An older
    runtime line's child runs that line's interpreter over the same registry package. It
    exits only when it cannot go on; the next invocation then starts another, as Lambda
    would.

    measures_off: sandbox measures to leave off (SANDBOX_MEASURES_OFF), for a kernel that
    lacks them; the attack tests use it to show what each measure stops.
    """

    def __init__(
        self,
        pickle_policy: PicklePolicy = PicklePolicy.CONVERT,
        timeout: float = LOCAL_INVOKE_TIMEOUT_SECONDS,
        measures_off: str = "",
        python: str = sys.executable,
    ) -> None:
        """python: the interpreter of the runtime line the child validates for (an older
        line's venv, .venv-lines/<minor>); this process's own by default."""
        self.python = python
        self.pickle_policy = pickle_policy
        self.timeout = timeout
        self.measures_off = measures_off
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        package_root = str(Path(__file__).resolve().parents[2])
        env = {key: os.environ[key] for key in _WORKER_ENVIRONMENT_KEEP if key in os.environ}
        env.update(
            PYTHONPATH=package_root,
            PICKLE_ARTIFACTS=self.pickle_policy.value,
            SANDBOX_MEASURES_OFF=self.measures_off,
            AWS_EC2_METADATA_DISABLED="true",
        )
        return env

    def _worker(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            safe_path = "safe_import_path" not in self.measures_off
            self._process = subprocess.Popen(
                [
                    self.python,
                    *(["-P"] if safe_path else []),
                    "-s",
                    "-m",
                    "registry.inspecting.worker",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd="/",
                env=self.environment(),
                close_fds=True,
            )
        return self._process

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        payload: bytes = kwargs["Payload"]
        with self._lock:
            worker = self._worker()
            assert worker.stdin is not None and worker.stdout is not None
            try:
                worker.stdin.write(FRAME_HEADER.pack(len(payload)) + payload)
                worker.stdin.flush()
                status = self._read(worker, 1)
                (length,) = FRAME_HEADER.unpack(self._read(worker, FRAME_HEADER.size))
                answer = self._read(worker, length)
            except (OSError, TimeoutError, EOFError):
                self._stop(worker)
                return {
                    "StatusCode": 200,
                    "FunctionError": "Unhandled",
                    "Payload": io.BytesIO(b'{"errorType": "Runtime.ExitError"}'),
                }
        response: dict[str, Any] = {"StatusCode": 200, "Payload": io.BytesIO(answer)}
        if status != b"0":
            response["FunctionError"] = "Unhandled"
        return response

    def _read(self, worker: subprocess.Popen[bytes], size: int) -> bytes:
        assert worker.stdout is not None
        fd = worker.stdout.fileno()
        chunks, remaining = [], size
        deadline = time.monotonic() + self.timeout
        while remaining:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError("the validator worker did not answer in time")
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                raise EOFError("the validator worker stopped")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _stop(self, worker: subprocess.Popen[bytes]) -> None:
        worker.kill()
        worker.wait()
        self._process = None

    def close(self) -> None:
        with self._lock:
            if self._process is not None:
                self._stop(self._process)
