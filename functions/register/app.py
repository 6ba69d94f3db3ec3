"""POST /models: register a model version."""

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from registry import service
from registry.api import create_resolver, resolve_logged
from registry.manifest import ModelManifest
from registry.observability import MetricUnit, logger, metrics
from registry.schemas import RegisterModelRequest

app = create_resolver()


@app.post("/models", responses={201: {"description": "the new version's manifest"}})
def handle_register_model(body: RegisterModelRequest) -> Response[ModelManifest]:
    manifest = service.model_registry().register(
        body.name, body.artifact_bytes(), description=body.description, tags=body.tags
    )
    logger.append_keys(model=manifest.name, version=manifest.version)
    metrics.add_metric(name="Registrations", unit=MetricUnit.Count, value=1)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=manifest)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_logged(app, event, context)
