"""Pydantic models of what the registry stores, and the naming rules for keys."""

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from registry.errors import InvalidNameError

MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
# Version numbers are zero-padded in keys so that listing order is numeric order.
VERSION_DIGITS = 10
MAX_VERSION = 10**VERSION_DIGITS - 1

Label = bool | int | float | str


def validate_model_name(name: str) -> str:
    """Lowercase letters, digits, '-' and '_', starting with a letter or digit, 64 at most."""
    if not _MODEL_NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid model name {name[:80]!r}: use 1 to 64 lowercase letters, digits, "
            "'-' or '_', starting with a letter or digit"
        )
    return name


def model_prefix(name: str) -> str:
    return f"models/{validate_model_name(name)}/"


def versions_prefix(name: str) -> str:
    return f"{model_prefix(name)}versions/"


def manifest_key(name: str, version: int) -> str:
    return f"{versions_prefix(name)}{version:0{VERSION_DIGITS}d}.json"


def version_from_manifest_key(key: str) -> int | None:
    stem = key.rpartition("/")[2].removesuffix(".json")
    return int(stem) if stem.isdigit() and key.endswith(".json") else None


def artifact_key(name: str, sha256: str) -> str:
    """Artifacts are content-addressed: identical bytes share one object."""
    return f"{model_prefix(name)}artifacts/{sha256}.joblib"


class RuntimeVersions(BaseModel):
    """The versions an artifact was validated with at registration."""

    model_config = ConfigDict(frozen=True)

    python: str
    scikit_learn: str
    joblib: str
    numpy: str


class ModelManifest(BaseModel):
    """One immutable model version; writing it is the commit point of a registration."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int = Field(ge=1)
    artifact_key: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    created_at: datetime
    estimator_class: str
    n_features_in: int | None = None
    feature_names: list[str] | None = None
    classes: list[Label] | None = None
    runtime: RuntimeVersions
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
