"""Typed settings read from the environment, in one place."""

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from registry.predictor import DEFAULT_ALIAS_TTL_SECONDS, DEFAULT_MAX_INSTANCES
from registry.registry import DEFAULT_MAX_ARTIFACT_BYTES, DEFAULT_UPLOAD_EXPIRES_IN

DEFAULT_CACHE_MAX_BYTES = 256 * 1024 * 1024
# Only scripts/local_api.py sets these; a Lambda function never needs them.
LOCAL_ONLY_SETTINGS = frozenset({"local_upload_url"})


class Settings(BaseModel):
    """REGISTRY_URI: 's3://bucket[/prefix]' or a local directory (the embedded store).

    DEFAULT_MODEL: the model /classify serves when the request names none.
    CACHE_MAX_BYTES: the predict function's model cache bound, in artifact bytes.
    ALIAS_TTL_SECONDS: how long a warm predict container trusts what it read of aliases,
      archived versions and the latest version.
    MAX_INSTANCES: the most instances one classify request may carry.
    MAX_ARTIFACT_BYTES: the largest artifact registration accepts (checked before loading).
    UPLOAD_EXPIRES_SECONDS: how long an upload URL stays valid.
    LOCAL_UPLOAD_URL: where scripts/local_api.py takes uploads for a directory store.
    PRELOAD_DEFAULT_MODEL: load DEFAULT_MODEL while the predict function initialises.
    """

    model_config = ConfigDict(frozen=True)

    registry_uri: str = Field(default=".registry", min_length=1)
    default_model: str = "moons"
    cache_max_bytes: int = Field(default=DEFAULT_CACHE_MAX_BYTES, ge=0)
    alias_ttl_seconds: float = Field(default=DEFAULT_ALIAS_TTL_SECONDS, ge=0)
    max_instances: int = Field(default=DEFAULT_MAX_INSTANCES, ge=1)
    max_artifact_bytes: int = Field(default=DEFAULT_MAX_ARTIFACT_BYTES, ge=1)
    upload_expires_seconds: int = Field(default=DEFAULT_UPLOAD_EXPIRES_IN, ge=1, le=7 * 24 * 3600)
    local_upload_url: str | None = None
    preload_default_model: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        values = {field: env[field.upper()] for field in cls.model_fields if field.upper() in env}
        return cls.model_validate(values)
