"""Artifact bytes -> estimator: loading by format and pickle policy, and introspection.

Only two places import this module: the validator's child process, which loads caller
bytes with no way to write anything, and predict, which loads only bytes whose sha256
it checked against a manifest. Register never does (a test keeps it so).

Loading failures are ArtifactRejected with a reason code: the text of whatever the
artifact raised is never kept, since a pickle can build it from the environment.
"""

import io
import pickle
import threading
import warnings
from typing import Any

import joblib
import numpy
from sklearn.exceptions import InconsistentVersionWarning, NotFittedError
from sklearn.utils.validation import check_is_fitted

from registry.config import PicklePolicy
from registry.errors import RegistryError
from registry.inputs import RequestRows, complete_signature, model_input, prediction_count
from registry.manifest import ArtifactFormat, Label
from registry.signature import derive_signature
from registry.validation import (
    EstimatorDescription,
    ExampleFailure,
    ExampleOutcome,
    RejectionReason,
    reject,
)

# warnings.catch_warnings swaps process-wide state; loads are rare (cache
# misses and registrations), so they are serialised rather than racing on it.
_LOAD_LOCK = threading.Lock()


def serving_bytes(estimator: Any) -> bytes:
    """A joblib artifact's estimator as plain pickle: quicker for predict to load.

    joblib reads every numpy array of a pickle through Python code: for a forest of
    300 trees that is about eight times slower than plain pickle (see docs/benchmarks.md).
    """
    return pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)


TRUSTED_OUTSIDE_SCIKIT_LEARN = frozenset({"numpy.dtype"})


def trusted_skops_types(data: bytes) -> list[str]:
    """The types skops does not trust by default that we do: scikit-learn's own only.

    skops trusts most scikit-learn classes already; the rest are internal structures such
    as sklearn.tree._tree.Tree. Outside scikit-learn only numpy.dtype is trusted: an
    encoder's `dtype` parameter (OneHotEncoder's numpy.float64) is stored as one, and making
    a dtype runs no code of the file's. Anything else is refused with its names.
    """
    from skops.io import get_untrusted_types

    try:
        untrusted = get_untrusted_types(data=data)
    except Exception:  # not a skops archive, or a damaged one
        raise reject(RejectionReason.NOT_LOADABLE) from None
    foreign = sorted(
        name
        for name in untrusted
        if name.split(".")[0] != "sklearn" and name not in TRUSTED_OUTSIDE_SCIKIT_LEARN
    )
    if foreign:
        raise reject(RejectionReason.UNTRUSTED_TYPES, untrusted_types=_python_names(foreign))
    return list(untrusted)


def _python_names(names: list[str]) -> list[str]:
    """The names that are dotted Python names (the schema's); others are shown as '?'."""
    return [
        name if name.replace("_", "a").replace(".", "a").isalnum() and len(name) < 200 else "?"
        for name in names
    ]


def load_estimator(
    data: bytes, format: ArtifactFormat, pickle_policy: PicklePolicy = PicklePolicy.ALLOW
) -> Any:
    """The object an artifact holds; raises ArtifactRejected with the reason it cannot be loaded.

    A joblib file is a pickle: call this on one only where nothing can be written (the
    validator's child) or on bytes whose sha256 was checked against a manifest.
    """
    if format is ArtifactFormat.SKOPS:
        return _load_skops(data)
    if pickle_policy is PicklePolicy.DENY:
        raise reject(RejectionReason.PICKLE_REFUSED)
    return _load_pickled(lambda: joblib.load(io.BytesIO(data)))


def load_serving_copy(data: bytes, pickle_policy: PicklePolicy = PicklePolicy.ALLOW) -> Any:
    """A serving copy (plain pickle) whose sha256 was checked against its manifest."""
    if pickle_policy is PicklePolicy.DENY:
        raise reject(RejectionReason.PICKLE_REFUSED)
    return _load_pickled(lambda: pickle.loads(data))


def _load_skops(data: bytes) -> Any:
    from skops.io import loads

    trusted = trusted_skops_types(data)
    try:
        with _LOAD_LOCK:
            return loads(data, trusted=trusted)
    except Exception:
        raise reject(RejectionReason.NOT_LOADABLE) from None


def _load_pickled(load: Any) -> Any:
    with _LOAD_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InconsistentVersionWarning)
        try:
            estimator = load()
        except Exception:  # unpickling can raise nearly anything; its text is not kept
            raise reject(RejectionReason.NOT_LOADABLE) from None
    for warning in caught:
        if isinstance(warning.message, InconsistentVersionWarning):
            pickled_with = str(warning.message.original_sklearn_version)
            raise reject(
                RejectionReason.OTHER_SCIKIT_LEARN,
                pickled_with=pickled_with if _is_version(pickled_with) else None,
            )
    return estimator


def _is_version(text: str) -> bool:
    return 0 < len(text) <= 40 and all(c.isalnum() or c in ".+-" for c in text)


def describe_estimator(estimator: Any) -> EstimatorDescription:
    """Check that the object is a fitted estimator with predict and read its signature."""
    type_name = _type_name(estimator)
    if not callable(getattr(estimator, "predict", None)):
        raise reject(RejectionReason.NOT_AN_ESTIMATOR, type_name=type_name)
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise reject(RejectionReason.UNFITTED, type_name=type_name) from None
    except TypeError:
        raise reject(RejectionReason.NOT_SCIKIT_LEARN, type_name=type_name) from None
    n_features = getattr(estimator, "n_features_in_", None)
    feature_names = getattr(estimator, "feature_names_in_", None)
    classes: Any = getattr(estimator, "classes_", None)
    multi_output = isinstance(classes, list)  # one array of classes per output
    return EstimatorDescription(
        estimator_class=f"{type(estimator).__module__}.{type(estimator).__qualname__}",
        n_features_in=int(n_features) if n_features is not None else None,
        feature_names=[str(name) for name in feature_names] if feature_names is not None else None,
        classes=None if multi_output else _class_labels(classes),
        output_classes=[_class_labels(each) or [] for each in classes] if multi_output else None,
        has_predict_proba=_has_predict_proba(estimator),
        signature=derive_signature(estimator),
    )


def example_features(description: EstimatorDescription, example: list[Any]) -> Any | None:
    """The example's rows as predict hands them to the model; None if they do not fit."""
    try:
        return model_input(RequestRows(example), complete_signature(description.signature, example))
    except RegistryError:
        return None


def try_example(
    estimator: Any, description: EstimatorDescription, example: list[Any]
) -> ExampleOutcome | None:
    """Predict on the registrant's example as predict would serve it; None when that works."""
    features = example_features(description, example)
    if features is None:
        return ExampleOutcome(failure=ExampleFailure.DOES_NOT_FIT)
    try:
        predictions = estimator.predict(features)
    except Exception as exc:  # the model's own failure; only its type's name is kept
        name = type(exc).__qualname__
        return ExampleOutcome(
            failure=ExampleFailure.NOT_PREDICTED,
            exception=name if _python_names([name]) == [name] else None,
        )
    if prediction_count(predictions) != len(example):
        return ExampleOutcome(failure=ExampleFailure.WRONG_COUNT)
    return None


def _type_name(estimator: Any) -> str | None:
    name = type(estimator).__qualname__
    return name if _python_names([name]) == [name] else None


def _has_predict_proba(estimator: Any) -> bool:
    # hasattr is False when scikit-learn's available_if hides the method
    # (an SVC without probability=True, a Pipeline ending in a regressor).
    return callable(getattr(estimator, "predict_proba", None))


def _class_labels(classes: Any) -> list[Label] | None:
    """One output's class labels as JSON values; None for a model without classes."""
    if classes is None:
        return None
    labels = numpy.asarray(classes, dtype=object)
    if labels.ndim != 1:
        return None
    return [label.item() if isinstance(label, numpy.generic) else label for label in labels]
