"""The tree-ensemble fast path gives scikit-learn's own answers, to the last bit."""

from typing import Any

import numpy
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)

from registry.serving.fastpath import predictors_for

ROWS = numpy.random.default_rng(7).normal(size=(3000, 6)) * 3


@pytest.fixture(scope="module")
def classification() -> tuple[Any, Any]:
    features, labels = make_classification(400, 6, n_informative=4, n_classes=3, random_state=0)
    return features, numpy.array(["cat", "dog", "emu"])[labels]


@pytest.mark.parametrize("forest", [RandomForestClassifier, ExtraTreesClassifier])
@pytest.mark.parametrize("trees", [1, 5, 64])
def test_forest_classifiers_predict_and_score_bit_identically(
    classification: tuple[Any, Any], forest: Any, trees: int
) -> None:
    model = forest(n_estimators=trees, random_state=0).fit(*classification)
    fast = predictors_for(model)

    assert fast.predict is not model.predict
    assert fast.predict_proba is not None
    for rows in (ROWS[:1], ROWS):
        assert numpy.array_equal(fast.predict(rows), model.predict(rows))
        assert numpy.array_equal(fast.predict_proba(rows), model.predict_proba(rows))


@pytest.mark.parametrize("forest", [RandomForestRegressor, ExtraTreesRegressor])
def test_forest_regressors_predict_bit_identically(forest: Any) -> None:
    features, target = make_regression(400, 6, random_state=0)
    model = forest(n_estimators=33, random_state=0).fit(features, target)
    fast = predictors_for(model)

    assert fast.predict is not model.predict and fast.predict_proba is None
    assert numpy.array_equal(fast.predict(ROWS), model.predict(ROWS))


def test_other_estimators_and_parallel_or_multi_output_forests_use_their_own_methods(
    classification: tuple[Any, Any],
) -> None:
    features, labels = classification
    boosted = GradientBoostingClassifier(n_estimators=5).fit(features, labels)
    parallel = RandomForestClassifier(n_estimators=5, n_jobs=2).fit(features, labels)
    multi = RandomForestClassifier(n_estimators=5).fit(features, numpy.c_[labels, labels])

    assert predictors_for(boosted).predict == boosted.predict
    assert predictors_for(boosted).predict_proba == boosted.predict_proba
    assert predictors_for(parallel).predict == parallel.predict
    assert predictors_for(multi).predict == multi.predict


def test_values_beyond_float32_are_refused_as_scikit_learn_refuses_them(
    classification: tuple[Any, Any],
) -> None:
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(*classification)
    rows = numpy.full((1, 6), 1e300)
    with pytest.raises(ValueError, match="too large for dtype") as ours:
        predictors_for(model).predict(rows)
    with pytest.raises(ValueError, match="too large for dtype") as theirs:
        model.predict(rows)
    assert str(ours.value) in str(theirs.value)
