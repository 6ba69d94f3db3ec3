"""Serve predictions from cached models: a warm request for a known version never reads S3."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy

from registry.cache import ModelCache, Sized
from registry.errors import InvalidInputError
from registry.manifest import Label, ModelManifest, validate_model_name
from registry.registry import ModelRegistry


@dataclass(frozen=True)
class LoadedModel:
    manifest: ModelManifest
    estimator: Any


@dataclass(frozen=True)
class Prediction:
    manifest: ModelManifest
    labels: list[Label]
    cache_hit: bool


class Predictor:
    def __init__(self, registry: ModelRegistry, cache: ModelCache[LoadedModel]) -> None:
        self.registry = registry
        self.cache = cache

    def model(self, name: str, version: int | None = None) -> tuple[LoadedModel, bool]:
        """The loaded model and whether it came from the cache."""
        validate_model_name(name)
        if version is None:
            version = self.registry.latest_version(name)
        resolved_version = version
        return self.cache.get_or_load(
            (name, resolved_version), lambda: self._load(name, resolved_version)
        )

    def _load(self, name: str, version: int) -> Sized[LoadedModel]:
        manifest = self.registry.get_manifest(name, version)
        estimator = self.registry.load_model(manifest)
        return Sized(LoadedModel(manifest, estimator), manifest.size_bytes)

    def predict(
        self, name: str, version: int | None, instances: Sequence[Sequence[float]]
    ) -> Prediction:
        loaded, cache_hit = self.model(name, version)
        features = feature_matrix(instances, loaded.manifest.n_features_in)
        try:
            labels = loaded.estimator.predict(features)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"the model rejected the instances: {exc}"[:300]) from exc
        return Prediction(loaded.manifest, numpy.asarray(labels).tolist(), cache_hit)


def feature_matrix(instances: Sequence[Sequence[float]], n_features: int | None) -> Any:
    """One float64 array of shape (rows, n_features), or a 422 that says what is wrong."""
    if len(instances) == 0:
        raise InvalidInputError("instances is empty: send at least one row")
    try:
        features = numpy.asarray(instances, dtype=numpy.float64)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError("every instance must be a list of numbers of one length") from exc
    if features.ndim != 2:
        raise InvalidInputError("every instance must be a list of numbers of one length")
    if n_features is not None and features.shape[1] != n_features:
        raise InvalidInputError(
            f"the model expects {n_features} features per instance, got {features.shape[1]}"
        )
    if not numpy.isfinite(features).all():
        raise InvalidInputError("feature values must be finite numbers (no NaN or infinity)")
    return features
