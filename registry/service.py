"""Factories that build the registry from the settings once per warm container.

They are lru_cache factories rather than module globals so tests can point
them at another store with reset().
"""

import random
from functools import lru_cache

import numpy

from registry.cache import ModelCache
from registry.config import Settings
from registry.errors import RegistryError
from registry.observability import logger
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


def preload_default_model() -> bool:
    """Load DEFAULT_MODEL into the predictor's cache now: at init, or into a SnapStart snapshot.

    A model that cannot be loaded is logged, not raised: the function still serves the others.
    """
    name = settings().default_model
    try:
        served = predictor().model(name)
    except RegistryError as exc:
        logger.warning("default model not preloaded", extra={"model": name, "error_code": exc.code})
        return False
    logger.info(
        "default model preloaded",
        extra={"model": name, "version": served.loaded.manifest.version, "load_ms": served.load_ms},
    )
    return True


def renew_after_restore() -> None:
    """After a SnapStart restore: new S3 connections, fresh randomness, aliases read again.

    Loaded models stay: they are what the snapshot is for.
    """
    model_registry().store.renew()
    predictor().forget_views()
    random.seed()
    numpy.random.seed()


def register_snapshot_hooks() -> bool:
    """Run renew_after_restore after every SnapStart restore, where the runtime offers hooks."""
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:  # not running under Lambda's Python runtime
        return False
    register_after_restore(renew_after_restore)
    return True
