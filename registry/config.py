"""Typed settings read from the environment, in one place."""

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_CACHE_MAX_BYTES = 256 * 1024 * 1024


class Settings(BaseModel):
    """REGISTRY_URI: 's3://bucket[/prefix]' or a local directory (the embedded store).

    DEFAULT_MODEL: the model /classify serves when the request names none.
    CACHE_MAX_BYTES: the predict function's model cache bound, in artifact bytes.
    """

    model_config = ConfigDict(frozen=True)

    registry_uri: str = Field(default=".registry", min_length=1)
    default_model: str = "moons"
    cache_max_bytes: int = Field(default=DEFAULT_CACHE_MAX_BYTES, ge=0)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        values = {field: env[field.upper()] for field in cls.model_fields if field.upper() in env}
        return cls.model_validate(values)
