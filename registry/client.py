"""A small Python client of the registry API, used by the `model-registry` CLI.

Requests to /models are signed with SigV4 (botocore's signer and the caller's
AWS credentials) when talking to a deployed stack; /classify sends the API key.
"""

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from typing import Any

DEFAULT_URL = "http://127.0.0.1:3000"
# One /predict request carries at most this much JSON and this many rows: Lambda takes
# 6 MB of request event, and the predict function MAX_INSTANCES rows (10,000 by default).
DEFAULT_BATCH_BYTES = 5 * 1024 * 1024
DEFAULT_BATCH_ROWS = 10_000
API_KEY_ROUTES = ("/classify", "/predict", "/invocations", "/ping")
# API Gateway and Lambda cap a request near 6 MB; base64 grows bytes by 4/3.
DEFAULT_INLINE_LIMIT = 4 * 1024 * 1024
UPLOAD_CHUNK_BYTES = 256 * 1024
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")

Progress = Callable[[int, int], None]


class ApiError(Exception):
    """An error answer of the API: its status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


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
        """sign=None signs exactly when the URL is an API Gateway (execute-api) host."""
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
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.session import Session

        session = Session()
        credentials = self._credentials or session.get_credentials()
        if credentials is None:
            raise ApiError(0, "no_credentials", "no AWS credentials found to sign the request")
        region = self.region or session.get_config_variable("region") or "us-east-1"
        request = AWSRequest(method=method, url=url, data=data or b"")
        request.headers["Content-Type"] = "application/json"
        SigV4Auth(credentials, "execute-api", region).add_auth(request)
        return dict(request.headers.items())

    def request(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> Any:
        """Call a route; returns the decoded JSON answer or raises ApiError."""
        params = {key: value for key, value in (query or {}).items() if value is not None}
        url = self.url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if path.startswith("/models") and self.sign:
            headers = self._signed_headers(method, url, data)
        if path.startswith(API_KEY_ROUTES) and self.api_key:
            headers["x-api-key"] = self.api_key
        call = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(call, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = {}
            raise ApiError(
                error.code,
                str(answer.get("code", "http_error")),
                str(answer.get("message", raw[:200].decode(errors="replace"))),
            ) from error

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
            raise ApiError(error.code, "upload_failed", error.read()[:300].decode()) from error

    # Routes ----------------------------------------------------------------

    def register(
        self,
        name: str,
        artifact: bytes,
        description: str = "",
        tags: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
        progress: Progress | None = None,
        input_example: list[Any] | None = None,
    ) -> Any:
        """Inline (base64) for small artifacts, the presigned upload flow for large ones.

        input_example: a few rows the model must predict on; they complete its signature.
        """
        body: dict[str, Any] = {
            "name": name,
            "description": description,
            "tags": tags or {},
            "metrics": metrics or {},
        }
        if input_example is not None:
            body["input_example"] = input_example
        if len(artifact) <= self.inline_limit:
            body["artifact"] = base64.b64encode(artifact).decode()
        else:
            upload = self.request("POST", f"/models/{_quote(name)}/uploads")
            self.put_upload(upload["upload_url"], artifact, progress)
            body["upload_key"] = upload["upload_key"]
        return self.request("POST", "/models", body)

    def list_models(self) -> Any:
        return self.request("GET", "/models")

    def show(self, name: str, version: int | None = None) -> Any:
        if version is not None:
            return self.request("GET", f"/models/{_quote(name)}/versions/{version}")
        return self.request("GET", f"/models/{_quote(name)}")

    def set_alias(self, name: str, alias: str, version: int) -> Any:
        path = f"/models/{_quote(name)}/aliases/{_quote(alias)}"
        return self.request("PUT", path, {"version": version})

    def delete_alias(self, name: str, alias: str) -> Any:
        return self.request("DELETE", f"/models/{_quote(name)}/aliases/{_quote(alias)}")

    def archive(self, name: str, version: int) -> Any:
        return self.request("DELETE", f"/models/{_quote(name)}/versions/{version}")

    def classify(
        self,
        name: str,
        instances: list[Any],
        version: int | None = None,
        alias: str | None = None,
        probabilities: bool = False,
    ) -> Any:
        body = {"instances": instances, "probabilities": probabilities}
        query = {"model": name, "version": version, "alias": alias}
        return self.request("POST", "/classify", body, query)

    def predict(
        self,
        name: str,
        rows: Iterable[Any],
        version: int | None = None,
        alias: str | None = None,
        probabilities: bool = False,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> dict[str, Any]:
        """Predictions for any number of rows, sent in batches the API takes, in order.

        Rows are lists of values or objects of column values. Every batch after the first
        asks for the version that answered the first, so one version predicts every row
        even if an alias moves meanwhile.
        """
        answer: dict[str, Any] = {"predictions": []}
        for batch in batches(rows, batch_bytes, batch_rows):
            body = {"instances": batch, "probabilities": probabilities}
            query = {"model": name, "version": version, "alias": None if version else alias}
            part = self.request("POST", "/predict", body, query)
            version = part["version"]
            answer.update(model=part["model"], version=version)
            answer["predictions"].extend(part["predictions"])
            if probabilities:
                answer.setdefault("probabilities", []).extend(part["probabilities"])
                answer["classes"] = part["classes"]
        return answer


def batches(rows: Iterable[Any], max_bytes: int, max_rows: int) -> Iterator[list[Any]]:
    """Consecutive lists of rows, each within max_rows and (as JSON) about max_bytes."""
    batch: list[Any] = []
    size = 0
    for row in rows:
        row_size = len(json.dumps(row)) + 1
        if batch and (size + row_size > max_bytes or len(batch) >= max_rows):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_size
    if batch:
        yield batch


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")
