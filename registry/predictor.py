"""Serve predictions from cached models.

Loaded models are cached for ever per (name, version): versions are immutable.
What can change (aliases, archived versions, which version is latest) is
cached per model for alias_ttl_seconds, so a warm request makes no S3 call
and a warm container sees an alias move or an archive within that time. An
alias the cached state does not know is looked up again at once.
"""

import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy

from registry.cache import ModelCache, Sized
from registry.compiled import CompiledFormError, load_compiled
from registry.config import DEFAULT_ALIAS_TTL_SECONDS, DEFAULT_MAX_INSTANCES, PicklePolicy
from registry.errors import (
    InvalidInputError,
    PickleRefusedError,
    ProbabilitiesUnavailableError,
    RegistryError,
    TooManyInstancesError,
)
from registry.fastpath import Predictors, predictors_for
from registry.inputs import (
    RequestRows,
    explain_rejection,
    model_input,
    prediction_count,
    signature_of,
)
from registry.manifest import (
    ArtifactFormat,
    InputSignature,
    ModelManifest,
    ModelState,
    ServingFormat,
    validate_model_name,
)
from registry.native_threads import NativeThreads
from registry.observability import logger
from registry.registry import ModelRegistry
from registry.validation import (
    ArtifactRejected,
    RejectionReason,
    rejection_error,
    runtime_versions,
)

# Past this many models seen, expired views are dropped (names come from requests).
MAX_MODEL_VIEWS = 1024
# Named instances are put in the model's feature order before predict() sees an array;
# scikit-learn's reminder that the array has no names is then noise in every log.
warnings.filterwarnings(
    "ignore", message="X does not have valid feature names", category=UserWarning
)


@dataclass(frozen=True)
class LoadedModel:
    manifest: ModelManifest
    estimator: Any
    predictors: Predictors = field(init=False)
    signature: InputSignature | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "predictors", predictors_for(self.estimator))
        object.__setattr__(self, "signature", signature_of(self.manifest))


@dataclass(frozen=True)
class ServedModel:
    """A loaded model; on a cache miss, the milliseconds spent reading, checking and unpickling it
    (or waiting for a concurrent request's load of the same version)."""

    loaded: LoadedModel
    cache_hit: bool
    load_ms: float | None = None


@dataclass(frozen=True)
class Prediction:
    """One prediction per row: a label, a value, or a list of them (one per output)."""

    manifest: ModelManifest
    predictions: list[Any]
    cache_hit: bool
    probabilities: list[Any] | None = None
    load_ms: float | None = None


@dataclass
class _ModelView:
    """A model's state as read at one time, and what it resolved to since."""

    expires_at: float
    state: ModelState
    resolved: dict[str | None, int] = field(default_factory=dict)


class Predictor:
    def __init__(
        self,
        registry: ModelRegistry,
        cache: ModelCache[LoadedModel],
        alias_ttl_seconds: float = DEFAULT_ALIAS_TTL_SECONDS,
        max_instances: int = DEFAULT_MAX_INSTANCES,
        clock: Callable[[], float] = time.monotonic,
        pickle_policy: PicklePolicy = PicklePolicy.ALLOW,
        native_threads: int | None = 1,
    ) -> None:
        """native_threads: the most threads OpenMP and BLAS pools use in predict; None: no limit."""
        self.registry = registry
        self.native_threads = NativeThreads(native_threads)
        self.pickle_policy = pickle_policy
        self.cache = cache
        self.alias_ttl_seconds = alias_ttl_seconds
        self.max_instances = max_instances
        self.clock = clock
        self._views: dict[str, _ModelView] = {}
        self._views_lock = threading.Lock()

    def _view(self, name: str, fresh: bool = False) -> _ModelView:
        now = self.clock()
        with self._views_lock:
            view = self._views.get(name)
        if fresh or view is None or view.expires_at <= now:
            view = _ModelView(now + self.alias_ttl_seconds, self.registry.state(name))
            logger.debug(
                "model state read",
                extra={
                    "model": name,
                    "aliases": view.state.aliases,
                    "archived_versions": len(view.state.archived),
                },
            )
            with self._views_lock:
                if len(self._views) >= MAX_MODEL_VIEWS:
                    self._views = {
                        key: kept for key, kept in self._views.items() if kept.expires_at > now
                    }
                self._views[name] = view
        return view

    def forget_views(self) -> None:
        """Re-read aliases, archived versions and "latest" on the next request."""
        with self._views_lock:
            self._views = {}

    def resolve(self, name: str, version: int | None = None, alias: str | None = None) -> int:
        """The version to serve, decided by ModelRegistry.resolve_version on the cached state.

        What an alias or "latest" resolves to is kept with the state it was read from.
        """
        validate_model_name(name)
        view = self._view(name)
        if alias is not None and alias not in view.state.aliases:
            # What is missing is read again at once: a new alias works from its first
            # request; only moves of existing aliases wait for the TTL.
            view = self._view(name, fresh=True)
        if version is not None:
            return self.registry.resolve_version(name, view.state, version, alias)
        resolved = view.resolved.get(alias)
        if resolved is None:
            resolved = self.registry.resolve_version(name, view.state, None, alias)
            view.resolved[alias] = resolved
        return resolved

    def model(self, name: str, version: int | None = None, alias: str | None = None) -> ServedModel:
        """The loaded model, whether it came from the cache, and how long loading it took."""
        resolved = self.resolve(name, version, alias)
        started = time.perf_counter()
        loaded, cache_hit = self.cache.get_or_load(
            (name, resolved), lambda: self._load(name, resolved)
        )
        if cache_hit:
            return ServedModel(loaded, cache_hit=True)
        return ServedModel(loaded, False, round((time.perf_counter() - started) * 1000, 3))

    def _load(self, name: str, version: int) -> Sized[LoadedModel]:
        manifest = self.registry.get_manifest(name, version)
        estimator = load_model(self.registry, manifest, self.pickle_policy)
        self.native_threads.refresh()
        logger.debug(
            "model loaded",
            extra={
                "model": name,
                "version": version,
                "size_bytes": manifest.size_bytes,
                "estimator_class": manifest.estimator_class,
                "cached_bytes": self.cache.total_bytes,
            },
        )
        return Sized(LoadedModel(manifest, estimator), manifest.size_bytes)

    def predict(
        self,
        name: str,
        version: int | None,
        rows: RequestRows | Sequence[Any],
        alias: str | None = None,
        probabilities: bool = False,
    ) -> Prediction:
        if not isinstance(rows, RequestRows):
            rows = RequestRows(rows)
        if len(rows) > self.max_instances:
            raise TooManyInstancesError(
                f"{len(rows)} rows in one request; the limit is {self.max_instances}: send "
                "them in batches, as `model-registry classify NAME --input rows.csv` and the "
                "Python client's predict do"
            )
        served = self.model(name, version, alias)
        loaded = served.loaded
        manifest = loaded.manifest
        if probabilities and not manifest.has_predict_proba:
            raise ProbabilitiesUnavailableError(
                f"{manifest.estimator_class} has no predict_proba; leave out probabilities"
            )
        features = model_input(rows, loaded.signature)
        predictors = loaded.predictors
        self.native_threads.apply()
        try:
            predictions = predictors.predict(features)
            proba = predictors.predict_proba
            scores = proba(features) if probabilities and proba is not None else None
        except MemoryError:
            raise
        except Exception as exc:  # the model refused these rows; only its type is named
            explained = explain_rejection(rows, loaded.signature)
            raise InvalidInputError(
                explained
                or f"the model could not predict on these rows (it raised {type(exc).__name__}):"
                f" check them against the version's signature (GET /models/{name}/versions/"
                f"{manifest.version})"
            ) from exc
        if prediction_count(predictions) != len(rows):
            raise InvalidInputError(
                f"the model returned {prediction_count(predictions)} predictions for "
                f"{len(rows)} rows: it "
                "does not take rows of columns (fitted on a plain list of texts?); register it "
                "fitted on a DataFrame column or a 2-D array"
            )
        return Prediction(
            manifest,
            json_values(predictions),
            served.cache_hit,
            _probabilities_per_row(scores) if scores is not None else None,
            served.load_ms,
        )


def json_values(array: Any) -> list[Any]:
    """An array's values as JSON values: a NaN or infinite prediction becomes null."""
    values = numpy.asarray(array)
    if values.dtype.kind == "f":
        finite = numpy.isfinite(values)
        if not finite.all():
            values = values.astype(object)
            values[~finite] = None
    result: list[Any] = values.tolist()
    return result


def _probabilities_per_row(scores: Any) -> list[Any]:
    """[row][class], or [row][output][class] for a multi-output classifier's list of arrays.

    A probability that is not finite (a model overflowing on extreme rows) is null.
    """
    if isinstance(scores, list):
        outputs = [json_values(output) for output in scores]
        return [[output[row] for output in outputs] for row in range(len(outputs[0]))]
    return json_values(scores)


def load_model(
    registry: ModelRegistry,
    manifest: ModelManifest,
    pickle_policy: PicklePolicy = PicklePolicy.ALLOW,
) -> Any:
    """The version's estimator, from its serving copy if it has one; bytes checked first.

    A compiled form (a tree ensemble as numpy arrays) is served as it is: neither
    scikit-learn nor anything pickled is loaded for it. registry.artifacts (scikit-learn,
    joblib, skops) is imported only for other versions, so that importing this module
    loads none of them.
    """
    joblib_version = manifest.format is ArtifactFormat.JOBLIB
    refused = joblib_version and pickle_policy is PicklePolicy.DENY
    if manifest.serving_format is ServingFormat.COMPILED and manifest.serving_key and not refused:
        try:
            return load_compiled(registry.read_serving_copy(manifest))
        except CompiledFormError:
            # Only a validator's bug or a forged answer: the artifact itself still serves.
            logger.warning(
                "compiled form refused", extra={"model": manifest.name, "version": manifest.version}
            )
    return _load_artifact(registry, manifest, pickle_policy)


def _load_artifact(
    registry: ModelRegistry, manifest: ModelManifest, pickle_policy: PicklePolicy
) -> Any:
    from registry.artifacts import load_estimator, load_serving_copy

    try:
        pickled_copy = manifest.serving_format is ServingFormat.PICKLE and manifest.serving_sha256
        joblib_version = manifest.format is ArtifactFormat.JOBLIB
        if joblib_version and pickled_copy and manifest.serving_key is not None:
            # A serving copy is a pickle: only a joblib version (a pickle already) may use one.
            return load_serving_copy(registry.read_serving_copy(manifest), pickle_policy)
        data = registry.read_artifact(manifest)
        return load_estimator(data, manifest.format, pickle_policy)
    except ArtifactRejected as exc:
        if exc.rejection.reason is RejectionReason.PICKLE_REFUSED:
            raise PickleRefusedError(
                f"version {manifest.version} of {manifest.name!r} is a joblib artifact, and this "
                "deployment refuses pickle (PICKLE_ARTIFACTS=deny): register it again as a "
                ".skops file (skops.io.dump)"
            ) from None
        error: RegistryError = rejection_error(exc.rejection, runtime_versions())
        raise error from None
