"""A compiled form walked by scikit-learn's trees (batch parts): the model's own answers, bit
for bit, and the numpy walk kept for whatever those trees cannot walk."""

from typing import Any

import numpy
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_wine
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier

from registry.batching.native_trees import NativelyWalkedTrees, natively_walked
from registry.compiled import CompiledTrees, load_compiled
from registry.inspecting.tree_compiler import exact_form, generated_rows

WINE = load_wine(return_X_y=True)  # three classes
DIABETES = load_diabetes(return_X_y=True)


def _walked(model: Any, example: Any) -> tuple[CompiledTrees, CompiledTrees]:
    form = exact_form(model, example)
    assert form is not None
    served = load_compiled(form.to_bytes())
    return served, natively_walked(served)


def _many_rows(form: CompiledTrees, data: Any) -> Any:
    """More rows than one chunk of the walk, on and beside every threshold."""
    generated = generated_rows(form, numpy.random.default_rng(3))
    return numpy.concatenate([data, *[generated] * 300])


@pytest.mark.parametrize(
    "estimator",
    [
        DecisionTreeClassifier(random_state=0),
        RandomForestClassifier(n_estimators=30, random_state=0),
        ExtraTreesClassifier(n_estimators=30, random_state=0),
        GradientBoostingClassifier(n_estimators=20, random_state=0),  # 3 trees a stage
    ],
    ids=lambda e: type(e).__name__,
)
def test_classifiers_walked_by_sklearn_give_the_models_labels_and_probabilities(
    estimator: Any,
) -> None:
    model = clone(estimator).fit(*WINE)
    form, walked = _walked(model, WINE[0][:20])

    assert isinstance(walked, NativelyWalkedTrees)
    rows = _many_rows(form, WINE[0])
    assert rows.shape[0] * walked.n_trees > 1 << 19  # several chunks
    assert numpy.array_equal(walked.predict(rows), model.predict(rows))
    assert numpy.array_equal(walked.predict_proba(rows), model.predict_proba(rows))


@pytest.mark.parametrize(
    "estimator",
    [
        RandomForestRegressor(n_estimators=20, random_state=0),
        GradientBoostingRegressor(n_estimators=20, random_state=0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_regressors_walked_by_sklearn_give_the_models_values(estimator: Any) -> None:
    model = clone(estimator).fit(*DIABETES)
    form, walked = _walked(model, None)

    assert isinstance(walked, NativelyWalkedTrees)
    rows = _many_rows(form, DIABETES[0])
    assert numpy.array_equal(walked.predict(rows), model.predict(rows))


def test_missing_values_go_where_the_model_sends_them() -> None:
    features, target = DIABETES
    with_missing = features.copy()
    with_missing[numpy.random.default_rng(0).random(features.shape) < 0.15] = numpy.nan
    model = RandomForestRegressor(n_estimators=20, random_state=0).fit(with_missing, target)
    form, walked = _walked(model, None)

    assert form.allow_nan and isinstance(walked, NativelyWalkedTrees)
    assert numpy.array_equal(walked.predict(with_missing), model.predict(with_missing))


def test_rows_the_model_refuses_are_refused_as_before() -> None:
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(*WINE)
    boosting = GradientBoostingClassifier(n_estimators=3, random_state=0).fit(*WINE)
    for model, row in ((forest, [1e300] * 13), (boosting, [numpy.nan] * 13)):
        _, walked = _walked(model, None)
        assert isinstance(walked, NativelyWalkedTrees)
        with pytest.raises(ValueError):
            model.predict([row])
        with pytest.raises(ValueError):
            walked.predict([row])


def test_hist_gradient_boosting_keeps_the_numpy_walk() -> None:
    # float64 comparisons, which scikit-learn's Tree (float32 rows) would not make
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(*WINE)
    form, walked = _walked(model, None)

    assert walked is form


def test_trees_that_reach_other_leaves_than_the_form_are_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given trees rebuilt from another model than the form's (as another scikit-learn's Tree
    # state, read differently, would give)
    from registry.batching import native_trees

    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(*WINE)
    other = RandomForestClassifier(n_estimators=5, random_state=1).fit(*WINE)
    form, _ = _walked(model, None)
    other_form, _ = _walked(other, None)
    rebuilt = native_trees._sklearn_trees
    monkeypatch.setattr(native_trees, "_sklearn_trees", lambda _: rebuilt(other_form))
    # Then the form keeps its numpy walk
    assert native_trees.natively_walked(form) is form


def test_trees_scikit_learn_refuses_to_rebuild_leave_the_form_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sklearn.tree import _tree

    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(*WINE)
    form, _ = _walked(model, None)
    monkeypatch.setattr(_tree, "NODE_DTYPE", numpy.dtype([("left_child", "<i8")]))
    assert natively_walked(form) is form
