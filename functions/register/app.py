"""Registration (POST /models/{name}/versions, POST /models) and the management routes: list,
show, edit, convert, alias, archive, restore, delete, runtime checks, and batch jobs."""

from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from registry.batching.jobs import JOB_ID_PATTERN
from registry.capture import read_records
from registry.errors import ModelNotFoundError, ReferenceNotFoundError
from registry.http import service
from registry.http.api import create_resolver, resolve_logged
from registry.http.schemas import (
    AliasResponse,
    BatchJobRequest,
    BatchJobResponse,
    CapturedResponse,
    CaptureShareRequest,
    CaptureShareResponse,
    ConvertVersionResponse,
    DeleteModelResponse,
    EditVersionRequest,
    ModelDetailsResponse,
    ModelListResponse,
    ModelVersionResponse,
    ReferenceRowsRequest,
    ReferenceRowsResponse,
    RegisterModelRequest,
    RegisterModelResponse,
    RegisterVersionRequest,
    RuntimeCheckRequest,
    RuntimeCheckResponse,
    RuntimeLinesResponse,
    RuntimeResponse,
    SetAliasRequest,
    UploadResponse,
)
from registry.manifest import MAX_VERSION, MODEL_NAME_PATTERN
from registry.observability import REGISTER_SERVICE, logger, note
from registry.validation import runtime_versions

app = create_resolver()
# A page of captured records: at most this many, and about this much of their JSON (a Lambda
# answer holds 6 MB).
MAX_CAPTURED_PAGE = 1000
CAPTURED_PAGE_BYTES = 4_000_000

NamePath = Annotated[str, Path(pattern=MODEL_NAME_PATTERN)]
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION)]


def _caller() -> str | None:
    identity = app.current_event.request_context.identity
    return identity.user_arn or identity.caller


REGISTERED = {
    201: {"description": "a new version was registered"},
    200: {"description": "identical bytes were already an active version; that one"},
}


@app.post("/models/<name>/versions", responses=REGISTERED)
def handle_register_version(
    name: NamePath, body: RegisterVersionRequest
) -> Response[RegisterModelResponse]:
    """A new version of this model. IAM can scope a registrar to names (the name is in the path)."""
    return _register(name, body)


@app.post("/models", responses=REGISTERED)
def handle_register_model(body: RegisterModelRequest) -> Response[RegisterModelResponse]:
    """A new version of the model named in the body (the blog's route). IAM cannot see the
    name here: a caller allowed this route may register under every name."""
    return _register(body.name, body)


def _register(name: str, body: RegisterVersionRequest) -> Response[RegisterModelResponse]:
    note(model=name)
    registrar = service.registrar()
    metadata: dict[str, Any] = {
        "description": body.description,
        "tags": body.tags,
        "metrics": body.metrics,
        "registered_by": _caller(),
        "input_example": body.input_example,
        "runtime": body.runtime,
    }
    if body.sha256 is not None:
        registration = registrar.register_known(name, body.sha256, **metadata)
    elif body.upload_key is not None:
        registration = registrar.register_upload(name, body.upload_key, **metadata)
    else:
        registration = registrar.register(name, body.artifact_bytes(), **metadata)
    note(
        version=registration.info.manifest.version,
        new_version=registration.created,
        conflict_retries=registration.conflict_retries,
    )
    return Response(
        status_code=201 if registration.created else 200,
        content_type=content_types.APPLICATION_JSON,
        body=RegisterModelResponse.of_registration(registration),
    )


@app.get("/models")
def handle_list_models() -> ModelListResponse:
    return ModelListResponse.of(service.model_registry().list_models())


@app.get("/models/<name>")
def handle_get_model(
    name: NamePath,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int, Query(ge=0, le=MAX_VERSION)] = 0,
) -> ModelDetailsResponse:
    note(model=name)
    return ModelDetailsResponse.of(service.model_registry().describe_model(name, limit, after))


@app.delete("/models/<name>")
def handle_delete_model(
    name: NamePath,
    force: Annotated[bool, Query(description="delete it even while aliases point into it")] = False,
) -> DeleteModelResponse:
    """Every version, alias and object of the model; its version numbers are never reused."""
    note(model=name)
    return DeleteModelResponse.of(service.model_deleter().delete_model(name, force=force))


@app.get("/models/<name>/versions/<version>")
def handle_get_version(name: NamePath, version: VersionPath) -> ModelVersionResponse:
    note(model=name, version=version)
    return ModelVersionResponse.of(service.model_registry().get_version(name, version))


@app.patch("/models/<name>/versions/<version>")
def handle_edit_version(
    name: NamePath, version: VersionPath, body: EditVersionRequest
) -> ModelVersionResponse:
    note(model=name, version=version)
    info = service.model_registry().edit_metadata(
        name,
        version,
        description=body.description,
        tags=body.tags,
        metrics=body.metrics,
        edited_by=_caller(),
    )
    return ModelVersionResponse.of(info)


@app.delete("/models/<name>/versions/<version>")
def handle_archive_version(name: NamePath, version: VersionPath) -> ModelVersionResponse:
    note(model=name, version=version)
    return ModelVersionResponse.of(service.model_registry().archive(name, version))


@app.post("/models/<name>/versions/<version>/restore")
def handle_restore_version(name: NamePath, version: VersionPath) -> ModelVersionResponse:
    note(model=name, version=version)
    return ModelVersionResponse.of(service.model_registry().restore(name, version))


@app.post("/models/<name>/versions/<version>/convert")
def handle_convert_version(name: NamePath, version: VersionPath) -> ConvertVersionResponse:
    """Give a joblib version registered before predict stopped unpickling a skops (or
    compiled) serving copy, made by the validator; kept in the model's state."""
    note(model=name, version=version)
    info, converted = service.registrar().convert(name, version)
    return ConvertVersionResponse.of(info, converted=converted)


@app.put("/models/<name>/aliases/<alias>")
def handle_set_alias(
    name: NamePath, alias: Annotated[str, Path(pattern=MODEL_NAME_PATTERN)], body: SetAliasRequest
) -> AliasResponse:
    note(model=name, alias=alias, version=body.version)
    registry = service.model_registry()
    if body.weights is not None:
        state = registry.set_alias_weights(name, alias, body.weights, body.salt, body.shadow)
    else:
        assert body.version is not None
        state = registry.set_alias(name, alias, body.version, body.shadow)
    return AliasResponse.of(name, alias, state)


@app.delete("/models/<name>/aliases/<alias>")
def handle_delete_alias(
    name: NamePath, alias: Annotated[str, Path(pattern=MODEL_NAME_PATTERN)]
) -> AliasResponse:
    note(model=name, alias=alias)
    version = service.model_registry().delete_alias(name, alias)
    return AliasResponse(name=name, alias=alias, version=version)


@app.put("/models/<name>/versions/<version>/reference")
def handle_put_reference(
    name: NamePath, version: VersionPath, body: ReferenceRowsRequest
) -> ReferenceRowsResponse:
    """Keep reference rows with the version (`model-registry register --reference FILE`)."""
    note(model=name, version=version)
    kept = service.model_registry().put_reference(name, version, body.rows)
    return ReferenceRowsResponse(model=name, version=version, rows=kept)


@app.get("/models/<name>/versions/<version>/reference")
def handle_get_reference(name: NamePath, version: VersionPath) -> ReferenceRowsResponse:
    """The version's reference rows; 404 reference_not_found when none were kept."""
    note(model=name, version=version)
    rows = service.model_registry().get_reference(name, version)
    if rows is None:
        raise ReferenceNotFoundError(
            f"version {version} of {name!r} has no reference rows: keep some with "
            f"`model-registry register FILE --name {name} --reference rows.csv`, or give "
            "them to the monitor (`--reference rows.csv`)"
        )
    return ReferenceRowsResponse(model=name, version=version, rows=rows)


@app.put("/models/<name>/capture")
def handle_set_capture_share(name: NamePath, body: CaptureShareRequest) -> CaptureShareResponse:
    """The share of the model's predict requests captured with their answers."""
    note(model=name)
    state = service.model_registry().set_capture_percent(name, body.sample_percent)
    return CaptureShareResponse(model=name, sample_percent=state.capture_percent)


@app.get("/models/<name>/captured")
def handle_read_captured(
    name: NamePath,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; without a zone, UTC")] = None,
    after: Annotated[str | None, Query(max_length=2048, description="a page's `after`")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_CAPTURED_PAGE)] = MAX_CAPTURED_PAGE,
) -> CapturedResponse:
    """Captured requests with their answers, oldest first, a page at a time."""
    note(model=name, version=version)
    registry = service.model_registry()
    if not registry.list_versions(name):
        raise ModelNotFoundError(f"no model named {name!r}")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    page = read_records(
        registry.store, name, version, since, after, limit, max_bytes=CAPTURED_PAGE_BYTES
    )
    records = [
        {key: value for key, value in record.items() if key != "captureData"}
        for record in page.records
    ]
    return CapturedResponse(model=name, records=records, after=page.after)


@app.post("/models/<name>/uploads", responses={201: {"description": "an upload URL"}})
def handle_create_upload(name: NamePath) -> Response[UploadResponse]:
    note(model=name)
    upload = service.registrar().create_upload(
        name, expires_in=service.settings().upload_expires_seconds
    )
    return Response(
        status_code=201, content_type=content_types.APPLICATION_JSON, body=UploadResponse.of(upload)
    )


@app.post("/models/<name>/versions/<version>/runtime-check")
def handle_runtime_check(
    name: NamePath, version: VersionPath, body: RuntimeCheckRequest
) -> RuntimeCheckResponse:
    """Re-validate the version on a newer runtime line, in that line's validator, and move it
    there if it answers its check rows the same, bit for bit (`model-registry runtime check`)."""
    note(model=name, version=version)
    return RuntimeCheckResponse.of(service.line_upgrader().check_version(name, version, body.line))


@app.get("/runtime")
def handle_get_runtime() -> RuntimeResponse:
    """The newest line's versions, and the lines served: a model saved with any of them
    registers."""
    lines = service.registrar().lines.served
    return RuntimeResponse(**runtime_versions().model_dump(), lines=lines)


@app.get("/runtime/lines")
def handle_get_runtime_lines() -> RuntimeLinesResponse:
    """Every line, and the active versions each serves: a line serving none may be removed."""
    return RuntimeLinesResponse.of(service.line_upgrader().lines_in_use())


@app.post("/models/<name>/batch-jobs", responses={202: {"description": "the job started"}})
def handle_submit_batch_job(name: NamePath, body: BatchJobRequest) -> Response[BatchJobResponse]:
    """Score every row of an input with one version, resolved now, from S3 to S3."""
    jobs = service.batch_jobs()
    job = jobs.submit(
        name,
        body.input,
        body.output,
        body.format,
        version=body.version,
        alias=body.alias,
        probabilities=body.probabilities,
        id_column=body.id_column,
        job_id=body.job_id,
        rows_per_part=body.rows_per_part,
        tolerated_failure_percent=body.tolerated_failure_percent,
        submitted_by=_caller(),
    )
    note(model=name, version=job.version)
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body=BatchJobResponse.of(job, jobs.status(job.job_id)),
        headers={"Location": f"/batch-jobs/{job.job_id}"},
    )


@app.get("/batch-jobs/<job_id>")
def handle_get_batch_job(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)],
) -> BatchJobResponse:
    """A batch job's status, rows read, scored and failed, its output files and first errors."""
    jobs = service.batch_jobs()
    return BatchJobResponse.of(jobs.job(job_id), jobs.status(job_id))


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_logged(app, event, context, REGISTER_SERVICE)
