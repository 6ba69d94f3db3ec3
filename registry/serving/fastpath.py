"""Predict with tree ensembles without scikit-learn's per-call overhead, bit for bit.

For a handful of rows, RandomForest/ExtraTrees spend most of predict() outside
the trees: input validation our request validation already did (shape, finite
values), and a joblib Parallel dispatch even when n_jobs is None. These
functions run the same per-tree calls in the same order as scikit-learn's
sequential path (`e.predict_proba(X, check_input=False)` summed in estimator
order, then divided by the number of trees), so the results are identical to
the last bit; tests compare them with numpy.array_equal.

Only exact classes, single-output, n_jobs None or 1, rows without missing values:
anything else uses the estimator's own methods.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy

from registry.compiled import CompiledTrees

Features = Any  # a float64 array of shape (rows, features), finite, checked by the caller


def _as_float32(features: Features) -> Any:
    """What scikit-learn's input check makes of the rows, and the error it raises.

    None when a value is missing (NaN): trees route missing values themselves, and the
    caller then uses the estimator's own method, which checks them as it should.
    """
    rows = numpy.asarray(features, dtype=numpy.float32)
    if not numpy.isfinite(rows).all():
        if numpy.isnan(rows).any():
            return None
        raise ValueError("Input X contains infinity or a value too large for dtype('float32').")
    return rows


@dataclass(frozen=True)
class Predictors:
    predict: Callable[[Features], Any]
    predict_proba: Callable[[Features], Any] | None


def _sequential_single_output(estimator: Any) -> bool:
    return (
        getattr(estimator, "n_outputs_", None) == 1
        and getattr(estimator, "n_jobs", None) in (None, 1)
        and hasattr(estimator, "estimators_")
    )


def _forest_classifier(forest: Any) -> Predictors:
    trees = list(forest.estimators_)
    classes = forest.classes_
    n_classes = int(forest.n_classes_)

    def predict_proba(features: Features) -> Any:
        rows = _as_float32(features)
        if rows is None:
            return forest.predict_proba(features)
        proba = numpy.zeros((rows.shape[0], n_classes), dtype=numpy.float64)
        for tree in trees:
            proba += tree.predict_proba(rows, check_input=False)
        proba /= len(trees)
        return proba

    def predict(features: Features) -> Any:
        return classes.take(numpy.argmax(predict_proba(features), axis=1), axis=0)

    return Predictors(predict, predict_proba)


def _forest_regressor(forest: Any) -> Predictors:
    trees = list(forest.estimators_)

    def predict(features: Features) -> Any:
        rows = _as_float32(features)
        if rows is None:
            return forest.predict(features)
        total = numpy.zeros(rows.shape[0], dtype=numpy.float64)
        for tree in trees:
            total += tree.predict(rows, check_input=False)
        total /= len(trees)
        return total

    return Predictors(predict, None)


@cache
def _fast_paths() -> dict[type, Callable[[Any], Predictors]]:
    # Imported on first use: sklearn.ensemble costs cold-start time a model may not need.
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    return {
        RandomForestClassifier: _forest_classifier,
        ExtraTreesClassifier: _forest_classifier,
        RandomForestRegressor: _forest_regressor,
        ExtraTreesRegressor: _forest_regressor,
    }


def predictors_for(estimator: Any) -> Predictors:
    """The fastest bit-identical predict (and predict_proba) for this estimator."""
    if isinstance(estimator, CompiledTrees):
        proba = estimator.predict_proba if estimator.is_classifier else None
        return Predictors(estimator.predict, proba)
    fast = None
    if type(estimator).__module__.startswith("sklearn.ensemble"):
        fast = _fast_paths().get(type(estimator))
    if fast is not None and _sequential_single_output(estimator):
        return fast(estimator)
    proba = getattr(estimator, "predict_proba", None)
    return Predictors(estimator.predict, proba if callable(proba) else None)
