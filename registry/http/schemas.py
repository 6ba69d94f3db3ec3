"""Pydantic models of the HTTP API's requests and responses."""

import base64
import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    model_validator,
)

from registry.batching.jobs import (
    JOB_ID_PATTERN,
    MAX_ROWS_PER_PART,
    BatchFormat,
    BatchJob,
    JobStatus,
    JobSummary,
)
from registry.errors import InvalidArtifactError
from registry.inputs import NumericRows, RequestRows, rows_from_json
from registry.manifest import (
    MAX_EXAMPLE_ROWS,
    MAX_VERSION,
    MODEL_NAME_PATTERN,
    UPLOAD_KEY_PATTERN,
    Description,
    Label,
    MetadataKey,
    Metrics,
    MetricValue,
    ModelManifest,
    ModelState,
    RuntimeVersions,
    Tags,
    TagValue,
    VersionCheck,
    VersionStatus,
)
from registry.registry import ModelSummary, ModelVersions, VersionInfo

if TYPE_CHECKING:  # annotations only: the register function never imports serving, nor
    # the predict function registering
    from registry.registering.deletion import DeletedModel
    from registry.registering.registration import Registration, Upload
    from registry.registering.upgrade import LineCheck, LineUse
    from registry.serving.predictor import Prediction


def _reject_bool(value: Any) -> Any:
    # Pydantic would read true/false as 1.0/0.0; a boolean is never a feature value.
    if isinstance(value, bool):
        raise ValueError("a feature value must be a number, not a boolean")
    return value


# The blog's clients send numbers or numeric strings ("0.5"); both are accepted.
LenientFeature = Annotated[float, Field(allow_inf_nan=False), BeforeValidator(_reject_bool)]
# Rows of JSON numbers only are proved so by pydantic-core, with no Python call per value:
# strict floats refuse booleans, strings and nulls. Rows of anything else (strings, null)
# are checked value by value against the version's signature in registry.inputs, which
# says what is wrong in the caller's words; pydantic lets them through as they are.
StrictFeature = Annotated[float, Field(allow_inf_nan=False, strict=True)]


def _proved_numeric(value: Any, handler: ValidatorFunctionWrapHandler) -> NumericRows:
    """The rows as sent, once pydantic proved them numbers: an integer stays an integer
    (a DataFrame column of them keeps the owner's int64, and 2**53 + 1 its last digit)."""
    if isinstance(value, NumericRows):
        return value  # proved by the text it was parsed from (registry.inputs.mark_numeric_rows)
    handler(value)
    return NumericRows(value)


NumberLists = Annotated[
    list[list[StrictFeature]], Field(fail_fast=True), WrapValidator(_proved_numeric)
]
NamedNumbers = Annotated[
    list[dict[str, StrictFeature]], Field(fail_fast=True), WrapValidator(_proved_numeric)
]
ROWS_SCHEMA = {
    "description": (
        "rows: lists of values in the model's column order, or objects of column values; "
        "or one object of columns, each a list of values (one per row)"
    ),
    "anyOf": [
        {"type": "array", "items": {"type": "array", "items": {}}},
        {"type": "array", "items": {"type": "object", "additionalProperties": {}}},
        {"type": "object", "additionalProperties": {"type": "array", "items": {}}},
    ],
    "examples": [[[0.5, -0.2]], [{"city": "Seoul", "age": 31, "income": None}]],
}
Rows = Annotated[
    NumberLists | NamedNumbers | Any,
    Field(union_mode="left_to_right"),
    WithJsonSchema(ROWS_SCHEMA),
]
ColumnName = Annotated[str, Field(max_length=256)]
# Reference rows kept with a version (a Lambda request body holds 6 MB).
MAX_REFERENCE_ROWS = 20_000
ROW_FORMS = ("instances", "inputs", "dataframe_records", "dataframe_split")
ModelName = Annotated[str, Field(pattern=MODEL_NAME_PATTERN, examples=["moons"])]
VersionNumber = Annotated[int, Field(ge=1, le=MAX_VERSION)]


class RegisterVersionRequest(BaseModel):
    """`artifact` (base64, for small models), `upload_key` (from POST .../uploads), or `sha256`."""

    model_config = ConfigDict(extra="forbid")
    usage: ClassVar[str] = (
        'send {"artifact": "<base64 of the .joblib or .skops file>"}, with "upload_key" (from '
        'POST /models/{name}/uploads) instead of "artifact" for large files; description, '
        "tags, metrics and input_example are optional"
    )

    artifact: str | None = Field(
        default=None, min_length=1, description="base64 of the joblib file's bytes"
    )
    upload_key: str | None = Field(default=None, pattern=UPLOAD_KEY_PATTERN)
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description=(
            "instead of the bytes: answers the active version that holds bytes with this "
            "sha256 (200), or 404 artifact_not_registered; clients ask before uploading"
        ),
    )
    description: Description = ""
    tags: Tags = Field(default_factory=dict)
    metrics: Metrics = Field(default_factory=dict)
    input_example: Annotated[list[Any], Field(min_length=1, max_length=MAX_EXAMPLE_ROWS)] | None = (
        Field(
            default=None,
            description=(
                "a few rows, as /predict takes them (objects of column values, or lists): the "
                "model must predict on them; they complete the signature (a column's kind, "
                "whether it may be null) and are kept with the version"
            ),
        )
    )
    runtime: str | None = Field(
        default=None,
        pattern=r"^[0-9]+\.[0-9]+[0-9A-Za-z.+-]{0,30}$",
        description=(
            "the scikit-learn the model was saved with (1.8.0, or its line 1.8): for a skops "
            "file, the runtime line that validates and serves it; a pickle names its own"
        ),
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        sources = (self.artifact, self.upload_key, self.sha256)
        if sum(source is not None for source in sources) != 1:
            raise ValueError("send exactly one of artifact, upload_key or sha256")
        return self

    def artifact_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.artifact or "", validate=True)
        except ValueError as exc:  # binascii.Error, or characters outside ASCII
            raise InvalidArtifactError("artifact is not valid base64") from exc


class RegisterModelRequest(RegisterVersionRequest):
    """The blog's registration: the model's name in the body (POST /models)."""

    usage: ClassVar[str] = (
        'send {"name": "moons", "artifact": "<base64 of the .joblib or .skops file>"}, with '
        '"upload_key" (from POST /models/{name}/uploads) instead of "artifact" for large files; '
        "description, tags, metrics and input_example are optional (POST "
        "/models/{name}/versions takes the same without the name)"
    )

    name: ModelName


class ModelVersionResponse(ModelManifest):
    status: VersionStatus
    aliases: list[str]
    edited_at: datetime | None = Field(
        default=None, description="when description, tags or metrics were last edited"
    )
    edited_by: str | None = None
    # Its check rows and answers stay in the manifest: an upgrade check reads them.
    check: VersionCheck | None = Field(default=None, exclude=True)
    line: str | None = Field(
        default=None, description="the runtime line (scikit-learn minor) that validated it"
    )
    serving_line: str | None = Field(
        default=None,
        description="the runtime line that serves it (an upgrade check may have moved it to a "
        "newer one); null for a compiled tree ensemble, which every line serves",
    )

    @classmethod
    def of(cls, info: VersionInfo, **extra: Any) -> Self:
        return cls(
            **info.manifest.model_dump(exclude={"check"}),
            status=info.status,
            aliases=info.aliases,
            edited_at=info.edited_at,
            edited_by=info.edited_by,
            line=info.manifest.validated_line,
            serving_line=info.serving_line,
            **extra,
        )


class ConvertVersionResponse(ModelVersionResponse):
    converted: bool = Field(
        description="false when the version already had a copy predict loads without unpickling"
    )


class RegisterModelResponse(ModelVersionResponse):
    created: bool = Field(description="false when identical bytes were already registered")
    note: str | None = Field(
        default=None,
        description="set when identical bytes came with other metadata: what was kept, and how "
        "to edit it",
    )

    @classmethod
    def of_registration(cls, registration: "Registration") -> Self:
        return cls.of(registration.info, created=registration.created, note=registration.note)


class EditVersionRequest(BaseModel):
    """A merge patch: description replaces; tags and metrics are set key by key, null removes."""

    model_config = ConfigDict(extra="forbid")
    usage: ClassVar[str] = (
        'send any of {"description": "...", "tags": {"key": "value", "old": null}, '
        '"metrics": {"auc": 0.91}}; what was registered (bytes, sha256, runtime) cannot change'
    )

    description: Description | None = None
    tags: Annotated[dict[MetadataKey, TagValue | None], Field(max_length=50)] | None = None
    metrics: Annotated[dict[MetadataKey, MetricValue | None], Field(max_length=100)] | None = None

    @model_validator(mode="after")
    def _something_to_edit(self) -> Self:
        if self.description is None and self.tags is None and self.metrics is None:
            raise ValueError("send description, tags or metrics (or several) to edit")
        return self


class DeleteModelResponse(BaseModel):
    name: str
    deleted_through: int = Field(
        description="the highest version deleted; the name's next version is one more"
    )
    versions_deleted: int
    objects_deleted: int

    @classmethod
    def of(cls, deleted: "DeletedModel") -> Self:
        return cls(**vars(deleted))


class RuntimeResponse(RuntimeVersions):
    """The newest runtime line's versions, and every line served: register a model saved
    with any of their scikit-learn minors."""

    lines: list[str] = Field(
        default_factory=list, description='the scikit-learn minors served, newest first: "1.9"'
    )


LinePattern = Annotated[str, Field(pattern=r"^\d{1,3}\.\d{1,3}$", examples=["1.9"])]


class RuntimeCheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    usage: ClassVar[str] = 'send {"line": "1.9"}: the runtime line to check the version against'

    line: LinePattern


class RuntimeCheckResponse(BaseModel):
    """What an upgrade check found for one version."""

    name: str
    version: int
    line: str | None = Field(
        description="the line that served it before the check (null: a compiled form)"
    )
    target: str
    moved: bool = Field(description="it answered the same on the target line and is served there")
    reason: str

    @classmethod
    def of(cls, check: "LineCheck") -> Self:
        return cls(**vars(check))


class BatchJobRequest(BaseModel):
    """POST /models/{name}/batch-jobs: score every row of an input, from S3 to S3."""

    model_config = ConfigDict(extra="forbid")
    usage: ClassVar[str] = (
        'send {"input": "s3://bucket/in.csv", "output": "s3://bucket/scores/", "format": "csv"}, '
        'with "version" or "alias" (else the latest), and optionally "probabilities", '
        '"id_column" and "job_id"'
    )

    input: Annotated[str, Field(min_length=1, max_length=1024, examples=["s3://data/in.csv"])]
    output: Annotated[str, Field(min_length=1, max_length=1024, examples=["s3://data/scores/"])]
    format: BatchFormat = BatchFormat.CSV
    version: Annotated[int, Field(ge=1)] | None = None
    alias: Annotated[str, Field(max_length=64)] | None = None
    probabilities: bool = False
    id_column: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    job_id: Annotated[str, Field(pattern=JOB_ID_PATTERN)] | None = Field(
        default=None, description="your id for the job: the same id and request runs it again"
    )
    rows_per_part: Annotated[int, Field(ge=1, le=MAX_ROWS_PER_PART)] | None = None
    tolerated_failure_percent: Annotated[float, Field(ge=0, le=100)] | None = None


class RowErrorResponse(BaseModel):
    position: int
    reason: str


class BatchJobResponse(BaseModel):
    """A batch job: what it scores with, and how far it is."""

    job_id: str
    model: str
    version: int
    alias: str | None
    input: str
    output: str
    format: BatchFormat
    status: JobStatus
    parts: int
    parts_done: int
    rows_read: int
    rows_scored: int
    rows_failed: int
    outputs: list[str]
    first_errors: list[RowErrorResponse]
    reason: str | None
    submitted_at: datetime
    ended_at: datetime | None

    @classmethod
    def of(cls, job: "BatchJob", summary: "JobSummary") -> Self:
        fields = job.model_dump(
            include={
                "job_id",
                "model",
                "version",
                "alias",
                "input",
                "output",
                "format",
                "submitted_at",
            }
        )
        return cls(**fields, **summary.model_dump(exclude={"status"}), status=summary.status)


class VersionRef(BaseModel):
    name: str
    version: int


class LineUseResponse(BaseModel):
    line: str
    served: bool = Field(description="this registry runs the line")
    versions: list[VersionRef] = Field(
        description="the active versions it serves: remove a line only when this is empty"
    )


class RuntimeLinesResponse(BaseModel):
    lines: list[LineUseResponse]

    @classmethod
    def of(cls, uses: "list[LineUse]") -> Self:
        return cls(
            lines=[
                LineUseResponse(
                    line=use.line,
                    served=use.served,
                    versions=[
                        VersionRef(name=name, version=version) for name, version in use.versions
                    ],
                )
                for use in uses
            ]
        )


class ModelSummaryResponse(BaseModel):
    name: str
    latest_version: int | None = Field(description="the highest active version")
    version_count: int
    aliases: dict[str, int]


class ModelListResponse(BaseModel):
    models: list[ModelSummaryResponse]

    @classmethod
    def of(cls, summaries: list[ModelSummary]) -> Self:
        return cls(models=[ModelSummaryResponse(**vars(summary)) for summary in summaries])


class VersionSummaryResponse(BaseModel):
    version: int
    created_at: datetime
    sha256: str
    status: VersionStatus
    description: str
    aliases: list[str]
    serving_line: str | None = Field(
        default=None, description="the runtime line that serves it (null: a compiled form)"
    )


class ModelDetailsResponse(BaseModel):
    name: str
    version_count: int
    latest_version: int | None
    aliases: dict[str, int]
    splits: dict[str, dict[int, int]] = Field(
        default_factory=dict, description="weighted aliases: each version's weight"
    )
    shadows: dict[str, int] = Field(default_factory=dict, description="each alias's shadow")
    versions: list[VersionSummaryResponse]
    next_after: int | None = Field(description="pass as ?after= for the next page; null at the end")

    @classmethod
    def of(cls, details: ModelVersions) -> Self:
        return cls(
            name=details.name,
            version_count=details.version_count,
            latest_version=details.latest_version,
            aliases=details.aliases,
            splits=details.splits,
            shadows=details.shadows,
            next_after=details.next_after,
            versions=[
                VersionSummaryResponse(
                    version=info.manifest.version,
                    created_at=info.manifest.created_at,
                    sha256=info.manifest.sha256,
                    status=info.status,
                    description=info.manifest.description,
                    aliases=info.aliases,
                    serving_line=info.serving_line,
                )
                for info in details.versions
            ],
        )


class SetAliasRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    usage: ClassVar[str] = (
        'send {"version": 2}, or {"weights": {"7": 90, "8": 10}} to split traffic by weight'
    )

    version: VersionNumber | None = Field(default=None, description="the version it serves")
    weights: dict[VersionNumber, Annotated[int, Field(ge=1, le=1_000_000)]] | None = Field(
        default=None,
        description="2 to 4 versions and their weights: each request goes to one, chosen by "
        "its x-routing-key header (else its request id)",
    )
    shadow: VersionNumber | None = Field(
        default=None,
        description="a version that never answers, whose answers to the alias's captured "
        "rows `model-registry shadow report` compares (left out: none)",
    )
    salt: Annotated[str, Field(pattern=r"^[0-9a-zA-Z_-]{1,64}$")] | None = Field(
        default=None,
        description="with weights: a new salt reshuffles which key goes to which version "
        "(left out: the alias keeps its own)",
    )

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.version is None) == (self.weights is None):
            raise ValueError("send exactly one of version or weights")
        if self.salt is not None and self.weights is None:
            raise ValueError("a salt goes with weights")
        return self


class AliasResponse(BaseModel):
    name: str
    alias: str
    version: int = Field(description="the version it serves; with weights, the heaviest")
    weights: dict[int, int] | None = None
    salt: str | None = None
    shadow: int | None = None

    @classmethod
    def of(cls, name: str, alias: str, state: ModelState) -> Self:
        split = state.splits.get(alias)
        shadow = state.shadows.get(alias)
        if split is None:
            return cls(name=name, alias=alias, version=state.aliases[alias], shadow=shadow)
        return cls(
            name=name,
            alias=alias,
            version=split.heaviest,
            weights=split.weights,
            salt=split.salt,
            shadow=shadow,
        )


class ReferenceRowsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    usage: ClassVar[str] = 'send {"rows": [[0.5, 0.2], ...]} (lists, or objects of column values)'

    rows: Annotated[list[Any], Field(min_length=1, max_length=MAX_REFERENCE_ROWS)] = Field(
        description="rows of the inputs the version was trained or validated on: what "
        "`model-registry monitor` compares captured inputs with"
    )


class ReferenceRowsResponse(BaseModel):
    model: str
    version: int
    rows: int | list[Any] = Field(description="how many were kept (PUT), or the rows (GET)")


class CaptureShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    usage: ClassVar[str] = 'send {"sample_percent": 10}, or {"sample_percent": null}'

    sample_percent: Annotated[float, Field(ge=0, le=100)] | None = Field(
        description="the share of this model's predict requests captured with their answers; "
        "null: the deployment's CaptureSamplePercent"
    )


class CaptureShareResponse(BaseModel):
    model: str
    sample_percent: float | None = Field(description="null: the deployment's share")


class CapturedResponse(BaseModel):
    """Captured requests with their answers (registry/capture.py), oldest first."""

    model: str
    records: list[dict[str, Any]] = Field(
        description="each: eventMetadata (eventId, inferenceTime), model, version, alias, "
        "routing_key, rows (objects of column values), predictions, probabilities and classes "
        "when asked, rows_omitted (rows too large for the record); SageMaker's captureData is "
        "left out (it holds the same rows and answers)"
    )
    after: str | None = Field(description="send as `after` for the next page; null: no more")


class UploadResponse(BaseModel):
    upload_url: str = Field(description="PUT the joblib bytes here")
    upload_key: str = Field(description="then POST /models with this upload_key")
    expires_in: int = Field(description="seconds the URL stays valid")

    @classmethod
    def of(cls, upload: "Upload") -> Self:
        return cls(**vars(upload))


class DataFrameSplit(BaseModel):
    """pandas' `DataFrame.to_dict(orient="split")`, as MLflow's clients send a DataFrame."""

    model_config = ConfigDict(extra="forbid")

    columns: list[ColumnName] | None = Field(
        default=None, description="the names of each row's values; left out: the model's order"
    )
    data: Rows
    index: list[Any] | None = Field(default=None, description="accepted and ignored")


class PredictRequest(BaseModel):
    """Rows to predict, in one of these forms (send exactly one):

    - the blog's single row: {"data1": x, "data2": y};
    - `instances` or `inputs`: a list of rows, each a list of values in the model's column
      order or an object of column values, or an object of columns (column -> values);
    - `dataframe_records` (a list of objects) or `dataframe_split` ({columns, data}), as
      MLflow's scoring server takes them.

    Values are numbers, strings, booleans, or null for a missing value, as the version's
    signature (GET /models/{name}/versions/{version}) says each column takes.
    """

    model_config = ConfigDict(extra="forbid")
    usage: ClassVar[str] = (
        'send rows as {"instances": [[0.5, 0.2]]} or {"instances": [{"column": value}]}, '
        'as MLflow does ({"dataframe_split": {"columns": [...], "data": [[...]]}}, '
        '"dataframe_records" or "inputs"), or the blog\'s {"data1": 0.5, "data2": 0.2}; add '
        '"probabilities": true for class probabilities'
    )

    data1: LenientFeature | None = None
    data2: LenientFeature | None = None
    instances: Rows | None = None
    inputs: Rows | None = None
    dataframe_records: Rows | None = None
    dataframe_split: DataFrameSplit | None = None
    params: dict[str, Any] | None = Field(
        default=None, description="MLflow's inference params: none are taken; leave out or {}"
    )
    probabilities: bool = Field(default=False, strict=True)

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        single = self.data1 is not None or self.data2 is not None
        forms = [name for name in ROW_FORMS if getattr(self, name) is not None]
        if single and forms:
            raise ValueError(f"send either data1 and data2, or {forms[0]}, not both")
        if single and (self.data1 is None or self.data2 is None):
            raise ValueError("send both data1 and data2")
        if len(forms) > 1:
            raise ValueError(f"send one of {', '.join(forms)}, not several")
        if self.params:
            raise ValueError("this API passes no params to predict: leave params out")
        if not single and not forms:
            raise ValueError(
                "send rows as instances, inputs, dataframe_records or dataframe_split "
                "(or the blog's data1 and data2)"
            )
        return self

    def __repr__(self) -> str:
        # Powertools logs each route's arguments with an eager f-string (at debug level, but
        # formatted on every request): a full repr of a large batch would cost milliseconds.
        if self.is_single:
            return f"PredictRequest(data1={self.data1!r}, data2={self.data2!r})"
        return f"PredictRequest(<{len(self.rows())} rows>)"

    @property
    def is_single(self) -> bool:
        return self.data1 is not None

    def rows(self) -> RequestRows:
        """The rows, whichever form carried them (see registry.inputs)."""
        if self.data1 is not None and self.data2 is not None:
            return RequestRows(NumericRows([[self.data1, self.data2]]))
        if self.dataframe_split is not None:
            split = self.dataframe_split
            return rows_from_json(split.data, "dataframe_split.data", split.columns)
        form = next(name for name in ROW_FORMS if getattr(self, name) is not None)
        return rows_from_json(getattr(self, form), form)


class PredictResponse(BaseModel):
    """`prediction` answers the blog's single-row form; `predictions` every other form."""

    prediction: str | None = Field(
        default=None, description="the label as a string, as the blog answered"
    )
    predictions: list[Any] | None = Field(
        default=None,
        description=(
            "one per row: a class label, or a number for a regressor; for a multi-output "
            "model a list per row, one value per output"
        ),
    )
    probabilities: list[list[float]] | list[list[list[float]]] | None = Field(
        default=None,
        description=(
            "one list per row, in the order of classes; for a multi-output classifier one "
            "list per output within each row ([row][output][class])"
        ),
    )
    classes: list[Label] | list[list[Label]] | None = Field(
        default=None, description="the classes; one list per output for a multi-output model"
    )
    model: str
    version: int
    line: str | None = Field(
        default=None,
        description="the older runtime line (a scikit-learn minor, 1.8) that predicted; left "
        "out when the newest line did",
    )


class PingResponse(BaseModel):
    status: str


class ErrorResponse(BaseModel):
    code: str
    message: str


def predict_response_json(
    name: str, result: "Prediction", single: bool, with_probabilities: bool
) -> str:
    """A PredictResponse as JSON text, without the fields that do not apply."""
    answer: dict[str, Any] = (
        {"prediction": str(result.predictions[0])}
        if single
        else {"predictions": result.predictions}
    )
    if with_probabilities:
        answer["probabilities"] = result.probabilities
        answer["classes"] = result.manifest.output_classes or result.manifest.classes
    answer["model"] = name
    answer["version"] = result.manifest.version
    if result.line is not None:
        answer["line"] = result.line
    # orjson writes a float as the shortest text that reads back as the same double, as the
    # json module does, several times faster; an integer beyond 64 bits is the json module's.
    # Non-finite values never get here (the predictor makes them null).
    try:
        return orjson.dumps(answer).decode()
    except TypeError:
        return json.dumps(answer, separators=(",", ":"), allow_nan=False)
