"""What both HTTP functions share: the resolver, its error responses, one log line a request."""

import base64
import binascii
import json
import time
from typing import Any

import orjson
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from registry import observability
from registry.errors import RegistryError
from registry.http.schemas import ErrorResponse
from registry.inputs import mark_numeric_rows
from registry.observability import logger

MAX_ERROR_DETAILS = 5
# What a 503 (the store failed, or contention) asks the client to wait before retrying.
RETRY_AFTER_SECONDS = "1"
API_TITLE = "Model registry API"
API_VERSION = "0.1.0"


def create_resolver() -> APIGatewayRestResolver:
    """A validating resolver whose every error is JSON with a `code` and a `message`."""
    # orjson parses request bodies about twice as fast as the json module, and refuses what
    # is not JSON (Infinity, numbers beyond a double) as malformed, per RFC 8259.
    app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json_body)
    app.exception_handler(RegistryError)(_registry_error_response)
    app.exception_handler(RequestValidationError)(lambda exc: _validation_error_response(app, exc))
    app.not_found(_route_not_found_response)
    app.exception_handler(Exception)(_unexpected_error_response)
    app.use(middlewares=[_refuse_unknown_query_parameters])
    return app


def _refuse_unknown_query_parameters(app: Any, next_middleware: Any) -> Any:
    """A misspelled query parameter (?modle=) is a 422 that names it, not silently ignored."""
    route = app.context.get("_route")
    sent = app.current_event.query_string_parameters or {}
    # Powertools routes an unknown path to a handler of its own: that is a 404 first.
    is_ours = route is not None and not route.func.__module__.startswith("aws_lambda_powertools")
    if is_ours and sent:
        known = {param.alias or param.name for param in route.dependant.query_params}
        unknown = sorted(set(sent) - known)
        if unknown:
            takes = f"it takes {', '.join(sorted(known))}" if known else "it takes none"
            return error_response(
                422,
                "invalid_request",
                f"unknown query parameter {', '.join(name[:64] for name in unknown[:5])}: {takes}",
            )
    return next_middleware(app)


def parse_json_body(text: str | bytes) -> Any:
    """The body's JSON; a bare NaN, as MLflow's clients write a DataFrame's missing value, is null.

    Tried only when orjson refuses the text, so valid JSON pays nothing for it. Infinity
    and numbers beyond a double stay malformed.
    """
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as refused:
        if b"NaN" not in (text if isinstance(text, bytes) else text.encode()):
            raise
        try:
            return json.loads(
                text,
                parse_constant=_nan_as_null,
                parse_float=_finite_float,
                parse_int=_int_as_orjson_reads_it,
            )
        except (ValueError, RecursionError):  # nested deeper than the json module goes
            raise refused from None
    return mark_numeric_rows(text if isinstance(text, bytes) else text.encode(), parsed)


def _nan_as_null(constant: str) -> None:
    if constant != "NaN":
        raise ValueError(f"{constant} is not a JSON number")


def _int_as_orjson_reads_it(text: str) -> int | float:
    """An integer, or beyond 64 bits a float (as orjson reads one); beyond a double, refused."""
    value = int(text)
    if -(2**63) <= value < 2**64:
        return value
    as_float = float(text)
    if as_float in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is beyond a double")
    return as_float


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is beyond a double")
    return value


def error_response(http_status: int, code: str, message: str) -> Response[dict[str, str]]:
    observability.note(error_code=code)
    return Response(
        status_code=http_status,
        content_type=content_types.APPLICATION_JSON,
        body={"code": code, "message": message},
        headers={"Retry-After": RETRY_AFTER_SECONDS} if http_status == 503 else None,
    )


def _registry_error_response(exc: RegistryError) -> Response[dict[str, str]]:
    if exc.http_status >= 500:
        logger.error(exc.message, exc_info=exc)
    return error_response(exc.http_status, exc.code, exc.message)


def _validation_error_response(
    app: APIGatewayRestResolver, exc: RequestValidationError
) -> Response[dict[str, str]]:
    """What was wrong, in the caller's words, and what the route takes instead."""
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = error.get("ctx", {}).get("error", "")
            message = "the request body is not valid JSON" + (f": {reason}" if reason else "")
            return error_response(400, "malformed_json", message)
    details = "; ".join(_plain_words(error) for error in errors[:MAX_ERROR_DETAILS])
    if len(errors) > MAX_ERROR_DETAILS:
        details += f"; and {len(errors) - MAX_ERROR_DETAILS} more"
    in_body = any((error.get("loc") or ("body",))[0] == "body" for error in errors)
    if in_body and (usage := _body_usage(app.context.get("_route"))):
        details += f": {usage}"
    return error_response(422, "invalid_request", details)


def _plain_words(error: Any) -> str:
    """'unknown field 'x'', 'query parameter 'version': input should be a valid integer'."""
    where, *path = error.get("loc", ()) or ("body",)
    # pydantic names the union member it tried (list[list[float]]): not the caller's words
    field = ".".join(str(part) for part in path if "[" not in str(part))
    kind = error.get("type", "")
    text = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    text = text[:1].lower() + text[1:]
    if where != "body":
        return f"{'query parameter' if where == 'query' else where} {field!r}: {text}"
    if kind == "extra_forbidden":
        return f"unknown field {field!r}"
    if kind == "missing":
        return f"field {field!r} is missing"
    if not field:
        whole_body_types = ("model_type", "model_attributes_type", "dict_type")
        return "the body must be a JSON object" if kind in whole_body_types else text
    return f"{field!r}: {text}"


def _body_usage(route: Any) -> str | None:
    """The route's request model's `usage`: what to send instead."""
    for body in getattr(getattr(route, "dependant", None), "body_params", ()):
        usage = getattr(body.field_info.annotation, "usage", None)
        if isinstance(usage, str):
            return usage
    return None


def _route_not_found_response(exc: NotFoundError) -> Response[dict[str, str]]:
    return error_response(404, "route_not_found", "no such route")


def _unexpected_error_response(exc: Exception) -> Response[dict[str, str]]:
    logger.exception("unexpected error")
    return error_response(500, "internal_error", "internal error; see the function's logs")


def resolve_logged(
    app: APIGatewayRestResolver, event: dict[str, Any], context: Any, service: str
) -> dict[str, Any]:
    """Resolve the event; log one structured line and emit the request's metrics.

    This API speaks only JSON, so bodies are read as JSON whatever Content-Type
    the client sent (curl -d sends a form type by default, as the blog's
    clients did).
    """
    started = time.perf_counter()
    outcome = observability.begin_request(
        service,
        event.get("httpMethod"),
        event.get("resource") or event.get("path"),
        (event.get("requestContext") or {}).get("requestId"),
    )
    try:
        json_event = _as_json_event(event)
    except (ValueError, binascii.Error):
        response = _proxy_error(400, "malformed_json", "the request body is not UTF-8 JSON text")
    else:
        response = app.resolve(json_event, context)
    outcome.status = response["statusCode"]
    outcome.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    observability.finish_request(outcome)
    return response


def _as_json_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event without its Content-Type, and with a base64 body decoded to text.

    Raises ValueError when a base64 body is not UTF-8 text (it cannot be JSON).
    """

    def strip(headers: dict[str, Any] | None) -> dict[str, Any] | None:
        if headers is None:
            return None
        return {key: value for key, value in headers.items() if key.lower() != "content-type"}

    json_event = {
        **event,
        "headers": strip(event.get("headers")),
        "multiValueHeaders": strip(event.get("multiValueHeaders")),
    }
    if event.get("isBase64Encoded") and event.get("body"):
        text = base64.b64decode(event["body"]).decode("utf-8")
        json_event.update(body=text, isBase64Encoded=False)
    return json_event


def _proxy_error(http_status: int, code: str, message: str) -> dict[str, Any]:
    """An error answered before routing, in the shape the resolver would give it."""
    observability.note(error_code=code)
    return {
        "statusCode": http_status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "multiValueHeaders": {},
        "body": json.dumps({"code": code, "message": message}),
        "isBase64Encoded": False,
    }


def openapi_document(apps: list[APIGatewayRestResolver]) -> dict[str, Any]:
    """One OpenAPI document for several resolvers, with the errors they really answer.

    Powertools documents validation failures as its own HTTPValidationError;
    every error here is an ErrorResponse {code, message} instead.
    """
    combined: dict[str, Any] = {"paths": {}, "components": {"schemas": {}}}
    for app in apps:
        schema = json.loads(app.get_openapi_json_schema(title=API_TITLE, version=API_VERSION))
        combined = {**schema, "paths": combined["paths"], "components": combined["components"]}
        combined["paths"].update(schema.get("paths", {}))
        combined["components"]["schemas"].update(schema.get("components", {}).get("schemas", {}))
    schemas = combined["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(unused, None)
    schemas["ErrorResponse"] = ErrorResponse.model_json_schema()
    error = {
        "description": "an error: `code` says which (see docs/api.md), `message` why",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    for operation in (op for item in combined["paths"].values() for op in item.values()):
        operation["responses"].pop("422", None)
        operation["responses"]["4XX"] = error
        operation["responses"]["5XX"] = error
    return combined
