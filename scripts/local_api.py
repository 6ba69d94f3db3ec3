"""Serve the Lambda handlers over HTTP on 127.0.0.1, as API Gateway would.

Routes come from the Api events in template.yaml, so the local routes cannot
drift from the deployed ones. Each HTTP request becomes an API Gateway REST
proxy event for the function that owns the route, and the handler's result
becomes the HTTP response. The store is REGISTRY_URI (default: the embedded
directory .registry/ at the repository root).

Like a Lambda container, each function handles one request at a time (a lock
per function); requests to different functions run concurrently. Routes with
ApiKeyRequired need the x-api-key header when --api-key is given; IAM (SigV4)
routes are not verified locally.

It prints what CloudWatch would get: one JSON log line and the EMF documents
of each request (docs/observability.md). Both functions share one logger in
this process, so while a classify and a registration run at once, a line
other than the request line may carry the other request's keys; each request
line is built from its own request alone.
"""

import argparse
import base64
import errno
import json
import os
import re
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from registry.config import Settings  # noqa: E402
from registry.http import service  # noqa: E402
from registry.http.api import openapi_document  # noqa: E402
from registry.http.gateway import (  # noqa: E402
    LOCAL_API_EXECUTION_ARN,
    LocalLambdaContext,
    Route,
    build_event,
    execute_api_arn,
    iam_allows,
    load_function_module,
    load_template,
    routes_from_template,
)
from registry.manifest import UPLOAD_KEY_PATTERN  # noqa: E402
from registry.store import open_store  # noqa: E402

DEFAULT_REGISTRY_DIR = REPO_ROOT / ".registry"
UPLOADS_PATH = "/_uploads/"
REQUEST_ID_HEADER = "x-amzn-RequestId"
# Lambda's synchronous invocation payload limit.
MAX_BODY_BYTES = 6 * 1024 * 1024
# A body over its limit by up to this much is read in small chunks and dropped before the 413.
DISCARD_LIMIT_BYTES = 64 * 1024 * 1024
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def _json_response(status: int, payload: dict[str, Any]) -> HttpResponse:
    return HttpResponse(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())


PREDICT_FUNCTION = "PredictFunction"


class LocalApi:
    """Dispatches HTTP requests to the handlers named by the template's routes.

    With a directory store it also takes the PUTs of the upload URLs that
    POST /models/{name}/uploads hands out (S3 takes them itself when deployed).
    """

    def __init__(
        self,
        routes: list[Route],
        api_key: str | None = None,
        iam_policy: dict[str, Any] | None = None,
    ) -> None:
        self.routes = routes
        self.api_key = api_key
        self.iam_policy = iam_policy
        self.settings = Settings.from_environ()
        self.upload_store = open_store(self.settings.registry_uri)
        self.handlers: dict[str, Handler] = {}
        self.locks: dict[str, threading.Lock] = {}
        for route in routes:
            if route.function not in self.handlers:
                self.handlers[route.function] = load_function_module(route.code_dir).lambda_handler
                self.locks[route.function] = threading.Lock()

    def openapi(self) -> dict[str, Any]:
        """One OpenAPI document combining every function's resolver."""
        code_dirs = dict.fromkeys(route.code_dir for route in self.routes)
        return openapi_document([load_function_module(path).app for path in code_dirs])

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> HttpResponse:
        url = urlsplit(raw_path)
        if method == "GET" and url.path == "/openapi.json":
            return _json_response(200, self.openapi())
        if len(body) > self.body_limit(method, raw_path):
            return self.too_large(method, raw_path)
        if method == "PUT" and url.path.startswith(UPLOADS_PATH):
            return self.take_upload(url.path.removeprefix(UPLOADS_PATH), body)
        for route in self.routes:
            path_parameters = route.match(method, url.path)
            if path_parameters is None:
                continue
            if self.api_key and route.api_key_required:
                sent = {key.lower(): value for key, value in headers.items()}.get("x-api-key")
                if sent != self.api_key:
                    return _json_response(
                        403, {"code": "forbidden", "message": "missing or invalid x-api-key header"}
                    )
            if self.iam_policy is not None and route.iam_auth:
                resource = execute_api_arn(method, url.path)
                if not iam_allows(self.iam_policy, "execute-api:Invoke", resource):
                    # API Gateway's answer, in the stack's error shape (its DEFAULT_4XX).
                    return _json_response(
                        403,
                        {
                            "code": "ACCESS_DENIED",
                            "message": "User: local is not authorized to perform: "
                            f"execute-api:Invoke on resource: {resource}",
                        },
                    )
            query = parse_qs(url.query, keep_blank_values=True)
            event = build_event(route, method, url.path, path_parameters, query, headers, body)
            with self.locks[route.function]:
                result = self.handlers[route.function](event, LocalLambdaContext(route.function))
            response = _to_http_response(result)
            if method != "GET" and route.function != PREDICT_FUNCTION and response.status < 400:
                # One process serves every function here, so what it just wrote (a version,
                # an alias, an archive) its own predict sees at once. Deployed, each predict
                # container sees it within ALIAS_TTL_SECONDS.
                service.predictor().forget_views()
            # As API Gateway does: the request id, which the logs call correlation_id.
            response.headers[REQUEST_ID_HEADER] = event["requestContext"]["requestId"]
            return response
        allowed = sorted(
            {route.method for route in self.routes if route.pattern.fullmatch(url.path)}
        )
        if allowed:
            answer = _json_response(
                405,
                {
                    "code": "method_not_allowed",
                    "message": f"{method} {url.path} is not served: use {' or '.join(allowed)} "
                    "(every route and its body: /openapi.json)",
                },
            )
            answer.headers["Allow"] = ", ".join(allowed)
            return answer
        return _json_response(
            404,
            {
                "code": "route_not_found",
                "message": f"no route {url.path}: every route and its body is in /openapi.json",
            },
        )

    def body_limit(self, method: str, raw_path: str) -> int:
        """The most bytes a request may send: an artifact on an upload URL, else Lambda's 6 MiB."""
        if method == "PUT" and urlsplit(raw_path).path.startswith(UPLOADS_PATH):
            return self.settings.max_artifact_bytes
        return MAX_BODY_BYTES

    def too_large(self, method: str, raw_path: str) -> HttpResponse:
        limit = self.body_limit(method, raw_path)
        if limit != MAX_BODY_BYTES:
            message = f"uploads are limited to {limit} bytes (MAX_ARTIFACT_BYTES)"
            return _json_response(413, {"code": "artifact_too_large", "message": message})
        message = (
            f"request bodies are limited to {MAX_BODY_BYTES} bytes, as Lambda's are: send a "
            "large artifact through an upload URL (POST /models/{name}/uploads, then "
            "upload_key), which `model-registry register` does for you; split large batches"
        )
        return _json_response(413, {"code": "payload_too_large", "message": message})

    def take_upload(self, key: str, body: bytes) -> HttpResponse:
        if not re.fullmatch(UPLOAD_KEY_PATTERN, key):
            return _json_response(404, {"code": "upload_not_found", "message": "no such upload"})
        self.upload_store.put(key, body)
        return HttpResponse(200, {}, b"")


def _to_http_response(result: dict[str, Any]) -> HttpResponse:
    headers = {key: str(value) for key, value in (result.get("headers") or {}).items()}
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers[key] = ", ".join(str(value) for value in values)
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return HttpResponse(int(result["statusCode"]), headers, data)


class LocalApiServer(ThreadingHTTPServer):
    daemon_threads = True
    api: LocalApi


def make_server(host: str, port: int) -> LocalApiServer:
    """Bound before the API is built, so the API knows its own URL (for upload URLs)."""

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # A response's headers and body leave in one write (http.server flushes after each
        # request), and no write waits for the client's ACK: with Nagle's algorithm and a
        # kept-alive client's delayed ACK, every request after the first stalled 40 ms.
        wbufsize = -1

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            api = server.api
            # The size is checked on the header, before any byte of the body is read.
            declared = self.headers.get("Content-Length") or "0"
            length = int(declared) if declared.isdigit() else -1
            if length < 0:
                message = "Content-Length must be a number of bytes"
                response = _json_response(400, {"code": "bad_request", "message": message})
            elif length > api.body_limit(self.command, self.path):
                response = api.too_large(self.command, self.path)
            else:
                response = None
            if response is not None:
                # Nothing of the body is kept. A client that asked (Expect: 100-continue) never
                # sends it; a small excess is read and dropped so that a client still writing
                # (urllib, requests) reads the answer rather than a broken pipe; past that the
                # connection is closed on it.
                expects = self.headers.get("Expect", "").lower() == "100-continue"
                if not expects and 0 < length <= DISCARD_LIMIT_BYTES:
                    self._discard(length)
                self.close_connection = True
                self._send(response)
                return
            if self.headers.get("Expect", "").lower() == "100-continue":
                self.send_response_only(100)
                self.end_headers()
                self.wfile.flush()
            body = self.rfile.read(length) if length else b""
            self._send(api.handle(self.command, self.path, dict(self.headers.items()), body))

        def _discard(self, length: int) -> None:
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 16))
                if not chunk:
                    return
                length -= len(chunk)

        def _send(self, response: HttpResponse) -> None:
            self.send_response(response.status)
            if self.close_connection:
                self.send_header("Connection", "close")
            for key, value in response.headers.items():
                if key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        def __getattr__(self, name: str) -> Any:
            # Every method, even one http.server does not know (TRACE, QUERY), is routed:
            # what no route serves is a JSON 404, as API Gateway answers it.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

        def do_HEAD(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the handlers print one JSON line per request already

    server = LocalApiServer((host, port), RequestHandler)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the model registry API locally.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000, help="0 picks a free port")
    parser.add_argument("--api-key", help="require this x-api-key on routes that need an API key")
    parser.add_argument(
        "--iam-policy",
        type=Path,
        help="authorise IAM routes as API Gateway would for a caller holding this identity "
        f"policy (JSON; <ApiExecutionArn> stands for {LOCAL_API_EXECUTION_ARN})",
    )
    args = parser.parse_args()
    iam_policy = None
    if args.iam_policy is not None:
        text = args.iam_policy.read_text().replace("<ApiExecutionArn>", LOCAL_API_EXECUTION_ARN)
        iam_policy = json.loads(text)

    os.environ.setdefault("REGISTRY_URI", str(DEFAULT_REGISTRY_DIR))
    # Batch jobs run here, in a pool of one process per core.
    os.environ.setdefault("BATCH_LOCAL_WORKERS", "0")
    try:
        server = make_server(args.host, args.port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        sys.exit(
            f"error: port {args.port} on {args.host} is in use (is `make run` already "
            f"running?): stop that server, or pick another port: make run PORT={args.port + 1}"
        )
    url = f"http://{args.host}:{server.server_address[1]}"
    os.environ["LOCAL_UPLOAD_URL"] = f"{url}{UPLOADS_PATH.rstrip('/')}"
    api = LocalApi(
        routes_from_template(load_template()), api_key=args.api_key, iam_policy=iam_policy
    )
    server.api = api
    key_header = f" -H 'x-api-key: {args.api_key}'" if args.api_key else ""
    print(f"Serving on {url} (store: {os.environ['REGISTRY_URI']})", flush=True)
    print("Routes: " + ", ".join(f"{r.method} {r.path}" for r in api.routes), flush=True)
    single_row = '{"data1":"0.5","data2":"0.2"}'
    print(
        "Try:\n"
        f"  curl -X POST '{url}/classify?version=1'{key_header} -d '{single_row}'\n"
        f"  curl -X POST '{url}/predict?model=moons'{key_header} "
        "-d '{\"instances\": [[0.5, 0.2], [1.5, -0.4]]}'\n"
        f"  curl {url}/openapi.json",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
