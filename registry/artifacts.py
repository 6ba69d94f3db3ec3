"""joblib bytes <-> estimator: hashing, validated loading and introspection."""

import hashlib
import io
import pickle
import platform
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import joblib
import numpy
import sklearn
from sklearn.exceptions import InconsistentVersionWarning, NotFittedError
from sklearn.utils.validation import check_is_fitted

from registry.errors import IncompatibleArtifactError, InvalidArtifactError
from registry.manifest import Label, RuntimeVersions

# warnings.catch_warnings swaps process-wide state; loads are rare (cache
# misses and registrations), so they are serialised rather than racing on it.
_LOAD_LOCK = threading.Lock()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def runtime_versions() -> RuntimeVersions:
    return RuntimeVersions(
        python=platform.python_version(),
        scikit_learn=sklearn.__version__,
        joblib=joblib.__version__,
        numpy=numpy.__version__,
    )


@dataclass(frozen=True)
class EstimatorInfo:
    estimator_class: str
    n_features_in: int | None
    feature_names: list[str] | None
    classes: list[Label] | None
    has_predict_proba: bool


def serving_bytes(estimator: Any) -> bytes:
    """The registry's own copy of a validated estimator, quick to load.

    joblib reads every numpy array of a pickle through Python code: for a forest of
    300 trees that is about eight times slower than plain pickle (see docs/benchmarks.md).
    """
    return pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)


def load_estimator(data: bytes, serving_copy: bool = False) -> Any:
    """Unpickle joblib bytes (or a serving copy); refuse another scikit-learn version's.

    Only call this on bytes that were validated at registration or whose sha256
    was checked against a manifest: unpickling runs code.
    """
    with _LOAD_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InconsistentVersionWarning)
        try:
            estimator = pickle.loads(data) if serving_copy else joblib.load(io.BytesIO(data))
        except Exception as exc:  # unpickling can raise nearly anything
            raise InvalidArtifactError(
                f"artifact is not a loadable joblib file ({type(exc).__name__}: {exc})"[:300]
            ) from exc
    for warning in caught:
        if isinstance(warning.message, InconsistentVersionWarning):
            pickled_with = warning.message.original_sklearn_version
            runs = warning.message.current_sklearn_version
            raise IncompatibleArtifactError(
                f"artifact was pickled with scikit-learn {pickled_with}; this registry runs {runs}"
            )
    return estimator


def describe_estimator(estimator: Any) -> EstimatorInfo:
    """Check that the object is a fitted estimator with predict and read its signature."""
    if not callable(getattr(estimator, "predict", None)):
        raise InvalidArtifactError(
            f"artifact holds a {type(estimator).__name__}, not an estimator with predict()"
        )
    try:
        check_is_fitted(estimator)
    except NotFittedError as exc:
        raise InvalidArtifactError(
            f"artifact holds an unfitted {type(estimator).__name__}: fit it before registering"
        ) from exc
    except TypeError as exc:
        raise InvalidArtifactError(
            f"artifact holds a {type(estimator).__name__}, not a scikit-learn estimator"
        ) from exc
    n_features = getattr(estimator, "n_features_in_", None)
    feature_names = getattr(estimator, "feature_names_in_", None)
    classes = getattr(estimator, "classes_", None)
    return EstimatorInfo(
        estimator_class=f"{type(estimator).__module__}.{type(estimator).__qualname__}",
        n_features_in=int(n_features) if n_features is not None else None,
        feature_names=[str(name) for name in feature_names] if feature_names is not None else None,
        classes=_class_labels(classes),
        has_predict_proba=_has_predict_proba(estimator),
    )


def _has_predict_proba(estimator: Any) -> bool:
    # hasattr is False when scikit-learn's available_if hides the method
    # (an SVC without probability=True, a Pipeline ending in a regressor).
    return callable(getattr(estimator, "predict_proba", None))


def _class_labels(classes: Any) -> list[Label] | None:
    """The labels of a single-output classifier as JSON values; None otherwise."""
    if classes is None:
        return None
    labels = numpy.asarray(classes, dtype=object)
    if labels.ndim != 1:
        return None  # multi-output classifiers keep one array of classes per output
    return [label.item() if isinstance(label, numpy.generic) else label for label in labels]
