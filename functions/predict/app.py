"""Predict with a registered model version: POST /predict, /classify and /invocations; GET /ping.

/classify is the blog's route, /predict the route for every kind of estimator, and
/invocations with /ping are the paths of MLflow's scoring server and of SageMaker's
container contract, so clients written for either work unchanged. The three POST routes
are one handler: the same bodies, query parameters and answers.
"""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from registry.http import service
from registry.http.api import create_resolver, resolve_logged
from registry.http.schemas import (
    PingResponse,
    PredictRequest,
    PredictResponse,
    predict_response_json,
)
from registry.manifest import MAX_VERSION, MODEL_NAME_PATTERN
from registry.observability import PREDICT_SERVICE, logger, note

app = create_resolver()
ROUTING_KEY_HEADER = "x-routing-key"

# At init (and so inside a SnapStart snapshot): the default model, ready for the first request.
if service.settings().preload_default_model:
    service.preload_default_model()
service.register_snapshot_hooks()

PREDICT_RESPONSES: dict[int | str, Any] = {
    200: {
        "description": "one prediction per row (fields that do not apply are left out)",
        "content": {"application/json": {"model": PredictResponse}},
    }
}


@app.post("/predict", responses=PREDICT_RESPONSES)
@app.post("/classify", responses=PREDICT_RESPONSES)
@app.post("/invocations", responses=PREDICT_RESPONSES)
def handle_predict(
    body: PredictRequest,
    model: Annotated[str | None, Query(pattern=MODEL_NAME_PATTERN)] = None,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
    alias: Annotated[str | None, Query(pattern=MODEL_NAME_PATTERN)] = None,
) -> Response[str]:
    name = model or service.settings().default_model
    note(model=name, version=version, alias=alias)
    rows, routing_key = body.rows(), _routing_key()
    result = service.predictor().predict(
        name, version, rows, alias=alias, probabilities=body.probabilities,
        routing_key=routing_key,
    )  # fmt: skip
    note(
        version=result.manifest.version,
        cache="hit" if result.cache_hit else "miss",
        instances=len(result.predictions),
        load_ms=result.load_ms,
        weighted=result.weighted or None,
    )
    service.capturer().capture(
        app.current_event.request_context.request_id, name, alias, routing_key, rows, result,
        with_probabilities=body.probabilities,
    )  # fmt: skip
    # Serialised here, once, by the json module's C encoder: for large batches that is
    # several times cheaper than Powertools' generic encoder. Shape: PredictResponse.
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=predict_response_json(
            name, result, single=body.is_single, with_probabilities=body.probabilities
        ),
    )


def _routing_key() -> str:
    """What picks a weighted alias's version: the caller's x-routing-key, so that one entity
    stays on one version, else the request's id."""
    event = app.current_event
    sent = event.headers.get(ROUTING_KEY_HEADER) or next(
        (value for key, value in event.headers.items() if key.lower() == ROUTING_KEY_HEADER), None
    )
    return sent or event.request_context.request_id


@app.get("/ping")
def handle_ping() -> PingResponse:
    """The function answers (SageMaker's and MLflow's health check); nothing is loaded."""
    return PingResponse(status="ok")


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_logged(app, event, context, PREDICT_SERVICE)
