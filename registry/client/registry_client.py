"""The Python client of the registry API, for notebooks and for the `model-registry` CLI.

    client = RegistryClient("http://127.0.0.1:3000")
    client.register(pipeline, "churn", input_example=frame.head(5))
    client.predict("churn", frame)          # a pandas Series, index kept; numpy for arrays

docs/client.md is its guide. Requests to /models and /runtime are signed with SigV4
(botocore's signer and the caller's AWS credentials) when talking to a deployed stack;
the predict routes send the API key. Management methods return the API's JSON answer.
"""

import base64
import hashlib
import http.client
import importlib.metadata
import io
import json
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from registry.client.next_steps import LOCAL_HOSTS, ROUTE_SEGMENTS, Voice, near_names, next_step

DEFAULT_URL = "http://127.0.0.1:3000"
# One /predict request carries at most this much JSON and this many rows: Lambda takes
# 6 MB of request event, and the predict function MAX_INSTANCES rows (10,000 by default).
DEFAULT_BATCH_BYTES = 5 * 1024 * 1024
DEFAULT_BATCH_ROWS = 10_000
# Batches in flight at once: the client encodes the next while the API answers the last
# (deployed, Lambda runs them side by side). Measured in `make bench` (scripts/bench/cli.py).
DEFAULT_CONNECTIONS = 4
API_KEY_ROUTES = ("/classify", "/predict", "/invocations", "/ping")
# API Gateway and Lambda cap a request near 6 MB; base64 grows bytes by 4/3.
DEFAULT_INLINE_LIMIT = 4 * 1024 * 1024
UPLOAD_CHUNK_BYTES = 256 * 1024
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")

Progress = Callable[[int, int], None]


class ApiError(Exception):
    """An error answer of the API (its status, code and message), or a request that got none
    (status 0). `facts` are what the client learnt to say what to do next (the names, versions
    and aliases that exist); `next_step()` words it, as a Python call or as a command."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        facts: dict[str, Any] | None = None,
        topic: str | None = None,
    ) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.facts = facts or {}
        self.topic = topic or code  # which next step fits: usually the code's

    def next_step(self, voice: Voice = "python") -> str:
        return next_step(self.topic, self.facts, voice)

    def heading(self) -> str:
        """'404 model_not_found'; the code alone when no answer came."""
        return f"{self.status} {self.code}" if self.status else self.code

    def __str__(self) -> str:
        step = self.next_step()
        return f"{self.heading()}: {self.message}" + (f"\nnext: {step}" if step else "")


class RegistryClient:
    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        sign: bool | None = None,
        region: str | None = None,
        credentials: Any = None,
        timeout: float = 60.0,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
    ) -> None:
        """sign=None signs exactly when the URL is an API Gateway (execute-api) host.

        Raises ApiError (bad_url, bad_api_key) for a URL or key no request could carry."""
        _check_url(url)
        if api_key is not None and not (api_key.isascii() and api_key.isprintable()):
            message = "the API key holds characters an HTTP header cannot carry"
            raise ApiError(
                0, "bad_api_key", message, topic="forbidden", facts={"api_key_route": True}
            )
        self.url = url.rstrip("/")
        self.api_key = api_key
        host = urllib.parse.urlsplit(self.url).hostname or ""
        found = _EXECUTE_API_HOST.match(host)
        self.sign = bool(found) if sign is None else sign
        self.region = region or (found.group(1) if found else None)
        self._credentials = credentials
        self.timeout = timeout
        self.inline_limit = inline_limit

    # Transport -------------------------------------------------------------

    def _signed_headers(self, method: str, url: str, data: bytes | None) -> dict[str, str]:
        try:
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.session import Session
        except ImportError:
            raise ApiError(
                0,
                "botocore_missing",
                "signing requests to a deployed stack needs botocore: "
                "pip install 'model-registry[aws]' (or boto3)",
            ) from None

        from botocore.exceptions import BotoCoreError

        try:
            session = Session()
            credentials = self._credentials or session.get_credentials()
            if credentials is None:
                raise ApiError(0, "no_credentials", "no AWS credentials found to sign the request")
            region = self.region or session.get_config_variable("region") or "us-east-1"
            request = AWSRequest(method=method, url=url, data=data or b"")
            request.headers["Content-Type"] = "application/json"
            SigV4Auth(credentials, "execute-api", region).add_auth(request)
        except BotoCoreError as error:  # a missing profile, an expired SSO token, ...
            message = f"cannot sign the request with your AWS credentials: {error}"
            raise ApiError(0, "no_credentials", message) from None
        return dict(request.headers.items())

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Any:
        """Call a route; returns the decoded JSON answer or raises ApiError."""
        data = json.dumps(body).encode() if body is not None else None
        return self.send(method, path, data, query, extra_headers)

    def send(
        self,
        method: str,
        path: str,
        data: bytes | None,
        query: dict[str, Any] | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Any:
        """Call a route with a body already encoded as JSON."""
        params = {key: value for key, value in (query or {}).items() if value is not None}
        url = self.url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        headers = {"Content-Type": "application/json"}
        if not path.startswith(API_KEY_ROUTES) and self.sign:
            headers = self._signed_headers(method, url, data)
        if path.startswith(API_KEY_ROUTES) and self.api_key:
            headers["x-api-key"] = self.api_key
        headers.update(extra_headers or {})
        call = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(call, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise self._answer_error(error, path) from None
        except (urllib.error.URLError, OSError) as error:
            raise self._unreachable(error) from None
        except http.client.HTTPException:  # a server that does not speak HTTP, or hung up
            message = f"{self.url} answered {path} with something that is not an HTTP answer"
            raise ApiError(0, "not_a_registry", message) from None
        try:
            return json.loads(raw or b"null")
        except ValueError:
            message = f"{self.url} answered {path} with something that is not JSON"
            raise ApiError(0, "not_a_registry", message) from None

    def _answer_error(self, error: urllib.error.HTTPError, path: str) -> ApiError:
        try:
            answer = json.loads(error.read())
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            message = f"{self.url} answered {path} with {error.code} and no JSON error"
            return ApiError(error.code, "http_error", message, topic="not_a_registry")
        code = str(answer.get("code", "http_error"))
        message = str(answer.get("message", ""))
        base, segment = _route_suffix(self.url)
        if error.code == 404 and segment:  # a URL copied with its route: /models/models
            return ApiError(404, code, message, {"base": base, "segment": segment}, "wrong_url")
        if error.code == 403 and code != "MISSING_AUTHENTICATION_TOKEN":
            facts = {"api_key_route": path.startswith(API_KEY_ROUTES)}
            return ApiError(403, code, message, facts, "forbidden")
        return ApiError(error.code, code, message)

    def _unreachable(self, error: OSError, where: str | None = None) -> ApiError:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        if isinstance(reason, ConnectionRefusedError):
            why = "nothing is listening there"
        elif isinstance(reason, socket.gaierror):
            why = "its host name does not resolve"
        elif isinstance(reason, TimeoutError):
            why = f"no answer within {self.timeout:g} s"
        elif isinstance(reason, ConnectionError):
            why = "the connection was closed before an answer came"
        else:
            why = re.sub(r"^\[Errno -?\d+\] ", "", str(getattr(reason, "strerror", None) or reason))
        host = urllib.parse.urlsplit(where or self.url).hostname or ""
        facts = {"local": host in LOCAL_HOSTS}
        return ApiError(0, "unreachable", f"cannot reach {where or self.url}: {why}", facts)

    @contextmanager
    def _explaining(
        self, name: str, version: int | None = None, alias: str | None = None, **facts: Any
    ) -> Iterator[None]:
        """Add to an error about this model what exists instead, for its next step."""
        try:
            yield
        except ApiError as error:
            if error.topic in _ABOUT_A_MODEL:
                known = {"name": name, "version": version, "alias": alias, **facts}
                error.facts.update(self._what_exists(error.topic, name))
                error.facts.update({key: val for key, val in known.items() if val is not None})
            raise

    def _what_exists(self, topic: str, name: str) -> dict[str, Any]:
        """The model names, or the model's versions and aliases; nothing if they cannot be read."""
        try:
            if topic == "model_not_found":
                names = [model["name"] for model in self.list_models()["models"]]
                return {"names": names, "near": near_names(name, names)}
            page = self.request("GET", f"/models/{_quote(name)}")
        except ApiError:
            return {}
        rows = page.get("versions", [])
        return {
            "versions": [row["version"] for row in rows],
            "active": [row["version"] for row in rows if row.get("status") == "active"],
            "aliases": page.get("aliases") or {},
        }

    def put_upload(self, upload_url: str, data: bytes, progress: Progress | None = None) -> None:
        """PUT the bytes to a presigned upload URL, reporting progress as they go."""

        def chunks() -> Iterator[bytes]:
            for offset in range(0, len(data), UPLOAD_CHUNK_BYTES):
                chunk = data[offset : offset + UPLOAD_CHUNK_BYTES]
                yield chunk
                if progress is not None:
                    progress(offset + len(chunk), len(data))

        call = urllib.request.Request(
            upload_url,
            data=chunks(),
            method="PUT",
            headers={"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"},
        )
        try:
            with urllib.request.urlopen(call, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as error:
            text = error.read()[:300].decode(errors="replace")
            raise ApiError(error.code, "upload_failed", text) from None
        except (urllib.error.URLError, OSError) as error:
            raise self._unreachable(error, where=upload_url.split("?", 1)[0]) from None
        except http.client.HTTPException:
            message = "the upload URL answered with something that is not an HTTP answer"
            raise ApiError(0, "upload_failed", message) from None

    # Registering -----------------------------------------------------------

    def runtime(self) -> Any:
        """The Python, scikit-learn, numpy and joblib versions the registry loads models with."""
        return self.request("GET", "/runtime")

    def register(
        self,
        model: Any,
        name: str,
        description: str = "",
        tags: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
        input_example: Any = None,
        progress: Progress | None = None,
        runtime: str | None = None,
        reference: Any = None,
    ) -> Any:
        """Register a fitted estimator (serialised in memory with joblib) or a file's bytes.

        input_example: a few rows (a DataFrame, an array, or a list of rows) the model must
        predict on; they complete its signature. Bytes an active version already holds are
        not uploaded again. A progress bar shows on a terminal for uploads, unless progress
        is given.

        reference: rows of the inputs it was trained or validated on (up to 20,000), kept with
        the version: what `monitor` compares captured inputs with.

        runtime: the scikit-learn the model was saved with, which picks the runtime line that
        validates and serves it (a pickle names its own); by default this environment's.
        """
        artifact = model if isinstance(model, bytes) else _joblib_bytes(model)
        body: dict[str, Any] = {
            "description": description,
            "tags": tags or {},
            "metrics": metrics or {},
        }
        runtime = runtime or installed_sklearn_version()
        if runtime is not None:
            body["runtime"] = runtime
        if input_example is not None:
            body["input_example"] = _json_rows(input_example)
        registered = self._register_artifact(name, artifact, body, progress)
        if reference is not None:
            self.put_reference(name, registered["version"], reference)
        return registered

    def _register_artifact(
        self, name: str, artifact: bytes, body: dict[str, Any], progress: Progress | None
    ) -> Any:
        if len(artifact) <= self.inline_limit:
            body["artifact"] = base64.b64encode(artifact).decode()
            return self._register(name, body)
        try:
            return self._register(name, {**body, "sha256": _sha256(artifact)})
        except ApiError as error:
            # not registered yet; or a registry older than registration by sha256
            if error.code not in ("artifact_not_registered", "invalid_request"):
                raise
        upload = self.request("POST", f"/models/{_quote(name)}/uploads")
        if progress is None and sys.stderr.isatty():
            progress = terminal_progress
        self.put_upload(upload["upload_url"], artifact, progress)
        return self._register(name, {**body, "upload_key": upload["upload_key"]})

    def put_reference(self, name: str, version: int, rows: Any) -> Any:
        """Keep reference rows with the version (a DataFrame, an array, or a list of rows)."""
        path = f"/models/{_quote(name)}/versions/{version}/reference"
        with self._explaining(name, version):
            return self.request("PUT", path, {"rows": _json_rows(rows)})

    def reference(self, name: str, version: int) -> list[Any] | None:
        """The version's reference rows, None if none were kept."""
        path = f"/models/{_quote(name)}/versions/{version}/reference"
        try:
            with self._explaining(name, version):
                rows: list[Any] = self.request("GET", path)["rows"]
        except ApiError as error:
            if error.code == "reference_not_found":
                return None
            raise
        return rows

    def _register(self, name: str, body: dict[str, Any]) -> Any:
        """POST /models/{name}/versions, which IAM can allow by name; POST /models (the name in
        the body) for a registry older than that route."""
        try:
            return self.request("POST", f"/models/{_quote(name)}/versions", body)
        except ApiError as error:
            if not _route_missing(error):
                raise
        return self.request("POST", "/models", {"name": name, **body})

    # Reading and managing ----------------------------------------------------

    def list_models(self) -> Any:
        return self.request("GET", "/models")

    def show(self, name: str, version: int | None = None) -> Any:
        """A model's versions and aliases; with version, that version's manifest."""
        with self._explaining(name, version):
            if version is not None:
                return self.request("GET", f"/models/{_quote(name)}/versions/{version}")
            return self.request("GET", f"/models/{_quote(name)}")

    def edit(
        self,
        name: str,
        version: int,
        description: str | None = None,
        tags: dict[str, str | None] | None = None,
        metrics: dict[str, float | None] | None = None,
    ) -> Any:
        """Replace the description; set tags and metrics, removing those given None."""
        body = {"description": description, "tags": tags, "metrics": metrics}
        edit = {key: value for key, value in body.items() if value is not None}
        with self._explaining(name, version):
            return self.request("PATCH", f"/models/{_quote(name)}/versions/{version}", edit)

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int | dict[int, int],
        salt: str | None = None,
        shadow: int | None = None,
    ) -> Any:
        """Point the alias at a version, or split its traffic by weight: {7: 90, 8: 10}
        (a new salt reshuffles which routing key goes to which version); shadow: a version
        that never answers, for shadow_report."""
        path = f"/models/{_quote(name)}/aliases/{_quote(alias)}"
        body: dict[str, Any] = {"shadow": shadow} if shadow is not None else {}
        if isinstance(version, dict):
            body["weights"] = {str(key): value for key, value in version.items()}
            if salt is not None:
                body["salt"] = salt
            with self._explaining(name, alias=alias):
                return self.request("PUT", path, body)
        with self._explaining(name, version, alias):
            return self.request("PUT", path, {"version": version, **body})

    def shadow_report(
        self,
        name: str,
        alias: str,
        since: str | None = None,
        work_dir: str | Path | None = None,
        input_uri: str | None = None,
        output_uri: str | None = None,
    ) -> dict[str, Any]:
        """The alias's captured rows replayed through its shadow version by a batch job,
        compared with what the alias's versions answered: agreement, confusion or
        differences, rows that differ most. The rows and answers go through work_dir against
        a local server, or through S3 (input_uri, output_uri) against a deployed stack."""
        from registry.client.shadow import shadow_report

        return shadow_report(self, name, alias, since, work_dir, input_uri, output_uri)

    # Captured predictions ---------------------------------------------------------

    def set_capture_share(self, name: str, percent: float | None) -> Any:
        """Capture this share of the model's predict requests (None: the deployment's)."""
        with self._explaining(name):
            path = f"/models/{_quote(name)}/capture"
            return self.request("PUT", path, {"sample_percent": percent})

    def captured_records(
        self, name: str, version: int | None = None, since: "datetime | str | None" = None
    ) -> list[dict[str, Any]]:
        """Every captured record of the model (of one version), from `since` on, oldest first."""
        when = since.isoformat() if isinstance(since, datetime) else since
        records: list[dict[str, Any]] = []
        after = None
        with self._explaining(name, version):
            while True:
                query = {"version": version, "since": when, "after": after}
                page = self.request("GET", f"/models/{_quote(name)}/captured", query=query)
                records += page["records"]
                after = page.get("after")
                if after is None:
                    return records

    def capture(
        self, name: str, version: int | None = None, since: "datetime | str | None" = None
    ) -> Any:
        """Captured predictions as a pandas DataFrame, a row per captured row: its time, event
        id, version, alias and routing key, its values by column, the prediction, and a
        probability_<class> column per class when the request asked for them."""
        import pandas

        return pandas.DataFrame(captured_table(self.captured_records(name, version, since)))

    def delete_alias(self, name: str, alias: str) -> Any:
        with self._explaining(name, alias=alias):
            return self.request("DELETE", f"/models/{_quote(name)}/aliases/{_quote(alias)}")

    def archive(self, name: str, version: int) -> Any:
        with self._explaining(name, version):
            return self.request("DELETE", f"/models/{_quote(name)}/versions/{version}")

    def restore(self, name: str, version: int) -> Any:
        with self._explaining(name, version):
            return self.request("POST", f"/models/{_quote(name)}/versions/{version}/restore")

    def convert(self, name: str, versions: Iterable[int] | None = None) -> dict[str, Any]:
        """Give joblib versions registered before predict stopped unpickling a skops (or
        compiled) serving copy (POST .../versions/{n}/convert): the versions named, or every
        version of the model. Returns which were converted, which needed nothing, and why
        any other was refused."""
        if versions is None:
            with self._explaining(name):
                versions = self._all_versions(name)
        summary: dict[str, Any] = {"name": name, "converted": [], "unchanged": [], "refused": {}}
        for version in versions:
            path = f"/models/{_quote(name)}/versions/{version}/convert"
            try:
                with self._explaining(name, version):
                    answer = self.request("POST", path)
            except ApiError as error:
                if error.code not in ("pickle_refused", "invalid_artifact"):
                    raise
                summary["refused"][str(version)] = error.message
                continue
            summary["converted" if answer["converted"] else "unchanged"].append(version)
        return summary

    def _all_versions(self, name: str) -> list[int]:
        return [row["version"] for row in self._version_rows(name)]

    def _version_rows(self, name: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self.request("GET", f"/models/{_quote(name)}", query={"after": after or None})
            rows += page["versions"]
            if page.get("next_after") is None:
                return rows
            after = page["next_after"]

    # Runtime lines ---------------------------------------------------------

    def runtime_check(self, line: str, names: Iterable[str] | None = None) -> dict[str, Any]:
        """Check the active versions that older runtime lines serve (of these models, or of
        every model) against a newer line, one request a version (POST /models/{name}/
        versions/{n}/runtime-check): the line re-validates each and serves those that answer
        their check rows the same, bit for bit. Returns {"line", "versions": [each version's
        check], "lines": [each line and the active versions it still serves]}."""
        if names is None:
            names = [model["name"] for model in self.list_models()["models"]]
        checked = []
        for name in names:
            with self._explaining(name):
                rows = self._version_rows(name)
            for row in rows:
                serving = row.get("serving_line")
                if row["status"] != "active" or serving is None or _minor(serving) >= _minor(line):
                    continue
                path = f"/models/{_quote(name)}/versions/{row['version']}/runtime-check"
                with self._explaining(name, row["version"]):
                    checked.append(self.request("POST", path, {"line": line}))
        return {"line": line, "versions": checked, "lines": self.runtime_lines()["lines"]}

    def runtime_lines(self) -> Any:
        """Every runtime line, and the active versions each serves: remove only a line that
        serves none."""
        return self.request("GET", "/runtime/lines")

    # Batch jobs --------------------------------------------------------------

    def batch(
        self,
        name: str,
        input: str,
        output: str,
        format: str | None = None,
        version: int | None = None,
        alias: str | None = None,
        probabilities: bool = False,
        id_column: str | None = None,
        job_id: str | None = None,
        wait: bool = False,
        progress: Callable[[dict[str, Any]], None] | None = None,
        poll_seconds: float = 1.0,
    ) -> dict[str, Any]:
        """Score every row of input (s3://..., or against a local server a path) with one
        version, resolved now, into output: one file per part, in input order. format:
        "csv" or "jsonl" (default: from the input's name). With wait, polls the job until it
        ends (progress sees each status) and returns its last status."""
        local = not input.startswith("s3://")
        body = {
            "input": str(Path(input).resolve()) if local else input,
            "output": str(Path(output).resolve()) + "/"
            if not output.startswith("s3://")
            else output,
            "format": format
            or ("jsonl" if input.rstrip("/").endswith((".jsonl", ".json")) else "csv"),
            "version": version,
            "alias": alias,
            "probabilities": probabilities or None,
            "id_column": id_column,
            "job_id": job_id,
        }
        body = {key: value for key, value in body.items() if value is not None}
        with self._explaining(name, version):
            job = self.request("POST", f"/models/{_quote(name)}/batch-jobs", body)
        if not wait:
            return dict(job)
        return self.wait_for_batch(job["job_id"], progress, poll_seconds)

    def batch_status(self, job_id: str) -> Any:
        """A job's status, its rows read, scored and failed, its outputs and first errors."""
        return self.request("GET", f"/batch-jobs/{_quote(job_id)}")

    def wait_for_batch(
        self,
        job_id: str,
        progress: Callable[[dict[str, Any]], None] | None = None,
        poll_seconds: float = 1.0,
    ) -> dict[str, Any]:
        while True:
            status = dict(self.batch_status(job_id))
            if progress is not None:
                progress(status)
            if status["status"] in ("SUCCEEDED", "FAILED"):
                return status
            time.sleep(poll_seconds)

    def delete_model(self, name: str, force: bool = False) -> Any:
        """Every version, alias and object of the model; force deletes it while aliased."""
        with self._explaining(name, deleting=True):
            return self.request("DELETE", f"/models/{_quote(name)}", query={"force": force or None})

    # Predicting ----------------------------------------------------------------

    def predict(
        self,
        name: str,
        rows: Any,
        version: int | None = None,
        alias: str | None = None,
        routing_key: str | None = None,
    ) -> Any:
        """The model's predictions: a pandas Series (same index) for a DataFrame, else numpy.
        routing_key: which of a weighted alias's versions answers (the same key, the same
        version); every row goes to that one version."""
        answer = self.predict_rows(name, _json_table(rows), version, alias, routing_key=routing_key)
        predictions = _numpy().asarray(answer["predictions"])
        if _is_dataframe(rows):
            import pandas

            if predictions.ndim > 1:
                return pandas.DataFrame(predictions, index=rows.index)
            return pandas.Series(predictions, index=rows.index, name=name)
        return predictions

    def predict_proba(
        self,
        name: str,
        rows: Any,
        version: int | None = None,
        alias: str | None = None,
        routing_key: str | None = None,
    ) -> Any:
        """Class probabilities: a DataFrame with a column per class for a DataFrame, else numpy."""
        answer = self.predict_rows(
            name, _json_table(rows), version, alias, probabilities=True, routing_key=routing_key
        )
        probabilities = _numpy().asarray(answer["probabilities"], dtype=float)
        if _is_dataframe(rows) and probabilities.ndim == 2:
            import pandas

            return pandas.DataFrame(probabilities, index=rows.index, columns=answer["classes"])
        return probabilities

    def classify(
        self,
        name: str,
        instances: list[Any],
        version: int | None = None,
        alias: str | None = None,
        probabilities: bool = False,
        routing_key: str | None = None,
    ) -> Any:
        """One request to the blog's route, as sent: the API's answer."""
        body = {"instances": instances, "probabilities": probabilities}
        query = {"model": name, "version": version, "alias": alias}
        with self._explaining(name, version, alias):
            return self.request("POST", "/classify", body, query, _routed_by(routing_key))

    def predict_rows(
        self,
        name: str,
        rows: "Sequence[Any] | EncodedRows",
        version: int | None = None,
        alias: str | None = None,
        probabilities: bool = False,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        columns: Sequence[str] | None = None,
        connections: int = DEFAULT_CONNECTIONS,
        routing_key: str | None = None,
    ) -> dict[str, Any]:
        """The API's answer for any number of rows, sent in batches it takes, in order.

        Rows are lists of values or objects of column values; with `columns`, lists of values
        named by them, sent as pandas' split form (`dataframe_split`), which names each column
        once. A table read column by column comes as EncodedRows (encoded_columns): each
        row's JSON text, made once. The first batch is sent alone; every batch after it asks
        for the version that answered it, so one version predicts every row even if an alias
        moves meanwhile, and goes over up to `connections` connections at once.
        """
        if not isinstance(rows, EncodedRows):
            rows = EncodedRows(columns, [json.dumps(row) for row in rows])
        batches = _encoded_batches(rows, probabilities, batch_bytes, batch_rows)
        answer: dict[str, Any] = {"predictions": []}

        def take(part: Any) -> None:
            if not isinstance(part, dict) or "predictions" not in part:
                message = f"{self.url} answered /predict without predictions"
                raise ApiError(0, "not_a_registry", message)
            answer.update(model=part["model"], version=part["version"])
            answer["predictions"].extend(part["predictions"])
            if probabilities:
                answer.setdefault("probabilities", []).extend(part["probabilities"])
                answer["classes"] = part["classes"]

        with self._explaining(name, version, alias):
            query = {"model": name, "version": version, "alias": None if version else alias}
            first = next(batches, None)
            if first is None:
                raise ApiError(0, "no_rows", "no rows to predict: send at least one row")
            take(self.send("POST", "/predict", first, query, _routed_by(routing_key)))
            query = {"model": name, "version": answer["version"]}
            pool = ThreadPoolExecutor(max_workers=max(connections, 1))
            pending: deque[Future[Any]] = deque()
            try:
                for body in batches:
                    pending.append(pool.submit(self.send, "POST", "/predict", body, query))
                    if len(pending) > connections:  # encode ahead of the answers, not all
                        take(_counted_from(pending.popleft(), len(answer["predictions"])))
                while pending:
                    take(_counted_from(pending.popleft(), len(answer["predictions"])))
            finally:  # an error or Ctrl-C: no batch still queued is sent
                pool.shutdown(wait=False, cancel_futures=True)
        return answer


def captured_table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A row per captured row: what it was asked (its columns as they were sent) and
    answered, with the request it came in."""
    table = []
    for record in records:
        metadata = record.get("eventMetadata") or {}
        probabilities = record.get("probabilities")
        classes = record.get("classes") or []
        for index, (row, prediction) in enumerate(
            zip(record.get("rows", []), record.get("predictions", []), strict=False)
        ):
            line = {
                "time": metadata.get("inferenceTime"),
                "event_id": metadata.get("eventId"),
                "version": record.get("version"),
                "alias": record.get("alias"),
                "routing_key": record.get("routing_key"),
                **row,
                "prediction": prediction,
            }
            if probabilities is not None and index < len(probabilities):
                scores = probabilities[index]
                if isinstance(scores, list) and len(scores) == len(classes):
                    named = zip(classes, scores, strict=True)
                    line.update({f"probability_{label}": score for label, score in named})
            table.append(line)
    return table


def _routed_by(routing_key: str | None) -> dict[str, str] | None:
    """The header that picks a weighted alias's version (the API's x-routing-key)."""
    return {"x-routing-key": routing_key} if routing_key is not None else None


def terminal_progress(sent: int, total: int) -> None:
    """An upload's progress bar on stderr, redrawn in place."""
    width = 30
    filled = width * sent // max(total, 1)
    sys.stderr.write(
        f"\ruploading [{'#' * filled}{'.' * (width - filled)}] "
        f"{100 * sent // max(total, 1):3d}% {sent / 1e6:.1f}/{total / 1e6:.1f} MB"
    )
    if sent >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def installed_sklearn_version() -> str | None:
    """The scikit-learn installed here (read from its metadata, not imported), if any."""
    try:
        return importlib.metadata.version("scikit-learn")
    except importlib.metadata.PackageNotFoundError:
        return None


def _joblib_bytes(estimator: Any) -> bytes:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _numpy() -> Any:
    import numpy

    return numpy


def _is_dataframe(rows: Any) -> bool:
    return type(rows).__name__ == "DataFrame" and hasattr(rows, "to_dict")


def _json_table(rows: Any) -> "EncodedRows":
    """A DataFrame with named columns as pandas' split form (its column names once, and
    each row's values), as MLflow's client sends one: a model fitted without names takes
    them by position, as scikit-learn does. Any other rows as _json_rows makes them."""
    if _is_dataframe(rows) and type(rows.columns).__name__ != "RangeIndex":
        names = [str(column) for column in rows.columns]
        values = [list(record.values()) for record in _json_rows(rows)]
        return EncodedRows(names, [json.dumps(row) for row in values])
    return EncodedRows(None, [json.dumps(row) for row in _json_rows(rows)])


def _json_rows(rows: Any) -> list[Any]:
    """Rows as JSON takes them: a DataFrame's records (missing values null), an array's
    lists, or the rows as given. Floats keep every bit: json writes their shortest repr.

    A DataFrame whose columns were never named (0, 1, ...) is sent as positional rows, as
    the array it stands for. Raises ValueError for what JSON cannot carry (infinities,
    dates) or what is not rows (one value, a 1-D array).
    """
    if type(rows).__name__ == "Series" and hasattr(rows, "to_frame"):
        rows = rows.to_frame()
    if _is_dataframe(rows):
        if type(rows.columns).__name__ == "RangeIndex":
            return _json_rows(rows.to_numpy(dtype=object))
        frame = rows.astype(object).where(rows.notna(), None)
        return [
            {str(column): _plain(value, column) for column, value in record.items()}
            for record in frame.to_dict(orient="records")
        ]
    if hasattr(rows, "tolist") and hasattr(rows, "ndim"):
        if rows.ndim != 2:
            raise ValueError(
                f"rows must be 2-D (one list of values per row), got {rows.ndim}-D: "
                "for one row, send row.reshape(1, -1)"
            )
        return [[_plain(value, index) for index, value in enumerate(row)] for row in rows.tolist()]
    return list(rows)


def _plain(value: Any, column: Any) -> Any:
    """A numpy scalar as the Python value JSON writes; NaN as null; what JSON cannot carry
    refused, naming its column."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float):
        if value != value:
            return None
        if value in (float("inf"), float("-inf")):
            raise ValueError(f"column {column!r} holds {value}: JSON has no infinity")
    elif value is not None and not isinstance(value, (bool, int, str)):
        raise ValueError(
            f"column {column!r} holds a {type(value).__name__}: send numbers, strings, "
            "booleans or missing values (convert dates to numbers or strings first)"
        )
    return value


@dataclass(frozen=True)
class EncodedRows:
    """Rows as the JSON text of each, with the names of their values when they are lists."""

    columns: Sequence[str] | None
    texts: list[str]


def encoded_columns(names: Sequence[str], tokens: Sequence[Sequence[str]]) -> EncodedRows:
    """A table given column by column as the JSON text of each value (json_tokens), joined
    into each row's text once: much less work than encoding row by row."""
    return EncodedRows(list(names), [f"[{','.join(row)}]" for row in zip(*tokens, strict=True)])


def json_tokens(values: Sequence[Any]) -> list[str]:
    """The JSON text of each value, each distinct value written once (json.dumps: a float's
    shortest repr, which keeps every bit)."""
    try:
        written = {value: json.dumps(value) for value in set(values)}
        return list(map(written.__getitem__, values))
    except (TypeError, KeyError):  # unhashable values, or NaNs that are not one object
        return [json.dumps(value) for value in values]


def _encoded_batches(
    rows: EncodedRows, probabilities: bool, max_bytes: int, max_rows: int
) -> Iterator[bytes]:
    """The /predict bodies for consecutive rows, each within max_rows and max_bytes."""
    if rows.columns is not None:
        names = json.dumps(list(rows.columns))
        head = f'{{"dataframe_split": {{"columns": {names}, "data": ['
        tail = "]}"
    else:
        head, tail = '{"instances": [', "]"
    tail += ', "probabilities": true}' if probabilities else "}"
    room = max_bytes - len(head) - len(tail)
    batch: list[str] = []
    size = 0
    for text in rows.texts:
        length = len(text) if text.isascii() else len(text.encode())  # bytes, not characters
        if batch and (size + length + 1 > room or len(batch) >= max_rows):
            yield (head + ",".join(batch) + tail).encode()
            batch, size = [], 0
        batch.append(text)
        size += length + 1
    if batch:
        yield (head + ",".join(batch) + tail).encode()


def _counted_from(batch: "Future[Any]", first_row: int) -> Any:
    """A batch's answer; its error's row numbers counted from the input's first row."""
    try:
        return batch.result()
    except ApiError as error:
        if first_row and error.code in ("invalid_input", "invalid_request"):
            error.message = re.sub(
                r"\brow (\d+)\b", lambda found: f"row {int(found[1]) + first_row}", error.message
            )
        raise


def _check_url(url: str) -> None:
    """Refuse, before any request, a URL that is not http(s)://host[:port][/stage]."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(0, "bad_url", f"{url!r} is not an http(s) URL of the API")
    if any(character.isspace() for character in url) or not url.isascii():
        raise ApiError(0, "bad_url", f"{url!r} holds spaces or characters a URL cannot carry")


_ABOUT_A_MODEL = {
    "model_not_found",
    "version_not_found",
    "version_archived",
    "alias_not_found",
    "version_needs_conversion",
    "version_in_use",
}


def _route_suffix(url: str) -> tuple[str, str]:
    """(the base URL, the route segment) when a URL ends in a route: .../models."""
    path = urllib.parse.urlsplit(url).path.rstrip("/")
    head, _, last = path.rpartition("/")
    if last not in ROUTE_SEGMENTS:
        return "", ""
    return url.rstrip("/")[: -len(path)] + head, last


def _route_missing(error: ApiError) -> bool:
    """A route the registry does not have: 404 locally, API Gateway's 403 deployed."""
    return error.code in ("route_not_found", "MISSING_AUTHENTICATION_TOKEN")


def _minor(line: str) -> tuple[int, ...]:
    """(1, 10) of "1.10"; a line that is not one sorts first."""
    parts = line.split(".")
    return tuple(int(part) for part in parts) if all(part.isdigit() for part in parts) else ()


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")
