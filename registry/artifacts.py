"""Artifact bytes -> estimator: loading by format and pickle policy, and introspection.

Only two places import this module: the validator's child process, which loads caller
bytes with no way to write anything, and predict, which loads only bytes whose sha256
it checked against a manifest, and never a pickle unless PickleArtifacts=allow-unsafe.
Register never does (a test keeps it so).

skops files load with scikit-learn's types only: skops's own trusted list, every class of
scikit-learn, and the few functions scikit-learn itself stores inside fitted estimators
(functools.partial around them included); any other function, of scikit-learn or not, is
refused with its name. Their members are capped by their uncompressed size before any is
read, so a small file cannot unfold into more memory than MAX_LOADED_BYTES.

Loading failures are ArtifactRejected with a reason code: the text of whatever the
artifact raised is never kept, since a pickle can build it from the environment.
"""

import io
import json
import pickle
import sys
import threading
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any

import joblib
import numpy
from sklearn.exceptions import InconsistentVersionWarning, NotFittedError
from sklearn.utils.validation import check_is_fitted

from registry.config import DEFAULT_MAX_LOADED_BYTES, PicklePolicy
from registry.errors import RegistryError
from registry.inputs import (
    RequestRows,
    complete_signature,
    json_values,
    model_input,
    prediction_count,
    probabilities_per_row,
    value_in,
)
from registry.manifest import (
    MAX_CHECK_VALUES,
    ArtifactFormat,
    CheckAnswers,
    ColumnKind,
    InputColumn,
    InputSignature,
    Label,
    VersionCheck,
)
from registry.signature import derive_signature
from registry.validation import (
    ArtifactRejected,
    EstimatorDescription,
    ExampleFailure,
    ExampleOutcome,
    RejectionReason,
    reject,
)

# warnings.catch_warnings swaps process-wide state; loads are rare (cache
# misses and registrations), so they are serialised rather than racing on it.
_LOAD_LOCK = threading.Lock()
# Outside scikit-learn: an encoder's `dtype` parameter (OneHotEncoder's numpy.float64) is
# stored as a numpy.dtype, and a functools.partial is scikit-learn's own way to bind
# arguments (HistGradientBoosting's categorical preprocessor): making either runs no code,
# and the function inside a partial is audited as any other.
TRUSTED_OUTSIDE_SCIKIT_LEARN = frozenset({"numpy.dtype", "functools.partial"})
# The functions scikit-learn itself stores inside fitted estimators (skops trusts none):
# HistGradientBoosting(categorical_features="from_dtype") keeps check_array in a partial,
# BisectingKMeans its k-means step (found by registering every estimator scikit-learn lists
# that fits and predicts with its defaults: only these two keep a function).
TRUSTED_SCIKIT_LEARN_FUNCTIONS = frozenset(
    {
        "sklearn.utils.validation.check_array",
        "sklearn.cluster._kmeans._kmeans_single_lloyd",
        "sklearn.cluster._kmeans._kmeans_single_elkan",
    }
)
# The kinds of skops node that may hold a name skops does not trust by default, and what
# the name must then be. An ObjectNode makes an instance of a class without calling it, a
# TypeNode hands over a class: the class must be one scikit-learn's estimators are made of
# (an estimator, or one of _INTERNAL_MODULES' structures). A ReduceNode, TreeNode or LossNode
# calls its class with arguments from the file: only _INTERNAL_MODULES' classes (a tree, a
# loss), whose constructors only store them. A FunctionNode hands over a function, which a
# FunctionTransformer or a partial will call with arguments the file chose: only the
# functions above. Any other node with such a name (a ConstructorFromReduceNode calls it, a
# list or dict node calls it with no argument, an array node with the array) is refused.
_INSTANCE_LOADERS = frozenset({"ObjectNode", "TypeNode"})
_CONSTRUCTOR_LOADERS = frozenset({"ReduceNode", "TreeNode", "LossNode"})
_LOADERS_OF = {
    "functools.partial": frozenset({"PartialNode"}),
    "numpy.dtype": frozenset({"DTypeNode"}),
}
# The modules of the structures scikit-learn's estimators hold besides estimators: trees,
# neighbour trees and their metrics, losses and links, histogram boosting's predictors and
# binning, kernels, optimisers, calibrators, bisecting and Birch's trees, SGD's losses
# (found by saving every estimator scikit-learn lists, with its defaults, with skops).
_INTERNAL_MODULES = (
    "sklearn._loss",
    "sklearn.tree._tree",
    "sklearn.neighbors._kd_tree",
    "sklearn.neighbors._ball_tree",
    "sklearn.neighbors._binary_tree",
    "sklearn.metrics._dist_metrics",
    "sklearn.ensemble._hist_gradient_boosting",
    "sklearn.gaussian_process.kernels",
    "sklearn.neural_network._stochastic_optimizers",
    "sklearn.calibration",
    "sklearn.cluster._bisect_k_means",
    "sklearn.cluster._birch",
    "sklearn.linear_model._sgd_fast",
)
# Never trusted, estimator or not: test and mocking helpers, callbacks (whose state opens
# connections), vendored packages, dataset loaders.
_UNTRUSTED_MODULES = (
    "sklearn.callback",
    "sklearn.utils._testing",
    "sklearn.utils._mocking",
    "sklearn.externals",
    "sklearn.datasets",
    "sklearn.experimental",
)
# What skops keeps per node of a file it loads: a list of the trusted names, its defaults
# (at most a few hundred) and those given; counted toward what the file unfolds to.
_TRUSTED_LIST_BYTES_PER_NAME = 8
_SKOPS_DEFAULTS_PER_NODE = 400
# The largest schema read at all (its parsed objects count toward MAX_LOADED_BYTES anyway).
MAX_SCHEMA_BYTES = 64 * 1024 * 1024
# A skops file's schema is parsed into Python objects before anything is checked: its text is
# counted this many times over toward what the file unfolds to (JSON of many small nodes
# takes about that much more memory once parsed).
SCHEMA_EXPANSION = 16


def pickled_serving_copy(estimator: Any) -> bytes:
    """A joblib artifact's estimator as plain pickle (PickleArtifacts=allow-unsafe only).

    joblib reads every numpy array of a pickle through Python code: for a forest of
    300 trees that is about eight times slower than plain pickle (see docs/benchmarks.md).
    """
    return pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)


def skops_members_bytes(data: bytes, trusted_names: int = 0) -> int:
    """What loading a skops file takes in memory, from its zip directory and schema alone:
    every member as often as the schema refers to it (each reference reads it again), the
    schema SCHEMA_EXPANSION times over, and the list of trusted names skops keeps per node.
    zipfile holds each member to its declared size."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema_bytes = archive.getinfo("schema.json").file_size
            sizes = {member.filename: member.file_size for member in archive.infolist()}
            if schema_bytes > MAX_SCHEMA_BYTES:
                return schema_bytes * SCHEMA_EXPANSION
            schema = json.loads(archive.read("schema.json"))
    except Exception:  # not a zip, no schema, JSON nested past Python's recursion limit
        raise reject(RejectionReason.NOT_LOADABLE) from None
    unfolded = schema_bytes * SCHEMA_EXPANSION
    per_node = (trusted_names + _SKOPS_DEFAULTS_PER_NODE) * _TRUSTED_LIST_BYTES_PER_NAME
    for node in _walk(schema):
        unfolded += per_node
        member = node.get("file")
        if member is not None:
            if not isinstance(member, str) or member not in sizes:
                raise reject(RejectionReason.NOT_LOADABLE)
            unfolded += sizes[member]
    return unfolded


def _walk(value: Any) -> Iterator[dict[str, Any]]:
    """Every node of a skops schema (a dict with a __loader__)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def trusted_skops_types(data: bytes) -> list[str]:
    """The names skops does not trust by default that we do; a file naming any other is
    refused with those names (ArtifactRejected UNTRUSTED_TYPES).

    Each node that names one is audited by what its kind does with the name (_CLASS_LOADERS
    above): scikit-learn's classes are trusted where a node makes an instance or holds the
    class; functions, only those scikit-learn stores itself, and only as functions. So a
    file cannot have a scikit-learn module's function (several re-export subprocess calls
    and downloads) called, whatever kind of node it dresses the name in.
    """
    from skops.io import get_untrusted_types

    try:
        untrusted = set(get_untrusted_types(data=data))
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except Exception:  # not a skops archive, or a damaged one
        raise reject(RejectionReason.NOT_LOADABLE) from None
    named, refused = set(), set()
    for node in _walk(schema):
        name = f"{node.get('__module__')}.{node.get('__class__')}"
        named.add(name)
        if name in untrusted and not _trusted(name, str(node["__loader__"])):
            refused.add(name)
    refused |= untrusted - named  # a name skops found elsewhere than a node's own: not audited
    if refused:
        names = _python_names(sorted(refused))
        raise reject(RejectionReason.UNTRUSTED_TYPES, untrusted_types=names)
    return sorted(untrusted)


def _trusted(name: str, loader: str) -> bool:
    if name in _LOADERS_OF:
        return loader in _LOADERS_OF[name]
    if loader == "FunctionNode":
        return name in TRUSTED_SCIKIT_LEARN_FUNCTIONS
    if loader in _CONSTRUCTOR_LOADERS:
        return _scikit_learn_class(name, internal_only=True)
    return loader in _INSTANCE_LOADERS and _scikit_learn_class(name, internal_only=False)


def _scikit_learn_class(name: str, internal_only: bool) -> bool:
    """Whether the dotted name is a class scikit-learn's estimators are made of: one of its
    estimators, or a structure of _INTERNAL_MODULES (only those with internal_only). Its
    module is imported if need be: scikit-learn's own code, which skops would import anyway."""
    import importlib

    from sklearn.base import BaseEstimator

    if not name.startswith("sklearn.") or _in_modules(name, _UNTRUSTED_MODULES):
        return False
    if any(part == "tests" or part.startswith("test_") for part in name.split(".")):
        return False
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            found: Any = sys.modules.get(module_name) or importlib.import_module(module_name)
        except ImportError:
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute, None)
        if not (
            isinstance(found, type)
            and found.__qualname__ == ".".join(parts[split:])
            and f"{found.__module__}.{found.__qualname__}" == name
            and ".tests." not in f"{found.__module__}."
        ):
            return False
        if _in_modules(found.__module__, _INTERNAL_MODULES):
            return True
        return not internal_only and issubclass(found, BaseEstimator)
    return False


def _in_modules(name: str, modules: tuple[str, ...]) -> bool:
    return any(name == module or name.startswith(f"{module}.") for module in modules)


def _python_names(names: list[str]) -> list[str]:
    """The names that are dotted Python names (the schema's); others are shown as '?'."""
    return [
        name if name.replace("_", "a").replace(".", "a").isalnum() and len(name) < 200 else "?"
        for name in names
    ]


def load_estimator(
    data: bytes,
    format: ArtifactFormat,
    pickle_policy: PicklePolicy = PicklePolicy.CONVERT,
    max_loaded_bytes: int = DEFAULT_MAX_LOADED_BYTES,
    other_version: bool = False,
) -> Any:
    """The object an artifact holds; raises ArtifactRejected with the reason it cannot be loaded.

    A joblib file is a pickle: call this on one only where nothing can be written (the
    validator's child), or in predict under PickleArtifacts=allow-unsafe on bytes whose
    sha256 was checked against a manifest. other_version: an upgrade check loads a pickle
    of an older scikit-learn, to compare its answers with what that one answered.
    """
    if format is ArtifactFormat.SKOPS:
        return load_skops(data, max_loaded_bytes)
    if pickle_policy is PicklePolicy.DENY:
        raise reject(RejectionReason.PICKLE_REFUSED)
    return _load_pickled(lambda: joblib.load(io.BytesIO(data)), other_version)


def load_pickled_serving_copy(data: bytes, pickle_policy: PicklePolicy) -> Any:
    """A pickled serving copy whose sha256 was checked: only under allow-unsafe."""
    if pickle_policy is not PicklePolicy.ALLOW_UNSAFE:
        raise reject(RejectionReason.PICKLE_REFUSED)
    return _load_pickled(lambda: pickle.loads(data))


def load_skops(data: bytes, max_loaded_bytes: int = DEFAULT_MAX_LOADED_BYTES) -> Any:
    """A skops file's model, with scikit-learn's types only, if its members fit the limit."""
    from skops.io import loads

    unfolded = skops_members_bytes(data)
    if unfolded > max_loaded_bytes:
        raise reject(RejectionReason.TOO_LARGE_LOADED, loaded_bytes=unfolded)
    trusted = trusted_skops_types(data)
    unfolded = skops_members_bytes(data, trusted_names=len(trusted))
    if unfolded > max_loaded_bytes:
        raise reject(RejectionReason.TOO_LARGE_LOADED, loaded_bytes=unfolded)
    from registry.structures import MalformedStructure, check_structures

    try:
        with _LOAD_LOCK:
            model = loads(data, trusted=trusted)
        check_structures(model)  # what scikit-learn's compiled code follows unchecked
    except MemoryError:
        raise reject(RejectionReason.TOO_LARGE_LOADED) from None
    except (MalformedStructure, Exception):
        raise reject(RejectionReason.NOT_LOADABLE) from None
    return model


def skops_serving_copy(estimator: Any, rows: list[Any]) -> bytes:
    """The estimator saved with skops, if that copy loads with scikit-learn's types only and
    answers exactly as the estimator on every set of rows; else ArtifactRejected
    NOT_CONVERTIBLE, naming the types it would need trusted."""
    from skops.io import dumps

    try:
        data: bytes = dumps(estimator)
    except Exception:  # an object skops cannot save
        raise reject(RejectionReason.NOT_CONVERTIBLE) from None
    try:
        copy = load_skops(data, max_loaded_bytes=len(data) + skops_members_bytes(data))
    except ArtifactRejected as exc:
        types = exc.rejection.untrusted_types
        raise reject(RejectionReason.NOT_CONVERTIBLE, untrusted_types=types) from None
    for features in rows:
        if not same_answers(estimator, copy, features):
            raise reject(RejectionReason.NOT_CONVERTIBLE)
    return data


def same_answers(expected: Any, got: Any, features: Any) -> bool:
    """Whether got answers predict (and predict_proba) exactly as expected on these rows."""
    for method in ("predict", "predict_proba"):
        if not callable(getattr(expected, method, None)):
            continue
        try:
            wanted = getattr(expected, method)(features)
        except Exception:  # rows the model refuses prove nothing either way
            continue
        try:
            answered = getattr(got, method)(features)
        except Exception:
            return False
        if not identical(wanted, answered):
            return False
    return True


def identical(expected: Any, got: Any) -> bool:
    """Equal to the last bit: numbers byte for byte (so -0.0 is not 0.0), labels by value;
    a list of arrays (a multi-output model's probabilities) array by array."""
    if isinstance(expected, list) or isinstance(got, list):
        return (
            isinstance(expected, list)
            and isinstance(got, list)
            and len(expected) == len(got)
            and all(identical(one, other) for one, other in zip(expected, got, strict=True))
        )
    expected, got = numpy.asarray(expected), numpy.asarray(got)
    if expected.shape != got.shape:
        return False
    if expected.dtype.kind in "biuf" and got.dtype.kind in "biuf":
        return bool(expected.dtype == got.dtype and expected.tobytes() == got.tobytes())
    return bool(numpy.array_equal(expected, got))


def _load_pickled(load: Any, other_version: bool = False) -> Any:
    with _LOAD_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InconsistentVersionWarning)
        try:
            estimator = load()
        except MemoryError:
            raise reject(RejectionReason.TOO_LARGE_LOADED) from None
        except Exception:  # unpickling can raise nearly anything; its text is not kept
            raise reject(RejectionReason.NOT_LOADABLE) from None
    for warning in caught:
        if isinstance(warning.message, InconsistentVersionWarning) and not other_version:
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
        estimator.predict(features)
    except Exception as exc:  # the model's own failure; only its type's name is kept
        name = type(exc).__qualname__
        return ExampleOutcome(
            failure=ExampleFailure.NOT_PREDICTED,
            exception=name if _python_names([name]) == [name] else None,
        )
    return None


def rows_to_check(description: EstimatorDescription, example: list[Any] | None) -> list[Any]:
    """Inputs, as predict builds them, on which the model must answer one prediction a row:
    the example, and it again with its first row once more (two rows at least); without an
    example, two rows made from the signature (each column's first category, else a zero, an
    "a" or false). Rows that do not fit are left out.

    Raises ArtifactRejected ROWS_UNKNOWN for a model that says nothing of the rows it takes
    (no signature: a pipeline starting with a vectorizer fitted on a plain list) and came
    with no example: nothing could show that it answers rows, not documents."""
    batches: list[list[Any]] = []
    if example:
        batches = [example, [*example, example[0]]]
    elif description.signature is not None:
        batches = [[_made_row(description.signature)] * 2]
    elif description.n_features_in:
        batches = [[[0.0] * description.n_features_in] * 2]
    else:
        raise reject(RejectionReason.ROWS_UNKNOWN)
    checked = []
    for rows in batches:
        features = example_features(description, rows)
        if features is not None:
            checked.append(features)
    return checked


def _made_row(signature: InputSignature) -> Any:
    made: dict[ColumnKind, Any] = {ColumnKind.STRING: "a", ColumnKind.BOOLEAN: False}
    values: list[Any] = []
    for column in signature.columns:
        values.append(column.categories[0] if column.categories else made.get(column.kind, 0.0))
    if signature.named:
        return {column.name: value for column, value in zip(signature.columns, values, strict=True)}
    return values


# Rows made from a version's signature, after its example, that its check holds.
MADE_CHECK_ROWS = 32


def version_check(
    estimator: Any, description: EstimatorDescription, example: list[Any] | None
) -> VersionCheck | None:
    """The rows a newer runtime line must answer as this one does, and the answers here: the
    example, then rows made from the signature (without them if the model refuses them);
    None when it predicts on neither."""
    example = list(example or [])
    for rows in (example + _made_check_rows(description, example), example):
        answers = check_answers(estimator, description, rows, example or None) if rows else None
        if answers is not None:
            return VersionCheck(rows=rows, **answers.model_dump())
    return None


def check_answers(
    estimator: Any, description: EstimatorDescription, rows: list[Any], example: list[Any] | None
) -> CheckAnswers | None:
    """The model's predictions (and probabilities) on a version's check rows, as predict
    answers them; None if it refuses them."""
    try:
        signature = complete_signature(description.signature, example or rows)
        features = model_input(RequestRows(rows), signature)
        predictions = json_values(estimator.predict(features))
        probabilities = None
        if description.has_predict_proba:
            probabilities = probabilities_per_row(estimator.predict_proba(features))
    except Exception:  # rows this model refuses prove nothing either way
        return None
    return CheckAnswers(predictions=predictions, probabilities=probabilities)


def _made_check_rows(description: EstimatorDescription, example: list[Any]) -> list[Any]:
    """Rows made from the signature: numbers around the example's (or standard normal),
    each known category in turn, both booleans; within MAX_CHECK_VALUES with the example."""
    signature = description.signature
    if signature is None:
        if not description.n_features_in:
            return []
        columns = [InputColumn(name=str(index)) for index in range(description.n_features_in)]
        signature = InputSignature(columns=columns)
    width = max(1, len(signature.columns))
    count = min(MADE_CHECK_ROWS, max(0, MAX_CHECK_VALUES // width - len(example)))
    rng = numpy.random.default_rng(0)
    values: list[list[Any]] = []
    for position, column in enumerate(signature.columns):
        seen = [value_in(row, column.name, position) for row in example]
        values.append(_column_values(column, seen, count, rng))
    rows = [[column[index] for column in values] for index in range(count)]
    if signature.named:
        names = [column.name for column in signature.columns]
        return [dict(zip(names, row, strict=True)) for row in rows]
    return rows


def _column_values(
    column: InputColumn, seen: list[Any], count: int, rng: numpy.random.Generator
) -> list[Any]:
    if column.categories:
        return [column.categories[index % len(column.categories)] for index in range(count)]
    if column.kind is ColumnKind.BOOLEAN:
        return [index % 2 == 0 for index in range(count)]
    if column.kind is ColumnKind.STRING:
        texts = [value for value in seen if isinstance(value, str)] or ["a"]
        return [texts[index % len(texts)] for index in range(count)]
    numbers = numpy.array(
        [value for value in seen if isinstance(value, int | float) and not isinstance(value, bool)],
        dtype=float,
    )
    numbers = numbers[numpy.isfinite(numbers)]
    center = float(numbers.mean()) if numbers.size else 0.0
    spread = float(numbers.std()) if numbers.size > 1 and numbers.std() > 0 else 1.0
    return [float(value) for value in rng.normal(center, spread, size=count)]


def check_one_prediction_per_row(estimator: Any, inputs: list[Any]) -> None:
    """Raise ArtifactRejected NOT_ROWS if the model answers another number of predictions
    than it was sent rows (a text model fitted on a list reads a DataFrame's columns as its
    documents). Rows it refuses prove nothing, and are not held against it."""
    for features in inputs:
        try:
            predictions = estimator.predict(features)
        except Exception:
            continue
        if prediction_count(predictions) != len(features):
            raise reject(RejectionReason.NOT_ROWS)


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
