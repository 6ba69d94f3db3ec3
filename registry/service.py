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
    return ModelRegistry(open_store(settings().registry_uri))


@lru_cache(maxsize=1)
def predictor() -> Predictor:
    return Predictor(model_registry(), ModelCache[LoadedModel](settings().cache_max_bytes))


def reset() -> None:
    """Forget the settings, store and cached models (tests use this between cases)."""
    for factory in (settings, model_registry, predictor):
        factory.cache_clear()
