"""Invoke the real Lambda handlers in-process with the API Gateway events API Gateway builds.

One invoker for every tier below HTTP: by sample event (events/*.json) or by any route of the
template, and the log collector that reads what the Powertools logger writes.
"""

import base64
import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from registry.http.gateway import (
    LocalLambdaContext,
    build_event,
    load_function_module,
    load_template,
    routes_from_template,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS = REPO_ROOT / "events"

Invoke = Callable[..., tuple[int, dict[str, Any]]]
Call = Callable[..., tuple[int, dict[str, Any]]]


def event_from(
    name: str,
    body: Any = None,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A copy of events/<name>.json with the body, query and headers replaced."""
    event = copy.deepcopy(json.loads((EVENTS / f"{name}.json").read_text()))
    if raw_body is not None or body is not None:
        event["body"] = raw_body if raw_body is not None else json.dumps(body)
    if query is not None:
        event["queryStringParameters"] = query or None
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    if headers is not None:
        event["headers"] = headers
        event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    return event


def invoker(function: str) -> Invoke:
    """invoke(event_name, body=..., query=...) on the function's handler: (status, JSON)."""
    module = load_function_module(REPO_ROOT / "functions" / function)

    def invoke(event_name: str, **overrides: Any) -> tuple[int, dict[str, Any]]:
        response = module.lambda_handler(
            event_from(event_name, **overrides), LocalLambdaContext(function)
        )
        return response["statusCode"], json.loads(response["body"])

    return invoke


def route_caller() -> Call:
    """call(method, path, body, query) on any route of the template, as its function gets it.

    The event's requestContext.identity is the IAM caller of events/register.json.
    """
    routes = routes_from_template(load_template())
    identity = json.loads((EVENTS / "register.json").read_text())["requestContext"]["identity"]

    def call(
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        for route in routes:
            path_parameters = route.match(method, path)
            if path_parameters is not None:
                break
        else:
            raise AssertionError(f"no route for {method} {path}")
        data = json.dumps(body).encode() if body is not None else b""
        query_lists = {key: [value] for key, value in (query or {}).items()}
        event = build_event(route, method, path, path_parameters, query_lists, headers or {}, data)
        event["requestContext"]["identity"] = identity
        module = load_function_module(route.code_dir)
        response = module.lambda_handler(event, LocalLambdaContext(route.function))
        return response["statusCode"], json.loads(response["body"])

    return call


def artifact_body(name: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"name": name, "artifact": base64.b64encode(data).decode(), **extra}


class LogLines(logging.Handler):
    """Collects what the Powertools logger writes, formatted exactly as CloudWatch gets it."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))
