"""Pydantic models of the HTTP API's requests and responses."""

import base64
import binascii
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from registry.errors import InvalidArtifactError
from registry.manifest import MODEL_NAME_PATTERN, Label


def _reject_bool(value: Any) -> Any:
    # Pydantic would read true/false as 1.0/0.0; a boolean is never a feature value.
    if isinstance(value, bool):
        raise ValueError("a feature value must be a number, not a boolean")
    return value


# The blog's clients send numbers or numeric strings ("0.5"); both are accepted.
LenientFeature = Annotated[float, Field(allow_inf_nan=False), BeforeValidator(_reject_bool)]
# Batch instances are JSON numbers only.
StrictFeature = Annotated[
    float, Field(allow_inf_nan=False, strict=True), BeforeValidator(_reject_bool)
]
ModelName = Annotated[str, Field(pattern=MODEL_NAME_PATTERN, examples=["moons"])]


class RegisterModelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ModelName
    artifact: str = Field(min_length=1, description="base64 of the joblib file's bytes")
    description: str = Field(default="", max_length=1000)
    tags: dict[Annotated[str, Field(max_length=128)], Annotated[str, Field(max_length=256)]] = (
        Field(default_factory=dict, max_length=50)
    )

    def artifact_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.artifact, validate=True)
        except binascii.Error as exc:
            raise InvalidArtifactError("artifact is not valid base64") from exc


class ClassifyRequest(BaseModel):
    """Either the blog's single row {"data1": x, "data2": y} or {"instances": [[...], ...]}."""

    model_config = ConfigDict(extra="forbid")

    data1: LenientFeature | None = None
    data2: LenientFeature | None = None
    instances: list[list[StrictFeature]] | None = Field(default=None, min_length=1)

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

    @property
    def is_single(self) -> bool:
        return self.instances is None

    def rows(self) -> list[list[float]]:
        if self.instances is not None:
            return self.instances
        assert self.data1 is not None and self.data2 is not None
        return [[self.data1, self.data2]]


class SingleClassifyResponse(BaseModel):
    prediction: str = Field(description="the predicted label as a string, as the blog answered")
    model: str
    version: int


class BatchClassifyResponse(BaseModel):
    predictions: list[Label] = Field(description="one label per instance, as the model returns it")
    model: str
    version: int


class ErrorResponse(BaseModel):
    code: str
    message: str
