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
from dataclasses import dataclass, field, replace
from typing import Any

from registry.compiled import CompiledFormError, load_compiled
from registry.config import (
    DEFAULT_ALIAS_TTL_SECONDS,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_LOADED_BYTES,
    PicklePolicy,
)
from registry.errors import (
    InvalidInputError,
    PickleRefusedError,
    ProbabilitiesUnavailableError,
    RegistryError,
    TooManyInstancesError,
    VersionNeedsConversionError,
)
from registry.inputs import (
    RequestRows,
    explain_rejection,
    json_values,
    model_input,
    prediction_count,
    probabilities_per_row,
    signature_of,
)
from registry.lines import runtime_minor
from registry.manifest import (
    PICKLE_FREE_SERVING,
    ArtifactFormat,
    InputSignature,
    ModelManifest,
    ModelState,
    ServingCopy,
    ServingFormat,
    validate_model_name,
)
from registry.observability import logger
from registry.registry import DEFAULT_ALIAS, ModelRegistry
from registry.serving.cache import ModelCache, Sized
from registry.serving.fastpath import Predictors, predictors_for
from registry.serving.native_threads import NativeThreads
from registry.serving.routing import LineRouter, LineUnavailableError
from registry.validation import ArtifactRejected, rejection_error, runtime_versions

# Past this many models seen, expired views are dropped (names come from requests).
MAX_MODEL_VIEWS = 1024
MAX_KNOWN_MANIFESTS = 4096  # (name, version) -> its manifest, to find the line serving it
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
    line: str | None = None  # the older runtime line that predicted, if not this one
    weighted: bool = False  # its version was picked by a weighted alias


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
        pickle_policy: PicklePolicy = PicklePolicy.CONVERT,
        native_threads: int | None = 1,
        max_loaded_bytes: int = DEFAULT_MAX_LOADED_BYTES,
        router: LineRouter | None = None,
    ) -> None:
        """native_threads: the most threads OpenMP and BLAS pools use in predict; None: no limit.
        max_loaded_bytes: the most memory a skops file may unfold to when loaded.
        router: the older runtime lines' predict functions, for versions validated on them."""
        self.registry = registry
        self.router = router
        self.own_line = runtime_minor()
        self._manifests: dict[tuple[str, int], ModelManifest] = {}
        self.max_loaded_bytes = max_loaded_bytes
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

    def capture_percent(self, name: str) -> float | None:
        """The model's own capture share, as its cached state says (None: the default)."""
        return self._view(name).state.capture_percent

    def forget_views(self) -> None:
        """Re-read aliases, archived versions and "latest" on the next request."""
        with self._views_lock:
            self._views = {}

    def resolve(
        self,
        name: str,
        version: int | None = None,
        alias: str | None = None,
        routing_key: str | None = None,
    ) -> int:
        """The version to serve, decided by ModelRegistry.resolve_version on the cached state;
        a weighted alias's by the routing key.

        What an alias or "latest" resolves to is kept with the state it was read from.
        """
        validate_model_name(name)
        view = self._view(name)
        if alias is not None and alias not in view.state.aliases:
            # What is missing is read again at once: a new alias works from its first
            # request; only moves of existing aliases wait for the TTL.
            view = self._view(name, fresh=True)
        if version is not None or (alias or DEFAULT_ALIAS) in view.state.splits:
            return self.registry.resolve_version(name, view.state, version, alias, routing_key)
        resolved = view.resolved.get(alias)
        if resolved is None:
            resolved = self.registry.resolve_version(name, view.state, None, alias)
            view.resolved[alias] = resolved
        return resolved

    def model(self, name: str, version: int | None = None, alias: str | None = None) -> ServedModel:
        """The loaded model, whether it came from the cache, and how long loading it took."""
        resolved = self.resolve(name, version, alias)
        return self._served(name, resolved, lambda: self._copy_of(name, resolved))

    def _copy_of(self, name: str, version: int) -> ServingCopy | None:
        """What the model's state says to load instead of the manifest's serving copy: the
        copy an upgrade check had a newer line make, else one `convert` made."""
        state = self._view(name).state
        return state.upgraded.get(version) or state.serving.get(version)

    def _served(
        self, name: str, version: int, converted: Callable[[], ServingCopy | None]
    ) -> ServedModel:
        started = time.perf_counter()
        loaded, cache_hit = self.cache.get_or_load(
            (name, version), lambda: self._load(name, version, converted())
        )
        if cache_hit:
            return ServedModel(loaded, cache_hit=True)
        return ServedModel(loaded, False, round((time.perf_counter() - started) * 1000, 3))

    def _load(self, name: str, version: int, converted: ServingCopy | None) -> Sized[LoadedModel]:
        manifest = self.registry.get_manifest(name, version)
        loaded = load_version(
            self.registry, manifest, self.pickle_policy, converted, self.max_loaded_bytes
        )
        self.native_threads.refresh()
        logger.debug(
            "model loaded",
            extra={
                "model": name,
                "version": version,
                "size_bytes": manifest.size_bytes,
                "loaded_bytes": loaded.loaded_bytes,
                "estimator_class": manifest.estimator_class,
                "cached_bytes": self.cache.total_bytes,
            },
        )
        # The cache is charged what the model takes in memory, not what its file took.
        return Sized(LoadedModel(manifest, loaded.estimator), loaded.loaded_bytes)

    def predict_resolved(
        self,
        name: str,
        version: int,
        rows: RequestRows,
        probabilities: bool,
        converted: ServingCopy | None,
    ) -> Prediction:
        """A line's predict function: a version the front resolved (whether it is archived,
        what it was converted to: the front's reading of the model's state), predicted here
        without reading that state again."""
        served = self._served(name, version, lambda: converted)
        return self._predicted(name, served, rows, probabilities)

    def predict(
        self,
        name: str,
        version: int | None,
        rows: RequestRows | Sequence[Any],
        alias: str | None = None,
        probabilities: bool = False,
        routing_key: str | None = None,
    ) -> Prediction:
        if not isinstance(rows, RequestRows):
            rows = RequestRows(rows)
        if len(rows) > self.max_instances:
            raise TooManyInstancesError(
                f"{len(rows)} rows in one request; the limit is {self.max_instances}: send "
                "them in batches, as `model-registry classify NAME --input rows.csv` and the "
                "Python client's predict do"
            )
        resolved = self.resolve(name, version, alias, routing_key)
        manifest = self._manifest(name, resolved)
        state = self._view(name).state
        line = state.serving_line(manifest)
        if line is not None and line != self.own_line:
            prediction = self._routed(line, manifest, rows, probabilities)
        else:
            served = self._served(name, resolved, lambda: self._copy_of(name, resolved))
            prediction = self._predicted(name, served, rows, probabilities)
        if version is None and (alias or DEFAULT_ALIAS) in state.splits:
            return replace(prediction, weighted=True)
        return prediction

    def _predicted(
        self, name: str, served: ServedModel, rows: RequestRows, probabilities: bool
    ) -> Prediction:
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
            probabilities_per_row(scores) if scores is not None else None,
            served.load_ms,
        )

    def _manifest(self, name: str, version: int) -> ModelManifest:
        """The version's manifest, to find the line that serves it. Manifests are write-once:
        what is read is kept."""
        manifest = self._manifests.get((name, version))
        if manifest is None:
            manifest = self.registry.get_manifest(name, version)
            if len(self._manifests) >= MAX_KNOWN_MANIFESTS:
                self._manifests = {}
            self._manifests[(name, version)] = manifest
        return manifest

    def _routed(
        self, line: str, manifest: ModelManifest, rows: RequestRows, probabilities: bool
    ) -> Prediction:
        if self.router is None or not self.router.serves(line):
            raise LineUnavailableError(
                f"version {manifest.version} of {manifest.name!r} needs the scikit-learn {line} "
                f"line, which this registry does not serve: an operator can deploy that line, or "
                f"move the version to this one with `model-registry runtime check --line "
                f"{self.own_line}`"
            )
        if probabilities and not manifest.has_predict_proba:
            raise ProbabilitiesUnavailableError(
                f"{manifest.estimator_class} has no predict_proba; leave out probabilities"
            )
        converted = self._copy_of(manifest.name, manifest.version)
        answer = self.router.predict(line, manifest, rows, probabilities, converted)
        return Prediction(
            manifest,
            answer["predictions"],
            answer["cache_hit"],
            answer.get("probabilities"),
            answer.get("load_ms"),
            line=line,
        )


@dataclass(frozen=True)
class LoadedEstimator:
    """A version's model as predict loaded it, and the memory it is charged in the cache."""

    estimator: Any
    loaded_bytes: int


def load_model(
    registry: ModelRegistry,
    manifest: ModelManifest,
    pickle_policy: PicklePolicy = PicklePolicy.CONVERT,
    converted: ServingCopy | None = None,
) -> Any:
    """The version's model (see load_version)."""
    return load_version(registry, manifest, pickle_policy, converted).estimator


def load_version(
    registry: ModelRegistry,
    manifest: ModelManifest,
    pickle_policy: PicklePolicy = PicklePolicy.CONVERT,
    converted: ServingCopy | None = None,
    max_loaded_bytes: int = DEFAULT_MAX_LOADED_BYTES,
) -> LoadedEstimator:
    """The version's model, from the first of these it has; bytes checked before loading:

    1. its compiled form (a tree ensemble as numpy arrays), or the skops copy the validator
       made of a joblib artifact: the manifest's, else one `model-registry convert` recorded
       (converted); neither scikit-learn nor anything pickled is loaded for a compiled form;
    2. its own skops file;
    3. under PickleArtifacts=allow-unsafe only, its pickled serving copy or its joblib file.
    Otherwise VersionNeedsConversionError (or PickleRefusedError under deny): predict never
    unpickles. registry.artifacts (scikit-learn, joblib, skops) is imported only where a
    skops or pickled model is loaded, so that importing this module loads none of them.
    """
    # A copy a newer line made in an upgrade check is the one that line serves.
    upgraded = converted is not None and converted.line is not None
    for copy in [converted] if upgraded else [manifest.serving_copy, converted]:
        if copy is None or copy.format not in PICKLE_FREE_SERVING:
            continue
        data = registry.read_serving_copy(manifest, copy)
        if copy.format is ServingFormat.COMPILED:
            try:
                return LoadedEstimator(load_compiled(data), len(data))
            except CompiledFormError:
                # Only a validator's bug or a forged answer: the model is served another way.
                logger.warning(
                    "compiled form refused",
                    extra={"model": manifest.name, "version": manifest.version},
                )
                continue
        return _loaded(manifest, data, ArtifactFormat.SKOPS, pickle_policy, max_loaded_bytes)
    if manifest.format is ArtifactFormat.SKOPS:
        data = registry.read_artifact(manifest)
        return _loaded(manifest, data, ArtifactFormat.SKOPS, pickle_policy, max_loaded_bytes)
    if pickle_policy is PicklePolicy.ALLOW_UNSAFE:
        copy = manifest.serving_copy
        if copy is not None and copy.format is ServingFormat.PICKLE:
            return _loaded(manifest, registry.read_serving_copy(manifest), None, pickle_policy)
        data = registry.read_artifact(manifest)
        return _loaded(manifest, data, ArtifactFormat.JOBLIB, pickle_policy, max_loaded_bytes)
    where = f"version {manifest.version} of {manifest.name!r}"
    if pickle_policy is PicklePolicy.DENY:
        raise PickleRefusedError(
            f"{where} is a joblib artifact, and this deployment refuses pickle "
            "(PICKLE_ARTIFACTS=deny): register it again as a .skops file (skops.io.dump)"
        )
    raise VersionNeedsConversionError(
        f"{where} is a joblib artifact registered before this registry served joblib models "
        "only from a skops or compiled copy (predict never unpickles): give it one with "
        f"`model-registry convert {manifest.name} {manifest.version}` (POST /models/"
        f"{manifest.name}/versions/{manifest.version}/convert), or register the model again"
    )


def _loaded(
    manifest: ModelManifest,
    data: bytes,
    format: ArtifactFormat | None,
    pickle_policy: PicklePolicy,
    max_loaded_bytes: int = DEFAULT_MAX_LOADED_BYTES,
) -> LoadedEstimator:
    """A skops file (scikit-learn's types only), a joblib file, or (format None) a pickled
    serving copy; charged what the validator measured, or what its members unfold to."""
    from registry.artifacts import load_estimator, load_pickled_serving_copy, skops_members_bytes

    try:
        if format is None:
            estimator = load_pickled_serving_copy(data, pickle_policy)
        else:
            estimator = load_estimator(data, format, pickle_policy, max_loaded_bytes)
    except ArtifactRejected as exc:
        error: RegistryError = rejection_error(exc.rejection, runtime_versions(), max_loaded_bytes)
        raise error from None
    unfolded = skops_members_bytes(data) if format is ArtifactFormat.SKOPS else len(data)
    return LoadedEstimator(estimator, max(unfolded, manifest.loaded_bytes or 0))
