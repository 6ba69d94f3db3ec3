"""POST /classify: predict with a registered model version."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from registry import service
from registry.api import create_resolver, resolve_logged
from registry.manifest import MAX_VERSION, MODEL_NAME_PATTERN
from registry.observability import MetricUnit, logger, metrics
from registry.schemas import BatchClassifyResponse, ClassifyRequest, SingleClassifyResponse

app = create_resolver()


@app.post("/classify")
def handle_classify(
    body: ClassifyRequest,
    model: Annotated[str | None, Query(pattern=MODEL_NAME_PATTERN)] = None,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
) -> SingleClassifyResponse | BatchClassifyResponse:
    name = model or service.settings().default_model
    logger.append_keys(model=name, version=version)
    result = service.predictor().predict(name, version, body.rows())
    logger.append_keys(
        version=result.manifest.version,
        cache="hit" if result.cache_hit else "miss",
        instances=len(result.labels),
    )
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=len(result.labels))
    metrics.add_metric(
        name="CacheHits" if result.cache_hit else "CacheMisses", unit=MetricUnit.Count, value=1
    )
    if body.is_single:
        return SingleClassifyResponse(
            prediction=str(result.labels[0]), model=name, version=result.manifest.version
        )
    return BatchClassifyResponse(
        predictions=result.labels, model=name, version=result.manifest.version
    )


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_logged(app, event, context)
