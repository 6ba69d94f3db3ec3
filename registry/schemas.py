"""Pydantic models of the HTTP API's requests and responses."""

import base64
import json
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from registry.errors import InvalidArtifactError
from registry.manifest import (
    MAX_VERSION,
    MODEL_NAME_PATTERN,
    UPLOAD_KEY_PATTERN,
    Label,
    MetricValue,
    ModelManifest,
    VersionStatus,
)
from registry.predictor import Prediction
from registry.registration import Registration, Upload
from registry.registry import ModelSummary, ModelVersions, VersionInfo


def _reject_bool(value: Any) -> Any:
    # Pydantic would read true/false as 1.0/0.0; a boolean is never a feature value.
    if isinstance(value, bool):
        raise ValueError("a feature value must be a number, not a boolean")
    return value


# The blog's clients send numbers or numeric strings ("0.5"); both are accepted.
LenientFeature = Annotated[float, Field(allow_inf_nan=False), BeforeValidator(_reject_bool)]
# Batch instances are JSON numbers only. Strict floats refuse booleans, strings and
# nulls inside pydantic-core, with no Python call per value: cheap for large batches.
StrictFeature = Annotated[float, Field(allow_inf_nan=False, strict=True)]
RowLists = Annotated[list[list[StrictFeature]], Field(min_length=1)]
NamedRows = Annotated[list[dict[str, StrictFeature]], Field(min_length=1)]
ModelName = Annotated[str, Field(pattern=MODEL_NAME_PATTERN, examples=["moons"])]
VersionNumber = Annotated[int, Field(ge=1, le=MAX_VERSION)]


class RegisterModelRequest(BaseModel):
    """Either `artifact` (base64, for small models) or `upload_key` (from POST .../uploads)."""

    model_config = ConfigDict(extra="forbid")

    name: ModelName
    artifact: str | None = Field(
        default=None, min_length=1, description="base64 of the joblib file's bytes"
    )
    upload_key: str | None = Field(default=None, pattern=UPLOAD_KEY_PATTERN)
    description: str = Field(default="", max_length=1000)
    tags: dict[Annotated[str, Field(max_length=128)], Annotated[str, Field(max_length=256)]] = (
        Field(default_factory=dict, max_length=50)
    )
    metrics: dict[Annotated[str, Field(max_length=128)], MetricValue] = Field(
        default_factory=dict, max_length=100
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.artifact is None) == (self.upload_key is None):
            raise ValueError("send either artifact or upload_key")
        return self

    def artifact_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.artifact or "", validate=True)
        except ValueError as exc:  # binascii.Error, or characters outside ASCII
            raise InvalidArtifactError("artifact is not valid base64") from exc


class ModelVersionResponse(ModelManifest):
    status: VersionStatus
    aliases: list[str]

    @classmethod
    def of(cls, info: VersionInfo) -> Self:
        return cls(**info.manifest.model_dump(), status=info.status, aliases=info.aliases)


class RegisterModelResponse(ModelVersionResponse):
    created: bool = Field(description="false when identical bytes were already registered")

    @classmethod
    def of_registration(cls, registration: Registration) -> Self:
        info = registration.info
        return cls(
            **info.manifest.model_dump(),
            status=info.status,
            aliases=info.aliases,
            created=registration.created,
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


class ModelDetailsResponse(BaseModel):
    name: str
    version_count: int
    latest_version: int | None
    aliases: dict[str, int]
    versions: list[VersionSummaryResponse]
    next_after: int | None = Field(description="pass as ?after= for the next page; null at the end")

    @classmethod
    def of(cls, details: ModelVersions) -> Self:
        return cls(
            name=details.name,
            version_count=details.version_count,
            latest_version=details.latest_version,
            aliases=details.aliases,
            next_after=details.next_after,
            versions=[
                VersionSummaryResponse(
                    version=info.manifest.version,
                    created_at=info.manifest.created_at,
                    sha256=info.manifest.sha256,
                    status=info.status,
                    description=info.manifest.description,
                    aliases=info.aliases,
                )
                for info in details.versions
            ],
        )


class SetAliasRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: VersionNumber


class AliasResponse(BaseModel):
    name: str
    alias: str
    version: int


class UploadResponse(BaseModel):
    upload_url: str = Field(description="PUT the joblib bytes here")
    upload_key: str = Field(description="then POST /models with this upload_key")
    expires_in: int = Field(description="seconds the URL stays valid")

    @classmethod
    def of(cls, upload: Upload) -> Self:
        return cls(**vars(upload))


class ClassifyRequest(BaseModel):
    """Either the blog's single row {"data1": x, "data2": y} or {"instances": [...]}.

    Instances are lists of numbers, or objects {"feature": number} for models
    fitted with feature names.
    """

    model_config = ConfigDict(extra="forbid")

    data1: LenientFeature | None = None
    data2: LenientFeature | None = None
    instances: Annotated[RowLists | NamedRows, Field(union_mode="left_to_right")] | None = None
    probabilities: bool = Field(default=False, strict=True)

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        single = self.data1 is not None or self.data2 is not None
        if single and self.instances is not None:
            raise ValueError("send either data1 and data2, or instances, not both")
        if single and (self.data1 is None or self.data2 is None):
            raise ValueError("send both data1 and data2")
        if not single and self.instances is None:
            raise ValueError("send data1 and data2, or instances")
        return self

    def __repr__(self) -> str:
        # Powertools logs each route's arguments with an eager f-string (at debug level, but
        # formatted on every request): a full repr of a large batch would cost milliseconds.
        if self.instances is not None:
            return f"ClassifyRequest(instances=<{len(self.instances)} rows>)"
        return f"ClassifyRequest(data1={self.data1!r}, data2={self.data2!r})"

    @property
    def is_single(self) -> bool:
        return self.instances is None

    def rows(self) -> list[list[float]] | list[dict[str, float]]:
        if self.instances is not None:
            return self.instances
        assert self.data1 is not None and self.data2 is not None
        return [[self.data1, self.data2]]


class ClassifyResponse(BaseModel):
    """`prediction` answers the blog's single-row form, `predictions` a batch."""

    prediction: str | None = Field(
        default=None, description="the label as a string, as the blog answered"
    )
    predictions: list[Label] | None = Field(
        default=None, description="one label per instance, as the model returns it"
    )
    probabilities: list[list[float]] | None = Field(
        default=None, description="one list per instance, in the order of classes"
    )
    classes: list[Label] | None = None
    model: str
    version: int


class ErrorResponse(BaseModel):
    code: str
    message: str


def classify_response_json(
    name: str, result: Prediction, single: bool, with_probabilities: bool
) -> str:
    """A ClassifyResponse as JSON text, without the fields that do not apply."""
    answer: dict[str, Any] = (
        {"prediction": str(result.labels[0])} if single else {"predictions": result.labels}
    )
    if with_probabilities:
        answer["probabilities"] = result.probabilities
        answer["classes"] = result.manifest.classes
    answer["model"] = name
    answer["version"] = result.manifest.version
    return json.dumps(answer, separators=(",", ":"))
