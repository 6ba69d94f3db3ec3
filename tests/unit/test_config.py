import subprocess
import sys

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


def test_reading_the_settings_loads_nothing_of_ours_and_no_scikit_learn() -> None:
    script = "import sys, registry.config; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert "registry.config" in loaded
    assert {name for name in loaded if name.startswith("registry")} == {
        "registry",
        "registry.config",
    }
    assert not {name.split(".")[0] for name in loaded} & {"sklearn", "joblib", "numpy", "skops"}
