"""Predict on another runtime line: the front resolves the version, the line predicts it.

The front predict function runs the newest line. It serves compiled forms and versions of its
own line itself; a version validated on an older line (registry/lines.py) goes to that line's
predict function with the resolved name and version and the rows, and the line answers from
its own cache, resolving nothing again. Deployed, each older line is a function of its own
(functions/predict/line.py, on that line's layer), invoked with boto3's Lambda client. Locally
(RUNTIME_LINES, `make run LINES="1.8"`), LineProcess stands in for that function as the
validator's child process stands in for the validator: the line's interpreter running serve()
below, invoked like boto3's Lambda client.
"""

import io
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from registry.errors import RegistryError
from registry.inputs import NumericRows, RequestRows
from registry.manifest import ModelManifest, ServingCopy
from registry.observability import logger
from registry.validation import FRAME_HEADER, read_frame, write_frame

if TYPE_CHECKING:
    from registry.serving.predictor import Predictor

# How long the front waits for a line's answer: less than API Gateway's 29 s.
LINE_TIMEOUT_SECONDS = 25.0


class LineInvoker(Protocol):
    """What the router needs of boto3's Lambda client (or of LineProcess)."""

    def invoke(self, **kwargs: Any) -> dict[str, Any]: ...


class LineUnavailableError(RegistryError):
    """The line's predict function did not answer (it stopped, or it is not deployed)."""

    code = "line_unavailable"
    http_status = 503


def _error_of(code: str, message: str) -> RegistryError:
    """The error the line raised, as the same class here: same code, same status."""
    pending = list(RegistryError.__subclasses__())
    while pending:
        kind = pending.pop()
        if kind.code == code:
            return kind(message)
        pending += kind.__subclasses__()
    return LineUnavailableError(message)


class LineRouter:
    """Sends a resolved version's rows to the predict function of the line it belongs to."""

    def __init__(self, invokers: dict[str, LineInvoker], functions: dict[str, str]) -> None:
        """invokers and functions: each line's Lambda client (or LineProcess) and its predict
        function's name, by the line's minor."""
        self.invokers = invokers
        self.functions = functions

    def serves(self, line: str) -> bool:
        return line in self.invokers

    def predict(
        self,
        line: str,
        manifest: ModelManifest,
        rows: RequestRows,
        probabilities: bool,
        converted: ServingCopy | None = None,
    ) -> dict[str, Any]:
        """The line's answer: predictions, probabilities, cache_hit, load_ms. converted: the
        serving copy the version was converted to, as the front read the model's state."""
        payload = {
            "name": manifest.name,
            "version": manifest.version,
            "converted": None if converted is None else converted.model_dump(mode="json"),
            "rows": list(rows.rows),  # orjson writes lists, not their subclasses
            "numeric": rows.numeric,  # proved numbers here: the line does not prove them again
            "columns": None if rows.columns is None else list(rows.columns),
            "in_model_order": rows.in_model_order,
            "probabilities": probabilities,
        }
        try:
            response = self.invokers[line].invoke(
                FunctionName=self.functions[line], Payload=_json_bytes(payload)
            )
            answer: dict[str, Any] = _json_value(response["Payload"].read() or b"{}")
        except Exception as exc:  # botocore's errors: throttled, unreachable, timed out
            logger.warning(
                "line not invoked", extra={"line": line, "error_type": type(exc).__name__}
            )
            raise LineUnavailableError(
                f"the scikit-learn {line} line did not answer for version {manifest.version} of "
                f"{manifest.name!r}: retry"
            ) from None
        error = answer.get("error")
        if error is not None:
            raise _error_of(str(error.get("code")), str(error.get("message")))
        if response.get("FunctionError") or "predictions" not in answer:
            raise LineUnavailableError(
                f"the scikit-learn {line} line did not answer for version {manifest.version} of "
                f"{manifest.name!r}: retry"
            )
        return answer


class LineProcess:
    """A line's predict function, locally: its interpreter running serve(), started once
    and reused like a warm function, with this process's environment (it reads the same
    store). A process that stops, or takes longer than the timeout, is stopped; the next
    invocation starts another, as Lambda would."""

    def __init__(self, python: str, timeout: float = LINE_TIMEOUT_SECONDS) -> None:
        self.python = python
        self.timeout = timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            package_root = str(Path(__file__).resolve().parents[2])
            self._process = subprocess.Popen(
                [self.python, "-s", "-m", "registry.serving.routing"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,  # its log lines go to stderr, the server's
                env={**os.environ, "PYTHONPATH": package_root},
            )
        return self._process

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        """The line's answer, or FunctionError when it cannot start, stops or is late."""
        failed = {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(b"{}")}
        if not self._lock.acquire(timeout=self.timeout):
            return failed  # another request holds a line that does not answer
        try:
            try:
                process = self._started()
            except OSError:  # no interpreter there: RUNTIME_LINES names a wrong path
                return failed
            assert process.stdin is not None and process.stdout is not None
            try:
                write_frame(process.stdin, kwargs["Payload"])
                answer = self._read(process.stdout)
            except (OSError, TimeoutError):
                answer = None
            if answer is None:
                process.kill()
                process.wait()
                self._process = None
                return failed
            return {"StatusCode": 200, "Payload": io.BytesIO(answer)}
        finally:
            self._lock.release()

    def _read(self, stdout: Any) -> bytes | None:
        """One frame, within the timeout; None if the process closed its end."""
        deadline = time.monotonic() + self.timeout
        data = b""
        size: int | None = None
        while size is None or len(data) < FRAME_HEADER.size + size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([stdout], [], [], left)[0]:
                raise TimeoutError("the line did not answer in time")
            chunk = os.read(stdout.fileno(), 1 << 20)
            if not chunk:
                return None
            data += chunk
            if size is None and len(data) >= FRAME_HEADER.size:
                (size,) = FRAME_HEADER.unpack(data[: FRAME_HEADER.size])
        return data[FRAME_HEADER.size :]

    def close(self) -> None:
        with self._lock:
            if self._process is not None:
                self._process.kill()
                self._process.wait()
                self._process = None


def line_predictor() -> "Predictor":
    """A line's predictor, from its settings: it routes nothing further."""
    from registry.config import Settings
    from registry.registry import ModelRegistry
    from registry.serving.cache import ModelCache
    from registry.serving.native_threads import cpu_share_threads
    from registry.serving.predictor import LoadedModel, Predictor
    from registry.store import open_store

    config = Settings.from_environ()
    return Predictor(
        ModelRegistry(open_store(config.registry_uri)),
        ModelCache[LoadedModel](config.cache_max_bytes),
        alias_ttl_seconds=config.alias_ttl_seconds,
        max_instances=config.max_instances,
        pickle_policy=config.pickle_artifacts,
        native_threads=config.native_threads
        or cpu_share_threads(config.aws_lambda_function_memory_size),
        max_loaded_bytes=config.max_loaded_bytes,
    )


def serve() -> None:
    """The line's predict function, locally: answers frames on stdin until it closes."""
    predictor = line_predictor()
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed may corrupt the frames
    while (payload := read_frame(requests)) is not None:
        write_frame(answers, _json_bytes(answer_routed(predictor, _json_value(payload))))


def _json_bytes(value: Any) -> bytes:
    """orjson, several times faster than json on rows of floats (the same shortest text that
    reads back as the same double); json for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value).encode()


def _json_value(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # an integer beyond 64 bits: the json module reads it
        return json.loads(data)


def answer_routed(predictor: "Predictor", request: dict[str, Any]) -> dict[str, Any]:
    """The line's answer to what the front sent (LineRouter.predict): the predictions, or
    the caller's error."""
    values = NumericRows(request["rows"]) if request.get("numeric") else request["rows"]
    rows = RequestRows(values, request["columns"], request["in_model_order"])
    converted = request.get("converted")
    try:
        served = predictor.predict_resolved(
            request["name"],
            request["version"],
            rows,
            request["probabilities"],
            None if converted is None else ServingCopy.model_validate(converted),
        )
    except RegistryError as error:
        return {"error": {"code": error.code, "message": error.message}}
    return {
        "predictions": served.predictions,
        "probabilities": served.probabilities,
        "cache_hit": served.cache_hit,
        "load_ms": served.load_ms,
    }


if __name__ == "__main__":
    serve()
