"""Factories that build the registry from the settings once per warm container.

They are lru_cache factories rather than module globals so tests can point
them at another store with reset().
"""

from functools import lru_cache

from registry.cache import ModelCache
from registry.config import Settings
from registry.predictor import LoadedModel, Predictor
from registry.registry import ModelRegistry
from registry.store import open_store


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_environ()


@lru_cache(maxsize=1)
def model_registry() -> ModelRegistry:
    config = settings()
    store = open_store(config.registry_uri, upload_url=config.local_upload_url)
    return ModelRegistry(store, max_artifact_bytes=config.max_artifact_bytes)


@lru_cache(maxsize=1)
def predictor() -> Predictor:
    config = settings()
    return Predictor(
        model_registry(),
        ModelCache[LoadedModel](config.cache_max_bytes),
        alias_ttl_seconds=config.alias_ttl_seconds,
        max_instances=config.max_instances,
    )


def reset() -> None:
    """Forget the settings, store and cached models (tests use this between cases)."""
    for factory in (settings, model_registry, predictor):
        factory.cache_clear()
