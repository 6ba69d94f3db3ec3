import pytest
from pydantic import ValidationError

from registry.config import DEFAULT_CACHE_MAX_BYTES, Settings


def test_settings_read_their_variables_from_the_environment() -> None:
    settings = Settings.from_environ(
        {"REGISTRY_URI": "s3://b/p", "DEFAULT_MODEL": "iris", "CACHE_MAX_BYTES": "1024"}
    )
    assert (settings.registry_uri, settings.default_model, settings.cache_max_bytes) == (
        "s3://b/p",
        "iris",
        1024,
    )


def test_settings_have_defaults_for_local_use() -> None:
    settings = Settings.from_environ({})
    assert settings.registry_uri == ".registry"
    assert settings.cache_max_bytes == DEFAULT_CACHE_MAX_BYTES


def test_a_malformed_setting_fails_at_startup() -> None:
    with pytest.raises(ValidationError):
        Settings.from_environ({"CACHE_MAX_BYTES": "lots"})
